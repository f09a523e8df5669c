"""A pathway as stored: the aggregate as a JSON-able document, its points as rows, its history as rows.

The store keeps one pathway in three places (``store/tables.py``): ``pathways.document`` holds the
aggregate without its history (:func:`to_document` / :func:`from_document`), ``pathway_points`` one
row per point of every course (:func:`point_rows`) for worklists and reports, and ``pathway_events``
the history, appended and never rewritten (:func:`event_rows` / :func:`entry_of`).

A history entry names its point by number only (``samhandlingspunkt 2``); the course it belongs to
follows from the order of the entries: a ``diagnosis_date`` entry starts the next course (the opening
starts course 1, a restart the one after the current), and the entries closing the old course's points
come before it. :func:`event_rows` numbers the courses so.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

from edi_gateway.domain.pathway.aggregate import Assignee, AssigneeKind, Course, Pathway
from edi_gateway.domain.pathway.model import PathwayError, Performer, PointSpec, WindowSpec
from edi_gateway.domain.pathway.points import AuditEntry, Point, PointState, Window

DOCUMENT_VERSION: Final = 1
"""The shape of ``pathways.document``; a reader refuses any other."""

_POINT_SUBJECT = re.compile(r"samhandlingspunkt (\d+)( window)?")


class PathwayDocumentInvalid(PathwayError):
    """A stored pathway document (or assignee text) does not have the expected shape."""


class EventKind(StrEnum):
    """What a ``pathway_events`` row records."""

    POINT = "point"  # a point's state moved (from_state → to_state)
    WINDOW = "window"  # a planned point's window was counted again
    ASSIGNED = "assigned_to"  # the pathway was (re)assigned
    DIAGNOSIS = "diagnosis_date"  # opened, or restarted from a new diagnosis date
    OTHER = "other"  # any other history entry (kept whole in ``details``)
    CONFLICT = "conflict"  # a message's diagnosis date needs an operator (not a domain entry)
    NOTE = "note"  # a note to the fastlege was asked for (not a domain entry)


@dataclass(frozen=True, slots=True)
class PointRow:
    """One ``pathway_points`` row (without the time of its last change, which the store keeps)."""

    course: int
    number: int
    title: str
    performer: str
    due_from: date
    due_to: date | None
    state: str


@dataclass(frozen=True, slots=True)
class EventRow:
    """One ``pathway_events`` row (without the pathway's id).

    Attributes:
        at: when it happened, timezone-aware.
        actor: who did it.
        kind: what it records.
        course: the course it concerns, if any.
        number: the samhandlingspunkt it concerns, if any.
        from_state: a point's state before (kind ``point``).
        to_state: a point's state after (kind ``point``).
        reason: why, in plain language (no personal data).
        details: the rest of the entry (subject, before, after), ids for service events.
    """

    at: datetime
    actor: str
    kind: EventKind
    course: int | None
    number: int | None
    from_state: str | None
    to_state: str | None
    reason: str
    details: dict[str, Any] | None = None


# --- the document -------------------------------------------------------------------------------


def to_document(pathway: Pathway) -> dict[str, Any]:
    """Return the pathway without its history as JSON-able data (dates as ISO text)."""
    return {
        "version": DOCUMENT_VERSION,
        "patient_ref": pathway.patient_ref,
        "model_name": pathway.model_name,
        "assigned_to": None if pathway.assigned_to is None else str(pathway.assigned_to),
        "courses": [_course_document(course) for course in pathway.courses],
    }


def from_document(document: Mapping[str, Any], *, history: Sequence[AuditEntry] = ()) -> Pathway:
    """Rebuild a pathway from :func:`to_document`'s data, with ``history`` as its history.

    Raises:
        PathwayDocumentInvalid: the document does not have the shape (or another version).
    """
    try:
        if document["version"] != DOCUMENT_VERSION:
            raise PathwayDocumentInvalid(f"pathway document version {document['version']!r} is not known")
        assigned = document["assigned_to"]
        return Pathway(
            patient_ref=document["patient_ref"],
            model_name=document["model_name"],
            courses=tuple(_course(item) for item in document["courses"]),
            assigned_to=None if assigned is None else parse_assignee(assigned),
            history=tuple(history),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PathwayDocumentInvalid(
            f"the pathway document is unreadable ({type(exc).__name__}: {exc})"
        ) from exc


def parse_assignee(text: str) -> Assignee:
    """Read an assignee written ``role:<name>`` or ``operator:<account>``.

    Raises:
        PathwayDocumentInvalid: the text has another shape, or the name is empty or a person number.
    """
    kind, sep, name = text.strip().partition(":")
    if not sep or kind not in set(AssigneeKind):
        raise PathwayDocumentInvalid(
            f"an assignee is written role:<role> or operator:<account>, not {text.strip()[:40]!r}"
        )
    try:
        return Assignee(AssigneeKind(kind), name.strip())
    except ValueError as exc:
        raise PathwayDocumentInvalid(str(exc)) from None


def _course_document(course: Course) -> dict[str, Any]:
    return {
        "number": course.number,
        "diagnosis_date": course.diagnosis_date.isoformat(),
        "points": [_point_document(point) for point in course.points],
    }


def _point_document(point: Point) -> dict[str, Any]:
    spec, window = point.spec, point.window
    return {
        "number": spec.number,
        "title": spec.title,
        "performer": spec.performer.value,
        "note": spec.note,
        "rule": {
            "from_months": spec.window.from_months,
            "to_months": spec.window.to_months,
            "after_point": spec.window.after_point,
        },
        "due_from": window.due_from.isoformat(),
        "due_to": _iso(window.due_to),
        "state": point.state.value,
        "settled_on": _iso(point.settled_on),
    }


def _course(item: Mapping[str, Any]) -> Course:
    points = tuple(_point(p) for p in item["points"])
    return Course(int(item["number"]), date.fromisoformat(item["diagnosis_date"]), points)


def _point(item: Mapping[str, Any]) -> Point:
    rule = item["rule"]
    spec = PointSpec(
        number=int(item["number"]),
        title=item["title"],
        performer=Performer(item["performer"]),
        window=WindowSpec(rule["from_months"], rule["to_months"], rule["after_point"]),
        note=item["note"],
    )
    window = Window(date.fromisoformat(item["due_from"]), _day(item["due_to"]))
    return Point(spec, window, PointState(item["state"]), _day(item["settled_on"]))


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


# --- the points ---------------------------------------------------------------------------------


def point_rows(pathway: Pathway) -> list[PointRow]:
    """Return one ``pathway_points`` row per point of every course, oldest course first."""
    return [
        PointRow(
            course=course.number,
            number=point.number,
            title=point.title,
            performer=point.performer.value,
            due_from=point.window.due_from,
            due_to=point.window.due_to,
            state=point.state.value,
        )
        for course in pathway.courses
        for point in course.points
    ]


# --- the history --------------------------------------------------------------------------------


def event_rows(entries: Sequence[AuditEntry], *, course: int) -> list[EventRow]:
    """Return the ``pathway_events`` rows of new history entries.

    Args:
        entries: the entries added by one change, in order.
        course: the number of the pathway's current course before the change (0 for a new pathway).
    """
    found: list[EventRow] = []
    for entry in entries:
        if entry.subject == EventKind.DIAGNOSIS.value:
            course += 1
        found.append(_event_row(entry, course))
    return found


def _event_row(entry: AuditEntry, course: int) -> EventRow:
    matched = _POINT_SUBJECT.fullmatch(entry.subject)
    whole = {"subject": entry.subject, "before": entry.before, "after": entry.after}
    if matched is None:
        kind = EventKind(entry.subject) if entry.subject in _WHOLE_KINDS else EventKind.OTHER
        number = None
    else:
        kind = EventKind.WINDOW if matched.group(2) else EventKind.POINT
        number = int(matched.group(1))
    if kind is EventKind.POINT:
        return EventRow(entry.at, entry.actor, kind, course, number, entry.before, entry.after, entry.reason)
    return EventRow(entry.at, entry.actor, kind, course, number, None, None, entry.reason, whole)


_WHOLE_KINDS = frozenset({EventKind.ASSIGNED.value, EventKind.DIAGNOSIS.value})


def entry_of(row: EventRow) -> AuditEntry | None:
    """Return the history entry a row records, or None for the service's own events (conflict, note)."""
    if row.kind is EventKind.POINT:
        if row.to_state is None:
            raise PathwayDocumentInvalid("a point event without the state it moved to")
        subject = f"samhandlingspunkt {row.number}"
        return AuditEntry(row.at, row.actor, subject, row.from_state, row.to_state, row.reason)
    if row.kind in (EventKind.CONFLICT, EventKind.NOTE):
        return None
    details = row.details or {}
    try:
        return AuditEntry(
            row.at, row.actor, details["subject"], details["before"], details["after"], row.reason
        )
    except KeyError as exc:
        raise PathwayDocumentInvalid(f"a {row.kind} event lacks {exc}") from None
