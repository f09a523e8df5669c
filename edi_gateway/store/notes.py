"""Notes to the fastlege asked for on a completed samhandlingspunkt: claimed and finished by one worker.

A kommune nurse who records a point done with a note leaves a ``pathway_notes`` row ``pending`` (the
pathway store writes it in the same transaction as the point's move). Every kommune worker polls for
pending notes and claims each with one guarded UPDATE (``claim_notes``: the claim is ``claimed_by`` and
``claimed_at`` on a pending row nobody holds), so two workers never send one note. The holder then
finishes it ``sent`` or ``failed`` (``finish_note``), or lets it go back to the pool after a transient
fault (``release_note``). A worker that dies holding a claim leaves it pending but held; once the claim
is older than the stale limit (``stale_notes``) it is finished ``failed``, never claimed again, so a
note whose message may already be on its way is never sent twice. ``Store`` inherits this.

``note_source`` reads what a note is sent from: the pathway's kommune, the point's title and state,
and the signed message the pathway was opened from (``received_messages``), which names the patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.tables import pathway_notes, pathway_points, pathways, received_messages


class NoteState(StrEnum):
    """Where a note to the fastlege is (``pathway_notes.state``)."""

    PENDING = "pending"  # waiting for a worker, or held by one (claimed_by set)
    SENT = "sent"  # its message went to the fastlege (msg_id names it)
    FAILED = "failed"  # it cannot be sent; the outcome says why


@dataclass(frozen=True, slots=True)
class NoteRecord:
    """One stored note, every column.

    Attributes:
        text: the nurse's note (patient data: never log it; hidden from repr).
        asked_by: who recorded the point done with the note (an actor such as ``operator:kari``).
        claimed_by, claimed_at: the worker holding it and since when; None while nobody does.
        request_ref, msg_id: the request and message made for it, once known.
        outcome: why it ended as it did, in plain language (no personal data).
    """

    id: int
    pathway_id: int
    course: int
    number: int
    text: str = field(repr=False)
    asked_at: datetime
    asked_by: str
    state: NoteState
    claimed_by: str | None
    claimed_at: datetime | None
    request_ref: str | None
    msg_id: str | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class NoteSource:
    """What a note is sent from.

    Attributes:
        pathway_id: the pathway the note belongs to.
        kommunenummer: the pathway's kommune, when recorded.
        source_msg_id: the MsgId of the message the pathway was opened from.
        received_body: that message as received (signed; verified at receipt); None when no
            ``received_messages`` row about the pathway's patient holds it. Patient data: never log it.
        addressed_her_id: the service (or person) of ours that message was addressed to, if any.
        point_title, point_state, point_changed_at: the point's row in ``pathway_points``; None when
            the pathway has no such point.
        document: the pathway aggregate as stored (``pathways.document``).
    """

    pathway_id: int
    kommunenummer: str | None
    source_msg_id: str
    received_body: bytes | None = field(repr=False)
    addressed_her_id: int | None
    point_title: str | None
    point_state: str | None
    point_changed_at: datetime | None
    document: Any = field(repr=False, default=None)


class NoteStore(StoreBase):
    """The store's side of notes to the fastlege."""

    def claim_notes(self, holder: str, *, now: datetime, limit: int) -> list[NoteRecord]:
        """Claim up to ``limit`` pending notes nobody holds, oldest first, for ``holder``.

        Each claim is a guarded UPDATE: a note another worker claimed first is skipped.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        now = rows.aware(now, "now")
        table = pathway_notes
        free = sa.and_(table.c.state == NoteState.PENDING.value, table.c.claimed_by.is_(None))
        # Every worker polls often and there is rarely a note: look before taking the write lock.
        with self._read() as conn:
            if conn.execute(sa.select(table.c.id).where(free).limit(1)).first() is None:
                return []
        with self._write() as conn:
            ids = list(
                conn.execute(sa.select(table.c.id).where(free).order_by(table.c.id).limit(limit)).scalars()
            )
            claimed = [
                note_id
                for note_id in ids
                if conn.execute(
                    table.update()
                    .where(table.c.id == note_id, free)
                    .values(claimed_by=holder, claimed_at=now)
                ).rowcount
                == 1
            ]
            return _notes(conn, claimed)

    def stale_notes(self, *, now: datetime, stale_after_s: float, limit: int = 100) -> list[NoteRecord]:
        """Return pending notes whose claim is older than ``stale_after_s`` (their holder stopped).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        table = pathway_notes
        cutoff = rows.aware(now, "now") - timedelta(seconds=stale_after_s)
        query = (
            sa.select(table.c.id)
            .where(
                table.c.state == NoteState.PENDING.value,
                table.c.claimed_by.is_not(None),
                table.c.claimed_at < cutoff,
            )
            .order_by(table.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return _notes(conn, list(conn.execute(query).scalars()))

    def finish_note(
        self,
        note_id: int,
        holder: str,
        state: NoteState,
        outcome: str,
        *,
        request_ref: str | None = None,
        msg_id: str | None = None,
        claimed_before: datetime | None = None,
    ) -> bool:
        """Finish a note ``holder`` claimed, ``sent`` or ``failed``; False if it was no longer its to finish.

        Args:
            note_id: the note.
            holder: the worker that claimed it.
            state: ``sent`` or ``failed``.
            outcome: why, in plain language (no personal data).
            request_ref, msg_id: the request and message made for it, when there are.
            claimed_before: finish it only if the claim is older than this (the stale rule).

        Raises:
            ValueError: ``state`` is ``pending``.
            StoreUnavailable: the database cannot be reached.
        """
        if NoteState(state) is NoteState.PENDING:
            raise ValueError("a note is finished sent or failed, not pending")
        table = pathway_notes
        guard = [
            table.c.id == note_id,
            table.c.claimed_by == holder,
            table.c.state == NoteState.PENDING.value,
        ]
        if claimed_before is not None:
            guard.append(table.c.claimed_at < rows.aware(claimed_before, "claimed_before"))
        values: dict[str, Any] = {"state": NoteState(state).value, "outcome": outcome}
        values |= {k: v for k, v in (("request_ref", request_ref), ("msg_id", msg_id)) if v is not None}
        with self._write() as conn:
            return conn.execute(table.update().where(*guard).values(**values)).rowcount == 1

    def release_note(self, note_id: int, holder: str) -> bool:
        """Give a pending note ``holder`` claimed back to every worker (after a transient fault).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        table = pathway_notes
        with self._write() as conn:
            released = conn.execute(
                table.update()
                .where(
                    table.c.id == note_id,
                    table.c.claimed_by == holder,
                    table.c.state == NoteState.PENDING.value,
                )
                .values(claimed_by=None, claimed_at=None)
            ).rowcount
        return released == 1

    def get_note(self, note_id: int) -> NoteRecord | None:
        """Return one note, or None."""
        with self._read() as conn:
            found = _notes(conn, [note_id])
        return found[0] if found else None

    def note_source(self, note: NoteRecord) -> NoteSource | None:
        """Return what ``note`` is sent from, or None when its pathway is gone.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        p, r, pt = pathways.c, received_messages.c, pathway_points.c
        point = sa.select(pt.title, pt.state, pt.changed_at).where(
            pt.pathway_id == note.pathway_id, pt.course == note.course, pt.number == note.number
        )
        received = (
            sa.select(r.body, r.addressed_her_id)
            .where(r.msg_id == sa.bindparam("msg_id"), r.patient_ref == sa.bindparam("patient_ref"))
            .order_by(r.id)
            .limit(1)
        )
        with self._read() as conn:
            pathway = conn.execute(sa.select(pathways).where(p.id == note.pathway_id)).mappings().first()
            if pathway is None:
                return None
            # The pathway's own patient (keyed hash) too: a MsgId is only unique per sender.
            keys = {"msg_id": pathway["source_msg_id"], "patient_ref": pathway["patient_ref"]}
            source = conn.execute(received, keys).first()
            found = conn.execute(point).first()
        return NoteSource(
            pathway_id=note.pathway_id,
            kommunenummer=pathway["kommunenummer"],
            source_msg_id=pathway["source_msg_id"],
            received_body=bytes(source.body) if source is not None else None,
            addressed_her_id=source.addressed_her_id if source is not None else None,
            point_title=found.title if found is not None else None,
            point_state=found.state if found is not None else None,
            point_changed_at=rows.aware(found.changed_at, "changed_at") if found is not None else None,
            document=pathway["document"],
        )


def _notes(conn: sa.Connection, note_ids: list[int]) -> list[NoteRecord]:
    if not note_ids:
        return []
    table = pathway_notes
    found = conn.execute(sa.select(table).where(table.c.id.in_(note_ids)).order_by(table.c.id))
    return [_record(row) for row in found.mappings()]


def _record(row: sa.RowMapping) -> NoteRecord:
    claimed_at = row["claimed_at"]
    return NoteRecord(
        id=int(row["id"]),
        pathway_id=int(row["pathway_id"]),
        course=int(row["course"]),
        number=int(row["number"]),
        text=row["text"],
        asked_at=rows.aware(row["asked_at"], "asked_at"),
        asked_by=row["asked_by"],
        state=NoteState(row["state"]),
        claimed_by=row["claimed_by"],
        claimed_at=rows.aware(claimed_at, "claimed_at") if claimed_at is not None else None,
        request_ref=row["request_ref"],
        msg_id=row["msg_id"],
        outcome=row["outcome"],
    )
