"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work: database, broker, schemas, key).

Both are open without login: load balancers and orchestrators call them. An anonymous caller of
``/readyz`` learns up or down only; a signed-in operator (session or bearer token) also gets which
check failed and why, in words, never with credentials (broker and database errors are already
mapped to messages that name host and port only).

The checks run at most once per ``READY_CACHE_S`` and the answer is shared by every caller in that
time: a load balancer polling each second, or anybody on the network, cannot make the web process
open a broker connection per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from cryptography import x509
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from edi_gateway.errors import (
    EdiGatewayError,
    RegisterUnavailable,
    TokenUnavailable,
    TransportRefused,
    TransportUnavailable,
)
from edi_gateway.messaging.factory import open_helseid, open_msh, served_her_ids
from edi_gateway.nhn.helseid import HelseIdClient
from edi_gateway.nhn.metrics import observe_api_call
from edi_gateway.nhn.msh import MshClient
from edi_gateway.services.access import Operator
from edi_gateway.services.context import Gateway
from edi_gateway.settings import Settings
from edi_gateway.transport.connection import close_quietly, connect
from edi_gateway.web.auth import current_operator
from edi_gateway.web.state import WebState, web_state
from edi_gateway.xml.schemas import warm_up

router = APIRouter(tags=["health"])
CERT_WARN_DAYS = 30
READY_CACHE_S = 5.0
"""Seconds one run of the readiness checks answers for."""


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one readiness check."""

    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"ok": self.ok, "detail": self.detail}


def check_database(gateway: Gateway) -> Check:
    """The database answers a ping."""
    try:
        gateway.store.ping()
    except EdiGatewayError as exc:
        return Check("database", False, str(exc))
    return Check("database", True, gateway.store.dialect_name)


def check_broker(gateway: Gateway) -> Check:
    """A connection to RabbitMQ opens (and is closed again)."""
    try:
        connection = connect(gateway.settings.amqp_url, name="edi_gateway.readyz")
    except EdiGatewayError as exc:
        return Check("broker", False, str(exc))
    close_quietly(connection)
    return Check("broker", True, "reachable")


def check_schemas(_: Gateway) -> Check:
    """Every vendored XSD compiles (they are cached, so this is cheap after the first call)."""
    try:
        names = warm_up()
    except Exception as exc:  # any failure here is an installation fault; name its kind only
        return Check("schemas", False, f"schemas do not compile ({type(exc).__name__})")
    return Check("schemas", True, f"{len(names)} compiled")


def check_signing(gateway: Gateway, now: datetime | None = None) -> Check:
    """The signing key is loaded and its certificate is valid now; the detail gives days to expiry."""
    cert = gateway.signer.certificate
    now = now or datetime.now(UTC)
    if now < cert.not_valid_before_utc:
        return Check("signing", False, "the signing certificate is not valid yet")
    days = (cert.not_valid_after_utc - now).days
    if days < 0:
        return Check("signing", False, "the signing certificate has expired")
    warning = " (renew soon)" if days < CERT_WARN_DAYS else ""
    return Check("signing", True, f"certificate expires in {days} days{warning}")


def check_party_certificates(gateway: Gateway, now: datetime | None = None) -> Check:
    """The parties' signing certificates the registers hold (AR's on ``REGISTERS=nhn``): expiring ones named.

    Expired or soon-expiring certificates keep the gateway ready (its own work goes on) but are named
    in the detail, like our own certificate's "renew soon"; a register that cannot answer is not ready.
    """
    now = now or datetime.now(UTC)
    address, ours = gateway.registers.address, gateway.settings.our_her_id
    soon: list[int] = []
    expired: list[int] = []
    try:
        parties = [v.her_id for v in address.all_virksomheter() if v.her_id != ours]
        for her_id in parties:
            pem = address.certificate_pem(her_id)
            if pem is None:
                continue
            not_after = x509.load_pem_x509_certificate(pem).not_valid_after_utc
            if not_after < now:
                expired.append(her_id)
            elif (not_after - now).days < CERT_WARN_DAYS:
                soon.append(her_id)
    except RegisterUnavailable as exc:
        return Check("party_certificates", False, f"the register cannot answer: {exc}")
    except ValueError:
        return Check("party_certificates", False, "a party's certificate in the register cannot be read")
    detail = f"{len(parties)} parties"
    if soon:
        detail += f"; renew soon: HER-id {', '.join(map(str, soon))}"
    if expired:
        detail += f"; expired: HER-id {', '.join(map(str, expired))} (their signed AppRecs are parked)"
    return Check("party_certificates", True, detail)


CHECKS: tuple[Callable[[Gateway], Check], ...] = (
    check_database,
    check_broker,
    check_schemas,
    check_signing,
    check_party_certificates,
)


class NhnClients:
    """The web process's own HelseID and message service clients, opened on first use (``nhn`` only).

    Kept for the process's life so the readiness checks reuse a cached token instead of asking HelseID
    every time; closed with the application.
    """

    def __init__(self, settings: Settings) -> None:
        """Open nothing yet."""
        self._settings = settings
        self._stack = ExitStack()
        self._clients: tuple[HelseIdClient, MshClient] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[HelseIdClient, MshClient]:
        """The clients, built from ``Settings.nhn`` the first time."""
        with self._lock:
            if self._clients is None:
                nhn = self._settings.nhn
                helseid = self._stack.enter_context(open_helseid(nhn, nhn.helseid_msh_scopes))
                msh = self._stack.enter_context(open_msh(nhn, helseid, observe=observe_api_call))
                self._clients = (helseid, msh)
            return self._clients

    def close(self) -> None:
        """Close the clients (if they were opened)."""
        with self._lock:
            self._stack.close()
            self._clients = None


def check_transport(gateway: Gateway, nhn: NhnClients | None) -> list[Check]:
    """The transport in force; on ``nhn`` also a HelseID token and one authenticated message service call."""
    settings = gateway.settings
    if settings.transport == "amqp" or nhn is None:
        return [Check("transport", True, "amqp: the receivers' <herId>_async queues on the broker")]
    token_url = settings.nhn.helseid_token_url
    try:
        helseid, msh = nhn.get()
    except EdiGatewayError as exc:
        return [Check("transport", False, f"nhn: the clients cannot be built: {exc}")]
    try:
        helseid.check()
    except TokenUnavailable as exc:
        return [Check("token_endpoint", False, f"{token_url}: no token ({exc.kind})")]
    checks = [Check("token_endpoint", True, f"{token_url}: token in hand")]
    try:
        msh.ping(served_her_ids(settings)[0])
    except TokenUnavailable as exc:  # the service refused the token and HelseID gave no new one
        return [Check("token_endpoint", False, f"{token_url}: no token ({exc.kind})")]
    except (TransportUnavailable, TransportRefused) as exc:
        return [*checks, Check("transport", False, f"nhn: {settings.nhn.nhn_msh_url} answered {exc.kind}")]
    return [*checks, Check("transport", True, f"nhn: {settings.nhn.nhn_msh_url} answers")]


def readiness(gateway: Gateway, nhn: NhnClients | None = None) -> list[Check]:
    """Run every readiness check."""
    return [*(check(gateway) for check in CHECKS), *check_transport(gateway, nhn)]


@dataclass
class ReadinessProbe:
    """The readiness checks, run at most once per ``ttl_s`` whoever asks and however often.

    Attributes:
        ttl_s: how long one run's outcome answers for, in seconds.
        clock: monotonic seconds (tests pass their own).
    """

    ttl_s: float = READY_CACHE_S
    clock: Callable[[], float] = time.monotonic
    nhn: NhnClients | None = None
    _checks: Sequence[Check] = ()
    _at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def checks(self, gateway: Gateway) -> Sequence[Check]:
        """The latest outcome, running the checks first when it is older than ``ttl_s``.

        Callers arriving while a run is under way wait for it rather than start their own.
        """
        with self._lock:
            now = self.clock()
            if self._at is None or now - self._at >= self.ttl_s:
                self._checks = readiness(gateway, self.nhn)
                self._at = self.clock()
            return self._checks


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive and serving requests."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(
    state: Annotated[WebState, Depends(web_state)],
    operator: Annotated[Operator | None, Depends(current_operator)],
) -> JSONResponse:
    """200 ``up`` when every check passes, 503 ``down`` otherwise; operators also see each check."""
    checks = state.readiness.checks(state.gateway)
    ready = all(c.ok for c in checks)
    body: dict[str, Any] = {"status": "up" if ready else "down"}
    if operator is not None:
        body["failing"] = [c.name for c in checks if not c.ok]
        body["checks"] = {c.name: c.as_dict() for c in checks}
    return JSONResponse(body, status_code=200 if ready else 503)
