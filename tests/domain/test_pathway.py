"""The pathway of "pakkeforløp hjem": models, month arithmetic, point states, relapse, assignment, alerts."""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.pathway import (
    CLOCK_ACTOR,
    DEFAULT_MODEL,
    OPEN_STATES,
    RELAPSE_REASON,
    AlertKind,
    Assignee,
    AuditEntry,
    DiagnosisConflict,
    Pathway,
    PathwayError,
    PathwayMessage,
    PathwayModel,
    PathwayModelInvalid,
    Performer,
    Point,
    PointSpec,
    PointState,
    TransitionRefused,
    Trigger,
    UnknownPathwayModel,
    Window,
    WindowSpec,
    add_months,
    alerts,
    assign,
    compute_windows,
    continue_pathway,
    local_day,
    mark,
    model_from_document,
    open_from_message,
    open_pathway,
    operator_moves,
    parse_model,
    restart_pathway,
    tick,
    transition,
)
from edi_gateway.resources import resource_dir
from edi_gateway.services.pathway_models import load_model, shipped_model, shipped_model_names

OSLO = ZoneInfo("Europe/Oslo")
TELEMARK = shipped_model("telemark")
NATIONAL = shipped_model("nasjonalt-utkast")
PATIENT = hashlib.sha256(b"synthetic patient").hexdigest()  # the shape of the gateway's keyed hash
NURSE = "sykepleier-7"  # a synthetic operator account
SENDER = "edi:8100002"  # a synthetic sender HER-id
D = date(2026, 1, 31)  # a diagnosis date at a month's end, so every window is clamped

PLANNED, DUE, OVERDUE = PointState.PLANNED, PointState.DUE, PointState.OVERDUE
DONE, DECLINED, NOT_REACHABLE, CLOSED = (
    PointState.DONE,
    PointState.DECLINED,
    PointState.NOT_REACHABLE,
    PointState.CLOSED,
)


def noon(day: date) -> datetime:
    """Return noon Norwegian time on ``day``."""
    return datetime.combine(day, time(12), OSLO)


def message(
    point: int = 1,
    *,
    diagnosis: date = D,
    relapse: bool = False,
    assessed: date = D,
    received: date | None = None,
    msg_id: str = "msg-1",
) -> PathwayMessage:
    """Return a behovskartlegging message documenting ``point``, received at noon (default: the assessment day)."""
    return PathwayMessage(point, diagnosis, relapse, assessed, noon(received or assessed), msg_id)


def states(pathway: Pathway) -> list[PointState]:
    """Return the states of the current course's points, in order."""
    return [p.state for p in pathway.points]


def windows(pathway: Pathway) -> list[Window]:
    """Return the windows of the current course's points, in order."""
    return [p.window for p in pathway.points]


def W(due_from: str, due_to: str | None = None) -> Window:
    """Return the window between two ISO dates."""
    return Window(date.fromisoformat(due_from), None if due_to is None else date.fromisoformat(due_to))


# --- The shipped models ------------------------------------------------------------------------


def test_telemark_is_the_default_and_both_models_ship() -> None:
    """The gateway ships Telemark's three points (the default) and the national draft's five."""
    assert shipped_model_names() == ("nasjonalt-utkast", "telemark")
    assert DEFAULT_MODEL == "telemark" and shipped_model() == TELEMARK
    assert [p.performer for p in TELEMARK.points] == [Performer.SYKEHUS, Performer.KOMMUNE, Performer.KOMMUNE]
    assert [p.performer for p in NATIONAL.points] == [Performer.SYKEHUS] * 2 + [Performer.KOMMUNE] * 3
    assert all(p.title and p.note for p in (*TELEMARK.points, *NATIONAL.points))


@pytest.mark.parametrize(
    ("model", "diagnosis", "expected"),
    [
        pytest.param(
            TELEMARK,
            D,
            [W("2026-01-31"), W("2026-04-30", "2026-05-31"), W("2027-01-31", "2027-07-31")],
            id="telemark-month-end",
        ),
        pytest.param(
            TELEMARK,
            date(2026, 3, 15),
            [W("2026-03-15"), W("2026-06-15", "2026-07-15"), W("2027-03-15", "2027-09-15")],
            id="telemark-mid-month",
        ),
        pytest.param(
            TELEMARK,
            date(2027, 11, 30),
            [W("2027-11-30"), W("2028-02-29", "2028-03-30"), W("2028-11-30", "2029-05-30")],
            id="telemark-leap-february",
        ),
        pytest.param(
            NATIONAL,
            D,
            [
                W("2026-01-31"),
                W("2026-01-31"),
                W("2026-01-31"),
                W("2026-04-30", "2026-05-31"),
                W("2027-01-31", "2027-07-31"),
            ],
            id="national-provisional",
        ),
    ],
)
def test_model_windows(model: PathwayModel, diagnosis: date, expected: list[Window]) -> None:
    """Each model's windows count whole calendar months from the diagnosis, or provisionally from a point."""
    assert list(compute_windows(model.points, diagnosis)) == expected


@pytest.mark.parametrize(
    ("settled", "expected"),
    [
        pytest.param(
            {3: date(2026, 3, 10)},
            [W("2026-06-10", "2026-07-10"), W("2027-03-10", "2027-09-10")],
            id="from-point-3-settled",
        ),
        pytest.param(
            {2: date(2026, 2, 20)},
            [W("2026-05-20", "2026-06-20"), W("2027-02-20", "2027-08-20")],
            id="point-2-settled-moves-the-provisional-chain",
        ),
        pytest.param(
            {2: date(2026, 2, 20), 3: date(2026, 5, 31)},
            [W("2026-08-31", "2026-09-30"), W("2027-05-31", "2027-11-30")],
            id="point-3-settled-wins",
        ),
    ],
)
def test_national_points_4_and_5_count_from_point_3(settled: dict[int, date], expected: list[Window]) -> None:
    """Points 4 and 5 of the national draft count from the day point 3 was settled, else provisionally."""
    assert list(compute_windows(NATIONAL.points, D, settled)[3:]) == expected


