"""``edi-gateway web``: builds the app from the environment's settings and hands it to uvicorn."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from edi_gateway import cli_web
from edi_gateway import logging as edi_logging


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave logging alone: configured inside CliRunner it would write to a stream closed afterwards."""
    monkeypatch.setattr(edi_logging, "configure_logging", lambda **_: None)


def _cli() -> typer.Typer:
    app = typer.Typer()
    cli_web.register(app)

    @app.command()
    def other() -> None:  # a second command keeps typer from collapsing the group into "web"
        """Unused."""

    return app


def test_web_serves_the_app_on_the_given_address(
    tmp_path: Path, pki_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command builds the app from EDI_GATEWAY_* settings and runs uvicorn without its access log."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    monkeypatch.setenv("EDI_GATEWAY_HOME", str(home))
    monkeypatch.setenv("EDI_GATEWAY_TEST_MODE", "true")  # the copied test PKI signs
    monkeypatch.delenv("EDI_GATEWAY_DATABASE_URL", raising=False)
    served: dict[str, Any] = {}

    def fake_run(app: FastAPI, **kwargs: Any) -> None:
        served.update(kwargs, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    result = CliRunner().invoke(_cli(), ["web", "--host", "127.0.0.1", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert isinstance(served["app"], FastAPI)
    assert (served["host"], served["port"], served["access_log"]) == ("127.0.0.1", 8123, False)
    assert (served["proxy_headers"], served["forwarded_allow_ips"]) == (True, "127.0.0.1")
    assert "http://127.0.0.1:8123/" in result.output


def test_web_believes_forwarded_headers_from_the_named_proxies_only(
    tmp_path: Path, pki_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--forwarded-allow-ips is what uvicorn trusts for X-Forwarded-Proto (and so for HSTS)."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    monkeypatch.setenv("EDI_GATEWAY_HOME", str(home))
    monkeypatch.setenv("EDI_GATEWAY_TEST_MODE", "true")
    monkeypatch.delenv("EDI_GATEWAY_DATABASE_URL", raising=False)
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(kwargs))
    result = CliRunner().invoke(_cli(), ["web", "--forwarded-allow-ips", "10.1.0.5,10.1.0.6"])
    assert result.exit_code == 0, result.output
    assert served["forwarded_allow_ips"] == "10.1.0.5,10.1.0.6"


def test_a_bad_setting_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting that does not validate names its variable and exits with 2."""
    monkeypatch.setenv("EDI_GATEWAY_BATCH_SIZE", "lots")
    result = CliRunner().invoke(_cli(), ["web"])
    assert result.exit_code == 2
    assert "EDI_GATEWAY_BATCH_SIZE" in result.output
