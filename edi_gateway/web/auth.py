"""Who is asking: a signed session cookie (the pages) or ``Authorization: Bearer <token>`` (scripts).

The session cookie is signed by Starlette's ``SessionMiddleware`` (itsdangerous) with a secret kept in
a file under HOME, created on first use, so sessions survive a restart and every process of one
installation shares it. Forms carry a per-session CSRF token; the cookie is ``SameSite=Strict`` too.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Form, Request

from edi_gateway.errors import PermanentError
from edi_gateway.services.access import Operator, Role, authenticate_token, enabled_operator, require
from edi_gateway.web.state import WebState, web_state

SECRET_FILE = "web-session.secret"  # noqa: S105 - the file name, not the secret
SESSION_COOKIE = "edi_gateway_session"
SESSION_MAX_AGE_S = 8 * 3600  # one working shift at the integration desk
_OPERATOR_KEY = "operator"
_CSRF_KEY = "csrf"


class NotAuthenticated(PermanentError):
    """The request carries no valid session or token (401 on the API, the login page for pages)."""


class CsrfFailed(PermanentError):
    """A form came without this session's CSRF token."""


def session_secret(home: Path) -> str:
    """Return the session-signing secret stored under ``home``, creating it (mode 0600) on first use.

    Args:
        home: the installation's HOME folder.
    """
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        # O_EXCL: when two processes start at once, one writes the secret and the other reads it.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="ascii").strip()


def start_session(request: Request, operator: Operator) -> None:
    """Begin a fresh session for ``operator`` (anything from before the login is dropped)."""
    request.session.clear()
    request.session[_OPERATOR_KEY] = operator.username
    request.session[_CSRF_KEY] = secrets.token_urlsafe(32)


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
    expected = request.session.get(_CSRF_KEY)
    if not isinstance(expected, str) or not secrets.compare_digest(expected, csrf):
        raise CsrfFailed("the form has expired; load the page again")


def _session_operator(request: Request, state: WebState) -> Operator | None:
    username = request.session.get(_OPERATOR_KEY)
    if not isinstance(username, str):
        return None
    return enabled_operator(state.store, username)


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
