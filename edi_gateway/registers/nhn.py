"""``REGISTERS=nhn``: Adresseregisteret and Fastlegeregisteret behind the register interfaces, cached.

``open_nhn_registers`` builds, from ``Settings.nhn``: a HelseID client for AR's scopes, the AR REST
client (``nhn_ar``), the FLR SOAP client (``nhn_flr``, HTTP Basic with the password read from an
owner-only file), each behind a read-through cache (``cache``). Folkeregisteret has no NHN interface:
outside test mode the population register answers nobody, so a request must carry the patient's
kommunenummer; in test mode the fixture population register stands in (the demo's patients).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edi_gateway.nhn.helseid import HelseIdClient, HelseIdConfig
from edi_gateway.nhn.keys import load_client_key
from edi_gateway.nhn.metrics import record_token_refresh
from edi_gateway.registers.base import PopulationRegister, Registers
from edi_gateway.registers.cache import CachedAddressRegister, CachedFastlegeRegister, CachePolicy
from edi_gateway.registers.nhn_ar import ArConfig, NhnAddressRegister, load_kommune_orgnr
from edi_gateway.registers.nhn_flr import FlrConfig, NhnFastlegeRegister, NoPopulationRegister
from edi_gateway.resources import resource_dir
from edi_gateway.settings import ConfigurationError, Settings

MAX_PASSWORD_BYTES = 4096


@dataclass
class NhnRegisters:
    """The registers, and what to close when the process is done with them."""

    registers: Registers
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close the HTTP clients."""
        for close in reversed(self.closers):
            close()


def open_nhn_registers(settings: Settings, *, population: PopulationRegister | None = None) -> NhnRegisters:
    """Build the NHN registers from ``settings`` (``startup_problems`` has checked what is required).

    Args:
        settings: the settings in force.
        population: the population register to use (test mode: the fixtures); default none.

    Raises:
        ConfigurationError: the key, the password file or the kommune map cannot be used.
    """
    nhn = settings.nhn
    if not (nhn.ar_url and nhn.flr_url and nhn.flr_username and nhn.flr_password_file):
        raise ConfigurationError("; ".join(nhn.register_problems()) or "the nhn registers are not configured")
    if not (nhn.helseid_token_url and nhn.helseid_client_id and nhn.helseid_key):
        raise ConfigurationError("; ".join(nhn.register_problems()))
    helseid = HelseIdClient(
        HelseIdConfig(
            token_endpoint=nhn.helseid_token_url,
            client_id=nhn.helseid_client_id,
            key=load_client_key(nhn.helseid_key),
            scopes=tuple(nhn.helseid_ar_scopes.split()),
            audience=nhn.effective_helseid_audience or nhn.helseid_token_url,
            timeout_s=nhn.nhn_timeout_s,
        ),
        on_refresh=lambda: record_token_refresh(nhn.helseid_ar_scopes),
    )
    orgnr_file = nhn.kommune_orgnr_file or resource_dir("routing_rules") / "kommune-organisations.yaml"
    served = nhn.nhn_her_ids or (settings.our_her_id,)
    address = NhnAddressRegister(
        ArConfig(
            base_url=nhn.ar_url, timeout_s=nhn.nhn_timeout_s, kommune_orgnr=load_kommune_orgnr(orgnr_file)
        ),
        auth=helseid.headers_for,
        on_unauthorized=helseid.invalidate,
        own_her_id=settings.our_her_id,
        own_unit_her_ids=sorted({*served, settings.default_unit_her_id} - {settings.our_her_id}),
    )
    policy = CachePolicy(
        ttl_s=nhn.register_cache_ttl_s,
        negative_ttl_s=nhn.register_cache_negative_ttl_s,
        stale_max_s=nhn.register_stale_max_s,
        max_entries=nhn.register_cache_size,
    )
    cached_address = CachedAddressRegister(address, policy)
    flr = NhnFastlegeRegister(
        FlrConfig(
            endpoint=nhn.flr_url,
            username=nhn.flr_username,
            password=read_password(nhn.flr_password_file),
            timeout_s=nhn.nhn_timeout_s,
        ),
        cached_address,
    )
    registers = Registers(
        population=population or NoPopulationRegister(),
        address=cached_address,
        fastlege=CachedFastlegeRegister(flr, policy),
    )
    return NhnRegisters(registers, [helseid.close, address.close, flr.close])


def read_password(path: Path) -> str:
    """The password in ``path``: an owner-only file of one line.

    Raises:
        ConfigurationError: missing, readable by others, empty or too long (names the file, never the content).
    """
    try:
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read(MAX_PASSWORD_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(
            f"EDI_GATEWAY_FLR_PASSWORD_FILE {path} cannot be read ({exc.strerror})"
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(f"EDI_GATEWAY_FLR_PASSWORD_FILE {path} is readable by others: chmod 600 it")
    text = data.decode("utf-8", errors="replace").strip()
    if not text or len(data) > MAX_PASSWORD_BYTES:
        raise ConfigurationError(f"EDI_GATEWAY_FLR_PASSWORD_FILE {path} is empty or too long")
    return text
