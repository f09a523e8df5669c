"""The operators' pages: login, dashboard, message list, report, registry look-up, audit search, API docs.

The message page and its actions (reveal, replay) are in ``message_page.py``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edi_gateway.localtime import LOCAL_ZONE
from edi_gateway.logging import get_logger
from edi_gateway.services import lookup, queries
from edi_gateway.services.access import (
    Operator,
    authenticate,
    end_sessions,
    logins_reset_at,
    search_audit_as,
    session_epoch,
)
from edi_gateway.web.auth import (
    Admin,
    Viewer,
    check_csrf,
    current_operator,
    end_session,
    start_session,
    uses_session,
)
from edi_gateway.web.chart import report_chart
from edi_gateway.web.filters import form_filter, form_time
from edi_gateway.web.pathways import pathway_summary
from edi_gateway.web.pilot import pilot_section
from edi_gateway.web.render import page, private
from edi_gateway.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
State = Annotated[WebState, Depends(web_state)]
MaybeOperator = Annotated[Operator | None, Depends(current_operator)]
Csrf = Depends(check_csrf)
log = get_logger(__name__)
FILTER_FIELDS = (
    "state",
    "kommunenummer",
    "receiver_her_id",
    "samhandlingspunkt",
    "since",
    "until",
    "request_id",
)


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only (never another host)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login")
def login_form(request: Request, state: State, operator: MaybeOperator, next: str = "/") -> Response:
    """The login form (a signed-in operator goes straight on)."""
    if operator is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, state.templates, "login.html", None, next=safe_next(next))


@router.post("/login", dependencies=[Csrf])
def login(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password; on success start a fresh session and go on.

    After too many failures for the username from this address, or from the address at all, the
    password is not even checked: the form answers 429 and says when to try again.
    """
    address = request.client.host if request.client else "unknown"
    wait_s = state.logins.wait_s(username, address, reset=logins_reset_at(state.store, username))
    if wait_s > 0:
        log.warning("web login held after repeated failures")
        minutes = max(1, math.ceil(wait_s / 60))
        error = f"Too many failed logins. Try again in {minutes} min, or ask an admin to unlock the account."
        return _login_refused(request, state, next, 429, error, {"Retry-After": str(math.ceil(wait_s))})
    operator = authenticate(state.store, username, password)
    epoch = session_epoch(state.store, username) if operator is not None else None
    if operator is None or epoch is None:
        state.logins.failed(username, address)
        log.info("web login refused")
        return _login_refused(request, state, next, 401, "Unknown user or wrong password.", {})
    state.logins.succeeded(username, address)
    start_session(request, operator, epoch)
    log.info("web login", operator=operator.username, role=operator.role.value)
    return RedirectResponse(safe_next(next), status_code=303)


def _login_refused(
    request: Request, state: WebState, next: str, status: int, error: str, headers: dict[str, str]
) -> Response:
    response = page(
        request, state.templates, "login.html", None, status_code=status, next=safe_next(next), error=error
    )
    response.headers.update(headers)
    return response


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, state: State, operator: MaybeOperator) -> Response:
    """End the session, and every other session of the account: a copy of the cookie is useless after."""
    if operator is not None and uses_session(request):
        end_sessions(state.store, operator.username)
        log.info("web logout", operator=operator.username)
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def dashboard(request: Request, state: State, operator: Viewer) -> HTMLResponse:
    """Messages per state, what is overdue, which receivers went quiet, the last hour's traffic."""
    store = state.store
    address = state.gateway.registers.address
    quiet = []
    for her_id, in_a_row in queries.quiet_receivers(store):
        virksomhet = address.virksomhet(her_id)
        quiet.append((her_id, virksomhet.organisation.name if virksomhet else "", in_a_row))
    return page(
        request,
        state.templates,
        "dashboard.html",
        operator,
        counts=queries.counts_by_state(store),
        overdue=queries.overdue_messages(store),
        quiet=quiet,
        last_hour=queries.throughput_last_hour(store, datetime.now(UTC)),
        pathways=pathway_summary(state),
    )


