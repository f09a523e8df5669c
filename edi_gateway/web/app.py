"""The web application: pages, REST API, health and metrics in one FastAPI app.

``create_app(settings)`` opens its own gateway (registers, keys, store) and closes it at shutdown;
tests and embedding code pass one in. Errors from the services map to HTTP by the project's error
tree: permanent → 4xx with the reason, transient → 503, anything else → 500 without details.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from edi_gateway.errors import (
    EdiGatewayError,
    PermanentError,
    RequestRejected,
    TransientError,
    Unroutable,
)
from edi_gateway.logging import get_logger
from edi_gateway.services.access import AccessDenied, ReasonRequired, TokenNotFound
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.lookup import BadLookup
from edi_gateway.settings import Settings
from edi_gateway.store.errors import MessageNotFound
from edi_gateway.web import accounts, api, health, message_page, metrics, pages, parked, pathways, received
from edi_gateway.web.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    CsrfFailed,
    NotAuthenticated,
    session_secret,
)
from edi_gateway.web.filters import BadFilter
from edi_gateway.web.render import make_templates, page
from edi_gateway.web.state import WebState
from edi_gateway.web.throttle import LoginThrottle

STATIC_DIR = Path(__file__).resolve().parent / "static"
log = get_logger(__name__)

# Everything is served from this origin: no CDN, no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
HSTS = "max-age=31536000"  # a year; sent only on responses that went out over https


def create_app(settings: Settings, *, gateway: Gateway | None = None) -> FastAPI:
    """Build the web UI and REST API.

    Args:
        settings: the settings in force (HOME holds the session secret).
        gateway: an open gateway to use; when None the app opens one and closes it at shutdown.

    Returns:
        The ASGI application.
    """
    owns = gateway is None
    gateway = gateway or open_gateway(settings)
    state = WebState(
        gateway=gateway,
        owns_gateway=owns,
        templates=make_templates(),
        metrics=metrics.metrics_registry(gateway.store),
        logins=LoginThrottle(settings.login_max_failures, settings.login_window_s),
        readiness=health.ReadinessProbe(
            nhn=health.NhnClients(gateway.settings) if gateway.settings.transport == "nhn" else None
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="edi_gateway operators' API",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load their assets from a CDN; /api/docs is our own
        redoc_url=None,
        openapi_url=None,  # served by api.openapi, behind login
    )
    app.state.web = state
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings.home),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        same_site="strict",
        https_only=secure_cookie(settings),
    )
    app.middleware("http")(_headers_and_access_log)
    for router in (
        health.router,
        metrics.router,
        api.router,
        pages.router,
        message_page.router,
        accounts.router,
        *parked.routers,
        *pathways.routers,
        *received.routers,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_error_handlers(app)
    return app


def secure_cookie(settings: Settings) -> bool:
    """Whether the session cookie is marked Secure: always, except in test mode unless forced on."""
    return settings.web_secure_cookie or not settings.test_mode


async def _headers_and_access_log(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    response.headers.update(SECURITY_HEADERS)
    # The scheme is https when the connection was TLS, or when a trusted proxy said so (uvicorn's
    # --forwarded-allow-ips, see ``edi-gateway web``); HSTS over plain http would be ignored anyway.
    if request.url.scheme == "https":
        response.headers["Strict-Transport-Security"] = HSTS
    response.headers.setdefault("Cache-Control", "no-store" if not _is_static(request) else "max-age=3600")
    # The path only: a query string may carry a filter value an operator typed.
    log.info(
        "http request",
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return response


def _is_static(request: Request) -> bool:
    return request.url.path.startswith("/static/")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/readyz")


def _error(request: Request, status: int, detail: object, headers: dict[str, str] | None = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    state: WebState = request.app.state.web
    text = detail if isinstance(detail, str) else "The request could not be processed."
    return page(request, state.templates, "error.html", None, status_code=status, status=status, detail=text)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotAuthenticated)
    async def _not_authenticated(request: Request, exc: NotAuthenticated) -> Response:
        if _wants_json(request):
            return _error(request, 401, str(exc), {"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> Response:
        return _error(request, 403, str(exc))

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> Response:
        return _error(request, 403, str(exc))

    @app.exception_handler(TokenNotFound)
    async def _no_token(request: Request, exc: TokenNotFound) -> Response:
        return _error(request, 404, str(exc))

    @app.exception_handler(MessageNotFound)
    async def _not_found(request: Request, exc: MessageNotFound) -> Response:
        return _error(request, 404, "no message with this msg_id")

    @app.exception_handler(RequestRejected)
    async def _rejected(request: Request, exc: RequestRejected) -> Response:
        problems = [p.as_dict() for p in exc.problems]
        if _wants_json(request):
            return _error(request, 422, problems)
        return _error(request, 422, "; ".join(f"{p['code']}: {p['reason']}" for p in problems))

    @app.exception_handler(PermanentError)
    async def _permanent(request: Request, exc: PermanentError) -> Response:
        return _error(request, 409 if not _is_input_error(exc) else 400, str(exc))

    @app.exception_handler(TransientError)
    async def _transient(request: Request, exc: TransientError) -> Response:
        log.warning("web request hit a transient fault", error=type(exc).__name__)
        return _error(request, 503, f"{type(exc).__name__}: a dependency is unavailable; try again shortly")

    @app.exception_handler(Unroutable)
    async def _unroutable(request: Request, exc: Unroutable) -> Response:
        # The receiver's queue is missing: set-up or register data, which the operator must hear about.
        return _error(request, 502, str(exc))

    @app.exception_handler(EdiGatewayError)
    async def _unknown(request: Request, exc: EdiGatewayError) -> Response:
        log.error("web request failed", error=type(exc).__name__)
        return _error(request, 500, "internal error; see the log")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, exc.detail, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # The field locations and messages only: pydantic's "input" could echo a person number.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        if _wants_json(request):
            return _error(request, 422, errors)
        return _error(request, 422, "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors if e["loc"]))


def _is_input_error(exc: PermanentError) -> bool:
    return isinstance(exc, BadFilter | BadLookup | ReasonRequired | message_page.EditedRequestInvalid)
