"""Who is asking: a signed session cookie (the pages) or ``Authorization: Bearer <token>`` (scripts).

The session cookie is signed by Starlette's ``SessionMiddleware`` (itsdangerous) with a secret kept in
a file under HOME, created on first use, so sessions survive a restart and every process of one
installation shares it. A signature alone cannot be taken back, so the cookie also carries the
account's *session epoch* from when the session began, checked against the database on every
request: logout, a new password, a new role or disabling the account bumps the epoch and every
session of that account is over, also a copy of the cookie replayed later.

Forms carry a per-session CSRF token; API writes made with the cookie (not with a bearer token)
send the same token in the ``X-CSRF-Token`` header. The cookie is ``SameSite=Strict`` too.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Form, Request

from edi_gateway.errors import PermanentError
from edi_gateway.private_files import PrivateFileError, secret
from edi_gateway.services.access import Operator, Role, authenticate_token, require, session_operator
from edi_gateway.web.state import WebState, web_state

SECRET_FILE = "web-session.secret"  # noqa: S105 - the file name, not the secret
SECRET_MIN_BYTES = 32  # shorter is not a key worth the name for HMAC-signed cookies
SESSION_COOKIE = "edi_gateway_session"
SESSION_MAX_AGE_S = 8 * 3600  # one working shift at the integration desk
CSRF_HEADER = "X-CSRF-Token"
_OPERATOR_KEY = "operator"
_EPOCH_KEY = "epoch"
_CSRF_KEY = "csrf"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotAuthenticated(PermanentError):
    """The request carries no valid session or token (401 on the API, the login page for pages)."""


class CsrfFailed(PermanentError):
    """A form, or a cookie-authenticated API write, came without this session's CSRF token."""


def session_secret(home: Path) -> str:
    """Return the session-signing secret stored under ``home``, creating it (mode 0600) on first use.

    The secret is created once and atomically, so processes starting together share one complete
    secret; an empty, short or unreadable file is refused rather than used to sign cookies.

    Args:
        home: the installation's HOME folder.

    Raises:
        PrivateFileError: the secret file exists but is empty, shorter than 32 bytes or unreadable.
    """
    value = secret(
        home / SECRET_FILE,
        lambda: secrets.token_urlsafe(48).encode("ascii"),
        min_bytes=SECRET_MIN_BYTES,
        text=True,
    )
    try:
        return value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise PrivateFileError(f"{SECRET_FILE} under EDI_GATEWAY_HOME is not text") from exc


def start_session(request: Request, operator: Operator, epoch: int) -> None:
    """Begin a fresh session for ``operator`` in the account's session ``epoch`` (anything older is dropped)."""
    request.session.clear()
    request.session[_OPERATOR_KEY] = operator.username
    request.session[_EPOCH_KEY] = epoch
    request.session[_CSRF_KEY] = secrets.token_urlsafe(32)


def session_username(request: Request) -> str | None:
    """The username the session cookie names (not yet checked against the account)."""
    username = request.session.get(_OPERATOR_KEY)
    return username if isinstance(username, str) else None


def end_session(request: Request) -> None:
    """Forget the session (log out)."""
    request.session.clear()


def csrf_token(request: Request) -> str:
    """Return this session's CSRF token, creating one for a session that has none (the login form)."""
    token = request.session.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[_CSRF_KEY] = token
    return token


def check_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    """FastAPI dependency for form posts: the form's ``csrf`` field must match the session's token.

    Raises:
        CsrfFailed: it does not.
    """
    if not _csrf_matches(request, csrf):
        raise CsrfFailed("the form has expired; load the page again")


def check_api_csrf(request: Request) -> None:
    """FastAPI dependency for the API: a write authenticated by the session cookie needs the CSRF header.

    Reads, bearer-token calls and calls without a session pass (the latter get 401 from the route).

    Raises:
        CsrfFailed: a cookie-authenticated POST, PUT, PATCH or DELETE without the session's token.
    """
    if request.method in _SAFE_METHODS or "authorization" in request.headers:
        return
    if session_username(request) is None:
        return
    if not _csrf_matches(request, request.headers.get(CSRF_HEADER, "")):
        raise CsrfFailed(f"send the session's CSRF token in the {CSRF_HEADER} header (GET /api/session)")


def _csrf_matches(request: Request, given: str) -> bool:
    expected = request.session.get(_CSRF_KEY)
    return isinstance(expected, str) and bool(given) and secrets.compare_digest(expected, given)


def _session_operator(request: Request, state: WebState) -> Operator | None:
    username = session_username(request)
    if username is None:
        return None
    return session_operator(state.store, username, request.session.get(_EPOCH_KEY))


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def current_operator(request: Request, state: Annotated[WebState, Depends(web_state)]) -> Operator | None:
    """FastAPI dependency: the operator behind a bearer token or the session cookie, or None.

    A request that shows a token is judged by the token alone: a wrong token is not rescued by a cookie.
    """
    token = _bearer_token(request)
    if token is not None:
        return authenticate_token(state.store, token)
    if "authorization" in request.headers:
        return None
    return _session_operator(request, state)


def uses_session(request: Request) -> bool:
    """Whether the request is judged by the session cookie (it shows no Authorization header)."""
    return "authorization" not in request.headers


def _signed_in(operator: Annotated[Operator | None, Depends(current_operator)]) -> Operator:
    if operator is None:
        raise NotAuthenticated("log in or send a bearer token")
    return operator


def as_viewer(operator: Annotated[Operator, Depends(_signed_in)]) -> Operator:
    """FastAPI dependency: any signed-in operator (viewer or above)."""
    return require(operator, Role.VIEWER)


def as_operator(operator: Annotated[Operator, Depends(_signed_in)]) -> Operator:
    """FastAPI dependency: an operator with the OPERATOR role or above (replay, reveal)."""
    return require(operator, Role.OPERATOR)


def as_admin(operator: Annotated[Operator, Depends(_signed_in)]) -> Operator:
    """FastAPI dependency: an ADMIN (audit search)."""
    return require(operator, Role.ADMIN)


Viewer = Annotated[Operator, Depends(as_viewer)]
OperatorRole = Annotated[Operator, Depends(as_operator)]
Admin = Annotated[Operator, Depends(as_admin)]
