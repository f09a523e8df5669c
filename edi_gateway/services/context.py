"""Build the gateway's long-lived parts from settings: registers, routing rules, signer, store.

Everything here is loaded once per process (rules parsed, key loaded, schemas compiled) and then shared
by the worker, the CLI and the demo. The start-up checks live here too: ``open_gateway`` refuses
settings that ``Settings.startup_problems`` objects to before it touches a key or a register, and
creates the HOME folder and the SQLite file owner-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edi_gateway.domain.routing import RoutingRules
from edi_gateway.pki import TestPki, ensure_test_pki
from edi_gateway.private_files import private_dir, private_file
from edi_gateway.registers.base import Registers
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.services.access import bind_patient_key, load_patient_key
from edi_gateway.settings import ConfigurationError as ConfigurationError
from edi_gateway.settings import Settings
from edi_gateway.store import Store
from edi_gateway.transport.names import Names
from edi_gateway.xml.schemas import warm_up
from edi_gateway.xml.signing import Signer


def _yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"routing rules file {path} cannot be read: {exc}") from exc


def load_routing_rules(directory: Path) -> RoutingRules:
    """Load ``default.yaml`` and the optional ``kommuner.yaml`` from ``directory``."""
    kommuner = directory / "kommuner.yaml"
    try:
        return RoutingRules.from_documents(
            _yaml(directory / "default.yaml"), _yaml(kommuner) if kommuner.is_file() else None
        )
    except ValueError as exc:
        raise ConfigurationError(f"routing rules in {directory} are invalid: {exc}") from exc


def check_startup(settings: Settings) -> None:
    """Refuse settings the gateway must not start with (one line naming every variable to set).

    Raises:
        ConfigurationError: ``settings.startup_problems()`` found something.
    """
    problems = settings.startup_problems()
    if problems:
        raise ConfigurationError("; ".join(problems))


def ensure_gateway_pki(settings: Settings, registers: Registers) -> TestPki:
    """Generate (once) the test PKI for every virksomhet in the registers, under HOME.

    Raises:
        ConfigurationError: test mode is off; a generated PKI never exists outside it.
    """
    if not settings.test_mode:
        raise ConfigurationError("the generated test PKI is for EDI_GATEWAY_TEST_MODE only")
    parties = [(v.her_id, v.organisation.name) for v in registers.address.all_virksomheter()]
    return ensure_test_pki(settings.pki_dir, parties)


def load_signer(settings: Settings, pki: TestPki | None) -> Signer:
    """Load our signing key and certificate: from settings, or (test mode only) the test PKI."""
    if settings.signing_key and settings.signing_cert:
        try:
            return Signer.from_files(settings.signing_key, settings.signing_cert)
        except (OSError, ValueError, TypeError) as exc:  # TypeError: a key protected by a password
            raise ConfigurationError(
                f"EDI_GATEWAY_SIGNING_KEY / EDI_GATEWAY_SIGNING_CERT cannot be used: {exc}"
            ) from exc
    if settings.signing_key or settings.signing_cert:
        raise ConfigurationError("set both EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT, or neither")
    if pki is None or not settings.test_mode:
        raise ConfigurationError("no signing key: set EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT")
    try:
        return Signer.from_files(pki.key_path(settings.our_her_id), pki.cert_path(settings.our_her_id))
    except OSError as exc:
        raise ConfigurationError(
            f"the test PKI has no key for EDI_GATEWAY_OUR_HER_ID {settings.our_her_id}: "
            "it is not a virksomhet in the registers"
        ) from exc


def load_registers(settings: Settings) -> tuple[Registers, TestPki | None]:
    """Load the fixture registers in force, with the parties' certificates, and the test PKI when one is used.

    The certificates come from CERTIFICATES_DIR, or in test mode from the test PKI (generated for
    every virksomhet in the registers on first use).
    """
    if settings.certificates_dir is not None and not settings.certificates_dir.is_dir():
        raise ConfigurationError(f"EDI_GATEWAY_CERTIFICATES_DIR {settings.certificates_dir} is not a folder")
    directory = settings.effective_registers_dir
    pki = ensure_gateway_pki(settings, load_fixture_registers(directory)) if settings.uses_test_pki else None
    cert_dir = settings.certificates_dir or (pki.directory if pki else None)
    return load_fixture_registers(directory, cert_dir=cert_dir), pki


def open_registers(settings: Settings) -> tuple[Registers, TestPki | None, Callable[[], None]]:
    """The registers ``REGISTERS`` chooses, the test PKI when one is used, and how to close them.

    ``nhn``: Adresseregisteret (whose certificates verify the parties' signatures) and
    Fastlegeregisteret, cached; in test mode the fixture population register and test PKI come along.
    """
    if settings.effective_registers != "nhn":
        registers, pki = load_registers(settings)
        return registers, pki, lambda: None
    from edi_gateway.registers.nhn import open_nhn_registers

    fixtures = load_fixture_registers(settings.effective_registers_dir) if settings.test_mode else None
    pki = ensure_gateway_pki(settings, fixtures) if fixtures is not None and settings.uses_test_pki else None
    opened = open_nhn_registers(settings, population=fixtures.population if fixtures else None)
    return opened.registers, pki, opened.close


def prepare_home(settings: Settings) -> None:
    """Create HOME (0700) and a SQLite database file (0600) before SQLite would create it 0644."""
    try:
        private_dir(settings.home)
        sqlite_file = settings.sqlite_file
        # A missing folder is the store's to report, in its own words, when it connects.
        if sqlite_file is not None and sqlite_file.parent.is_dir():
            private_file(sqlite_file)
    except OSError as exc:
        raise ConfigurationError(f"EDI_GATEWAY_HOME or the SQLite file cannot be created ({exc})") from exc


@dataclass(frozen=True, slots=True)
class Gateway:
    """The long-lived parts every command works with."""

    settings: Settings
    registers: Registers
    rules: RoutingRules
    signer: Signer
    store: Store
    names: Names
    close_registers: Callable[[], None] = lambda: None

    def close(self) -> None:
        """Release the database connections and the registers' HTTP clients."""
        self.store.close()
        self.close_registers()


def open_gateway(settings: Settings, *, migrate: bool = False) -> Gateway:
    """Load registers, rules, keys and schemas, and connect the store.

    Args:
        settings: the settings in force.
        migrate: bring the database schema up to date first (``setup`` and the demo do).

    Raises:
        ConfigurationError: the settings fail the start-up checks (``check_startup``), or a key,
            certificate or routing rules file cannot be used.
    """
    check_startup(settings)
    prepare_home(settings)
    registers, pki, close_registers = open_registers(settings)
    try:
        rules = load_routing_rules(settings.effective_routing_rules_dir)
        signer = load_signer(settings, pki)
        warm_up()
        store = Store.connect(settings.effective_database_url)
    except BaseException:
        close_registers()
        raise
    if migrate:
        store.migrate()
    # Audit entries name patients by a keyed hash; the key is this installation's (see services.access).
    bind_patient_key(store, load_patient_key(settings))
    return Gateway(settings, registers, rules, signer, store, Names(settings.queue_prefix), close_registers)


def receiver_queues(gateway: Gateway) -> list[str]:
    """Every receiver queue the registers name, with the configured prefix."""
    return sorted(
        {
            gateway.names.prefixed(v.queue)
            for v in gateway.registers.address.all_virksomheter()
            if v.her_id != gateway.settings.our_her_id
        }
    )