def test_every_shipped_file_loads_by_path() -> None:
    """Each shipped file loads by path to the same model, named as its file."""
    for name in shipped_model_names():
        assert load_model(resource_dir("pathway_models") / f"{name}.yaml") == shipped_model(name)


@pytest.mark.parametrize("name", ["finnmark", "../pathway_models/telemark", "Telemark", ""])
def test_unknown_shipped_model_names_the_shipped_ones(name: str) -> None:
    """An unknown name, or one that is not a plain slug, is refused with the list of shipped models."""
    with pytest.raises(UnknownPathwayModel, match="shipped: nasjonalt-utkast, telemark"):
        shipped_model(name)


def test_model_point_lookup() -> None:
    """A model returns its points by number and refuses a number it does not have."""
    assert TELEMARK.point(2).window == WindowSpec(3, 4)
    with pytest.raises(KeyError, match="no samhandlingspunkt 4"):
        TELEMARK.point(4)


def test_window_spec_describes_itself() -> None:
    """A window rule reads as words for the operators' pages."""
    assert NATIONAL.point(4).window.describe() == "3–4 months after samhandlingspunkt 3"
    assert TELEMARK.point(1).window.describe() == "from 0 months after the diagnosis, no end"


# --- Reading and checking model files ----------------------------------------------------------


def valid_document() -> dict[str, Any]:
    """Return a small valid model document with one point counted from another."""
    return {
        "name": "proeve",
        "description": "to punkter",
        "points": [
            {
                "number": 1,
                "title": "Første",
                "performer": "sykehus",
                "window": {"counted_from": "diagnosis", "from_months": 0, "to_months": 1},
            },
            {
                "number": 2,
                "title": "Andre",
                "performer": "kommune",
                "window": {"counted_from": 1, "from_months": 3, "to_months": None},
                "note": "no end",
            },
        ],
    }


def changed(path: str, value: Any) -> dict[str, Any]:
    """Return the valid document with the value at a dotted path replaced (``_delete`` removes it)."""
    document = valid_document()
    *parents, last = path.split(".")
    target: Any = document
    for step in parents:
        target = target[int(step)] if step.isdigit() else target[step]
    key: Any = int(last) if last.isdigit() else last
    if value == "_delete":
        del target[key]
    else:
        target[key] = value
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], "the document: must be a mapping"),
        (None, "the document: must be a mapping"),
        (changed("version", 2), "the document: unknown key(s) version"),
        (changed("description", "_delete"), "the document: missing key(s) description"),
        (changed("name", "Telemark"), "name 'Telemark' must be lower-case"),
        (changed("name", 7), "name: must be text, not 7"),
        (changed("points", {}), "points: must be a list of points"),
        (changed("points", []), "a model needs at least one point"),
        (changed("points.1.number", 3), "must be numbered 1, 2, 3 … in order; found 1, 3"),
        (changed("points.0", "første"), "points[0]: must be a mapping"),
        (changed("points.0.colour", "red"), "points[0]: unknown key(s) colour"),
        (changed("points.0.title", " "), "points[0]: title must not be empty"),
        (changed("points.0.title", 5), "points[0].title: must be text, not 5"),
        (changed("points.0.performer", "fastlege"), "points[0].performer: 'fastlege' is not one of"),
        (changed("points.0.number", "1"), "points[0].number: must be a whole number, not '1'"),
        (changed("points.0.window", "3-4"), "points[0].window: must be a mapping"),
        (changed("points.0.window.to_month", 2), "points[0].window: unknown key(s) to_month"),
        (changed("points.0.window.to_months", "_delete"), "points[0].window: missing key(s) to_months"),
        (changed("points.0.window.from_months", 3.5), "window.from_months: must be a whole number"),
        (changed("points.0.window.from_months", True), "window.from_months: must be a whole number"),
        (changed("points.0.window.from_months", -1), "points[0].window: from_months must be 0 or more"),
        (changed("points.0.window.to_months", 0), None),
        (changed("points.1.window.to_months", 2), "to_months (2) must not be before from_months (3)"),
        (changed("points.1.window.counted_from", 2), "counted from samhandlingspunkt 2, which is not"),
        (changed("points.0.window.counted_from", 2), "counted from samhandlingspunkt 2, which is not"),
        (changed("points.1.window.counted_from", "diagnose"), "must be 'diagnosis' or the number"),
        (changed("points.1.window.counted_from", 0), "counted_from must name a point 1 or higher"),
        (changed("points.1.note", 1), "points[1].note: must be text"),
    ],
)
def test_invalid_documents_are_refused_with_the_place(document: object, message: str | None) -> None:
    """A document that breaks the format is refused, naming the source and the key at fault."""
    if message is None:
        model_from_document(document, source="proeve.yaml")
        return
    with pytest.raises(PathwayModelInvalid) as caught:
        model_from_document(document, source="proeve.yaml")
    assert str(caught.value).startswith("proeve.yaml: ")
    assert message in str(caught.value)


def test_text_that_is_not_yaml_is_refused() -> None:
    """YAML syntax errors and empty text are refused as invalid models."""
    with pytest.raises(PathwayModelInvalid, match=re.escape("x.yaml: not readable YAML")):
        parse_model("name: [unclosed", source="x.yaml")
    with pytest.raises(PathwayModelInvalid, match=re.escape("x.yaml: the document: must be a mapping")):
        parse_model("", source="x.yaml")


def test_parse_model_round_trip() -> None:
    """The valid document parses to the model it says, with a point counted from another."""
    model = parse_model(yaml.safe_dump(valid_document(), allow_unicode=True))
    assert model == PathwayModel(
        "proeve",
        "to punkter",
        (
            PointSpec(1, "Første", Performer.SYKEHUS, WindowSpec(0, 1)),
            PointSpec(2, "Andre", Performer.KOMMUNE, WindowSpec(3, None, after_point=1), "no end"),
        ),
    )


