"""One samhandlingspunkt on a patient's pathway: its window in dates, its state, and the moves between states.

The states and who moves them::

    the calendar (tick)   planned → due → overdue, or planned → overdue when a whole window has passed
    an operator           planned | due | overdue → done | declined | not_reachable
                          declined → done;  not_reachable → done | declined
                          declined | not_reachable → reopen → planned | due | overdue (the calendar's)
    a relapse (restart)   planned | due | overdue → closed
    final                 done, closed

Rules, and why:

* ``planned``, ``due`` and ``overdue`` follow the calendar only; an operator cannot set them.
* ``done`` is final: a conversation that took place cannot be undone by a state change. ``closed``
  is final too: it belongs to a course that ended when the pathway restarted after a relapse.
* A point may be recorded ``done``, ``declined`` or ``not_reachable`` before its window opens: the
  windows are approximate ("ca. 3–4 måneder") and the nurse calls ahead to book the home visit.
* ``declined`` and ``not_reachable`` are not final. The pathway is offered to everyone and the offer
  is to be repeated later, so a patient who changes their mind, or is reached after all, comes back:
  the operator *reopens* the point with a reason, and it returns to the state the calendar gives it
  on that day (planned before its window, due inside it, overdue after it). The operator may also
  record it ``done`` directly when the conversation has already taken place, and a patient who could
  not be reached may be recorded as having declined once reached.
* Every operator move needs a reason and names its actor; every move that changes a point returns
  one audit entry. A ``done`` recorded by mistake is not undone by a move: it needs a correction of
  its own, audited as such (not part of this model).

Everything here is pure: the caller passes the time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from edi_gateway.domain.pathway.model import PathwayError, Performer, PointSpec
from edi_gateway.domain.pathway.months import add_months, local_day


class PointState(StrEnum):
    """Where one samhandlingspunkt stands."""

    PLANNED = "planned"  # its window has not opened yet
    DUE = "due"  # its window is open
    OVERDUE = "overdue"  # its window ended before it was settled
    DONE = "done"  # carried out
    DECLINED = "declined"  # the patient said no (may come back: reopen)
    NOT_REACHABLE = "not_reachable"  # the patient could not be reached (may be later: reopen)
    CLOSED = "closed"  # ended unfinished: the pathway restarted after a relapse


class Trigger(StrEnum):
    """A move that is not a wanted state: the clock, a reopening, a restart."""

    TICK = "tick"  # the calendar: planned → due → overdue
    REOPEN = "reopen"  # an operator: declined or not reachable → back to the calendar's state
    RESTART = "restart"  # a relapse: an unfinished point is closed


OPEN_STATES = frozenset({PointState.PLANNED, PointState.DUE, PointState.OVERDUE})
"""States of a point still waiting to be carried out."""

REOPENABLE_STATES = frozenset({PointState.DECLINED, PointState.NOT_REACHABLE})
"""Settled states a point may be reopened from."""

_BY_HAND: dict[PointState, frozenset[PointState]] = {
    PointState.PLANNED: frozenset({PointState.DONE, PointState.DECLINED, PointState.NOT_REACHABLE}),
    PointState.DUE: frozenset({PointState.DONE, PointState.DECLINED, PointState.NOT_REACHABLE}),
    PointState.OVERDUE: frozenset({PointState.DONE, PointState.DECLINED, PointState.NOT_REACHABLE}),
    PointState.DECLINED: frozenset({PointState.DONE}),
    PointState.NOT_REACHABLE: frozenset({PointState.DONE, PointState.DECLINED}),
    PointState.DONE: frozenset(),
    PointState.CLOSED: frozenset(),
}
_CALENDAR_ORDER = {PointState.PLANNED: 0, PointState.DUE: 1, PointState.OVERDUE: 2}


class TransitionRefused(PathwayError):
    """A move the rules do not allow (``done`` → ``due``, say), or an operator's move without a reason.

    Attributes:
        point: the samhandlingspunkt's number.
        current: its state.
        wanted: the state or trigger asked for.
    """

    def __init__(self, point: int, current: PointState, wanted: PointState | Trigger, why: str) -> None:
        self.point = point
        self.current = current
        self.wanted = wanted
        super().__init__(f"samhandlingspunkt {point}: {current} → {wanted} refused: {why}")


@dataclass(frozen=True, slots=True)
class Window:
    """The days a point should take place on, both ends included.

    Attributes:
        due_from: the first day of the window.
        due_to: the last day; None when the model sets no end (the point is never overdue).
    """

    due_from: date
    due_to: date | None = None

    def __post_init__(self) -> None:
        if self.due_to is not None and self.due_to < self.due_from:
            raise ValueError(f"window ends ({self.due_to}) before it starts ({self.due_from})")

    def state_on(self, day: date) -> PointState:
        """Return the calendar's state for an open point on ``day``: planned, due or overdue."""
        if self.due_to is not None and day > self.due_to:
            return PointState.OVERDUE
        return PointState.DUE if day >= self.due_from else PointState.PLANNED

    def __str__(self) -> str:
        if self.due_to is None:
            return f"from {self.due_from.isoformat()}, no end"
        return f"{self.due_from.isoformat()} – {self.due_to.isoformat()}"


