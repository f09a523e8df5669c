"""Build the gateway's long-lived parts from settings: registers, routing rules, signer, store.

Everything here is loaded once per process (rules parsed, key loaded, schemas compiled) and then shared
by the worker, the CLI and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edi_gateway.domain.routing import RoutingRules
from edi_gateway.errors import EdiGatewayError
from edi_gateway.pki import TestPki, ensure_test_pki
from edi_gateway.registers.base import Registers
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.services.access import bind_patient_key, load_patient_key
from edi_gateway.settings import Settings
from edi_gateway.store import Store
from edi_gateway.transport.names import Names
from edi_gateway.xml.schemas import warm_up
from edi_gateway.xml.signing import Signer


class ConfigurationError(EdiGatewayError):
    """A setting or a configuration file is wrong; the message names which."""


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


def ensure_gateway_pki(settings: Settings, registers: Registers) -> TestPki:
    """Generate (once) the test PKI for every virksomhet in the registers, under HOME."""
    parties = [(v.her_id, v.organisation.name) for v in registers.address.all_virksomheter()]
    return ensure_test_pki(settings.pki_dir, parties)


def load_signer(settings: Settings, pki: TestPki | None) -> Signer:
    """Load our signing key and certificate: from settings, or the test PKI when none is set."""
    if settings.signing_key and settings.signing_cert:
        return Signer.from_files(settings.signing_key, settings.signing_cert)
    if settings.signing_key or settings.signing_cert:
        raise ConfigurationError("set both EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT, or neither")
    if pki is None:
        raise ConfigurationError("no signing key: set EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT")
    return Signer.from_files(pki.key_path(settings.our_her_id), pki.cert_path(settings.our_her_id))


@dataclass(frozen=True, slots=True)
class Gateway:
    """The long-lived parts every command works with."""

    settings: Settings
    registers: Registers
    rules: RoutingRules
    signer: Signer
    store: Store
    names: Names

    def close(self) -> None:
        """Release the database connections."""
        self.store.close()


def open_gateway(settings: Settings, *, migrate: bool = False) -> Gateway:
    """Load registers, rules, keys and schemas, and connect the store.

    Args:
        settings: the settings in force.
        migrate: bring the database schema up to date first (``setup`` and the demo do).
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    plain = load_fixture_registers(settings.effective_registers_dir)
    pki = None if settings.signing_key else ensure_gateway_pki(settings, plain)
    cert_dir = pki.directory if pki else None
    registers = load_fixture_registers(settings.effective_registers_dir, cert_dir=cert_dir)
    rules = load_routing_rules(settings.effective_routing_rules_dir)
    signer = load_signer(settings, pki)
    warm_up()
    store = Store.connect(settings.effective_database_url)
    if migrate:
        store.migrate()
    # Audit entries name patients by a keyed hash; the key is this installation's (see services.access).
    bind_patient_key(store, load_patient_key(settings))
    return Gateway(settings, registers, rules, signer, store, Names(settings.queue_prefix))


def receiver_queues(gateway: Gateway) -> list[str]:
    """Every receiver queue the registers name, with the configured prefix."""
    return sorted(
        {
            gateway.names.prefixed(v.queue)
            for v in gateway.registers.address.all_virksomheter()
            if v.her_id != gateway.settings.our_her_id
        }
    )