def test_load_model_wants_the_file_named_as_the_model(tmp_path: Path) -> None:
    """A model file whose name is not the model's is refused; a missing file too."""
    path = tmp_path / "annen.yaml"
    path.write_text(yaml.safe_dump(valid_document()), encoding="utf-8")
    with pytest.raises(PathwayModelInvalid, match="name 'proeve' must equal the file name 'annen'"):
        load_model(path)
    with pytest.raises(PathwayModelInvalid, match=re.escape("mangler.yaml: cannot be read")):
        load_model(tmp_path / "mangler.yaml")
    path.rename(tmp_path / "proeve.yaml")
    assert load_model(tmp_path / "proeve.yaml").name == "proeve"


# --- Months -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 1, 31), 2, date(2026, 3, 31)),
        (date(2026, 8, 31), 18, date(2028, 2, 29)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 5, 12), 0, date(2026, 5, 12)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 15), -13, date(2024, 12, 15)),
    ],
)
def test_add_months_clamps_to_the_month_end(day: date, months: int, expected: date) -> None:
    """Months are calendar months; a day the target month lacks becomes its last day."""
    assert add_months(day, months) == expected


def test_add_months_refuses_to_leave_the_calendar() -> None:
    """Moving past year 9999 is an error, not a wrap-around."""
    with pytest.raises(OverflowError):
        add_months(date(9999, 12, 1), 1)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(datetime(2026, 1, 30, 23, 30, tzinfo=UTC), date(2026, 1, 31), id="winter-utc+1"),
        pytest.param(datetime(2026, 6, 30, 22, 30, tzinfo=UTC), date(2026, 7, 1), id="summer-utc+2"),
        pytest.param(datetime(2026, 6, 30, 21, 59, tzinfo=UTC), date(2026, 6, 30), id="before-midnight"),
    ],
)
def test_the_day_is_the_norwegian_day(moment: datetime, expected: date) -> None:
    """Windows are read on the Norwegian calendar day, whatever zone the time is given in."""
    assert local_day(moment) == expected


def test_a_naive_time_is_refused() -> None:
    """A time without a zone cannot say which day it is."""
    with pytest.raises(ValueError, match="timezone-aware"):
        local_day(datetime(2026, 1, 1, 12))


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2900, 12, 31)), st.integers(-1200, 1200))
def test_add_months_moves_whole_months(day: date, months: int) -> None:
    """The result is exactly ``months`` calendar months away, on the same day or the month's last day."""
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day == min(day.day, calendar.monthrange(result.year, result.month)[1])


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2900, 12, 31)),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2900, 12, 31)),
    st.integers(0, 240),
    st.integers(0, 240),
)
def test_add_months_keeps_order(a: date, b: date, m: int, n: int) -> None:
    """Later days and more months never give an earlier result."""
    low, high = sorted((a, b))
    assert add_months(low, m) <= add_months(high, m)
    fewer, more = sorted((m, n))
    assert add_months(a, fewer) <= add_months(a, more)
    assert fewer == more or add_months(a, fewer) < add_months(a, more)


# --- One point's states ------------------------------------------------------------------------

SP2 = TELEMARK.point(2)
SP2_WINDOW = W("2026-04-30", "2026-05-31")
INSIDE = noon(date(2026, 5, 10))


def point(state: PointState = PLANNED, window: Window = SP2_WINDOW) -> Point:
    """Return Telemark's point 2 in ``state`` (settled on 1 May when settled)."""
    settled = date(2026, 5, 1) if state not in (PLANNED, DUE, OVERDUE) else None
    return Point(SP2, window, state, settled)


# Every legal operator move, with the state it leads to when the clock is inside the window.
LEGAL_BY_HAND: dict[tuple[PointState, PointState | Trigger], PointState] = {
    **{(s, t): t for s in (PLANNED, DUE, OVERDUE) for t in (DONE, DECLINED, NOT_REACHABLE)},
    (DECLINED, DONE): DONE,
    (NOT_REACHABLE, DONE): DONE,
    (NOT_REACHABLE, DECLINED): DECLINED,
    (DECLINED, Trigger.REOPEN): DUE,
    (NOT_REACHABLE, Trigger.REOPEN): DUE,
}
OPERATOR_WANTS: list[PointState | Trigger] = [*PointState, Trigger.REOPEN]


@pytest.mark.parametrize(
    ("current", "wanted"),
    [(s, w) for s in PointState for w in OPERATOR_WANTS],
    ids=lambda v: str(v),
)
def test_every_operator_move(current: PointState, wanted: PointState | Trigger) -> None:
    """An operator's move is allowed exactly as the table says; any other is refused, naming the move."""
    before = point(current)
    if (current, wanted) in LEGAL_BY_HAND:
        moved, entry = transition(before, wanted, at=INSIDE, actor=NURSE, reason="samtale")
        assert moved.state == LEGAL_BY_HAND[(current, wanted)]
        assert entry == AuditEntry(INSIDE, NURSE, "samhandlingspunkt 2", current, moved.state, "samtale")
        expected_settled = None if wanted is Trigger.REOPEN else local_day(INSIDE)
        assert moved.settled_on == expected_settled and moved.window == before.window
        assert wanted in operator_moves(current)
    else:
        with pytest.raises(TransitionRefused) as caught:
            transition(before, wanted, at=INSIDE, actor=NURSE, reason="samtale")
        assert (caught.value.point, caught.value.current, caught.value.wanted) == (2, current, wanted)
        assert str(caught.value).startswith(f"samhandlingspunkt 2: {current} → {wanted} refused: ")
        assert wanted not in operator_moves(current)


