"""The REST API under ``/api/``: the operators' actions as JSON, for scripts and other tools.

Every route needs a signed-in operator (session cookie or bearer token). Reading is open to viewers;
replay and reveal need the OPERATOR role, the audit log ADMIN. The services check roles and write the
audit trail themselves; the dependencies here only turn a missing login into 401 before any work.
A write (POST) made with the session cookie needs the session's CSRF token in ``X-CSRF-Token``
(``GET /api/session`` tells it); bearer-token calls need none. A person number never travels in a
URL: person look-ups and audit searches by patient are POSTs with a JSON body.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from edi_gateway.services import lookup, queries
from edi_gateway.services.access import (
    AuditEntry,
    reveal_patient_id,
    reveal_payload,
    revoke_token_as,
    search_audit_as,
    tokens_visible_to,
)
from edi_gateway.services.operator_actions import outcome_text, raise_outcome, result_of
from edi_gateway.services.queries import MessageDetail, MessageFilter, Page, Report
from edi_gateway.services.queries.pilot import pilot_report, to_json
from edi_gateway.services.replay import ReplayKind, ReplayResult
from edi_gateway.store.actions import ActionRecord
from edi_gateway.store.operators import TokenRecord
from edi_gateway.web.auth import Admin, OperatorRole, Viewer, check_api_csrf, csrf_token, uses_session
from edi_gateway.web.filters import MAX_PAGE, api_filter
from edi_gateway.web.pilot import csv_response
from edi_gateway.web.state import WebState, web_state

router = APIRouter(prefix="/api", tags=["operators"], dependencies=[Depends(check_api_csrf)])
PERSON_DIGITS = 11  # a query string with this many digits could be a person number: POST it instead
State = Annotated[WebState, Depends(web_state)]
Reason = Annotated[str, Field(min_length=3, max_length=500, description="Why (kept in the audit log).")]
REPORT_DAYS = 30


class FilterBody(BaseModel):
    """The message filter as a JSON body (same fields as the query string of GET /api/messages)."""

    model_config = ConfigDict(extra="forbid")
    state: str | None = None
    kommunenummer: str | None = Field(default=None, pattern=r"^\d{4}$")
    receiver_her_id: int | None = Field(default=None, gt=0)
    samhandlingspunkt: int | None = Field(default=None, ge=1, le=3)
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0)

    def to_filter(self) -> MessageFilter:
        """The service-side filter (the state checked like the query string's)."""
        return api_filter(**self.model_dump())


class ReplayBody(BaseModel):
    """Replay one message: resend (same MsgId), rebuild (new MsgId) or edit (new MsgId, corrected request)."""

    model_config = ConfigDict(extra="forbid")
    kind: ReplayKind
    reason: Reason
    edited_request: dict[str, Any] | None = Field(
        default=None, description="The corrected request (kind edit only)."
    )


class FilterReplayBody(BaseModel):
    """Replay (or plan to replay) every message a filter finds."""

    model_config = ConfigDict(extra="forbid")
    filter: FilterBody
    kind: ReplayKind


class FilterReplayRun(FilterReplayBody):
    """Replay every message a filter finds, for a reason."""

    reason: Reason


class PlannedReplay(BaseModel):
    """What a replay would do to one message."""

    msg_id: str
    plan: str


class RevealWhat(StrEnum):
    """What an operator may reveal of a message."""

    PATIENT = "patient"
    PAYLOAD = "payload"


class RevealBody(BaseModel):
    """Reveal the full person number or the signed XML of a message, for a reason (audited)."""

    model_config = ConfigDict(extra="forbid")
    what: RevealWhat
    reason: Reason


class LookupBody(BaseModel):
    """A register look-up; a person number needs the OPERATOR role and a reason (audited)."""

    model_config = ConfigDict(extra="forbid")
    q: str = Field(min_length=1, max_length=100, description="HER-id, kommunenummer or person number.")
    reason: str | None = Field(default=None, max_length=500, description="Required for a person number.")


class AuditSearchBody(BaseModel):
    """An audit search; every condition given must hold."""

    model_config = ConfigDict(extra="forbid")
    patient: str | None = Field(default=None, max_length=11, description="A full person number.")
    operator: str | None = Field(default=None, max_length=100)
    msg_id: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=100, ge=1, le=1000)


class SessionInfo(BaseModel):
    """Who the caller is; for a cookie session also the CSRF token its API writes must send."""

    username: str
    role: str
    display_name: str
    csrf_token: str | None = None


class TokenView(BaseModel):
    """An API token as its owner (or an admin) sees it: never the token itself."""

    id: int
    username: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    live: bool

    @classmethod
    def of(cls, token: TokenRecord) -> TokenView:
        """The view of a stored token, judged live now."""
        return cls(
            id=token.id,
            username=token.username,
            label=token.label,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            live=token.live_at(datetime.now(UTC)),
        )


class Revealed(BaseModel):
    """A revealed value; the request that asked for it is in the audit log."""

    msg_id: str
    what: RevealWhat
    patient_id: str | None = None
    payload: str | None = None


