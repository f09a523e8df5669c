"""The kommune's pathway worklist in the web UI and the REST API: the CLI's ``pathway`` commands.

``api_router`` (``/api/pathways``) uses the same desk (``services.pathways.PathwayDesk``) and the same
serialisation as the CLI's ``--json``: ``GET /api/pathways`` answers exactly what ``pathway list
--json`` prints (``PointView.as_json``); ``GET /api/pathways/{id}`` and every move answer what
``pathway show --json`` prints (``queries.to_jsonable`` of the ``PathwayView``). Answers: 404 for an
unknown pathway or point, 409 for a move the rules refuse (with the domain's reason), 422 for invalid
input, 403 for a viewer's move. Cookie-authenticated writes send the CSRF header as the rest of the
API does.

``router`` has the pages: ``/pathways`` (one row per point of every current course, overdue and
due-soon rows marked by the calendar as the dashboard counts them, filters by state, assignee and
deadline) and ``/pathways/{id}`` (points, history, notes to the fastlege and, for an operator, the
forms of the CLI's moves). Each form needs a reason and the session's CSRF token and ends in a
redirect with a flash notice (POST-redirect-GET); a move the rules refuse comes back as the notice.

Reading is open to viewers; every change needs the OPERATOR role and is made by the desk as the
verified operator (it writes the pathway's history and the audit entry). Patients appear masked
only. On a gateway that does not run the kommune role every route answers 404 and says the worklist
belongs to the kommune role. :func:`pathway_summary` gives the dashboard its counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edi_gateway.domain.pathway import OPEN_STATES, PathwayError, PointState, TransitionRefused, local_day
from edi_gateway.services import queries
from edi_gateway.services.pathways import (
    MAX_NOTE_CHARS,
    NotKommune,
    PathwayDesk,
    PathwayNotFound,
    PathwaySummary,
    PathwayView,
    PointView,
    desk_for,
)
from edi_gateway.web.auth import OperatorRole, Viewer, check_api_csrf, check_csrf
from edi_gateway.web.render import flash, page
from edi_gateway.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["pathways"], dependencies=[Depends(check_api_csrf)])
State = Annotated[WebState, Depends(web_state)]

OVERDUE: Final = "overdue"
DUE_SOON: Final = "due_soon"
POINT_WORDS: Final = {
    PointState.PLANNED.value: "Planlagt",
    PointState.DUE.value: "Aktuell",
    PointState.OVERDUE.value: "Forfalt",
    PointState.DONE.value: "Utført",
    PointState.DECLINED.value: "Takket nei",
    PointState.NOT_REACHABLE.value: "Ikke nådd",
    PointState.CLOSED.value: "Avsluttet",
}
"""How the pages name a point's state (the code stays in the badge's title and in the filters)."""
WORDS: Final[dict[str, Any]] = {
    "point_words": POINT_WORDS,
    "mark_words": {OVERDUE: "Forfalt", DUE_SOON: "Snart aktuell"},
    "move_words": {
        "done": "Utført",
        "declined": "Takket nei",
        "not_reachable": "Ikke nådd",
        "reopen": "Gjenåpne",
    },
    "history_words": {
        "point": "Status",
        "window": "Tidsvindu",
        "assigned_to": "Ansvarlig",
        "diagnosis_date": "Diagnosedato",
        "conflict": "Konflikt",
        "note": "Notat til fastlegen",
    },
    "note_words": {"pending": "Venter på sending", "sent": "Sendt", "failed": "Feilet"},
}
"""The Norwegian words the pathway pages use, passed to their templates."""


class PointNotFound(PathwayError):
    """The pathway's current course has no such samhandlingspunkt."""


# -- shared by the API, the pages and the dashboard ------------------------------------------------


def pathway_summary(state: WebState, now: datetime | None = None) -> PathwaySummary | None:
    """The dashboard's pathway counts on a kommune gateway; None on a gateway of another role."""
    if state.gateway.settings.role != "kommune":
        return None
    return desk_for(state.gateway).summary(now or datetime.now(UTC))


def deadline_mark(point: PointView, today: date, due_soon_days: int) -> str | None:
    """Return ``overdue`` or ``due_soon`` for a point still open, judged on ``today``, else None.

    The rules of ``PathwaySummary``'s counts (the calendar, not the stored state alone, so a row is
    right between two sweeps): overdue once its window has ended, due soon while it opens within
    ``due_soon_days``.
    """
    if point.state not in OPEN_STATES:
        return None
    if point.due_to is not None and point.due_to < today:
        return OVERDUE
    if today < point.due_from <= today + timedelta(days=due_soon_days):
        return DUE_SOON
    return None


def _require_point(desk: PathwayDesk, pathway_id: int, samhandlingspunkt: int) -> None:
    """An unknown point answers 404 (the desk's own refusal would not say which input was wrong)."""
    if samhandlingspunkt not in desk.show(pathway_id).moves:
        raise PointNotFound(f"pathway {pathway_id} has no samhandlingspunkt {samhandlingspunkt}")