@pytest.mark.parametrize(
    ("current", "wanted", "why"),
    [
        (DONE, DUE, "done is final"),
        (DONE, Trigger.REOPEN, "done is final"),
        (CLOSED, DONE, "closed when the pathway restarted"),
        (DECLINED, DUE, "never set by hand; reopen a declined or not reachable point instead"),
        (PLANNED, OVERDUE, "never set by hand"),
        (DUE, Trigger.REOPEN, "only a declined or not reachable point can be reopened"),
        (DUE, CLOSED, "closed only by a restart after relapse"),
        (DECLINED, DECLINED, "it is already declined"),
        (DECLINED, NOT_REACHABLE, "from declined an operator may choose: done, reopen"),
    ],
)
def test_refusals_say_why(current: PointState, wanted: PointState | Trigger, why: str) -> None:
    """A refused move says why in words an operator understands."""
    with pytest.raises(TransitionRefused, match=why):
        transition(point(current), wanted, at=INSIDE, actor=NURSE, reason="r")


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(date(2026, 4, 29), PLANNED, id="before-the-window"),
        pytest.param(date(2026, 4, 30), DUE, id="first-day"),
        pytest.param(date(2026, 5, 31), DUE, id="last-day"),
        pytest.param(date(2026, 6, 1), OVERDUE, id="after-the-window"),
    ],
)
def test_reopen_returns_to_the_calendars_state(day: date, expected: PointState) -> None:
    """A reopened point is planned, due or overdue as the calendar says on the day it is reopened."""
    moved, entry = transition(point(DECLINED), Trigger.REOPEN, at=noon(day), actor=NURSE, reason="ombestemt")
    assert (moved.state, moved.settled_on) == (expected, None)
    assert entry is not None and (entry.before, entry.after) == (DECLINED, expected)


@pytest.mark.parametrize(
    ("current", "day", "expected"),
    [
        pytest.param(PLANNED, date(2026, 4, 29), None, id="planned-before"),
        pytest.param(PLANNED, date(2026, 4, 30), DUE, id="planned-on-the-first-day"),
        pytest.param(PLANNED, date(2026, 5, 31), DUE, id="planned-on-the-last-day"),
        pytest.param(PLANNED, date(2026, 6, 1), OVERDUE, id="planned-past-the-whole-window"),
        pytest.param(DUE, date(2026, 5, 31), None, id="due-on-the-last-day"),
        pytest.param(DUE, date(2026, 6, 1), OVERDUE, id="due-after"),
        pytest.param(DUE, date(2026, 4, 1), None, id="due-never-back-to-planned"),
        pytest.param(OVERDUE, date(2026, 5, 1), None, id="overdue-never-back"),
        *[
            pytest.param(s, date(2026, 6, 1), None, id=f"{s}-untouched")
            for s in (DONE, DECLINED, NOT_REACHABLE, CLOSED)
        ],
    ],
)
def test_tick(current: PointState, day: date, expected: PointState | None) -> None:
    """The clock moves planned → due on the first day and → overdue the day after the last, never back."""
    moved, entry = transition(point(current), Trigger.TICK, at=noon(day), actor=CLOCK_ACTOR)
    if expected is None:
        assert (moved, entry) == (point(current), None)
    else:
        assert moved.state == expected and entry is not None
        assert (entry.actor, entry.before, entry.after) == (CLOCK_ACTOR, current, expected)
        assert "window 2026-04-30 – 2026-05-31" in entry.reason


def test_a_window_without_end_is_never_overdue() -> None:
    """A point whose model sets no end becomes due and stays due."""
    open_ended = point(PLANNED, W("2026-01-31"))
    moved, _ = transition(open_ended, Trigger.TICK, at=noon(date(2040, 1, 1)), actor=CLOCK_ACTOR)
    assert moved.state is DUE
    assert transition(moved, Trigger.TICK, at=noon(date(2090, 1, 1)), actor=CLOCK_ACTOR) == (moved, None)


def test_tick_reads_the_norwegian_day() -> None:
    """At 23:30 UTC the day before the window, it is already the first day in Norway: the point is due."""
    late = datetime(2026, 4, 29, 22, 30, tzinfo=UTC)  # 00:30 on 30 April, Norwegian summer time
    assert transition(point(), Trigger.TICK, at=late, actor=CLOCK_ACTOR)[0].state is DUE


@pytest.mark.parametrize("current", [PLANNED, DUE, OVERDUE])
def test_restart_closes_open_points(current: PointState) -> None:
    """A restart closes an open point on the day it happens, with the reason given."""
    moved, entry = transition(point(current), Trigger.RESTART, at=INSIDE, actor=SENDER, reason=RELAPSE_REASON)
    assert (moved.state, moved.settled_on) == (CLOSED, date(2026, 5, 10))
    assert entry is not None and entry.reason == RELAPSE_REASON


@pytest.mark.parametrize("current", [DONE, DECLINED, NOT_REACHABLE, CLOSED])
def test_restart_keeps_settled_points(current: PointState) -> None:
    """A restart leaves a settled point as it is."""
    assert transition(point(current), Trigger.RESTART, at=INSIDE, actor=SENDER, reason="r") == (
        point(current),
        None,
    )


def test_operator_moves_need_a_reason_an_actor_and_a_past_day() -> None:
    """A move without reason is refused; an empty actor, a naive time or 'on' with a trigger is a caller bug."""
    with pytest.raises(TransitionRefused, match="a reason is required"):
        transition(point(), DONE, at=INSIDE, actor=NURSE, reason=" ")
    with pytest.raises(TransitionRefused, match="a reason is required"):
        transition(point(DECLINED), Trigger.REOPEN, at=INSIDE, actor=NURSE)
    with pytest.raises(ValueError, match="actor"):
        transition(point(), DONE, at=INSIDE, actor="", reason="r")
    with pytest.raises(ValueError, match="timezone-aware"):
        transition(point(), DONE, at=datetime(2026, 5, 10, 12), actor=NURSE, reason="r")
    with pytest.raises(ValueError, match="'on' applies"):
        transition(point(DECLINED), Trigger.REOPEN, at=INSIDE, actor=NURSE, reason="r", on=date(2026, 5, 1))
    with pytest.raises(TransitionRefused, match="2026-05-11 is after today"):
        transition(point(), DONE, at=INSIDE, actor=NURSE, reason="r", on=date(2026, 5, 11))


