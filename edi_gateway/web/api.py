"""The REST API under ``/api/``: the operators' actions as JSON, for scripts and other tools.

Every route needs a signed-in operator (session cookie or bearer token). Reading is open to viewers;
replay and reveal need the OPERATOR role, the audit log ADMIN. The services check roles and write the
audit trail themselves; the dependencies here only turn a missing login into 401 before any work.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from edi_gateway.services import lookup, queries
from edi_gateway.services.access import AuditEntry, reveal_patient_id, reveal_payload, search_audit_as
from edi_gateway.services.queries import MessageDetail, MessageFilter, Page, Report
from edi_gateway.services.replay import ReplayKind, ReplayResult
from edi_gateway.web.auth import Admin, OperatorRole, Viewer
from edi_gateway.web.filters import MAX_PAGE, api_filter
from edi_gateway.web.state import WebState, web_state

router = APIRouter(prefix="/api", tags=["operators"])
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


@router.post("/messages/{msg_id}/replay", response_model=ReplayResult)
def replay_message(msg_id: str, body: ReplayBody, state: State, operator: OperatorRole) -> ReplayResult:
    """Replay one message; the result says whether it was resent or a new message was made."""
    return state.replay_service().replay(
        operator, msg_id, body.kind, reason=body.reason, edited_request=body.edited_request
    )


@router.post("/replay/dry-run", response_model=list[PlannedReplay])
def replay_dry_run(body: FilterReplayBody, state: State, _: Viewer) -> list[PlannedReplay]:
    """Say what a replay by filter would do to each message, changing nothing."""
    plan = state.replay_service().plan_by_filter(body.filter.to_filter(), body.kind)
    return [PlannedReplay(msg_id=msg_id, plan=what) for msg_id, what in plan]


@router.post("/replay", response_model=list[ReplayResult])
def replay_by_filter(body: FilterReplayRun, state: State, operator: OperatorRole) -> list[ReplayResult]:
    """Replay every message a filter finds (try the dry run first)."""
    return state.replay_service().replay_by_filter(
        operator, body.filter.to_filter(), body.kind, reason=body.reason
    )


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


@router.get("/registry/lookup")
def registry_lookup(
    state: State,
    operator: Viewer,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    reason: Annotated[str | None, Query(max_length=500, description="Required for a person number.")] = None,
) -> dict[str, Any]:
    """Look a HER-id, kommunenummer or person number up as routing sees it.

    A person number needs the OPERATOR role and a reason, and is audited.
    """
    return lookup.registry_lookup(state.gateway, operator, q, reason)


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
    state: State,
    admin: Admin,
    patient: Annotated[str | None, Query(max_length=11)] = None,
    operator: Annotated[str | None, Query(max_length=100)] = None,
    msg_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    """Search the audit log (ADMIN): by patient (full person number), operator or msg_id; the search is audited."""
    return search_audit_as(
        state.store, admin, reason="API", patient=patient, by_operator=operator, msg_id=msg_id, limit=limit
    )


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Viewer) -> dict[str, Any]:
    """The OpenAPI description of this API (signed-in operators only)."""
    schema: dict[str, Any] = request.app.openapi()
    return schema


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
