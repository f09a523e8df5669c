"""What the pathway worklist shows: frozen views of points, one pathway, its history, notes and counts.

Built by ``services.pathways.PathwayDesk`` from store rows; the CLI prints them, the web and API will
serialise them (``services.queries.to_jsonable``, or :meth:`PointView.as_json` for the list). The
patient appears masked only (``010180*****``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from edi_gateway.domain.pathway import Pathway, PointState, Trigger, operator_moves
from edi_gateway.domain.pathway.document import EventKind, EventRow
from edi_gateway.store.pathways import PathwayNoteRecord, ReceivedSummary, StoredPathway, WorklistRow

MOVES: Final[dict[str, PointState | Trigger]] = {
    "done": PointState.DONE,
    "declined": PointState.DECLINED,
    "not_reachable": PointState.NOT_REACHABLE,
    "reopen": Trigger.REOPEN,
}
"""The operator's moves by the word the CLI, API and pages use."""


@dataclass(frozen=True, slots=True)
class PointView:
    """One point of a pathway's current course, as the worklist shows it (the patient masked).

    ``msg_id`` is the message that opened the current course (the first behovskartlegging, or the
    one that restarted the pathway after a relapse).
    """

    pathway_id: int
    samhandlingspunkt: int
    title: str
    due_from: date
    due_to: date | None
    state: str
    assigned_to: str | None
    patient: str
    msg_id: str

    def as_json(self) -> dict[str, Any]:
        """The JSON object ``pathway list --json`` prints and the API returns (dates ISO 8601)."""
        return {
            "pathway_id": self.pathway_id,
            "samhandlingspunkt": self.samhandlingspunkt,
            "title": self.title,
            "due_from": self.due_from.isoformat(),
            "due_to": None if self.due_to is None else self.due_to.isoformat(),
            "state": self.state,
            "assigned_to": self.assigned_to,
            "patient": self.patient,
            "msg_id": self.msg_id,
        }


@dataclass(frozen=True, slots=True)
class HistoryView:
    """One entry of a pathway's history (``kind``: point, window, assigned_to, diagnosis_date, conflict, note)."""

    at: datetime
    actor: str
    kind: str
    course: int | None
    samhandlingspunkt: int | None
    before: str | None
    after: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class NoteView:
    """A note to the fastlege asked for on a point, and how far it got (pending, sent, failed)."""

    id: int
    course: int
    samhandlingspunkt: int
    text: str
    asked_at: datetime | None
    asked_by: str
    state: str
    msg_id: str | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class SourceView:
    """A received message about the patient and what the worklist made of it."""

    msg_id: str
    received_at: datetime
    pathway_state: str | None


@dataclass(frozen=True, slots=True)
class PathwayView:
    """One pathway for its page: points of the current course, history, notes and source messages.

    Attributes:
        moves: per samhandlingspunkt of the current course, the moves an operator may make now.
    """

    pathway_id: int
    patient: str
    kommunenummer: str | None
    model_name: str
    assigned_to: str | None
    course: int
    diagnosis_date: date
    version: int
    opened_at: datetime
    updated_at: datetime
    points: tuple[PointView, ...]
    moves: dict[int, tuple[str, ...]]
    history: tuple[HistoryView, ...]
    notes: tuple[NoteView, ...]
    sources: tuple[SourceView, ...]


@dataclass(frozen=True, slots=True)
class PathwaySummary:
    """The dashboard's counts of the kommune's current points, judged by the calendar on ``day``."""

    day: date
    overdue: int
    due: int
    due_soon: int
    due_soon_days: int


def point_view(row: WorklistRow) -> PointView:
    """Return the view of one worklist row."""
    return PointView(
        pathway_id=row.pathway_id,
        samhandlingspunkt=row.number,
        title=row.title,
        due_from=row.due_from,
        due_to=row.due_to,
        state=row.state,
        assigned_to=row.assigned_to,
        patient=row.patient_masked,
        msg_id=row.source_msg_id,
    )


def history_view(event: EventRow) -> HistoryView:
    """Return the view of one history row (a point's states, or the before/after an entry records)."""
    details = event.details or {}
    is_point = event.kind is EventKind.POINT
    return HistoryView(
        at=event.at,
        actor=event.actor,
        kind=event.kind.value,
        course=event.course,
        samhandlingspunkt=event.number,
        before=event.from_state if is_point else _shown(details.get("before")),
        after=event.to_state if is_point else _shown(details.get("after")),
        reason=event.reason,
    )


def note_view(note: PathwayNoteRecord) -> NoteView:
    """Return the view of one note to the fastlege."""
    return NoteView(
        id=note.id,
        course=note.course,
        samhandlingspunkt=note.number,
        text=note.text,
        asked_at=note.asked_at,
        asked_by=note.asked_by,
        state=note.state,
        msg_id=note.msg_id,
        outcome=note.outcome,
    )


def move_words(state: PointState) -> tuple[str, ...]:
    """Return the words of the moves an operator may make on a point in ``state`` (for buttons)."""
    allowed = operator_moves(state)
    return tuple(word for word, move in MOVES.items() if move in allowed)


def pathway_view(
    stored: StoredPathway,
    pathway: Pathway,
    *,
    points: list[WorklistRow],
    events: list[EventRow],
    notes: list[PathwayNoteRecord],
    sources: list[ReceivedSummary],
) -> PathwayView:
    """Return the page of one pathway from its row, aggregate and the rows that belong to it."""
    return PathwayView(
        pathway_id=stored.id,
        patient=stored.patient_masked,
        kommunenummer=stored.kommunenummer,
        model_name=stored.model_name,
        assigned_to=stored.assigned_to,
        course=pathway.current.number,
        diagnosis_date=pathway.diagnosis_date,
        version=stored.version,
        opened_at=stored.opened_at,
        updated_at=stored.updated_at,
        points=tuple(point_view(r) for r in sorted(points, key=lambda r: r.number)),
        moves={p.number: move_words(p.state) for p in pathway.points},
        history=tuple(history_view(e) for e in events),
        notes=tuple(note_view(n) for n in notes),
        sources=tuple(SourceView(s.msg_id, s.received_at, s.pathway_state) for s in sources),
    )


def _shown(value: Any) -> str | None:
    return None if value is None else str(value)