def test_done_on_an_earlier_day_is_settled_that_day() -> None:
    """A conversation recorded later is settled on the day it took place, even before the window."""
    moved, entry = transition(
        point(), DONE, at=INSIDE, actor=NURSE, reason="hjemmebesøk", on=date(2026, 4, 20)
    )
    assert (moved.state, moved.settled_on) == (DONE, date(2026, 4, 20))
    assert entry is not None and entry.at == INSIDE


def test_a_window_cannot_end_before_it_starts() -> None:
    """A window with its end before its start is a programming error."""
    with pytest.raises(ValueError, match="before it starts"):
        W("2026-05-01", "2026-04-30")


# --- Opening and continuing a pathway ----------------------------------------------------------


def opened(model: PathwayModel = TELEMARK, *, received: date = D) -> Pathway:
    """Return a pathway opened by a point-1 message assessed on the diagnosis day."""
    return open_from_message(
        model,
        message(received=received),
        patient_ref=PATIENT,
        actor=SENDER,
        assigned_to=Assignee.role("kreftkoordinator"),
    )


def test_open_pathway_plans_every_point_and_ticks() -> None:
    """Opening plans each point from the diagnosis date and brings the states up to the opening time."""
    pathway = open_pathway(TELEMARK, patient_ref=PATIENT, diagnosis_date=D, at=noon(D), actor=NURSE)
    assert (pathway.model_name, pathway.diagnosis_date, pathway.assigned_to) == ("telemark", D, None)
    assert states(pathway) == [DUE, PLANNED, PLANNED]
    assert windows(pathway) == list(compute_windows(TELEMARK.points, D))
    assert [(e.subject, e.before, e.after) for e in pathway.history] == [
        ("diagnosis_date", None, "2026-01-31"),
        ("samhandlingspunkt 1", None, PLANNED),
        ("samhandlingspunkt 2", None, PLANNED),
        ("samhandlingspunkt 3", None, PLANNED),
        ("samhandlingspunkt 1", PLANNED, DUE),
    ]
    assert pathway.history[1].reason == "pathway opened (model telemark); window from 2026-01-31, no end"


def test_open_late_marks_past_windows_overdue() -> None:
    """A pathway opened long after the diagnosis shows the points whose windows have passed as overdue."""
    pathway = open_pathway(
        TELEMARK, patient_ref=PATIENT, diagnosis_date=D, at=noon(date(2026, 7, 1)), actor=NURSE
    )
    assert states(pathway) == [DUE, OVERDUE, PLANNED]


@pytest.mark.parametrize("ref", ["", "  ", "01017012345", "010170 12345"])
def test_a_person_number_is_never_a_patient_ref(ref: str) -> None:
    """The patient reference must be the opaque key: an empty one or a person number is refused."""
    with pytest.raises(ValueError, match="patient_ref"):
        open_pathway(TELEMARK, patient_ref=ref, diagnosis_date=D, at=noon(D), actor=NURSE)


def test_the_first_message_opens_with_its_point_done() -> None:
    """The first behovskartlegging opens the pathway with point 1 done on the assessment day."""
    pathway = open_from_message(
        TELEMARK,
        message(assessed=date(2026, 2, 3), received=date(2026, 2, 4)),
        patient_ref=PATIENT,
        actor=SENDER,
    )
    assert states(pathway) == [DONE, PLANNED, PLANNED]
    assert pathway.points[0].settled_on == date(2026, 2, 3)
    last = pathway.history[-1]
    assert (last.actor, last.before, last.after) == (SENDER, PLANNED, DONE)
    assert last.reason == "behovskartlegging received (MsgId msg-1)"


def test_a_message_received_late_is_not_first_marked_overdue() -> None:
    """The message's point is recorded before the clock runs, so it never shows overdue on the way."""
    late = open_from_message(
        NATIONAL, message(assessed=D, received=date(2026, 8, 1)), patient_ref=PATIENT, actor=SENDER
    )
    assert late.points[0].state is DONE
    assert not any(e.subject == "samhandlingspunkt 1" and e.after == OVERDUE for e in late.history)


def test_the_same_message_again_changes_nothing() -> None:
    """A repeated message for a point already done leaves the pathway exactly as it was."""
    pathway = opened()
    assert continue_pathway(pathway, message(msg_id="msg-2"), actor=SENDER) == pathway


def test_a_message_for_another_point_records_it() -> None:
    """A message documenting point 2 of the same diagnosis records point 2 done."""
    pathway = opened()
    later = continue_pathway(pathway, message(2, assessed=date(2026, 5, 2), msg_id="msg-2"), actor=SENDER)
    assert states(later) == [DONE, DONE, PLANNED]
    assert later.history[: len(pathway.history)] == pathway.history


def test_a_message_for_a_point_the_model_lacks_is_refused() -> None:
    """A message about samhandlingspunkt 4 cannot be taken into a three-point pathway."""
    with pytest.raises(PathwayError, match="no samhandlingspunkt 4"):
        continue_pathway(opened(), message(4), actor=SENDER)


def test_relapse_restarts_from_the_new_diagnosis() -> None:
    """A relapse closes the open points, keeps the settled ones and plans a new course from the new date."""
    relapse_day = date(2026, 9, 14)
    pathway = tick(opened(), noon(date(2026, 6, 2)))  # point 2 overdue, point 3 planned
    assert states(pathway) == [DONE, OVERDUE, PLANNED]
    restarted = continue_pathway(
        pathway,
        message(diagnosis=relapse_day, relapse=True, assessed=relapse_day, msg_id="msg-9"),
        actor=SENDER,
    )
    old, new = restarted.courses
    assert [p.state for p in old.points] == [DONE, CLOSED, CLOSED]
    assert [p.settled_on for p in old.points] == [D, relapse_day, relapse_day]
    assert (new.number, new.diagnosis_date, restarted.diagnosis_date) == (2, relapse_day, relapse_day)
    assert states(restarted) == [DONE, PLANNED, PLANNED]
    assert windows(restarted)[1:] == [W("2026-12-14", "2027-01-14"), W("2027-09-14", "2028-03-14")]
    assert restarted.assigned_to == pathway.assigned_to
    added = restarted.history[len(pathway.history) :]
    assert restarted.history[: len(pathway.history)] == pathway.history
    closing = [e for e in added if e.after == CLOSED]
    assert [e.subject for e in closing] == ["samhandlingspunkt 2", "samhandlingspunkt 3"]
    assert all(e.reason == f"{RELAPSE_REASON} (MsgId msg-9)" for e in closing)
    assert ("diagnosis_date", "2026-01-31", "2026-09-14") in [(e.subject, e.before, e.after) for e in added]


