"""The values the pathway store takes and returns, and its two errors (``PathwayStore`` is in ``pathways``).

Plain frozen dataclasses of ids, dates and states; ``body`` and a note's ``text`` may hold personal
data and are hidden from ``repr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from edi_gateway.domain.pathway.document import EventRow, PointRow
from edi_gateway.errors import PermanentError, TransientError
from edi_gateway.store.operators import NewAuditEntry

OPEN_POINT_STATES = ("planned", "due", "overdue")


class PathwayChanged(TransientError):
    """Another writer changed the pathway (or opened one for the patient) first; nothing was written.

    Load the pathway again, apply the change again, and save again.
    """


class ReceivedNotPending(PermanentError):
    """The received message is no longer ``pending``: another worker took it into the pathway first."""

    def __init__(self, received_id: int) -> None:
        self.received_id = received_id
        super().__init__(f"received message {received_id} is no longer pending")


class ReceivedState(StrEnum):
    """``received_messages.pathway_state`` of a behovskartlegging."""

    PENDING = "pending"  # not yet taken into the worklist
    APPLIED = "applied"  # opened or continued the patient's pathway
    CONFLICT = "conflict"  # its diagnosis date needs an operator; the pathway is unchanged
    IGNORED = "ignored"  # not a behovskartlegging the worklist can read


@dataclass(frozen=True, slots=True)
class ReceivedForPathway:
    """A received message waiting to be taken into the worklist (``body`` holds patient data)."""

    id: int
    msg_id: str
    sender_her_id: int
    receiver_her_id: int
    addressed_her_id: int | None
    received_at: datetime
    patient_ref: str | None
    patient_masked: str | None
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class StoredPathway:
    """A ``pathways`` row: the aggregate's document and what lists show of it."""

    id: int
    patient_ref: str
    patient_masked: str
    receiver_her_id: int
    kommunenummer: str | None
    model_name: str
    source_msg_id: str
    assigned_to: str | None
    opened_at: datetime
    updated_at: datetime
    version: int
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PathwayOpening:
    """What a new pathway row holds beside the aggregate (ids only; ``patient_ref`` is a keyed hash)."""

    patient_ref: str
    patient_masked: str
    receiver_her_id: int
    kommunenummer: str | None
    model_name: str


@dataclass(frozen=True, slots=True)
class NewPathwayNote:
    """A note to the patient's fastlege asked for on a point (its text may hold personal data)."""

    course: int
    number: int
    asked_by: str
    text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AlertKey:
    """One alert of one point: raised once (``kind``: due_soon, overdue, conflict)."""

    pathway_id: int
    course: int
    number: int
    kind: str


@dataclass(frozen=True, slots=True)
class PathwayChange:
    """One change to one pathway, written in one transaction by :meth:`PathwayStore.save_pathway`.

    Attributes:
        at: when the change is recorded (``updated_at``; a new pathway's ``opened_at``).
        document: the aggregate without history (``domain.pathway.document.to_document``).
        points: every point of every course (``point_rows``).
        events: the history entries the change adds (``event_rows``), plus the service's own.
        assigned_to: the aggregate's assignee as text, or None.
        pathway_id: the pathway changed; None opens a new one (then ``opening`` is required).
        expected_version: the version the change was made on (required with ``pathway_id``).
        opening: the row's fixed columns, for a new pathway.
        source_msg_id: the message that opened the current course; None keeps the stored one.
        notes: notes to the fastlege asked for with this change.
        alerts: alerts to raise with this change (each at most once; its pathway_id is ignored).
        received: the received message this change takes in, and the state it moves to.
        audit: the audit-log entry of an operator's change (``patient_ref`` already the keyed hash).
    """

    at: datetime
    document: dict[str, Any]
    points: Sequence[PointRow]
    events: Sequence[EventRow]
    assigned_to: str | None
    pathway_id: int | None = None
    expected_version: int | None = None
    opening: PathwayOpening | None = None
    source_msg_id: str | None = None
    notes: Sequence[NewPathwayNote] = ()
    alerts: Sequence[AlertKey] = ()
    received: tuple[int, ReceivedState] | None = None
    audit: NewAuditEntry | None = None


@dataclass(frozen=True, slots=True)
class SavedPathway:
    """Where a change landed: the pathway's id and its new version."""

    id: int
    version: int


@dataclass(frozen=True, slots=True)
class WorklistRow:
    """One point of a pathway's current course, with what a worklist shows of its pathway."""

    pathway_id: int
    course: int
    number: int
    title: str
    performer: str
    due_from: date
    due_to: date | None
    state: str
    changed_at: datetime
    assigned_to: str | None
    patient_masked: str
    source_msg_id: str


@dataclass(frozen=True, slots=True)
class PathwayNoteRecord:
    """A stored note to the fastlege and how far it got."""

    id: int
    course: int
    number: int
    text: str = field(repr=False)
    asked_at: datetime | None = None
    asked_by: str = ""
    state: str = "pending"
    msg_id: str | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedSummary:
    """A received message of a patient as the pathway page names it (no body)."""

    msg_id: str
    received_at: datetime
    pathway_state: str | None