@contextmanager
def _answered() -> Iterator[None]:
    """Map the desk's refusals to HTTP: unknown → 404, refused move → 409, other bad input → 422."""
    try:
        yield
    except (PathwayNotFound, PointNotFound) as exc:
        raise HTTPException(404, str(exc)) from exc
    except TransitionRefused as exc:
        raise HTTPException(409, str(exc)) from exc
    except PathwayError as exc:
        raise HTTPException(422, str(exc)) from exc


def _desk(state: WebState, refusal: str | None = None) -> PathwayDesk:
    try:
        return desk_for(state.gateway)
    except NotKommune as exc:
        raise HTTPException(404, refusal or str(exc)) from exc


def api_desk(state: State) -> PathwayDesk:
    """FastAPI dependency: the kommune's desk; 404 with the reason on a gateway of another role."""
    return _desk(state)


def page_desk(state: State) -> PathwayDesk:
    """FastAPI dependency: the kommune's desk; 404 saying whose worklist it is on another role."""
    role = state.gateway.settings.role
    return _desk(
        state,
        "Arbeidslisten for oppfølging (pakkeforløp hjem) hører til kommunerollen; denne gatewayen "
        f"kjører som {role} (EDI_GATEWAY_ROLE=kommune).",
    )


# -- API -------------------------------------------------------------------------------------------

ApiDesk = Annotated[PathwayDesk, Depends(api_desk)]
Reason = Annotated[str, Field(min_length=3, max_length=500, description="Why (history and audit log).")]


class AssignBody(BaseModel):
    """Assign a pathway to a role or a named operator."""

    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=200, description="role:<role> or operator:<account>.")
    reason: Reason


class MoveBody(BaseModel):
    """An operator's move on a samhandlingspunkt of the pathway's current course."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["done", "declined", "not_reachable", "reopen"]
    reason: Reason
    on: date | None = Field(default=None, description="The day it happened (not with reopen); default today.")
    note: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NOTE_CHARS,
        description="With done only: a note to the patient's fastlege, sent as a Dialogmelding.",
    )

    @model_validator(mode="after")
    def _fits_the_action(self) -> MoveBody:
        if self.action == "reopen" and self.on is not None:
            raise ValueError("'on' goes with done, declined and not_reachable, not with reopen")
        if self.note is not None and self.action != "done":
            raise ValueError("a note to the fastlege goes with done only")
        return self


def _pathway_json(view: PathwayView) -> JSONResponse:
    return JSONResponse(queries.to_jsonable(view))


@api_router.get("/pathways", response_model=None)
def api_worklist(
    _: Viewer,
    desk: ApiDesk,
    state: Annotated[str | None, Query(max_length=32, description="planned, due, overdue, done …")] = None,
    assigned_to: Annotated[str | None, Query(max_length=200, description="role:… or operator:…")] = None,
) -> JSONResponse:
    """The points of every pathway's current course, by window start (= ``pathway list --json``)."""
    with _answered():
        points = desk.worklist(state=state or None, assigned_to=assigned_to or None)
    return JSONResponse([p.as_json() for p in points])


@api_router.get("/pathways/summary", response_model=None)
def api_summary(_: Viewer, desk: ApiDesk) -> JSONResponse:
    """The dashboard's counts: the kommune's current points overdue, due, and due soon, today."""
    return JSONResponse(queries.to_jsonable(desk.summary(datetime.now(UTC))))


@api_router.get("/pathways/{pathway_id}", response_model=None)
def api_pathway(pathway_id: int, _: Viewer, desk: ApiDesk) -> JSONResponse:
    """One pathway: points, allowed moves, history, notes, messages (= ``pathway show --json``)."""
    with _answered():
        return _pathway_json(desk.show(pathway_id))


@api_router.post("/pathways/{pathway_id}/assign", response_model=None)
def api_assign(pathway_id: int, body: AssignBody, operator: OperatorRole, desk: ApiDesk) -> JSONResponse:
    """Assign the pathway to a role or a named operator (OPERATOR; history and audit log)."""
    with _answered():
        view = desk.assign(pathway_id, body.to, actor=operator, reason=body.reason, now=datetime.now(UTC))
    return _pathway_json(view)


@api_router.post("/pathways/{pathway_id}/points/{samhandlingspunkt}", response_model=None)
def api_mark(
    pathway_id: int, samhandlingspunkt: int, body: MoveBody, operator: OperatorRole, desk: ApiDesk
) -> JSONResponse:
    """Record a point done (optionally with a note to the fastlege), declined, not reachable, or reopen it.

    OPERATOR; written to the pathway's history and the audit log. A note is sent later by the
    gateway's note sender: the answer shows it pending.
    """
    with _answered():
        _require_point(desk, pathway_id, samhandlingspunkt)
        view = desk.mark(
            pathway_id,
            samhandlingspunkt,
            body.action,
            actor=operator,
            reason=body.reason,
            now=datetime.now(UTC),
            on=body.on,
            note=body.note,
        )
    return _pathway_json(view)