def test_a_late_message_about_an_earlier_course_changes_nothing() -> None:
    """After a restart, a delayed message stating the earlier diagnosis date is about a course that ended."""
    relapse_day = date(2026, 9, 14)
    restarted = continue_pathway(
        opened(), message(diagnosis=relapse_day, relapse=True, assessed=relapse_day), actor=SENDER
    )
    assert continue_pathway(restarted, message(2, assessed=date(2026, 9, 20)), actor=SENDER) == restarted


@pytest.mark.parametrize(
    ("stated", "relapse", "why"),
    [
        pytest.param(
            date(2026, 3, 1), False, "later diagnosis date without a relapse", id="later-not-relapse"
        ),
        pytest.param(date(2025, 12, 1), True, "diagnosis date before the pathway's", id="earlier"),
        pytest.param(
            date(2025, 12, 1), False, "diagnosis date before the pathway's", id="earlier-no-relapse"
        ),
    ],
)
def test_a_diagnosis_date_the_pathway_cannot_take_goes_to_an_operator(
    stated: date, relapse: bool, why: str
) -> None:
    """A later date without relapse, or an earlier date, is a conflict; the error text names no date."""
    with pytest.raises(DiagnosisConflict, match=why) as caught:
        continue_pathway(
            opened(), message(diagnosis=stated, relapse=relapse, assessed=date(2026, 3, 2)), actor=SENDER
        )
    assert (caught.value.current, caught.value.stated) == (D, stated)
    assert "20" not in str(caught.value)


def test_an_operator_restarts_a_pathway_by_hand() -> None:
    """An operator may restart from a later diagnosis (a new cancer), with a reason; not from an earlier one."""
    pathway = opened()
    new = restart_pathway(
        pathway,
        diagnosis_date=date(2026, 3, 1),
        at=noon(date(2026, 3, 2)),
        actor=NURSE,
        reason="ny kreftdiagnose",
    )
    assert len(new.courses) == 2 and states(new) == [DUE, PLANNED, PLANNED]
    with pytest.raises(DiagnosisConflict, match="after the current one"):
        restart_pathway(pathway, diagnosis_date=D, at=noon(D), actor=NURSE, reason="r")
    with pytest.raises(TransitionRefused, match="a reason is required"):
        restart_pathway(pathway, diagnosis_date=date(2026, 3, 1), at=noon(D), actor=NURSE, reason="")


# --- Operators' moves and windows counted from another point -----------------------------------


def test_settling_point_3_counts_points_4_and_5_from_that_day() -> None:
    """In the national model, points 4 and 5 move to count from the day point 3 was settled, recorded."""
    pathway = opened(NATIONAL)
    done = mark(
        pathway, 3, DONE, at=noon(date(2026, 3, 12)), actor=NURSE, reason="samtale", on=date(2026, 3, 10)
    )
    assert windows(done)[3:] == [W("2026-06-10", "2026-07-10"), W("2027-03-10", "2027-09-10")]
    moved = [e for e in done.history[len(pathway.history) :] if e.subject.endswith("window")]
    assert [(e.subject, e.before, e.after, e.reason) for e in moved] == [
        (
            "samhandlingspunkt 4 window",
            "2026-04-30 – 2026-05-31",
            "2026-06-10 – 2026-07-10",
            "counted from samhandlingspunkt 3, settled on 2026-03-10",
        ),
        (
            "samhandlingspunkt 5 window",
            "2027-01-31 – 2027-07-31",
            "2027-03-10 – 2027-09-10",
            "counted from samhandlingspunkt 3, settled on 2026-03-10",
        ),
    ]


def test_reopening_the_anchor_makes_the_windows_provisional_again() -> None:
    """When point 3 is reopened, points 4 and 5 count provisionally from its window start again."""
    pathway = opened(NATIONAL)
    declined = mark(pathway, 3, DECLINED, at=noon(date(2026, 3, 10)), actor=NURSE, reason="takket nei")
    reopened = mark(
        declined, 3, Trigger.REOPEN, at=noon(date(2026, 3, 20)), actor=NURSE, reason="ombestemt seg"
    )
    assert states(reopened)[2] is DUE
    assert windows(reopened) == windows(pathway)


def test_a_point_already_due_keeps_its_window() -> None:
    """A point already on the worklist is not moved when its anchor is settled later."""
    pathway = tick(opened(NATIONAL), noon(date(2026, 5, 1)))  # point 4 due provisionally
    assert states(pathway)[3] is DUE
    done = mark(pathway, 3, DONE, at=noon(date(2026, 5, 2)), actor=NURSE, reason="samtale")
    assert done.points[3].window == pathway.points[3].window
    assert done.points[4].window == W("2027-05-02", "2027-11-02")


def test_mark_is_for_operators_only() -> None:
    """The clock and restarts have their own functions; an unknown point is refused."""
    for trigger in (Trigger.TICK, Trigger.RESTART):
        with pytest.raises(ValueError, match="not an operator's move"):
            mark(opened(), 2, trigger, at=INSIDE, actor=NURSE, reason="r")
    with pytest.raises(PathwayError, match="no samhandlingspunkt 0"):
        mark(opened(), 0, DONE, at=INSIDE, actor=NURSE, reason="r")


