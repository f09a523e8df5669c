"""The accounts pages: an operator's API tokens (revoke), and for admins every account (unlock).

Revoking is open to a token's owner and to admins; clearing an account's failed logins to admins.
Both are form posts with the session's CSRF token, audited by the services they call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edi_gateway.logging import get_logger
from edi_gateway.services.access import reset_login_failures, revoke_token_as, tokens_visible_to
from edi_gateway.web.auth import Admin, Viewer, check_csrf
from edi_gateway.web.render import flash, page
from edi_gateway.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
State = Annotated[WebState, Depends(web_state)]
Csrf = Depends(check_csrf)
log = get_logger(__name__)


@router.get("/tokens")
def tokens_page(request: Request, state: State, operator: Viewer) -> HTMLResponse:
    """The operator's API tokens (an admin sees every account's), with a revoke button on live ones."""
    tokens = tokens_visible_to(state.store, operator)
    now = datetime.now(UTC)
    rows = [(t, t.live_at(now)) for t in tokens]
    return page(request, state.templates, "tokens.html", operator, rows=rows)


@router.post("/tokens/{token_id}/revoke", dependencies=[Csrf])
def revoke_token(token_id: int, state: State, operator: Viewer, request: Request) -> Response:
    """Revoke a token (one's own, or any for an admin) and go back to the list."""
    token = revoke_token_as(state.store, operator, token_id)
    log.info("api token revoked", operator=operator.username, token_id=token_id)
    flash(request, f"Nøkkel {token.id} ({token.label}) er tilbakekalt.")
    return RedirectResponse("/tokens", status_code=303)


@router.get("/operators")
def operators_page(request: Request, state: State, operator: Admin) -> HTMLResponse:
    """Every account with role and status, and a button that clears its failed logins (ADMIN)."""
    return page(request, state.templates, "operators.html", operator, accounts=state.store.list_operators())


@router.post("/operators/{username}/unlock", dependencies=[Csrf])
def unlock(username: str, state: State, operator: Admin, request: Request) -> Response:
    """Clear an account's failed logins in every web process (ADMIN), and go back to the list."""
    reset_login_failures(state.store, operator, username)
    log.info("failed logins cleared", operator=operator.username, account=username)
    flash(request, f"Mislykkede innlogginger for {username} er nullstilt.")
    return RedirectResponse("/operators", status_code=303)
