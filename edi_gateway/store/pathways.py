"""The kommune's pathway worklist in the store: pathways, their points, history, alerts and notes.

One write per change (``save_pathway``), in one transaction:

* the pathway row: inserted for a new patient, else updated under a guarded ``version`` (optimistic
  locking). Two workers or operators changing one pathway at once: the first wins, the second gets
  :class:`PathwayChanged` with nothing written, reloads and tries again;
* its ``pathway_points`` rewritten from the aggregate (a point keeps the time of its last change
  unless this change moved it);
* its new history appended to ``pathway_events`` (rows are inserted, never updated or deleted);
* alerts inserted once (``pathway_alerts``; one already raised is skipped), notes to the fastlege
  inserted ``pending`` (``pathway_notes``), an operator's audit-log entry, and the received message
  that caused the change moved out of ``pending`` (``received_messages.pathway_state``), guarded: a
  message another worker applied first raises :class:`ReceivedNotPending` and nothing is written.

``Store`` inherits this.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from edi_gateway.domain.pathway.document import EventKind, EventRow, PointRow
from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.engine import translate_errors
from edi_gateway.store.operators import NewAuditEntry
from edi_gateway.store.pathway_records import (
    OPEN_POINT_STATES,
    AlertKey,
    NewPathwayNote,
    PathwayChange,
    PathwayChanged,
    PathwayNoteRecord,
    PathwayOpening,
    ReceivedForPathway,
    ReceivedNotPending,
    ReceivedState,
    ReceivedSummary,
    SavedPathway,
    StoredPathway,
    WorklistRow,
)
from edi_gateway.store.tables import (
    audit_log,
    pathway_alerts,
    pathway_events,
    pathway_notes,
    pathway_points,
    pathways,
    received_messages,
)

__all__ = [
    "OPEN_POINT_STATES",
    "AlertKey",
    "NewPathwayNote",
    "PathwayChange",
    "PathwayChanged",
    "PathwayNoteRecord",
    "PathwayOpening",
    "PathwayStore",
    "ReceivedForPathway",
    "ReceivedNotPending",
    "ReceivedState",
    "ReceivedSummary",
    "SavedPathway",
    "StoredPathway",
    "WorklistRow",
]


class PathwayStore(StoreBase):
    """The store's side of the pathway worklist."""

    # -- writes ----------------------------------------------------------------------------------

    def save_pathway(self, change: PathwayChange) -> SavedPathway:
        """Write one change to a pathway (see the module docstring) in one transaction.

        Raises:
            PathwayChanged: the version moved on since ``expected_version``, or another writer opened
                a pathway for the patient first; nothing was written.
            ReceivedNotPending: ``received`` names a message no longer pending; nothing was written.
            ValueError: ``pathway_id`` without ``expected_version``, or neither it nor ``opening``.
            StoreUnavailable: the database cannot be reached.
        """
        with translate_errors():
            try:
                with self._transaction() as conn:
                    return self._save(conn, change)
            except exc.IntegrityError:
                if change.opening is not None and self.pathway_for_patient(change.opening.patient_ref):
                    raise PathwayChanged("a pathway for this patient was opened meanwhile") from None
                raise

    def set_received_state(self, received_id: int, state: ReceivedState) -> bool:
        """Move a received message out of ``pending`` alone (one the worklist ignores); False if not pending.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        with self._write() as conn:
            return _received_moved(conn, received_id, state)

    def raise_pathway_alerts(self, keys: Sequence[AlertKey], *, at: datetime) -> list[AlertKey]:
        """Record each alert not raised before and return those, in the order given.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        if not keys:
            return []
        with self._write() as conn:
            return _insert_alerts(conn, keys, rows.aware(at, "at"))

    # -- reads -----------------------------------------------------------------------------------

    def pending_received(self, *, limit: int = 100) -> list[ReceivedForPathway]:
        """Return received messages still ``pending`` for the worklist, oldest first."""
        r = received_messages.c
        query = (
            sa.select(received_messages)
            .where(r.pathway_state == ReceivedState.PENDING.value)
            .order_by(r.received_at, r.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_received(m) for m in conn.execute(query).mappings()]

    def received_for_patient(self, patient_ref: str) -> list[ReceivedSummary]:
        """Return the messages received about a patient that concern the worklist, oldest first."""
        r = received_messages.c
        query = (
            sa.select(r.msg_id, r.received_at, r.pathway_state)
            .where(r.patient_ref == patient_ref, r.pathway_state.is_not(None))
            .order_by(r.received_at, r.id)
        )
        with self._read() as conn:
            return [ReceivedSummary(m.msg_id, m.received_at, m.pathway_state) for m in conn.execute(query)]

    def get_pathway(self, pathway_id: int) -> StoredPathway | None:
        """Return the pathway with this id, or None."""
        return self._one_pathway(pathways.c.id == pathway_id)

    def pathway_for_patient(self, patient_ref: str) -> StoredPathway | None:
        """Return the patient's pathway (by the keyed hash of the person number), or None."""
        return self._one_pathway(pathways.c.patient_ref == patient_ref)

    def pathways_with_open_points(self, *, after_id: int = 0, limit: int = 200) -> list[StoredPathway]:
        """Return pathways with a planned, due or overdue point, by id after ``after_id`` (paging)."""
        p, pp = pathways.c, pathway_points.c
        open_point = sa.exists().where(pp.pathway_id == p.id, pp.state.in_(OPEN_POINT_STATES))
        query = sa.select(pathways).where(p.id > after_id, open_point).order_by(p.id).limit(limit)
        with self._read() as conn:
            return [_pathway(m) for m in conn.execute(query).mappings()]

    def pathway_worklist(
        self,
        *,
        state: str | None = None,
        assigned_to: str | None = None,
        due_before: date | None = None,
        pathway_id: int | None = None,
    ) -> list[WorklistRow]:
        """Return the points of every pathway's current course, by window start, pathway and number.

        Args:
            state: only points in this state.
            assigned_to: only pathways assigned to this assignee (``role:…`` / ``operator:…``).
            due_before: only points whose window opens before this day.
            pathway_id: only this pathway's points.
        """
        p, pp = pathways.c, pathway_points.c
        current = (
            sa.select(pp.pathway_id, sa.func.max(pp.course).label("course"))
            .group_by(pp.pathway_id)
            .subquery()
        )
        query = (
            sa.select(pathway_points, p.assigned_to, p.patient_masked, p.source_msg_id)
            .join(pathways, p.id == pp.pathway_id)
            .join(current, sa.and_(current.c.pathway_id == pp.pathway_id, current.c.course == pp.course))
            .order_by(pp.due_from, pp.pathway_id, pp.number)
        )
        if state is not None:
            query = query.where(pp.state == state)
        if assigned_to is not None:
            query = query.where(p.assigned_to == assigned_to)
        if due_before is not None:
            query = query.where(pp.due_from < due_before)
        if pathway_id is not None:
            query = query.where(pp.pathway_id == pathway_id)
        with self._read() as conn:
            return [WorklistRow(**dict(m)) for m in conn.execute(query).mappings()]

    def pathway_events_of(self, pathway_id: int) -> list[EventRow]:
        """Return a pathway's history, oldest first."""
        e = pathway_events.c
        query = sa.select(pathway_events).where(e.pathway_id == pathway_id).order_by(e.id)
        with self._read() as conn:
            return [_event(m) for m in conn.execute(query).mappings()]

    def pathway_notes_of(self, pathway_id: int) -> list[PathwayNoteRecord]:
        """Return the notes to the fastlege asked for on a pathway, oldest first."""
        n = pathway_notes.c
        query = sa.select(pathway_notes).where(n.pathway_id == pathway_id).order_by(n.id)
        with self._read() as conn:
            return [_note(m) for m in conn.execute(query).mappings()]

    def pathway_point_counts(self, *, today: date, due_soon_until: date, performer: str) -> dict[str, int]:
        """Count the current points ``performer`` carries out: overdue, due (window open) and due soon.

        Judged by the calendar on ``today`` (as a tick would), not by the stored state alone, so the
        counts are right between two sweeps. Due soon: still planned, window opening by ``due_soon_until``.
        """
        pp = pathway_points.c
        is_open = pp.state.in_(OPEN_POINT_STATES)
        overdue = sa.and_(is_open, pp.due_to.is_not(None), pp.due_to < today)
        due = sa.and_(is_open, sa.not_(overdue), pp.due_from <= today)
        due_soon = sa.and_(is_open, pp.due_from > today, pp.due_from <= due_soon_until)
        counted = {"overdue": overdue, "due": due, "due_soon": due_soon}
        query = sa.select(
            *(sa.func.sum(sa.case((cond, 1), else_=0)).label(name) for name, cond in counted.items())
        ).where(pp.performer == performer)
        with self._read() as conn:
            found = conn.execute(query).mappings().one()
        return {name: int(found[name] or 0) for name in counted}

    # -- helpers ---------------------------------------------------------------------------------

    def _one_pathway(self, where: sa.ColumnElement[bool]) -> StoredPathway | None:
        with self._read() as conn:
            found = conn.execute(sa.select(pathways).where(where)).mappings().first()
        return None if found is None else _pathway(found)

    def _save(self, conn: sa.Connection, change: PathwayChange) -> SavedPathway:
        at = rows.aware(change.at, "at")
        if change.received is not None and not _received_moved(conn, *change.received):
            raise ReceivedNotPending(change.received[0])
        saved = _inserted(conn, change, at) if change.pathway_id is None else _updated(conn, change, at)
        _rewrite_points(conn, saved.id, change, at)
        if change.events:
            conn.execute(pathway_events.insert(), [_event_row(saved.id, e) for e in change.events])
        if change.notes:
            conn.execute(pathway_notes.insert(), [_note_row(saved.id, n, at) for n in change.notes])
        _insert_alerts(conn, [_with_id(k, saved.id) for k in change.alerts], at)
        if change.audit is not None:
            conn.execute(audit_log.insert(), [_audit_row(change.audit, self._now())])
        return saved


def _inserted(conn: sa.Connection, change: PathwayChange, at: datetime) -> SavedPathway:
    opening = change.opening
    if opening is None or change.source_msg_id is None:
        raise ValueError("a new pathway needs its opening columns and source_msg_id")
    taken = conn.execute(
        sa.select(pathways.c.id).where(pathways.c.patient_ref == opening.patient_ref)
    ).first()
    if taken is not None:
        raise PathwayChanged("a pathway for this patient was opened meanwhile")
    values = {
        "patient_ref": opening.patient_ref,
        "patient_masked": opening.patient_masked,
        "receiver_her_id": opening.receiver_her_id,
        "kommunenummer": opening.kommunenummer,
        "model_name": opening.model_name,
        "source_msg_id": change.source_msg_id,
        "assigned_to": change.assigned_to,
        "opened_at": at,
        "updated_at": at,
        "version": 1,
        "document": change.document,
    }
    new_id = conn.execute(pathways.insert().returning(pathways.c.id), [values]).scalar_one()
    return SavedPathway(int(new_id), 1)


def _updated(conn: sa.Connection, change: PathwayChange, at: datetime) -> SavedPathway:
    if change.expected_version is None or change.pathway_id is None:
        raise ValueError("a change to a stored pathway needs expected_version")
    values: dict[str, Any] = {
        "document": change.document,
        "assigned_to": change.assigned_to,
        "updated_at": at,
        "version": change.expected_version + 1,
    }
    if change.source_msg_id is not None:
        values["source_msg_id"] = change.source_msg_id
    moved = conn.execute(
        pathways.update()
        .where(pathways.c.id == change.pathway_id, pathways.c.version == change.expected_version)
        .values(**values)
    ).rowcount
    if moved != 1:
        raise PathwayChanged(f"pathway {change.pathway_id} changed since version {change.expected_version}")
    return SavedPathway(change.pathway_id, change.expected_version + 1)


def _rewrite_points(conn: sa.Connection, pathway_id: int, change: PathwayChange, at: datetime) -> None:
    pp = pathway_points.c
    before = {
        (r.course, r.number): (r.state, r.changed_at)
        for r in conn.execute(
            sa.select(pp.course, pp.number, pp.state, pp.changed_at).where(pp.pathway_id == pathway_id)
        )
    }
    # The time of a point's last move in this change; a point not moved keeps its stored time.
    moved_at = {
        (e.course, e.number): rows.aware(e.at, "event at")
        for e in change.events
        if e.kind is EventKind.POINT and e.course is not None and e.number is not None
    }
    conn.execute(pathway_points.delete().where(pp.pathway_id == pathway_id))
    fresh = []
    for point in change.points:
        key = (point.course, point.number)
        old = before.get(key)
        kept = old[1] if old is not None and old[0] == point.state else None
        changed_at = moved_at.get(key) or kept or at
        fresh.append({"pathway_id": pathway_id, **_point_values(point), "changed_at": changed_at})
    if fresh:
        conn.execute(pathway_points.insert(), fresh)


def _point_values(point: PointRow) -> dict[str, Any]:
    return {
        "course": point.course,
        "number": point.number,
        "title": point.title,
        "performer": point.performer,
        "due_from": point.due_from,
        "due_to": point.due_to,
        "state": point.state,
    }


def _received_moved(conn: sa.Connection, received_id: int, state: ReceivedState) -> bool:
    r = received_messages.c
    return (
        conn.execute(
            received_messages.update()
            .where(r.id == received_id, r.pathway_state == ReceivedState.PENDING.value)
            .values(pathway_state=ReceivedState(state).value)
        ).rowcount
        == 1
    )


def _insert_alerts(conn: sa.Connection, keys: Sequence[AlertKey], at: datetime) -> list[AlertKey]:
    """Insert each alert unless raised before (a racing sweep's copy is skipped, not an error)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    raised = []
    for key in keys:
        values = {"pathway_id": key.pathway_id, "course": key.course, "number": key.number, "kind": key.kind}
        statement = (
            insert(pathway_alerts)
            .values(**values, raised_at=at)
            .on_conflict_do_nothing()
            .returning(pathway_alerts.c.kind)
        )
        # RETURNING, not rowcount: the PostgreSQL driver reports -1 for an INSERT … ON CONFLICT.
        if conn.execute(statement).first() is not None:
            raised.append(key)
    return raised


def _with_id(key: AlertKey, pathway_id: int) -> AlertKey:
    return AlertKey(pathway_id, key.course, key.number, key.kind)


def _event_row(pathway_id: int, event: EventRow) -> dict[str, Any]:
    return {
        "pathway_id": pathway_id,
        "at": rows.aware(event.at, "event at"),
        "actor": event.actor,
        "kind": event.kind.value,
        "course": event.course,
        "number": event.number,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "reason": event.reason,
        "details": event.details,
    }


def _note_row(pathway_id: int, note: NewPathwayNote, at: datetime) -> dict[str, Any]:
    return {
        "pathway_id": pathway_id,
        "course": note.course,
        "number": note.number,
        "text": note.text,
        "asked_at": at,
        "asked_by": note.asked_by,
        "state": "pending",
    }


def _audit_row(entry: NewAuditEntry, at: datetime) -> dict[str, Any]:
    return {
        "at": at,
        "username": entry.username,
        "action": entry.action,
        "msg_id": entry.msg_id,
        "request_ref": None,
        "patient_ref": entry.patient_ref,
        "reason": entry.reason,
        "details": dict(entry.details) if entry.details is not None else None,
    }


def _received(m: sa.RowMapping) -> ReceivedForPathway:
    return ReceivedForPathway(
        id=int(m["id"]),
        msg_id=m["msg_id"],
        sender_her_id=int(m["sender_her_id"]),
        receiver_her_id=int(m["receiver_her_id"]),
        addressed_her_id=m["addressed_her_id"],
        received_at=m["received_at"],
        patient_ref=m["patient_ref"],
        patient_masked=m["patient_masked"],
        body=bytes(m["body"]),
    )


def _pathway(m: sa.RowMapping) -> StoredPathway:
    return StoredPathway(**{k: m[k] for k in _PATHWAY_FIELDS})


_PATHWAY_FIELDS = tuple(StoredPathway.__dataclass_fields__)


def _event(m: sa.RowMapping) -> EventRow:
    return EventRow(
        at=m["at"],
        actor=m["actor"],
        kind=EventKind(m["kind"]),
        course=m["course"],
        number=m["number"],
        from_state=m["from_state"],
        to_state=m["to_state"],
        reason=m["reason"],
        details=m["details"],
    )


def _note(m: sa.RowMapping) -> PathwayNoteRecord:
    return PathwayNoteRecord(
        id=int(m["id"]),
        course=m["course"],
        number=m["number"],
        text=m["text"],
        asked_at=m["asked_at"],
        asked_by=m["asked_by"],
        state=m["state"],
        msg_id=m["msg_id"],
        outcome=m["outcome"],
    )