def test_a_patient_who_changes_their_mind_comes_back() -> None:
    """Declined at three months, the patient asks again a month later: reopened, then done."""
    pathway = opened()
    pathway = mark(pathway, 2, DECLINED, at=noon(date(2026, 4, 30)), actor=NURSE, reason="takket nei")
    pathway = tick(pathway, noon(date(2026, 5, 20)))
    assert states(pathway)[1] is DECLINED  # the clock leaves a settled point alone
    pathway = mark(
        pathway, 2, Trigger.REOPEN, at=noon(date(2026, 5, 28)), actor=NURSE, reason="ønsker samtale"
    )
    assert states(pathway)[1] is DUE
    pathway = mark(pathway, 2, DONE, at=noon(date(2026, 5, 30)), actor=NURSE, reason="hjemmebesøk")
    trail = [(e.before, e.after) for e in pathway.history if e.subject == "samhandlingspunkt 2"]
    assert trail == [(None, PLANNED), (PLANNED, DECLINED), (DECLINED, DUE), (DUE, DONE)]


# --- The clock ----------------------------------------------------------------------------------


def test_pathway_tick_is_idempotent_and_never_goes_back() -> None:
    """A second tick at the same time, or a tick at an earlier time, returns the pathway unchanged."""
    ticked = tick(opened(), noon(date(2026, 6, 1)))
    assert states(ticked) == [DONE, OVERDUE, PLANNED]
    assert tick(ticked, noon(date(2026, 6, 1))) is ticked
    assert tick(ticked, noon(date(2026, 2, 1))) is ticked


# --- Assignment ---------------------------------------------------------------------------------


def test_assignment_is_audited() -> None:
    """Assigning and reassigning record who, when, from whom to whom and why; the same again is a no-op."""
    pathway = open_pathway(TELEMARK, patient_ref=PATIENT, diagnosis_date=D, at=noon(D), actor=NURSE)
    first = assign(
        pathway, Assignee.role("kreftkoordinator"), at=noon(D), actor="leder-1", reason="ny pasient"
    )
    second = assign(
        first, Assignee.operator(NURSE), at=noon(date(2026, 2, 2)), actor="leder-1", reason="primærkontakt"
    )
    assert second.assigned_to == Assignee.operator(NURSE)
    assert second.history[-2:] == (
        AuditEntry(noon(D), "leder-1", "assigned_to", None, "role:kreftkoordinator", "ny pasient"),
        AuditEntry(
            noon(date(2026, 2, 2)),
            "leder-1",
            "assigned_to",
            "role:kreftkoordinator",
            f"operator:{NURSE}",
            "primærkontakt",
        ),
    )
    assert assign(second, Assignee.operator(NURSE), at=noon(D), actor="leder-1", reason="") is second
    with pytest.raises(PathwayError, match="a reason is required"):
        assign(second, Assignee.role("kontaktsykepleier"), at=noon(D), actor="leder-1", reason="")


def test_opening_with_an_assignee_records_it() -> None:
    """An assignee given at opening is recorded like any assignment."""
    entry = opened().history[4]
    assert (entry.subject, entry.before, entry.after) == ("assigned_to", None, "role:kreftkoordinator")


@pytest.mark.parametrize("name", ["", " ", "01017012345"])
def test_an_assignee_has_a_name_and_never_a_person_number(name: str) -> None:
    """An assignee is an account or a role, never empty and never a person number."""
    with pytest.raises(ValueError, match="assignee"):
        Assignee.operator(name)


# --- Alerts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "due_soon_days", "expected"),
    [
        pytest.param(date(2026, 4, 15), 14, [], id="too-early"),
        pytest.param(date(2026, 4, 16), 14, [(2, AlertKind.DUE_SOON, 14)], id="fourteen-days-ahead"),
        pytest.param(date(2026, 4, 29), 14, [(2, AlertKind.DUE_SOON, 1)], id="the-day-before"),
        pytest.param(date(2026, 4, 29), 0, [], id="due-soon-off"),
        pytest.param(date(2026, 4, 30), 14, [], id="in-the-window"),
        pytest.param(date(2026, 5, 31), 14, [], id="last-day"),
        pytest.param(date(2026, 6, 5), 14, [(2, AlertKind.OVERDUE, 5)], id="overdue-before-any-tick"),
        pytest.param(
            date(2027, 1, 20), 14, [(2, AlertKind.OVERDUE, 234), (3, AlertKind.DUE_SOON, 11)], id="both"
        ),
    ],
)
def test_alerts(day: date, due_soon_days: int, expected: list[tuple[int, AlertKind, int]]) -> None:
    """Alerts list points whose window opens within the days asked for, and points past their window."""
    found = alerts(opened(), noon(day), due_soon_days=due_soon_days)
    assert [(a.number, a.kind, a.days) for a in found] == expected
    assert all(a.patient_ref == PATIENT and a.assigned_to == Assignee.role("kreftkoordinator") for a in found)


def test_alerts_skip_settled_points_and_filter_by_performer() -> None:
    """Settled points raise no alert; the kommune's dashboard can ask for its own points only."""
    pathway = open_pathway(TELEMARK, patient_ref=PATIENT, diagnosis_date=D, at=noon(D), actor=NURSE)
    late = noon(date(2026, 6, 5))
    assert [a.number for a in alerts(pathway, late, due_soon_days=0, performer=Performer.KOMMUNE)] == [2]
    assert alerts(pathway, late, due_soon_days=0, performer=Performer.SYKEHUS) == ()
    declined = mark(pathway, 2, DECLINED, at=late, actor=NURSE, reason="takket nei")
    assert alerts(declined, late, due_soon_days=0) == ()


def test_alert_reason_reads_plainly() -> None:
    """An alert's reason names the point, the days and the window, and nothing about the person."""
    overdue, soon = alerts(opened(), noon(date(2027, 1, 20)), due_soon_days=14)
    assert overdue.reason == "samhandlingspunkt 2 is 234 day(s) overdue (window 2026-04-30 – 2026-05-31)"
    assert soon.reason == "samhandlingspunkt 3 is due in 11 day(s) (window 2027-01-31 – 2027-07-31)"
    with pytest.raises(ValueError, match="due_soon_days"):
        alerts(opened(), noon(D), due_soon_days=-1)


# --- Properties ---------------------------------------------------------------------------------


