"""The whole stand-in at once, for the demo and the tests: HelseID, the message service, AR and FLR.

``run_standin`` serves them on one local port (a real HTTP server in a thread) for a set of parties
known from the fixture registers. Each party is a HelseID client with its own key (the test PKI's key
of its HER-id) that may act for its own HER-ids only; ``Party.settings`` turns the gateway's settings
into that party's settings on the ``nhn`` transport.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import APIRouter

from edi_gateway.dev.nhn_standin.app import create_app
from edi_gateway.dev.nhn_standin.helseid import HelseIdStandIn, RegisteredClient
from edi_gateway.dev.nhn_standin.msh import MessageServiceStandIn
from edi_gateway.dev.nhn_standin.openapi import OpenApiValidator
from edi_gateway.dev.nhn_standin.registers import AddressRegisterStandIn, FastlegeRegisterStandIn
from edi_gateway.dev.nhn_standin.server import run_in_thread
from edi_gateway.nhn.keys import load_client_key
from edi_gateway.private_files import private_file
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.settings import Settings
from edi_gateway.settings_nhn import AR_SCOPE, MSH_SCOPE

ISSUER = "https://helseid-sts.standin.test"
"""The stand-in HelseID's issuer, and so the audience of every client assertion."""
FLR_USERNAME = "edi-gateway-standin"


@dataclass(frozen=True)
class Party:
    """One HelseID client of the stand-in: who it is, its key, and the HER-ids it acts for."""

    client_id: str
    key_path: Path
    her_ids: tuple[int, ...]


@dataclass(frozen=True)
class StandIn:
    """A running stand-in.

    Attributes:
        base_url: where it answers (``http://127.0.0.1:<port>``).
        helseid: the token endpoint and the API-side token check.
        msh: the message service (its ``validator`` holds every OpenAPI violation seen).
    """

    base_url: str
    helseid: HelseIdStandIn
    msh: MessageServiceStandIn
    ar: AddressRegisterStandIn
    flr: FastlegeRegisterStandIn
    flr_password_file: Path

    def violations(self) -> list[str]:
        """Every request to the message service or AR that broke its published OpenAPI description."""
        return [*self.msh.validator.violations, *self.ar.validator.violations]

    def settings_for(
        self, settings: Settings, party: Party, *, registers: Literal["fixtures", "nhn"] | None = None
    ) -> Settings:
        """``settings`` on the ``nhn`` transport as ``party``, polling the HER-ids it acts for."""
        nhn = settings.nhn.model_copy(
            update={
                "nhn_msh_url": self.base_url,
                "nhn_her_ids": party.her_ids,
                "helseid_token_url": f"{self.base_url}/connect/token",
                "helseid_audience": ISSUER,
                "helseid_client_id": party.client_id,
                "helseid_key": party.key_path,
                "ar_url": self.base_url,
                "flr_url": f"{self.base_url}/v2/flr/Basic",
                "flr_username": FLR_USERNAME,
                "flr_password_file": self.flr_password_file,
            }
        )
        update: dict[str, object] = {"transport": "nhn", "nhn": nhn}
        if registers is not None:
            update["registers"] = registers
        return settings.model_copy(update=update)


def party_of(virksomhet: Virksomhet, key_path: Path) -> Party:
    """The HelseID client playing ``virksomhet``: named after its HER-id, acting for all of its HER-ids."""
    return Party(f"standin-client-{virksomhet.her_id}", key_path, virksomhet.all_her_ids)


@contextmanager
def run_standin(
    parties: Sequence[Party],
    registers: Registers,
    *,
    certificates_dir: Path,
    extra_routers: Sequence[APIRouter] = (),
    require_nonce: bool = True,
) -> Iterator[StandIn]:
    """Serve the stand-in for ``parties`` until the block ends.

    Args:
        parties: the HelseID clients and the HER-ids each may act for.
        registers: the fixture registers: every HER-id in them is a known receiver, and AR and FLR
            answer from them.
        certificates_dir: the test PKI's folder; AR serves ``<her_id>.cert.pem`` as each virksomhet's
            signing certificate, and the FLR password file is written there (owner-only).
        extra_routers: more routes on the same port.
        require_nonce: HelseID answers the first token request with a DPoP nonce challenge.
    """
    scopes = frozenset({MSH_SCOPE, AR_SCOPE})
    clients = [
        RegisteredClient(p.client_id, dict(load_client_key(p.key_path).public_jwk), scopes) for p in parties
    ]
    helseid = HelseIdStandIn(issuer=ISSUER, audience=ISSUER, clients=clients, require_nonce=require_nonce)
    known = {h for v in registers.address.all_virksomheter() for h in v.all_her_ids}
    msh = MessageServiceStandIn(
        validator=OpenApiValidator.msh(),
        authorize=helseid.authorize,
        her_ids_by_client={p.client_id: frozenset(p.her_ids) for p in parties},
        known_her_ids=known,
    )
    certificates = {
        v.her_id: path.read_bytes()
        for v in registers.address.all_virksomheter()
        if (path := certificates_dir / f"{v.her_id}.cert.pem").is_file()
    }
    ar = AddressRegisterStandIn(registers.address, authorize=helseid.authorize, certificates=certificates)
    password = secrets.token_urlsafe(24)
    password_file = certificates_dir / "flr-password.txt"
    private_file(password_file)
    password_file.write_text(password, encoding="utf-8")
    flr = FastlegeRegisterStandIn(registers.fastlege, username=FLR_USERNAME, password=password)
    app = create_app(msh=msh, extra_routers=[helseid.router, ar.router, flr.router, *extra_routers])
    with run_in_thread(app) as base_url:
        yield StandIn(base_url, helseid, msh, ar, flr, password_file)