# -- pages -----------------------------------------------------------------------------------------

PageDesk = Annotated[PathwayDesk, Depends(page_desk)]
FormReason = Annotated[str, Form(min_length=3, max_length=500)]
Csrf = Depends(check_csrf)


@router.get("/pathways")
def worklist_page(
    request: Request,
    state: State,
    operator: Viewer,
    desk: PageDesk,
    point_state: Annotated[str, Query(alias="state", max_length=32)] = "",
    assigned_to: Annotated[str, Query(max_length=200)] = "",
    frist: Annotated[Literal["", "overdue", "due_soon"], Query()] = "",
) -> HTMLResponse:
    """Every point of every current course, by window start; overdue and due-soon rows marked."""
    summary = desk.summary(datetime.now(UTC))
    with _answered():
        points = desk.worklist(state=point_state or None, assigned_to=assigned_to.strip() or None)
    rows = [(p, deadline_mark(p, summary.day, summary.due_soon_days)) for p in points]
    if frist:
        rows = [(p, mark) for p, mark in rows if mark == frist]
    return page(
        request,
        state.templates,
        "pathways.html",
        operator,
        rows=rows,
        summary=summary,
        values={"state": point_state, "assigned_to": assigned_to, "frist": frist},
        point_states=[s.value for s in PointState],
        **WORDS,
    )


@router.get("/pathways/{pathway_id}")
def pathway_page(
    request: Request, pathway_id: int, state: State, operator: Viewer, desk: PageDesk
) -> HTMLResponse:
    """One pathway: its points and windows, history, notes to the fastlege, and the operator's forms."""
    with _answered():
        view = desk.show(pathway_id)
    today = local_day(datetime.now(UTC))
    due_soon_days = state.gateway.settings.pathway_due_soon_days
    return page(
        request,
        state.templates,
        "pathway.html",
        operator,
        v=view,
        marks={p.samhandlingspunkt: deadline_mark(p, today, due_soon_days) for p in view.points},
        today=today.isoformat(),
        max_note=MAX_NOTE_CHARS,
        **WORDS,
    )


@router.post("/pathways/{pathway_id}/assign", dependencies=[Csrf])
def assign_form(
    request: Request,
    pathway_id: int,
    operator: OperatorRole,
    desk: PageDesk,
    to: Annotated[str, Form(min_length=1, max_length=200)],
    reason: FormReason,
) -> Response:
    """Assign the pathway to a role or a named operator (OPERATOR; history and audit log)."""
    try:
        view = desk.assign(pathway_id, to, actor=operator, reason=reason, now=datetime.now(UTC))
    except PathwayNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except PathwayError as exc:
        return _refused(request, pathway_id, exc)
    flash(request, f"Forløp {pathway_id} er tildelt {view.assigned_to}.")
    return _back(pathway_id)


@router.post("/pathways/{pathway_id}/points/{samhandlingspunkt}", dependencies=[Csrf])
def move_form(
    request: Request,
    pathway_id: int,
    samhandlingspunkt: int,
    operator: OperatorRole,
    desk: PageDesk,
    action: Annotated[str, Form(max_length=20)],
    reason: FormReason,
    on: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=MAX_NOTE_CHARS + 100)] = "",
) -> Response:
    """Record a point done (optionally with a note to the fastlege), declined, not reachable, or reopen it."""
    wants_note = bool(note.strip())
    try:
        _require_point(desk, pathway_id, samhandlingspunkt)
        view = desk.mark(
            pathway_id,
            samhandlingspunkt,
            action,
            actor=operator,
            reason=reason,
            now=datetime.now(UTC),
            on=_form_day(on),
            note=note if wants_note else None,
        )
    except (PathwayNotFound, PointNotFound) as exc:
        raise HTTPException(404, str(exc)) from exc
    except PathwayError as exc:
        return _refused(request, pathway_id, exc)
    now = next((p.state for p in view.points if p.samhandlingspunkt == samhandlingspunkt), action)
    said = f"Forløp {pathway_id}, samhandlingspunkt {samhandlingspunkt}: {POINT_WORDS.get(now, now)}."
    if wants_note:
        said += " Notatet til fastlegen er bestilt og sendes av gatewayen."
    flash(request, said)
    return _back(pathway_id)


def _form_day(text: str) -> date | None:
    """The form's day (YYYY-MM-DD), or None when left empty; a PathwayError when it is no date."""
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PathwayError(f"{text.strip()!r} er ikke en dato (ÅÅÅÅ-MM-DD)") from None


def _refused(request: Request, pathway_id: int, exc: PathwayError) -> Response:
    flash(request, f"Ikke registrert: {exc}")
    return _back(pathway_id)


def _back(pathway_id: int) -> RedirectResponse:
    return RedirectResponse(f"/pathways/{pathway_id}", status_code=303)


routers = (api_router, router)
"""Both routers, in the order the app includes them."""