@router.get("/messages")
def message_list(request: Request, state: State, operator: Viewer) -> HTMLResponse:
    """Messages with the CLI's filters, newest first, a page at a time."""
    values = dict(request.query_params)
    f = form_filter(values)
    result = queries.list_messages(state.store, f)
    kept = {k: values[k] for k in FILTER_FIELDS if values.get(k)}
    return page(
        request,
        state.templates,
        "messages.html",
        operator,
        result=result,
        values=kept,
        prev_link=_page_link(kept, f.limit, f.offset - f.limit) if f.offset > 0 else None,
        next_link=_page_link(kept, f.limit, f.offset + f.limit)
        if f.offset + f.limit < result.total
        else None,
    )


def _page_link(kept: dict[str, str], limit: int, offset: int) -> str:
    return "/messages?" + urlencode({**kept, "limit": limit, "offset": max(offset, 0)})


@router.get("/report")
def report_page(request: Request, state: State, operator: Viewer) -> HTMLResponse:
    """Outcomes per kommune and samhandlingspunkt for a period (default: the last 30 days), with a chart."""
    values = dict(request.query_params)
    until = form_time(values, "until") or datetime.now(UTC)
    since = form_time(values, "since") or until - timedelta(days=30)
    result = queries.report(state.store, state.gateway.registers, since=since, until=until)
    return page(
        request,
        state.templates,
        "report.html",
        operator,
        report=result,
        chart=report_chart(result.rows),
        **pilot_section(state.store, state.gateway.registers, since=since, until=until),
        # The period in force, as the form's local date-times: the default period shows, and a bare
        # date typed into the address bar comes back in the form the inputs take.
        values={"since": _form_value(since), "until": _form_value(until)},
    )


def _form_value(when: datetime) -> str:
    return when.astimezone(LOCAL_ZONE).strftime("%Y-%m-%dT%H:%M")


@router.get("/registry")
def registry_form(request: Request, state: State, operator: Viewer) -> HTMLResponse:
    """The register look-up form."""
    return page(request, state.templates, "registry.html", operator, q="", found=None)


@router.post("/registry", dependencies=[Csrf])
def registry_page(
    request: Request,
    state: State,
    operator: Viewer,
    q: Annotated[str, Form(min_length=1, max_length=100)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:
    """Look a HER-id, kommunenummer or person number up (a POST: a person number stays out of URLs)."""
    found = lookup.registry_lookup(state.gateway, operator, q, reason)
    shown = "" if lookup.is_person_query(q) else q  # a person number is not echoed back into the form
    return private(page(request, state.templates, "registry.html", operator, q=shown, found=found))


@router.get("/audit")
def audit_page(request: Request, state: State, operator: Admin) -> HTMLResponse:
    """The newest audit entries, with a search form (ADMIN)."""
    entries = search_audit_as(state.store, operator, reason="web UI: newest entries", limit=100)
    return page(request, state.templates, "audit.html", operator, entries=entries, values={})


@router.post("/audit", dependencies=[Csrf])
def audit_search(
    request: Request,
    state: State,
    operator: Admin,
    patient: Annotated[str, Form(max_length=11)] = "",
    who: Annotated[str, Form(max_length=100)] = "",
    msg_id: Annotated[str, Form(max_length=64)] = "",
) -> HTMLResponse:
    """Search the audit log; a POST so a person number searched for never lands in a URL or access log."""
    entries = search_audit_as(
        state.store,
        operator,
        reason="web UI",
        patient=patient.strip() or None,
        by_operator=who.strip() or None,
        msg_id=msg_id.strip() or None,
        limit=200,
    )
    values = {"who": who, "msg_id": msg_id}  # the person number is not echoed back into the page
    return page(request, state.templates, "audit.html", operator, entries=entries, values=values)


@router.get("/api/docs")
def api_docs(request: Request, state: State, operator: Viewer) -> HTMLResponse:
    """A plain page listing the REST API's routes (FastAPI's own docs page loads assets from a CDN)."""
    schema = request.app.openapi()
    routes = [
        (method.upper(), path, spec.get("summary", ""), spec.get("description", ""))
        for path, methods in schema.get("paths", {}).items()
        for method, spec in methods.items()
    ]
    return page(request, state.templates, "api_docs.html", operator, routes=routes)