@router.get("/messages", response_model=Page)
def list_messages(state: State, _: Viewer, f: Annotated[MessageFilter, Depends(api_filter)]) -> Page:
    """List messages, newest first, with filters and paging (person numbers masked)."""
    return queries.list_messages(state.store, f)


@router.get("/messages/{msg_id}", response_model=MessageDetail)
def message_detail(msg_id: str, state: State, _: Viewer) -> MessageDetail:
    """One message: timeline, AppRecs in plain language, related messages."""
    detail = queries.message_detail(state.store, msg_id)
    if detail is None:
        raise HTTPException(404, "no message with this msg_id")
    return detail


class ActionView(BaseModel):
    """An operator action (a replay) a worker carries out: where it is, and its outcome once done."""

    action_id: int
    msg_id: str
    action: str
    kind: str
    state: str = Field(description="pending, running, done, refused or failed")
    requested_at: datetime
    requested_by: str
    finished_at: datetime | None
    detail: str = Field(description="what happened, or that no worker has carried it out yet")
    result: ReplayResult | None = Field(None, description="the replay's result, once done")


def _action_view(action: ActionRecord) -> ActionView:
    return ActionView(
        action_id=action.id,
        msg_id=action.msg_id,
        action=action.action,
        kind=action.kind,
        state=action.state.value,
        requested_at=action.requested_at,
        requested_by=action.username,
        finished_at=action.finished_at,
        detail=outcome_text(action),
        result=result_of(action),
    )


PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": ActionView, "description": "Recorded; no worker has carried it out yet."}
}


@router.post("/messages/{msg_id}/replay", response_model=ReplayResult, responses=PENDING)
def replay_message(
    msg_id: str, body: ReplayBody, state: State, operator: OperatorRole
) -> ReplayResult | JSONResponse:
    """Replay one message: recorded, carried out by a worker, and answered with its result.

    Answers 202 with the recorded action when no worker has carried it out within the wait; its
    outcome then shows at ``/api/actions/{action_id}`` and on the message page.
    """
    action_id = state.actions.ask_replay(
        operator, msg_id, body.kind, reason=body.reason, edited_request=body.edited_request
    )
    (action,) = state.actions.wait([action_id], state.action_wait_s)
    raise_outcome(action)
    result = result_of(action)
    if result is None:
        return JSONResponse(_action_view(action).model_dump(mode="json"), status_code=202)
    return result


@router.get("/actions/{action_id}", response_model=ActionView)
def operator_action(action_id: int, state: State, _: Viewer) -> ActionView:
    """One operator action: where it is and, once a worker has carried it out, its outcome."""
    action = state.actions.get(action_id)
    if action is None:
        raise HTTPException(404, "no operator action with this id")
    return _action_view(action)


@router.post("/replay/dry-run", response_model=list[PlannedReplay])
def replay_dry_run(body: FilterReplayBody, state: State, _: Viewer) -> list[PlannedReplay]:
    """Say what a replay by filter would do to each message, changing nothing."""
    plan = state.planner.plan_by_filter(body.filter.to_filter(), body.kind)
    return [PlannedReplay(msg_id=msg_id, plan=what) for msg_id, what in plan]


@router.post("/replay", response_model=list[ReplayResult])
def replay_by_filter(body: FilterReplayRun, state: State, operator: OperatorRole) -> list[ReplayResult]:
    """Replay every message a filter finds (try the dry run first); workers carry the replays out.

    A message not replayed, or not yet carried out within the wait, has no new MsgId and says why in
    ``detail``.
    """
    ids = state.actions.ask_replay_by_filter(operator, body.filter.to_filter(), body.kind, reason=body.reason)
    results = []
    for action in state.actions.wait(ids, state.action_wait_s):
        result = result_of(action)
        if result is None:
            now = state.store.get_message(action.msg_id)
            result = ReplayResult(
                ReplayKind(action.kind),
                action.msg_id,
                (),
                now.state.value if now is not None else "unknown",
                outcome_text(action),
            )
        results.append(result)
    return results


@router.post("/messages/{msg_id}/reveal", response_model=Revealed)
def reveal(msg_id: str, body: RevealBody, state: State, operator: OperatorRole) -> Revealed:
    """Reveal the full person number or the signed XML of a message; audited with the reason."""
    if body.what is RevealWhat.PATIENT:
        patient_id = reveal_patient_id(state.store, operator, msg_id, reason=body.reason)
        return Revealed(msg_id=msg_id, what=body.what, patient_id=patient_id)
    payload = reveal_payload(state.store, operator, msg_id, reason=body.reason)
    return Revealed(msg_id=msg_id, what=body.what, payload=payload.decode("utf-8", errors="replace"))


