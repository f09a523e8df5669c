"""Received documents in the web UI and the REST API: list, show, reveal the content (audited).

``router`` has the pages: ``/received`` (**Mottatt**: newest first, filters by time, sender, pathway
state and AppRec status) and ``/received/{id}`` (the document's facts, the AppRec we sent with its
codes, links to the pathway and to our message it answers, and for an operator the reveal form).
``api_router`` has ``GET /api/received``, ``GET /api/received/{id}`` and ``POST
/api/received/{id}/reveal`` (``{"reason": …}``). All go through ``services.queries.received``, which
checks the role and writes the audit entry; here an unknown id becomes 404. Lists and views show the
patient masked only; the content is rendered into the one response that asked for it (no-store).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from edi_gateway.localtime import as_utc
from edi_gateway.services.access import Operator
from edi_gateway.services.queries.received import (
    MAX_PAGE,
    PATHWAY_STATES,
    ReceivedContent,
    ReceivedDetail,
    ReceivedFilter,
    ReceivedNotFound,
    ReceivedPage,
    list_received,
    reveal_received,
    show_received,
)
from edi_gateway.web.auth import OperatorRole, Viewer, check_api_csrf, check_csrf
from edi_gateway.web.filters import BadFilter, form_time
from edi_gateway.web.render import page, private
from edi_gateway.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["received"], dependencies=[Depends(check_api_csrf)])
State = Annotated[WebState, Depends(web_state)]
FormReason = Annotated[str, Form(min_length=3, max_length=500)]
PathwayState = Literal["pending", "applied", "conflict", "ignored"]
PAGE_SIZE = 50
FILTER_FIELDS = ("since", "until", "sender_her_id", "pathway_state", "apprec_status")


@contextmanager
def _known() -> Iterator[None]:
    """An unknown received id is a 404, on the pages and in the API."""
    try:
        yield
    except ReceivedNotFound as exc:
        raise HTTPException(404, str(exc)) from exc


# -- pages ---------------------------------------------------------------------------------------


@router.get("/received")
def received_list_page(request: Request, state: State, operator: Viewer) -> HTMLResponse:
    """Received documents with the CLI's filters, newest first, a page at a time (patients masked)."""
    values = dict(request.query_params)
    f = form_received_filter(values)
    found = list_received(state.store, state.gateway.registers.address, f)
    kept = {k: values[k] for k in FILTER_FIELDS if values.get(k)}
    return page(
        request,
        state.templates,
        "received.html",
        operator,
        p=found,
        values=kept,
        pathway_states=PATHWAY_STATES,
        prev_link=_page_link(kept, f.limit, f.offset - f.limit) if f.offset > 0 else None,
        next_link=_page_link(kept, f.limit, f.offset + f.limit) if f.offset + f.limit < found.total else None,
    )


def _item_page(
    request: Request,
    state: WebState,
    operator: Operator,
    detail: ReceivedDetail,
    content: ReceivedContent | None = None,
) -> HTMLResponse:
    return page(request, state.templates, "received_item.html", operator, d=detail, content=content)


@router.get("/received/{received_id}")
def received_item_page(request: Request, received_id: int, state: State, operator: Viewer) -> HTMLResponse:
    """One received document without its content, our AppRec, and the reveal form for an operator."""
    with _known():
        detail = show_received(state.store, state.gateway.registers.address, received_id)
    return _item_page(request, state, operator, detail)


@router.post("/received/{received_id}/reveal", dependencies=[Depends(check_csrf)])
def received_reveal_page(
    request: Request, received_id: int, state: State, operator: OperatorRole, reason: FormReason
) -> HTMLResponse:
    """Show the patient and the text once (OPERATOR; audited); reload the page and they are hidden again."""
    with _known():
        content = reveal_received(
            state.store, state.gateway.registers.address, operator, received_id, reason=reason
        )
    return private(_item_page(request, state, operator, content.detail, content))


def form_received_filter(values: Mapping[str, str]) -> ReceivedFilter:
    """The filter of the list page's form (every field a string, empty meaning "any").

    Raises:
        BadFilter: a value cannot be read; the message names the field.
    """
    pathway_state = _text(values, "pathway_state")
    if pathway_state is not None and pathway_state not in PATHWAY_STATES:
        raise BadFilter(f"pathway_state: expected one of {', '.join(PATHWAY_STATES)}")
    return ReceivedFilter(
        since=form_time(values, "since"),
        until=form_time(values, "until"),
        sender_her_id=_int(values, "sender_her_id"),
        pathway_state=pathway_state,
        apprec_status=_int(values, "apprec_status"),
        limit=min(max(_int(values, "limit") or PAGE_SIZE, 1), MAX_PAGE),
        offset=max(_int(values, "offset") or 0, 0),
    )


def _text(values: Mapping[str, str], name: str) -> str | None:
    return values.get(name, "").strip() or None


def _int(values: Mapping[str, str], name: str) -> int | None:
    text = _text(values, name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise BadFilter(f"{name}: expected a whole number") from None


def _page_link(kept: dict[str, str], limit: int, offset: int) -> str:
    return "/received?" + urlencode({**kept, "limit": limit, "offset": max(offset, 0)})


# -- API -----------------------------------------------------------------------------------------


class RevealReason(BaseModel):
    """Why an operator reads a received document's content (kept in the audit log)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=500, description="Why (kept in the audit log).")


@api_router.get("/received", response_model=ReceivedPage)
def api_list_received(
    state: State,
    _: Viewer,
    since: Annotated[datetime | None, Query(description="Received at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Received before (ISO 8601).")] = None,
    sender_her_id: Annotated[int | None, Query(gt=0, description="The sending virksomhet.")] = None,
    pathway_state: Annotated[PathwayState | None, Query(description="The worklist's state.")] = None,
    apprec_status: Annotated[int | None, Query(ge=1, le=3, description="Our AppRec (8258).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReceivedPage:
    """List received documents, newest first, without their content (patients masked)."""
    f = ReceivedFilter(
        since=as_utc(since, UTC) if since else None,
        until=as_utc(until, UTC) if until else None,
        sender_her_id=sender_her_id,
        pathway_state=pathway_state,
        apprec_status=apprec_status,
        limit=limit,
        offset=offset,
    )
    return list_received(state.store, state.gateway.registers.address, f)


@api_router.get("/received/{received_id}", response_model=ReceivedDetail)
def api_show_received(received_id: int, state: State, _: Viewer) -> ReceivedDetail:
    """One received document without its content, with the AppRec we sent and the pathway's id."""
    with _known():
        return show_received(state.store, state.gateway.registers.address, received_id)


@api_router.post("/received/{received_id}/reveal", response_model=ReceivedContent)
def api_reveal_received(
    received_id: int, body: RevealReason, state: State, operator: OperatorRole
) -> ReceivedContent:
    """The document's patient, Tema and full text (OPERATOR; audited with the reason)."""
    with _known():
        return reveal_received(
            state.store, state.gateway.registers.address, operator, received_id, reason=body.reason
        )


routers = (router, api_router)
"""Both routers, in the order the app includes them."""
