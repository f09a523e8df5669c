"""``edi-gateway transport``: the transport and register configuration in force, without secrets.

Run in-process with typer's CliRunner; the command reads settings only (no broker, no database).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from edi_gateway.cli import app

AMQP_PASSWORD = "s3cret-broker-pw"
FLR_USER = "flr-user-kari"
FLR_PASSWORD = "flr-password-never-shown"
KEY_TEXT = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key-but-secret\n-----END PRIVATE KEY-----\n"
NHN_VARIABLES = (
    "EDI_GATEWAY_NHN_MSH_URL",
    "EDI_GATEWAY_HELSEID_TOKEN_URL",
    "EDI_GATEWAY_HELSEID_CLIENT_ID",
    "EDI_GATEWAY_HELSEID_KEY",
)


def _run(env: dict[str, str], *args: str) -> Result:
    """Run ``edi-gateway transport <args>`` with only ``env`` of the EDI_GATEWAY_ variables set."""
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith("EDI_GATEWAY_")}
    return CliRunner().invoke(app, ["transport", *args], env={**cleared, **env})


def _secret_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def _nhn_env(tmp_path: Path) -> dict[str, str]:
    """A complete nhn configuration (transport and registers) in test mode."""
    return {
        "EDI_GATEWAY_HOME": str(tmp_path / "home"),
        "EDI_GATEWAY_TEST_MODE": "true",
        "EDI_GATEWAY_TRANSPORT": "nhn",
        "EDI_GATEWAY_REGISTERS": "nhn",
        "EDI_GATEWAY_AMQP_URL": f"amqp://edi:{AMQP_PASSWORD}@broker.example:5672/%2F",
        "EDI_GATEWAY_NHN_MSH_URL": "https://api.hn-tjener.test.melding.nhn.no",
        "EDI_GATEWAY_HELSEID_TOKEN_URL": "https://helseid-sts.test.nhn.no/connect/token",
        "EDI_GATEWAY_HELSEID_CLIENT_ID": "edi-gateway-client",
        "EDI_GATEWAY_HELSEID_KEY": str(_secret_file(tmp_path / "helseid-client.pem", KEY_TEXT)),
        "EDI_GATEWAY_AR_URL": "https://cpe.test.nhn.no",
        "EDI_GATEWAY_FLR_URL": "https://ws-web.test.nhn.no/v2/flr/Basic",
        "EDI_GATEWAY_FLR_USERNAME": FLR_USER,
        "EDI_GATEWAY_FLR_PASSWORD_FILE": str(_secret_file(tmp_path / "flr-password.txt", FLR_PASSWORD)),
    }


def test_transport_json_shows_the_nhn_configuration_with_every_secret_hidden(tmp_path: Path) -> None:
    """A complete nhn configuration shows its URLs, "set" for the key and FLR login, *** for the broker password."""
    env = _nhn_env(tmp_path)
    result = _run(env, "--json")
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    assert shown["transport"] == "nhn" and shown["registers"] == "nhn"
    assert shown["problems"] == []
    assert shown["nhn_msh_url"] == env["EDI_GATEWAY_NHN_MSH_URL"]
    assert shown["helseid_token_url"] == env["EDI_GATEWAY_HELSEID_TOKEN_URL"]
    assert shown["helseid_audience"] == "https://helseid-sts.test.nhn.no"
    assert shown["helseid_client_id"] == "edi-gateway-client"
    assert (shown["ar_url"], shown["flr_url"]) == (env["EDI_GATEWAY_AR_URL"], env["EDI_GATEWAY_FLR_URL"])
    assert shown["helseid_key"] == shown["flr_username"] == shown["flr_password_file"] == "set"
    assert shown["amqp_url"] == "amqp://edi:***@broker.example:5672/%2F"
    for secret in (
        AMQP_PASSWORD,
        FLR_USER,
        FLR_PASSWORD,
        "not-a-real-key",
        env["EDI_GATEWAY_HELSEID_KEY"],
        env["EDI_GATEWAY_FLR_PASSWORD_FILE"],
    ):
        assert secret not in result.output


def test_transport_lines_hide_the_same_secrets(tmp_path: Path) -> None:
    """Without --json each setting is one "name: value" line, with the secrets hidden as in JSON."""
    env = _nhn_env(tmp_path)
    result = _run(env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "transport: nhn" in lines and "problems: []" in lines and "helseid_key: set" in lines
    assert "amqp_url: amqp://edi:***@broker.example:5672/%2F" in lines
    for secret in (AMQP_PASSWORD, FLR_USER, FLR_PASSWORD, env["EDI_GATEWAY_HELSEID_KEY"]):
        assert secret not in result.output


def test_transport_nhn_with_nothing_else_set_names_the_missing_variables(tmp_path: Path) -> None:
    """Transport nhn alone lists as problems the message service URL and every HelseID variable."""
    result = _run({"EDI_GATEWAY_HOME": str(tmp_path / "home"), "EDI_GATEWAY_TRANSPORT": "nhn"}, "--json")
    shown: dict[str, Any] = json.loads(result.stdout)
    assert shown["transport"] == "nhn"
    said = " ".join(shown["problems"])
    assert all(name in said for name in NHN_VARIABLES), shown["problems"]
    assert shown["nhn_msh_url"] is None and shown["helseid_key"] is None


def test_transport_nhn_in_test_mode_misses_only_the_nhn_variables(tmp_path: Path) -> None:
    """In test mode (fixture registers, test PKI) the nhn variables are the only problem, in one line."""
    env = {
        "EDI_GATEWAY_HOME": str(tmp_path / "home"),
        "EDI_GATEWAY_TEST_MODE": "true",
        "EDI_GATEWAY_TRANSPORT": "nhn",
    }
    shown: dict[str, Any] = json.loads(_run(env, "--json").stdout)
    assert shown["registers"] == "fixtures"
    (problem,) = shown["problems"]
    assert all(name in problem for name in NHN_VARIABLES) and "EDI_GATEWAY_AR_URL" not in problem


def test_transport_amqp_shows_no_nhn_settings(tmp_path: Path) -> None:
    """On amqp with fixture registers the NHN settings are left out and nothing is missing."""
    env = {"EDI_GATEWAY_HOME": str(tmp_path / "home"), "EDI_GATEWAY_TEST_MODE": "true"}
    result = _run(env, "--json")
    assert result.exit_code == 0, result.output
    shown: dict[str, Any] = json.loads(result.stdout)
    assert (shown["transport"], shown["registers"], shown["problems"]) == ("amqp", "fixtures", [])
    assert "nhn_msh_url" not in shown and "helseid_key" not in shown