@dataclass(frozen=True, slots=True)
class Point:
    """One samhandlingspunkt of a patient's pathway.

    Attributes:
        spec: the point as the model defines it (copied, so a pathway keeps the rules it started with).
        window: its window in dates.
        state: where it stands.
        settled_on: the day it was done, declined, found not reachable or closed; None while open.
    """

    spec: PointSpec
    window: Window
    state: PointState = PointState.PLANNED
    settled_on: date | None = None

    @property
    def number(self) -> int:
        """The point's number."""
        return self.spec.number

    @property
    def title(self) -> str:
        """What the point is, in Norwegian."""
        return self.spec.title

    @property
    def performer(self) -> Performer:
        """Who carries it out."""
        return self.spec.performer

    @property
    def subject(self) -> str:
        """How the audit log names the point."""
        return f"samhandlingspunkt {self.number}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change on a pathway, as its history keeps it (ids, states and dates only; no personal data).

    Attributes:
        at: when it was recorded, timezone-aware.
        actor: who made it: an operator, ``clock`` for the calendar, or the message's sender.
        subject: what changed: ``samhandlingspunkt 2``, ``assigned_to`` or ``diagnosis_date``.
        before: the value before (the "from" state); None when the subject is new.
        after: the value after (the "to" state).
        reason: why, in plain language.
    """

    at: datetime
    actor: str
    subject: str
    before: str | None
    after: str
    reason: str


def compute_windows(
    specs: Sequence[PointSpec], diagnosis_date: date, settled_on: Mapping[int, date] | None = None
) -> tuple[Window, ...]:
    """Return the window of each point, in the order of ``specs``.

    A window counted from the diagnosis is fixed. A window counted from an earlier point starts from
    the day that point was settled (``settled_on``), or provisionally from that point's own window
    start while it is open.

    Args:
        specs: the model's points, each counted from the diagnosis or from a point listed before it.
        diagnosis_date: the diagnosis date of the course.
        settled_on: the day each settled point was settled, by number.
    """
    settled = settled_on or {}
    windows: dict[int, Window] = {}
    for spec in specs:
        rule = spec.window
        if rule.after_point is None:
            start = diagnosis_date
        else:
            start = settled.get(rule.after_point) or windows[rule.after_point].due_from
        due_to = None if rule.to_months is None else add_months(start, rule.to_months)
        windows[spec.number] = Window(add_months(start, rule.from_months), due_to)
    return tuple(windows[spec.number] for spec in specs)


def operator_moves(state: PointState) -> frozenset[PointState | Trigger]:
    """Return what an operator may do with a point in ``state`` (for the buttons a page shows)."""
    moves: set[PointState | Trigger] = set(_BY_HAND[state])
    if state in REOPENABLE_STATES:
        moves.add(Trigger.REOPEN)
    return frozenset(moves)


def transition(
    point: Point,
    wanted: PointState | Trigger,
    *,
    at: datetime,
    actor: str,
    reason: str = "",
    on: date | None = None,
) -> tuple[Point, AuditEntry | None]:
    """Move ``point`` to the wanted state, or apply a trigger, and return it with the audit entry.

    Args:
        point: the point as it stands.
        wanted: ``done``, ``declined`` or ``not_reachable`` (an operator); ``Trigger.REOPEN`` (an
            operator); ``Trigger.TICK`` (the calendar on the Norwegian day of ``at``);
            ``Trigger.RESTART`` (a relapse closes the point if unfinished).
        at: when the move is recorded, timezone-aware.
        actor: who moves it.
        reason: why; required for operator moves and restarts, written by the calendar for ticks.
        on: for done, declined and not reachable, the day it happened (default: the day of ``at``).

    Returns:
        The new point and its audit entry; the same point and None when a tick or restart changes
        nothing.

    Raises:
        TransitionRefused: the rules do not allow the move, the reason is missing, or ``on`` is
            after the day of ``at``.
        ValueError: ``at`` is naive, the actor is empty, or ``on`` is given with a trigger.
    """
    today = local_day(at)
    if not actor.strip():
        raise ValueError("a move needs an actor")
    if on is not None and isinstance(wanted, Trigger):
        raise ValueError(f"'on' applies to done, declined and not_reachable, not to {wanted}")
    if wanted is Trigger.TICK:
        return _tick(point, today, at, actor, reason)
    if wanted is Trigger.RESTART:
        _require_reason(point, wanted, reason)
        if point.state not in OPEN_STATES:
            return point, None
        return _moved(point, PointState.CLOSED, today, at, actor, reason)
    allowed = (
        point.state in REOPENABLE_STATES if wanted is Trigger.REOPEN else wanted in _BY_HAND[point.state]
    )
    if not allowed:
        raise TransitionRefused(point.number, point.state, wanted, _why_not(point.state, wanted))
    _require_reason(point, wanted, reason)
    if wanted is Trigger.REOPEN:
        return _moved(point, point.window.state_on(today), None, at, actor, reason)
    day = today if on is None else on
    if day > today:
        raise TransitionRefused(point.number, point.state, wanted, f"{day} is after today ({today})")
    return _moved(point, wanted, day, at, actor, reason)


def _require_reason(point: Point, wanted: PointState | Trigger, reason: str) -> None:
    if not reason.strip():
        raise TransitionRefused(point.number, point.state, wanted, "a reason is required")


def _tick(
    point: Point, today: date, at: datetime, actor: str, reason: str
) -> tuple[Point, AuditEntry | None]:
    if point.state not in (PointState.PLANNED, PointState.DUE):
        return point, None
    target = point.window.state_on(today)
    # The calendar only moves forward: a clock read earlier than the last tick changes nothing.
    if _CALENDAR_ORDER[target] <= _CALENDAR_ORDER[point.state]:
        return point, None
    if not reason.strip():
        reason = f"window {point.window} " + ("has ended" if target is PointState.OVERDUE else "is open")
    return _moved(point, target, None, at, actor, reason)


def _moved(
    point: Point, state: PointState, settled_on: date | None, at: datetime, actor: str, reason: str
) -> tuple[Point, AuditEntry]:
    moved = dataclasses.replace(point, state=state, settled_on=settled_on)
    return moved, AuditEntry(at, actor, point.subject, point.state, state, reason)


def _why_not(current: PointState, wanted: PointState | Trigger) -> str:
    if current is PointState.DONE:
        return "done is final: a conversation that took place is not undone"
    if current is PointState.CLOSED:
        return "the point was closed when the pathway restarted after a relapse"
    if wanted is Trigger.REOPEN:
        return "only a declined or not reachable point can be reopened; this one is still open"
    if wanted in _CALENDAR_ORDER:
        hint = "; reopen a declined or not reachable point instead" if current in REOPENABLE_STATES else ""
        return f"planned, due and overdue follow the calendar and are never set by hand{hint}"
    if wanted is PointState.CLOSED:
        return "points are closed only by a restart after relapse"
    if wanted == current:
        return f"it is already {current}"
    allowed = ", ".join(sorted(operator_moves(current)))
    return f"from {current} an operator may choose: {allowed}"
