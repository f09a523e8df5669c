"""The start-up rules of the settings: nothing test-only is chosen silently outside test mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edi_gateway.settings import Settings

KEY, CERT, CERTS = Path("key.pem"), Path("cert.pem"), Path("certs")
PRODUCTION = {
    "signing_key": KEY,
    "signing_cert": CERT,
    "certificates_dir": CERTS,
    "registers": "fixtures",
}


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes counts, not the EDI_GATEWAY_* variables of the shell running the tests."""
    for name in [n for n in os.environ if n.startswith("EDI_GATEWAY_")]:
        monkeypatch.delenv(name)


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(home=tmp_path, **values)  # type: ignore[arg-type]


def test_test_mode_alone_may_start_on_the_test_pki_and_fixture_registers(tmp_path: Path) -> None:
    """With TEST_MODE on and nothing else set there is no start-up problem; fixtures and the test PKI serve."""
    settings = _settings(tmp_path, test_mode=True)
    assert settings.startup_problems() == []
    assert settings.effective_registers == "fixtures"
    assert settings.uses_test_pki


def test_production_without_anything_set_names_every_setting_to_set(tmp_path: Path) -> None:
    """TEST_MODE off and nothing configured: the key and cert, the certificates and the registers are named."""
    problems = _settings(tmp_path).startup_problems()
    assert problems == [
        "EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT must be set when EDI_GATEWAY_TEST_MODE is off "
        "(a generated test PKI is for test mode only)",
        "EDI_GATEWAY_CERTIFICATES_DIR (the parties' certificates) must be set when EDI_GATEWAY_TEST_MODE is "
        "off and EDI_GATEWAY_APPREC_SIGNATURE is not off",
        "EDI_GATEWAY_REGISTERS must be set when EDI_GATEWAY_TEST_MODE is off (fixtures or nhn)",
    ]


def test_a_fully_configured_production_may_start_and_uses_no_test_pki(tmp_path: Path) -> None:
    """Key, cert, certificates folder and an explicit register source: no problem, and no test PKI."""
    settings = _settings(tmp_path, **PRODUCTION)
    assert settings.startup_problems() == []
    assert not settings.uses_test_pki


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("signing_key", "EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT, or neither"),
        ("signing_cert", "EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT, or neither"),
        ("certificates_dir", "EDI_GATEWAY_CERTIFICATES_DIR"),
        ("registers", "EDI_GATEWAY_REGISTERS"),
    ],
)
def test_each_missing_production_setting_is_the_one_problem_named(
    tmp_path: Path, missing: str, named: str
) -> None:
    """Leaving out one production setting gives exactly one problem, naming that setting."""
    values = {k: v for k, v in PRODUCTION.items() if k != missing}
    (problem,) = _settings(tmp_path, **values).startup_problems()
    assert named in problem


def test_half_a_signing_pair_is_refused_in_test_mode_too(tmp_path: Path) -> None:
    """A key without its certificate is a mistake whatever the mode."""
    (problem,) = _settings(tmp_path, test_mode=True, signing_key=KEY).startup_problems()
    assert problem == "set both EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT, or neither"


def test_registers_dir_chooses_the_fixture_registers_explicitly(tmp_path: Path) -> None:
    """Setting REGISTERS_DIR outside test mode counts as choosing fixture registers."""
    values = {k: v for k, v in PRODUCTION.items() if k != "registers"}
    settings = _settings(tmp_path, registers_dir=tmp_path / "registers", **values)
    assert settings.effective_registers == "fixtures"
    assert settings.startup_problems() == []


def test_no_certificates_are_needed_when_apprec_signatures_are_off(tmp_path: Path) -> None:
    """With APPREC_SIGNATURE=off nothing is verified, so CERTIFICATES_DIR is not required."""
    values = {k: v for k, v in PRODUCTION.items() if k != "certificates_dir"}
    assert _settings(tmp_path, apprec_signature="off", **values).startup_problems() == []


def test_registers_accepts_only_a_known_source(tmp_path: Path) -> None:
    """An unknown register source is a validation error, not a silent fallback."""
    with pytest.raises(ValueError, match="fixtures"):
        _settings(tmp_path, registers="ldap")


def test_nhn_registers_and_transport_name_every_nhn_setting_still_missing(tmp_path: Path) -> None:
    """REGISTERS=nhn and TRANSPORT=nhn refuse to start until the endpoints, client and secrets are set."""
    problems = _settings(tmp_path, test_mode=True, registers="nhn", transport="nhn").startup_problems()
    assert problems == [
        "EDI_GATEWAY_NHN_MSH_URL, EDI_GATEWAY_HELSEID_TOKEN_URL, EDI_GATEWAY_HELSEID_CLIENT_ID, "
        "EDI_GATEWAY_HELSEID_KEY must be set",
        "EDI_GATEWAY_AR_URL, EDI_GATEWAY_FLR_URL, EDI_GATEWAY_FLR_USERNAME, EDI_GATEWAY_FLR_PASSWORD_FILE, "
        "EDI_GATEWAY_HELSEID_TOKEN_URL, EDI_GATEWAY_HELSEID_CLIENT_ID, EDI_GATEWAY_HELSEID_KEY must be set",
    ]


def test_nhn_registers_need_no_certificates_folder_in_production(tmp_path: Path) -> None:
    """With REGISTERS=nhn the parties' certificates come from Adresseregisteret, so CERTIFICATES_DIR is not asked for."""
    problems = _settings(tmp_path, registers="nhn").startup_problems()
    assert not any("CERTIFICATES_DIR" in p for p in problems)
    assert any("EDI_GATEWAY_AR_URL" in p for p in problems)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "home/edi_gateway.sqlite3"),
        ("sqlite:////data/edi.sqlite3", "/data/edi.sqlite3"),
        ("sqlite:///relative.db?timeout=5", "relative.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://postgres@127.0.0.1/test", None),
    ],
)
def test_sqlite_file_is_the_database_file_the_url_names(url: str | None, expected: str | None) -> None:
    """sqlite_file is the file SQLite would create, and None for other databases and in-memory ones."""
    settings = Settings(home=Path("home"), database_url=url)
    assert settings.sqlite_file == (Path(expected) if expected else None)


def test_a_copy_with_another_database_names_that_database(tmp_path: Path) -> None:
    """model_copy derives the database URL in force again instead of keeping the original's."""
    settings = Settings(home=tmp_path, test_mode=True)
    assert settings.effective_database_url.endswith("edi_gateway.sqlite3")
    copy = settings.model_copy(update={"database_url": "sqlite:////elsewhere/k.sqlite3"})
    assert copy.effective_database_url == "sqlite:////elsewhere/k.sqlite3"
    assert settings.effective_database_url != copy.effective_database_url