@st.composite
def models(draw: st.DrawFn) -> PathwayModel:
    """Draw a valid model: 1–6 points, each counted from the diagnosis or an earlier point."""
    specs = []
    for number in range(1, draw(st.integers(1, 6)) + 1):
        after = draw(st.none() | st.integers(1, number - 1)) if number > 1 else None
        start = draw(st.integers(0, 24))
        end = draw(st.none() | st.integers(start, start + 12))
        performer = draw(st.sampled_from(Performer))
        specs.append(PointSpec(number, f"punkt {number}", performer, WindowSpec(start, end, after)))
    return PathwayModel("generert", "", tuple(specs))


DIAGNOSES = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))


@given(models(), DIAGNOSES, st.lists(st.integers(0, 900), max_size=6))
def test_windows_are_ordered(model: PathwayModel, diagnosis: date, offsets: list[int]) -> None:
    """Every window ends on or after its start, and a point counted from another starts no earlier."""
    settled = {n: diagnosis + timedelta(days=d) for n, d in enumerate(offsets, start=1)}
    computed = compute_windows(model.points, diagnosis, settled)
    for spec, window in zip(model.points, computed, strict=True):
        assert window.due_to is None or window.due_from <= window.due_to
        anchor = spec.window.after_point
        base = diagnosis if anchor is None else settled.get(anchor, computed[anchor - 1].due_from)
        assert window.due_from >= base


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["tick", "mark", "reopen", "assign", "message", "relapse"]),
        st.integers(1, 3),
        st.sampled_from([DONE, DECLINED, NOT_REACHABLE, DUE, CLOSED]),
        st.integers(0, 120),
    ),
    max_size=25,
)


def apply(pathway: Pathway, operation: tuple[str, int, PointState, int], now: datetime) -> Pathway:
    """Apply one drawn operation at ``now``; refused ones raise."""
    kind, number, state, _ = operation
    day = local_day(now)
    if kind == "tick":
        return tick(pathway, now)
    if kind == "mark":
        return mark(pathway, number, state, at=now, actor=NURSE, reason="r")
    if kind == "reopen":  # a patient who said no (or was not reached) and comes back
        if pathway.current.point(number).state in OPEN_STATES:
            settled = NOT_REACHABLE if state is NOT_REACHABLE else DECLINED
            pathway = mark(pathway, number, settled, at=now, actor=NURSE, reason="r")
        return mark(pathway, number, Trigger.REOPEN, at=now, actor=NURSE, reason="r")
    if kind == "assign":
        return assign(pathway, Assignee.operator(f"op-{number}"), at=now, actor=NURSE, reason="r")
    diagnosis = pathway.diagnosis_date if kind == "message" else day
    found = message(number, diagnosis=diagnosis, relapse=kind == "relapse", assessed=day, msg_id=f"m{number}")
    return continue_pathway(pathway, found, actor=SENDER)


@given(models(), DIAGNOSES, OPERATIONS)
def test_no_move_loses_history(
    model: PathwayModel, diagnosis: date, operations: list[tuple[str, int, PointState, int]]
) -> None:
    """Whatever operators, messages and the clock do, history only grows, refusals change nothing,
    ticks are idempotent, windows stay ordered, and each point's state is its last recorded one."""
    now = noon(diagnosis)
    pathway = open_pathway(model, patient_ref=PATIENT, diagnosis_date=diagnosis, at=now, actor=NURSE)
    for operation in operations:
        now += timedelta(days=operation[3])
        before = pathway
        try:
            pathway = apply(pathway, operation, now)
        except (PathwayError, DiagnosisConflict):
            assert pathway == before
        assert pathway.history[: len(before.history)] == before.history
        assert pathway == before or len(pathway.history) > len(before.history)
        assert tick(tick(pathway, now), now) == tick(pathway, now)
        assert all(p.window.due_to is None or p.window.due_from <= p.window.due_to for p in pathway.points)
        assert CLOSED not in states(pathway)
        assert_states_follow_history(pathway)


def assert_states_follow_history(pathway: Pathway) -> None:
    """Each current point's state is the last state the history recorded for it since the last restart."""
    starts = [i for i, e in enumerate(pathway.history) if e.subject == "diagnosis_date"]
    since = pathway.history[starts[-1] :]
    for p in pathway.points:
        recorded = [e.after for e in since if e.subject == p.subject]
        assert recorded and recorded[-1] == p.state


@given(models(), DIAGNOSES, st.integers(0, 3000), st.integers(0, 3000))
def test_tick_is_idempotent_and_monotone(
    model: PathwayModel, diagnosis: date, first: int, second: int
) -> None:
    """Ticking twice at one time equals ticking once; a later tick never undoes an earlier one."""
    pathway = open_pathway(
        model, patient_ref=PATIENT, diagnosis_date=diagnosis, at=noon(diagnosis), actor=NURSE
    )
    a, b = noon(diagnosis + timedelta(days=first)), noon(diagnosis + timedelta(days=second))
    once = tick(pathway, a)
    assert tick(once, a) == once
    order = {PLANNED: 0, DUE: 1, OVERDUE: 2}
    both = tick(once, b)
    assert all(order[y.state] >= order[x.state] for x, y in zip(once.points, both.points, strict=True))
    assert tick(both, min(a, b)) == both


@given(st.sampled_from(list(PointState)), st.sampled_from(OPERATOR_WANTS), st.integers(-60, 90))
def test_a_transition_returns_one_entry_or_refuses(
    current: PointState, wanted: PointState | Trigger, days: int
) -> None:
    """Any operator move, on any day, either gives one entry describing the change or is refused unchanged."""
    at = noon(date(2026, 4, 30) + timedelta(days=days))
    try:
        moved, entry = transition(point(current), wanted, at=at, actor=NURSE, reason="r")
    except TransitionRefused:
        assert (current, wanted) not in LEGAL_BY_HAND
        return
    assert entry is not None and (entry.before, entry.after) == (current, moved.state)
    assert dataclasses.replace(moved, state=current, settled_on=point(current).settled_on) == point(current)
