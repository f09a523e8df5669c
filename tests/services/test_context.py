"""Opening the gateway: refused outside test mode until production is configured; local state owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.access import PATIENT_KEY_FILE
from edi_gateway.services.context import ConfigurationError, ensure_gateway_pki, open_gateway
from edi_gateway.settings import SQLITE_FILE, Settings
from edi_gateway.web import create_app
from edi_gateway.web.auth import SECRET_FILE

OUR_HER_ID = 8100001
PORSGRUNN = 8100005


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes counts, not the EDI_GATEWAY_* variables of the shell running the tests."""
    for name in [n for n in os.environ if n.startswith("EDI_GATEWAY_")]:
        monkeypatch.delenv(name)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _production(home: Path, pki_template: Path, **values: object) -> Settings:
    """Settings of a configured production: our key and cert, the parties' certificates, fixture registers."""
    production: dict[str, object] = {
        "signing_key": pki_template / f"{OUR_HER_ID}.key.pem",
        "signing_cert": pki_template / f"{OUR_HER_ID}.cert.pem",
        "certificates_dir": pki_template,
        "registers": "fixtures",
    }
    return Settings(home=home, **{**production, **values})  # type: ignore[arg-type]


def test_production_without_a_signing_key_refuses_to_open_and_generates_nothing(tmp_path: Path) -> None:
    """TEST_MODE off and no key: one error naming the settings; no test PKI, no database, no home."""
    home = tmp_path / "home"
    with pytest.raises(ConfigurationError) as refused:
        open_gateway(Settings(home=home))
    message = str(refused.value)
    assert (
        "EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT must be set when EDI_GATEWAY_TEST_MODE is off"
        in message
    )
    assert "EDI_GATEWAY_REGISTERS" in message and "\n" not in message
    assert not home.exists()


def test_production_without_a_register_choice_refuses_to_open(tmp_path: Path, pki_template: Path) -> None:
    """A key alone is not enough: with no register source chosen the gateway names EDI_GATEWAY_REGISTERS."""
    settings = _production(tmp_path / "home", pki_template).model_copy(update={"registers": None})
    with pytest.raises(ConfigurationError, match=r"^EDI_GATEWAY_REGISTERS must be set"):
        open_gateway(settings)


def test_the_web_app_is_not_built_in_production_without_a_key(tmp_path: Path) -> None:
    """create_app opens the gateway, so /readyz can never report a test-PKI production as ready."""
    with pytest.raises(ConfigurationError, match="EDI_GATEWAY_SIGNING_KEY"):
        create_app(Settings(home=tmp_path / "home"))


def test_no_test_pki_is_generated_outside_test_mode(tmp_path: Path) -> None:
    """ensure_gateway_pki refuses when TEST_MODE is off, whoever calls it (the receiver role too)."""
    registers = load_fixture_registers(resource_dir("fixtures") / "registers")
    with pytest.raises(ConfigurationError, match="EDI_GATEWAY_TEST_MODE"):
        ensure_gateway_pki(Settings(home=tmp_path / "home"), registers)
    assert not (tmp_path / "home" / "pki").exists()


def test_a_configured_production_opens_with_its_own_key_and_certificates(
    tmp_path: Path, pki_template: Path
) -> None:
    """Our configured certificate signs, the parties' certificates come from CERTIFICATES_DIR, no PKI is made."""
    home = tmp_path / "home"
    gateway = open_gateway(_production(home, pki_template), migrate=True)
    try:
        ours = (pki_template / f"{OUR_HER_ID}.cert.pem").read_bytes()
        assert gateway.signer.cert_pem == ours
        porsgrunn = (pki_template / f"{PORSGRUNN}.cert.pem").read_bytes()
        assert gateway.registers.address.certificate_pem(PORSGRUNN) == porsgrunn
    finally:
        gateway.close()
    assert not (home / "pki").exists()


def test_an_unreadable_signing_key_names_the_setting(tmp_path: Path, pki_template: Path) -> None:
    """A SIGNING_KEY path that does not exist is a configuration error naming the variable."""
    settings = _production(tmp_path / "home", pki_template).model_copy(
        update={"signing_key": tmp_path / "missing.key.pem"}
    )
    with pytest.raises(ConfigurationError, match="EDI_GATEWAY_SIGNING_KEY"):
        open_gateway(settings)


def test_a_certificates_dir_that_is_not_a_folder_is_refused(tmp_path: Path, pki_template: Path) -> None:
    """CERTIFICATES_DIR must name a folder; a typo is refused at start-up, not found at the first AppRec."""
    settings = _production(tmp_path / "home", pki_template, certificates_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="EDI_GATEWAY_CERTIFICATES_DIR"):
        open_gateway(settings)


@pytest.mark.usefixtures("open_umask")
def test_home_database_and_keys_are_owner_only_under_umask_000(tmp_path: Path, pki_template: Path) -> None:
    """With umask 000, HOME is 0700 and the SQLite file, the patient key and the session secret are 0600."""
    home = tmp_path / "first-run" / "home"
    settings = _production(home, pki_template)  # the test PKI's own modes are tests/test_pki.py's
    gateway = open_gateway(settings, migrate=True)
    try:
        create_app(settings, gateway=gateway)
    finally:
        gateway.close()
    assert _mode(home) == 0o700
    files = (SQLITE_FILE, PATIENT_KEY_FILE, SECRET_FILE)
    assert {name: _mode(home / name) for name in files} == dict.fromkeys(files, 0o600)


@pytest.mark.usefixtures("open_umask")
def test_an_explicit_sqlite_url_gets_an_owner_only_file_too(tmp_path: Path, pki_template: Path) -> None:
    """A DATABASE_URL naming a SQLite file outside HOME is created 0600 as well, under umask 000."""
    database = tmp_path / "elsewhere.sqlite3"
    settings = _production(tmp_path / "home", pki_template, database_url=f"sqlite:///{database}")
    open_gateway(settings, migrate=True).close()
    assert _mode(database) == 0o600
