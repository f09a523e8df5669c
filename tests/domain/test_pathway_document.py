"""A pathway survives the store's shapes: document, point rows and history rows round-trip exactly."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edi_gateway.domain.pathway import (
    RELAPSE_REASON,
    Assignee,
    AuditEntry,
    Pathway,
    PathwayError,
    PathwayMessage,
    PathwayModel,
    PointState,
    Trigger,
    assign,
    continue_pathway,
    mark,
    open_from_message,
    tick,
)
from edi_gateway.domain.pathway.document import (
    EventKind,
    PathwayDocumentInvalid,
    entry_of,
    event_rows,
    from_document,
    parse_assignee,
    point_rows,
    to_document,
)
from edi_gateway.services.pathway_models import shipped_model

OSLO = ZoneInfo("Europe/Oslo")
MODELS = [shipped_model("telemark"), shipped_model("nasjonalt-utkast")]
PATIENT = hashlib.sha256(b"synthetic patient").hexdigest()
WORDS: list[PointState | Trigger] = [
    PointState.DONE,
    PointState.DECLINED,
    PointState.NOT_REACHABLE,
    Trigger.REOPEN,
]


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), OSLO)


def message(diagnosis: date, received: date, *, point: int = 1, relapse: bool = False) -> PathwayMessage:
    return PathwayMessage(point, diagnosis, relapse, received, noon(received), f"msg-{diagnosis}-{point}")


def opened(model: PathwayModel, diagnosis: date) -> Pathway:
    return open_from_message(
        model, message(diagnosis, diagnosis + timedelta(days=7)), patient_ref=PATIENT, actor="edi:8100001"
    )


@st.composite
def pathways(draw: st.DrawFn) -> Pathway:
    """A pathway after a random life: moves, ticks, assignments and relapse restarts."""
    model = draw(st.sampled_from(MODELS))
    diagnosis = draw(st.dates(date(2020, 1, 1), date(2030, 12, 31)))
    pathway = opened(model, diagnosis)
    day = diagnosis + timedelta(days=7)
    for _ in range(draw(st.integers(0, 8))):
        day += timedelta(days=draw(st.integers(0, 200)))
        action = draw(st.sampled_from(["tick", "mark", "assign", "relapse"]))
        pathway = _act(draw, pathway, action, day)
    return pathway


def _act(draw: st.DrawFn, pathway: Pathway, action: str, day: date) -> Pathway:
    at = noon(day)
    if action == "tick":
        return tick(pathway, at)
    if action == "assign":
        who = draw(st.sampled_from([Assignee.role("kreftkoordinator"), Assignee.operator("sykepleier-7")]))
        return assign(pathway, who, at=at, actor="operator:ola", reason="ferie")
    if action == "relapse":
        later = pathway.diagnosis_date + timedelta(days=draw(st.integers(1, 400)))
        try:
            return continue_pathway(
                pathway, message(later, max(day, later), relapse=True), actor="edi:8100001"
            )
        except PathwayError:
            return pathway
    number = draw(st.integers(1, len(pathway.points)))
    try:
        return mark(
            pathway, number, draw(st.sampled_from(WORDS)), at=at, actor="operator:ola", reason="samtale"
        )
    except PathwayError:
        return pathway


@settings(max_examples=150, deadline=None)
@given(pathways())
def test_the_document_round_trips_through_json(pathway: Pathway) -> None:
    """to_document, JSON text and from_document give back the same pathway (history aside)."""
    document = json.loads(json.dumps(to_document(pathway)))
    assert from_document(document) == dataclasses.replace(pathway, history=())
    assert from_document(document, history=pathway.history) == pathway


@settings(max_examples=150, deadline=None)
@given(pathways())
def test_the_history_round_trips_through_event_rows(pathway: Pathway) -> None:
    """Every history entry becomes one row and back, and rows name a course the pathway has."""
    found = event_rows(pathway.history, course=0)
    assert [entry_of(r) for r in found] == list(pathway.history)
    assert {r.course for r in found} <= {c.number for c in pathway.courses}
    point_rows_ = [r for r in found if r.kind is EventKind.POINT]
    assert all(r.to_state is not None and r.number is not None for r in point_rows_)


@settings(max_examples=100, deadline=None)
@given(pathways())
def test_point_rows_hold_every_point_of_every_course(pathway: Pathway) -> None:
    """One row per point per course, with the point's window and state."""
    rows = point_rows(pathway)
    assert len(rows) == sum(len(c.points) for c in pathway.courses)
    by_key = {(r.course, r.number): r for r in rows}
    for course in pathway.courses:
        for p in course.points:
            row = by_key[(course.number, p.number)]
            assert (row.state, row.due_from, row.due_to, row.title) == (
                p.state.value,
                p.window.due_from,
                p.window.due_to,
                p.title,
            )