@router.get("/report", response_model=Report)
def report(
    state: State,
    _: Viewer,
    since: Annotated[datetime | None, Query(description="Default: 30 days ago.")] = None,
    until: Annotated[datetime | None, Query(description="Default: now.")] = None,
) -> Report:
    """Outcomes per kommune and samhandlingspunkt, consent, and time to AppRec, for a period."""
    end = _aware(until) or datetime.now(UTC)
    start = _aware(since) or end - timedelta(days=REPORT_DAYS)
    return queries.report(state.store, state.gateway.registers, since=start, until=end)


@router.get(
    "/report/pilot",
    response_model=None,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def report_pilot(
    state: State,
    _: Viewer,
    since: Annotated[datetime | None, Query(description="Default: 30 days ago.")] = None,
    until: Annotated[datetime | None, Query(description="Default: now.")] = None,
    by: Annotated[Literal["month"] | None, Query(description="A row per kommune per month.")] = None,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format", description="csv: a download.")] = "json",
) -> Response:
    """The pilot report: per kommune (and month) JA, NEI, sent, acknowledged and the kommune's points."""
    end = _aware(until) or datetime.now(UTC)
    start = _aware(since) or end - timedelta(days=REPORT_DAYS)
    if end < start:
        raise HTTPException(400, "until must not be before since")
    found = pilot_report(state.store, state.gateway.registers, since=start, until=end, by=by)
    return csv_response(found) if fmt == "csv" else JSONResponse(to_json(found))


@router.get("/registry/lookup")
def registry_lookup(
    state: State, operator: Viewer, q: Annotated[str, Query(min_length=1, max_length=100)]
) -> dict[str, Any]:
    """Look a HER-id or kommunenummer up as routing sees it (a person number: POST this path)."""
    if sum(c.isdigit() for c in q) >= PERSON_DIGITS:
        raise HTTPException(400, "a person number never goes in a URL: POST /api/registry/lookup")
    return lookup.registry_lookup(state.gateway, operator, q, None)


@router.post("/registry/lookup")
def registry_lookup_post(body: LookupBody, state: State, operator: Viewer) -> dict[str, Any]:
    """Look a HER-id, kommunenummer or person number up as routing sees it.

    A person number needs the OPERATOR role and a reason, and is audited.
    """
    return lookup.registry_lookup(state.gateway, operator, body.q, body.reason)


@router.get("/dashboard")
def dashboard(state: State, _: Viewer) -> dict[str, Any]:
    """The dashboard's figures: messages per state, overdue, quiet receivers, the last hour."""
    store = state.store
    return {
        "counts_by_state": queries.counts_by_state(store),
        "overdue": queries.overdue_messages(store),
        "quiet_receivers": [
            {"her_id": her_id, "consecutive_overdue": n} for her_id, n in queries.quiet_receivers(store)
        ],
        "last_hour": queries.throughput_last_hour(store, datetime.now(UTC)),
    }


@router.get("/audit", response_model=list[AuditEntry])
def audit_log(
    request: Request,
    state: State,
    admin: Admin,
    operator: Annotated[str | None, Query(max_length=100)] = None,
    msg_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    """Search the audit log (ADMIN) by operator or msg_id (by patient: POST /api/audit/search); audited."""
    if "patient" in request.query_params:  # refused, not ignored: ignoring it would list everything
        raise HTTPException(400, "a person number never goes in a URL: POST /api/audit/search")
    return search_audit_as(state.store, admin, reason="API", by_operator=operator, msg_id=msg_id, limit=limit)


@router.post("/audit/search", response_model=list[AuditEntry])
def audit_search(body: AuditSearchBody, state: State, admin: Admin) -> list[AuditEntry]:
    """Search the audit log (ADMIN) by patient (full person number), operator or msg_id; audited."""
    return search_audit_as(
        state.store,
        admin,
        reason="API",
        patient=body.patient or None,
        by_operator=body.operator,
        msg_id=body.msg_id,
        limit=body.limit,
    )


@router.get("/session", response_model=SessionInfo)
def session_info(request: Request, operator: Viewer) -> SessionInfo:
    """Who is calling; a cookie session also gets the CSRF token to send in X-CSRF-Token on writes."""
    return SessionInfo(
        username=operator.username,
        role=operator.role.value,
        display_name=operator.display_name,
        csrf_token=csrf_token(request) if uses_session(request) else None,
    )


@router.get("/tokens", response_model=list[TokenView])
def list_tokens(state: State, operator: Viewer) -> list[TokenView]:
    """The caller's API tokens (an admin: every account's), revoked and expired ones too; never a secret."""
    return [TokenView.of(t) for t in tokens_visible_to(state.store, operator)]


@router.post("/tokens/{token_id}/revoke", response_model=TokenView)
def revoke_token(token_id: int, state: State, operator: Viewer) -> TokenView:
    """Revoke an API token for good: one's own, or any for an admin; audited."""
    return TokenView.of(revoke_token_as(state.store, operator, token_id))


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Viewer) -> dict[str, Any]:
    """The OpenAPI description of this API (signed-in operators only)."""
    schema: dict[str, Any] = request.app.openapi()
    return schema


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
