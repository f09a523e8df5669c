"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work: database, broker, schemas, key).

Both are open without login: load balancers and orchestrators call them. They say which check failed
and why in words, never with credentials (broker and database errors are already mapped to messages
that name host and port only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from edi_gateway.errors import EdiGatewayError
from edi_gateway.services.context import Gateway
from edi_gateway.transport.connection import close_quietly, connect
from edi_gateway.web.state import WebState, web_state
from edi_gateway.xml.schemas import warm_up

router = APIRouter(tags=["health"])
CERT_WARN_DAYS = 30


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


CHECKS: tuple[Callable[[Gateway], Check], ...] = (check_database, check_broker, check_schemas, check_signing)


def readiness(gateway: Gateway) -> list[Check]:
    """Run every readiness check."""
    return [check(gateway) for check in CHECKS]


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive and serving requests."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: Annotated[WebState, Depends(web_state)]) -> JSONResponse:
    """Ready when every check passes; 503 naming the failing checks otherwise."""
    checks = readiness(state.gateway)
    ready = all(c.ok for c in checks)
    body = {
        "status": "ready" if ready else "not ready",
        "failing": [c.name for c in checks if not c.ok],
        "checks": {c.name: c.as_dict() for c in checks},
    }
    return JSONResponse(body, status_code=200 if ready else 503)