def test_a_restarts_rows_close_the_old_course_and_plan_the_new_one() -> None:
    """After a relapse, the closing rows name course 1 and the planning and done rows course 2."""
    pathway = opened(MODELS[0], date(2026, 1, 10))
    restarted = continue_pathway(
        pathway, message(date(2026, 9, 1), date(2026, 9, 8), relapse=True), actor="edi:8100001"
    )
    rows = event_rows(restarted.history[len(pathway.history) :], course=pathway.current.number)
    closing = [r for r in rows if r.to_state == PointState.CLOSED]
    assert closing and {r.course for r in closing} == {1}
    assert all(RELAPSE_REASON in r.reason for r in closing)
    restart = next(r for r in rows if r.kind is EventKind.DIAGNOSIS)
    assert (restart.course, restart.details) == (
        2,
        {"subject": "diagnosis_date", "before": "2026-01-10", "after": "2026-09-01"},
    )
    after_restart = rows[rows.index(restart) + 1 :]
    assert after_restart and {r.course for r in after_restart} == {2}


def test_an_opening_numbers_its_rows_course_1() -> None:
    """A new pathway's rows (counted from course 0) all belong to course 1."""
    rows = event_rows(opened(MODELS[0], date(2026, 1, 10)).history, course=0)
    assert {r.course for r in rows} == {1}
    assert rows[0].kind is EventKind.DIAGNOSIS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("role:kreftkoordinator", Assignee.role("kreftkoordinator")),
        ("operator:ola", Assignee.operator("ola")),
        ("  operator: ola ", Assignee.operator("ola")),
    ],
)
def test_assignees_are_read_as_written(text: str, expected: Assignee) -> None:
    """role:<name> and operator:<account> give that assignee."""
    assert parse_assignee(text) == expected


@pytest.mark.parametrize("text", ["kreftkoordinator", "team:x", "role:", "operator:01018012345", ":ola"])
def test_other_assignee_spellings_are_refused(text: str) -> None:
    """Anything but role:<name> or operator:<account> (and never a person number) is refused."""
    with pytest.raises(PathwayDocumentInvalid):
        parse_assignee(text)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(version=2),
        lambda d: d.pop("courses"),
        lambda d: d["courses"][0]["points"][0].update(state="unknown"),
        lambda d: d["courses"][0].update(diagnosis_date="12.10.2026"),
        lambda d: d.update(courses=[]),
    ],
    ids=["other-version", "no-courses-key", "unknown-state", "bad-date", "no-course"],
)
def test_a_damaged_document_is_refused(change: object) -> None:
    """A document of another version or shape raises PathwayDocumentInvalid, never a half pathway."""
    document = to_document(opened(MODELS[0], date(2026, 1, 10)))
    change(document)  # type: ignore[operator]
    with pytest.raises(PathwayDocumentInvalid):
        from_document(document)


def test_a_conflict_is_not_a_history_entry_of_the_aggregate() -> None:
    """The service's own event kinds map to no domain entry; a point row without a state is refused."""
    row = event_rows(
        [AuditEntry(noon(date(2026, 1, 1)), "a", "samhandlingspunkt 2", "due", "done", "r")], course=1
    )[0]
    conflict = dataclasses.replace(row, kind=EventKind.CONFLICT)
    assert entry_of(conflict) is None
    with pytest.raises(PathwayDocumentInvalid):
        entry_of(dataclasses.replace(row, to_state=None))
