"""Parked AppRecs in the web UI and the REST API: list, show, reveal (audited), resolve or dismiss (audited).

``router`` has the pages (``/parked``), ``api_router`` the JSON endpoints (``/api/parked``). Both call
``services.parked``, which checks the role and writes the audit entries; here an unknown id becomes
404, and a second resolve the 409 every refused action gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from edi_gateway.errors import EdiGatewayError
from edi_gateway.services.access import Operator
from edi_gateway.services.parked import (
    MAX_PAGE,
    ParkedAction,
    ParkedNotFound,
    ParkedPage,
    ParkedState,
    ParkedView,
    decide_parked,
    list_parked,
    reveal_parked,
    show_parked,
)
from edi_gateway.web.auth import OperatorRole, Viewer, check_api_csrf, check_csrf
from edi_gateway.web.render import flash, page, pretty_xml, private
from edi_gateway.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["parked"], dependencies=[Depends(check_api_csrf)])
State = Annotated[WebState, Depends(web_state)]
FormReason = Annotated[str, Form(min_length=3, max_length=500)]
PAGE_SIZE = 50


@contextmanager
def _known() -> Iterator[None]:
    """An unknown parked id is a 404, on the pages and in the API."""
    try:
        yield
    except ParkedNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


# -- pages ---------------------------------------------------------------------------------------


@router.get("/parked")
def parked_list_page(
    request: Request,
    state: State,
    operator: Viewer,
    show: Annotated[ParkedState, Query(alias="state")] = ParkedState.OPEN,
    code: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """Parked AppRecs, newest first: the open ones by default, handled or all on request."""
    found = list_parked(state.store, state=show, code=code, limit=PAGE_SIZE, offset=offset)
    return page(request, state.templates, "parked.html", operator, p=found, show=show.value, code=code or "")


def _item_page(
    request: Request, state: WebState, operator: Operator, view: ParkedView, payload: str | None = None
) -> HTMLResponse:
    return page(request, state.templates, "parked_item.html", operator, v=view, payload=payload)


@router.get("/parked/{parked_id}")
def parked_item_page(request: Request, parked_id: int, state: State, operator: Viewer) -> HTMLResponse:
    """One parked AppRec without its document, and the actions the operator may take."""
    with _known():
        view = show_parked(state.store, parked_id)
    return _item_page(request, state, operator, view)


@router.post("/parked/{parked_id}/reveal", dependencies=[Depends(check_csrf)])
def parked_reveal_page(
    request: Request, parked_id: int, state: State, operator: OperatorRole, reason: FormReason
) -> HTMLResponse:
    """Show the stored document once (OPERATOR; audited); reload the page and it is hidden again."""
    with _known():
        revealed = reveal_parked(state.store, operator, parked_id, reason=reason)
    return private(_item_page(request, state, operator, revealed.view, _readable(revealed.payload)))


@router.post("/parked/{parked_id}/{action}", dependencies=[Depends(check_csrf)])
def parked_decide_page(
    request: Request,
    parked_id: int,
    action: ParkedAction,
    state: State,
    operator: OperatorRole,
    reason: FormReason,
) -> Response:
    """Resolve or dismiss the parked AppRec (OPERATOR; once; audited), then show it again."""
    with _known():
        view = decide_parked(state.store, operator, parked_id, action, reason=reason)
    flash(request, f"parked {view.id}: {view.outcome}")
    return RedirectResponse(f"/parked/{view.id}", status_code=303)


def _readable(payload: bytes) -> str:
    """The document indented for reading when it is XML that parses; otherwise as text."""
    try:
        return pretty_xml(payload)
    except EdiGatewayError:
        return payload.decode("utf-8", errors="replace")


# -- API -----------------------------------------------------------------------------------------


class ReasonBody(BaseModel):
    """Why an operator reveals, resolves or dismisses a parked AppRec (kept in the audit log)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=500, description="Why (kept in the audit log).")


class RevealedParkedBody(BaseModel):
    """A parked AppRec with the document as stored; the request that asked for it is in the audit log."""

    parked: ParkedView
    payload: str = Field(description="The stored bytes as UTF-8 text (undecodable bytes replaced).")


@api_router.get("/parked", response_model=ParkedPage)
def api_list_parked(
    state: State,
    _: Viewer,
    show: Annotated[ParkedState, Query(alias="state")] = ParkedState.OPEN,
    code: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ParkedPage:
    """List parked AppRecs, newest first, without their documents."""
    return list_parked(state.store, state=show, code=code, limit=limit, offset=offset)


@api_router.get("/parked/{parked_id}", response_model=ParkedView)
def api_show_parked(parked_id: int, state: State, _: Viewer) -> ParkedView:
    """One parked AppRec without its document."""
    with _known():
        return show_parked(state.store, parked_id)


@api_router.post("/parked/{parked_id}/reveal", response_model=RevealedParkedBody)
def api_reveal_parked(
    parked_id: int, body: ReasonBody, state: State, operator: OperatorRole
) -> RevealedParkedBody:
    """The parked AppRec with its stored document (OPERATOR; audited with the reason)."""
    with _known():
        revealed = reveal_parked(state.store, operator, parked_id, reason=body.reason)
    return RevealedParkedBody(
        parked=revealed.view, payload=revealed.payload.decode("utf-8", errors="replace")
    )


@api_router.post("/parked/{parked_id}/{action}", response_model=ParkedView)
def api_decide_parked(
    parked_id: int, action: ParkedAction, body: ReasonBody, state: State, operator: OperatorRole
) -> ParkedView:
    """Resolve or dismiss a parked AppRec (OPERATOR; once, a second time is 409; audited)."""
    with _known():
        return decide_parked(state.store, operator, parked_id, action, reason=body.reason)


routers = (router, api_router)
"""Both routers, in the order the app includes them."""
