"""One patient's pathway: its courses of points, who follows it up, and its history.

Every received behovskartlegging opens the patient's pathway (:func:`open_from_message`) or continues
it (:func:`continue_pathway`):

* the same diagnosis date: the point the message documents is recorded done on the day of the
  assessment (unless it is done already); a repeated message changes nothing;
* a later diagnosis date stated as a relapse (residiv): the pathway restarts from the new date. The
  points of the old course still open are closed with the reason "restarted after relapse"; those
  settled keep their state; a new course is planned with the same points. The assignment is kept;
* the diagnosis date of an earlier course: a late message about a course already ended, no change;
* any other date: :class:`DiagnosisConflict`. A later date without the relapse flag may be a corrected
  date or a new cancer, and an earlier one contradicts the record: an operator decides, and may
  restart the pathway by hand (:func:`restart_pathway`).

Windows counted from another point are provisional until that point is settled; then every point
still ``planned`` that counts from it gets its window counted from the settling day (recorded in the
history). A point already due or overdue keeps its window: it is on the worklist already.

Opening and restarting bring the new course up to date with their own time; otherwise only
:func:`tick` moves points by the calendar. Nothing is updated in place: every function returns a new
``Pathway`` whose history starts with the old one's. Everything here is pure: the caller passes the time.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from edi_gateway.domain.pathway.model import PathwayError, PathwayModel, PointSpec
from edi_gateway.domain.pathway.months import local_day
from edi_gateway.domain.pathway.points import (
    AuditEntry,
    Point,
    PointState,
    Trigger,
    compute_windows,
    transition,
)

CLOCK_ACTOR = "clock"
"""The actor the history names for moves made by the calendar."""

RELAPSE_REASON = "restarted after relapse"
"""The reason recorded on the points a relapse closes."""

_PERSON_NUMBER = re.compile(r"\d{6}\s?\d{5}")


class DiagnosisConflict(PathwayError):
    """A message states a diagnosis date the pathway cannot take on its own (an operator decides).

    The message names no date; the dates are attributes, for the operator's page.

    Attributes:
        current: the diagnosis date of the pathway's current course.
        stated: the diagnosis date the message states.
    """

    def __init__(self, why: str, *, current: date, stated: date) -> None:
        self.current = current
        self.stated = stated
        super().__init__(why)


class AssigneeKind(StrEnum):
    """Whether a pathway is assigned to a named operator or to a role."""

    OPERATOR = "operator"
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class Assignee:
    """Who follows a pathway up: an operator account (``operator:sykepleier-7``) or a role.

    Attributes:
        kind: operator or role.
        name: the operator's account name, or the role (``kreftkoordinator``); never a person number.
    """

    kind: AssigneeKind
    name: str

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("an assignee needs a name")
        if _PERSON_NUMBER.search(self.name):
            raise ValueError("an assignee's name must not hold a person number")

    @classmethod
    def role(cls, name: str) -> Assignee:
        """Return the role ``name`` (``kreftkoordinator``, ``kontaktsykepleier`` …) as assignee."""
        return cls(AssigneeKind.ROLE, name)

    @classmethod
    def operator(cls, name: str) -> Assignee:
        """Return the operator account ``name`` as assignee."""
        return cls(AssigneeKind.OPERATOR, name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Course:
    """The points planned from one diagnosis date: the first diagnosis, then one course per relapse.

    Attributes:
        number: 1 for the first diagnosis, 2 after the first relapse, and so on.
        diagnosis_date: the diagnosis date the windows count from.
        points: the samhandlingspunkter, in the model's order.
    """

    number: int
    diagnosis_date: date
    points: tuple[Point, ...]

    def point(self, number: int) -> Point:
        """Return samhandlingspunkt ``number`` of this course.

        Raises:
            PathwayError: the course has no such point.
        """
        if not 1 <= number <= len(self.points):
            raise PathwayError(f"the pathway has no samhandlingspunkt {number}")
        return self.points[number - 1]


@dataclass(frozen=True, slots=True)
class Pathway:
    """One patient's pathway.

    Attributes:
        patient_ref: the opaque patient key (the gateway's keyed hash of the person number), never
            the person number itself.
        model_name: the model the pathway was opened with; its points are copied into each course.
        courses: every course, oldest first; the last is the current one.
        assigned_to: who follows it up, if anyone yet.
        history: every change, oldest first; never shortened.
    """

    patient_ref: str
    model_name: str
    courses: tuple[Course, ...]
    assigned_to: Assignee | None = None
    history: tuple[AuditEntry, ...] = ()

    def __post_init__(self) -> None:
        if not self.patient_ref.strip():
            raise ValueError("a pathway needs a patient_ref")
        if _PERSON_NUMBER.fullmatch(self.patient_ref.strip()):
            raise ValueError("patient_ref looks like a person number: pass the opaque patient key")
        if not self.courses:
            raise ValueError("a pathway has at least one course")

    @property
    def current(self) -> Course:
        """The current course."""
        return self.courses[-1]

    @property
    def diagnosis_date(self) -> date:
        """The diagnosis date of the current course."""
        return self.current.diagnosis_date

    @property
    def points(self) -> tuple[Point, ...]:
        """The points of the current course."""
        return self.current.points


@dataclass(frozen=True, slots=True)
class PathwayMessage:
    """What a received behovskartlegging tells the patient's pathway (ids and dates only).

    Attributes:
        samhandlingspunkt: the point the message documents (1 for the hospital's behovskartlegging).
        diagnosis_date: the diagnosis date it states.
        relapse: whether it states a relapse (residiv).
        assessment_date: the day the behovskartlegging took place: the point is done on that day.
        received_at: when it was received, timezone-aware; the time its changes are recorded at.
        msg_id: its MsgId, named in the history.
    """

    samhandlingspunkt: int
    diagnosis_date: date
    relapse: bool
    assessment_date: date
    received_at: datetime
    msg_id: str


# --- Opening and continuing --------------------------------------------------------------------


def open_pathway(
    model: PathwayModel,
    *,
    patient_ref: str,
    diagnosis_date: date,
    at: datetime,
    actor: str,
    assigned_to: Assignee | None = None,
) -> Pathway:
    """Open a pathway with every point of ``model`` planned from ``diagnosis_date``, ticked to ``at``.

    Raises:
        ValueError: ``patient_ref`` is empty or is a person number, ``at`` is naive, ``actor`` is empty.
    """
    return tick(_opened(model, patient_ref, diagnosis_date, at, actor, assigned_to), at)


def open_from_message(
    model: PathwayModel,
    message: PathwayMessage,
    *,
    patient_ref: str,
    actor: str,
    assigned_to: Assignee | None = None,
) -> Pathway:
    """Open a pathway from the patient's first message: the point it documents is done, the rest planned.

    Raises:
        PathwayError: the model has no such point, or the assessment date is after the day received.
        ValueError: as :func:`open_pathway`.
    """
    at = message.received_at
    opened = _opened(model, patient_ref, message.diagnosis_date, at, actor, assigned_to)
    return tick(_record(opened, message, actor), at)


def continue_pathway(pathway: Pathway, message: PathwayMessage, *, actor: str) -> Pathway:
    """Take a further message into the pathway (the rules are in the module docstring).

    Raises:
        DiagnosisConflict: the message's diagnosis date is neither this course's, an earlier
            course's, nor a later one stated as a relapse.
        PathwayError: as :func:`open_from_message`.
    """
    current, stated = pathway.diagnosis_date, message.diagnosis_date
    if stated == current:
        return _record(pathway, message, actor)
    if any(course.diagnosis_date == stated for course in pathway.courses):
        return pathway
    if stated < current:
        raise DiagnosisConflict(
            "the message states a diagnosis date before the pathway's: an operator must decide",
            current=current,
            stated=stated,
        )
    if not message.relapse:
        raise DiagnosisConflict(
            "the message states a later diagnosis date without a relapse: a corrected date or a new "
            "cancer? an operator must decide",
            current=current,
            stated=stated,
        )
    at = message.received_at
    reason = f"{RELAPSE_REASON} (MsgId {message.msg_id})"
    return tick(_record(_restarted(pathway, stated, at, actor, reason), message, actor), at)


def restart_pathway(
    pathway: Pathway, *, diagnosis_date: date, at: datetime, actor: str, reason: str
) -> Pathway:
    """Restart the pathway from a later diagnosis date (a relapse, or an operator's decision).

    The current course's open points are closed with ``reason``, a new course is planned from
    ``diagnosis_date`` with the same points and ticked to ``at``.

    Raises:
        DiagnosisConflict: ``diagnosis_date`` is not after the current course's.
        TransitionRefused: ``reason`` is empty.
    """
    if diagnosis_date <= pathway.diagnosis_date:
        raise DiagnosisConflict(
            "a restart needs a diagnosis date after the current one",
            current=pathway.diagnosis_date,
            stated=diagnosis_date,
        )
    return tick(_restarted(pathway, diagnosis_date, at, actor, reason), at)


# --- Operators and the clock -------------------------------------------------------------------


def mark(
    pathway: Pathway,
    number: int,
    wanted: PointState | Trigger,
    *,
    at: datetime,
    actor: str,
    reason: str,
    on: date | None = None,
) -> Pathway:
    """Apply an operator's move to samhandlingspunkt ``number`` of the current course.

    Args:
        pathway: the pathway.
        number: the samhandlingspunkt.
        wanted: ``done``, ``declined``, ``not_reachable``, or ``Trigger.REOPEN``.
        at: when it is recorded, timezone-aware.
        actor: the operator.
        reason: why (required).
        on: the day it happened, for done, declined and not reachable (default: the day of ``at``).

    Raises:
        TransitionRefused: the move is not allowed (see ``points``), or has no reason.
        PathwayError: no such point.
        ValueError: ``wanted`` is the clock or a restart (use :func:`tick`, :func:`restart_pathway`).
    """
    if wanted in (Trigger.TICK, Trigger.RESTART):
        raise ValueError(f"{wanted} is not an operator's move")
    return _moved(pathway, number, wanted, at=at, actor=actor, reason=reason, on=on)


def tick(pathway: Pathway, now: datetime) -> Pathway:
    """Move the current course's points by the calendar on the Norwegian day of ``now``.

    Idempotent, and the clock never moves a point back: a tick at an earlier time changes nothing.
    """
    points, entries = [], []
    for point in pathway.points:
        moved, entry = transition(point, Trigger.TICK, at=now, actor=CLOCK_ACTOR)
        points.append(moved)
        entries += [entry] if entry else []
    if not entries:
        return pathway
    return _with_course(pathway, dataclasses.replace(pathway.current, points=tuple(points)), entries)


def assign(pathway: Pathway, assignee: Assignee, *, at: datetime, actor: str, reason: str) -> Pathway:
    """Assign (or reassign) the pathway to a named operator or a role; the same assignee again is a no-op.

    Raises:
        PathwayError: ``reason`` is empty.
        ValueError: ``at`` is naive or ``actor`` empty.
    """
    local_day(at)
    if not actor.strip():
        raise ValueError("an assignment needs an actor")
    if assignee == pathway.assigned_to:
        return pathway
    if not reason.strip():
        raise PathwayError("a reason is required to assign the pathway")
    before = None if pathway.assigned_to is None else str(pathway.assigned_to)
    entry = AuditEntry(at, actor, "assigned_to", before, str(assignee), reason)
    return dataclasses.replace(pathway, assigned_to=assignee, history=(*pathway.history, entry))


# --- Helpers -----------------------------------------------------------------------------------


def _opened(
    model: PathwayModel,
    patient_ref: str,
    diagnosis_date: date,
    at: datetime,
    actor: str,
    assigned_to: Assignee | None,
) -> Pathway:
    if not actor.strip():
        raise ValueError("opening a pathway needs an actor")
    why = f"pathway opened (model {model.name})"
    course, entries = _planned(model.points, 1, diagnosis_date, at, actor, why)
    opening = AuditEntry(at, actor, "diagnosis_date", None, diagnosis_date.isoformat(), why)
    pathway = Pathway(patient_ref, model.name, (course,), history=(opening, *entries))
    if assigned_to is None:
        return pathway
    return assign(pathway, assigned_to, at=at, actor=actor, reason="assigned when the pathway opened")


def _planned(
    specs: Sequence[PointSpec], number: int, diagnosis_date: date, at: datetime, actor: str, why: str
) -> tuple[Course, list[AuditEntry]]:
    windows = compute_windows(specs, diagnosis_date)
    points = tuple(Point(spec, window) for spec, window in zip(specs, windows, strict=True))
    entries = [
        AuditEntry(at, actor, p.subject, None, PointState.PLANNED, f"{why}; window {p.window}")
        for p in points
    ]
    return Course(number, diagnosis_date, points), entries


def _restarted(pathway: Pathway, diagnosis_date: date, at: datetime, actor: str, reason: str) -> Pathway:
    old = pathway.current
    closed, entries = [], []
    for point in old.points:
        moved, entry = transition(point, Trigger.RESTART, at=at, actor=actor, reason=reason)
        closed.append(moved)
        entries += [entry] if entry else []
    before, after = old.diagnosis_date.isoformat(), diagnosis_date.isoformat()
    entries.append(AuditEntry(at, actor, "diagnosis_date", before, after, reason))
    course, planned = _planned(
        [p.spec for p in old.points], old.number + 1, diagnosis_date, at, actor, reason
    )
    courses = (*pathway.courses[:-1], dataclasses.replace(old, points=tuple(closed)), course)
    return dataclasses.replace(pathway, courses=courses, history=(*pathway.history, *entries, *planned))


def _record(pathway: Pathway, message: PathwayMessage, actor: str) -> Pathway:
    if pathway.current.point(message.samhandlingspunkt).state is PointState.DONE:
        return pathway
    reason = f"behovskartlegging received (MsgId {message.msg_id})"
    at, on = message.received_at, message.assessment_date
    return _moved(
        pathway, message.samhandlingspunkt, PointState.DONE, at=at, actor=actor, reason=reason, on=on
    )


def _moved(
    pathway: Pathway,
    number: int,
    wanted: PointState | Trigger,
    *,
    at: datetime,
    actor: str,
    reason: str,
    on: date | None,
) -> Pathway:
    course = pathway.current
    moved, entry = transition(course.point(number), wanted, at=at, actor=actor, reason=reason, on=on)
    points = tuple(moved if p.number == number else p for p in course.points)
    rewindowed, window_entries = _rewindowed(dataclasses.replace(course, points=points), at, actor)
    return _with_course(pathway, rewindowed, [entry] if entry else [], window_entries)


def _rewindowed(course: Course, at: datetime, actor: str) -> tuple[Course, list[AuditEntry]]:
    """Count the windows of planned points again from the days their anchor points were settled."""
    settled = {p.number: p.settled_on for p in course.points if p.settled_on is not None}
    windows = compute_windows([p.spec for p in course.points], course.diagnosis_date, settled)
    points, entries = [], []
    for point, window in zip(course.points, windows, strict=True):
        if point.state is PointState.PLANNED and window != point.window:
            anchor = point.spec.window.after_point
            settled_on = settled.get(anchor) if anchor is not None else None
            state = "not settled" if settled_on is None else f"settled on {settled_on.isoformat()}"
            why = f"counted from samhandlingspunkt {anchor}, {state}"
            entries.append(
                AuditEntry(at, actor, f"{point.subject} window", str(point.window), str(window), why)
            )
            point = dataclasses.replace(point, window=window)
        points.append(point)
    return dataclasses.replace(course, points=tuple(points)), entries


def _with_course(pathway: Pathway, course: Course, *entry_lists: Sequence[AuditEntry]) -> Pathway:
    entries = [entry for entries in entry_lists for entry in entries]
    courses = (*pathway.courses[:-1], course)
    return dataclasses.replace(pathway, courses=courses, history=(*pathway.history, *entries))
