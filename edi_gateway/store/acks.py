"""AppRec tracking in the store: the acknowledgement batch, stored AppRecs, parked documents, receiver health.

The acknowledgement service reads what ``domain.acks.decide`` needs in one query per kind
(``Store.get_messages``, ``known_apprecs``), decides every AppRec of a batch, and writes the whole
batch with ``save_acknowledgements`` in one transaction. ``Store`` inherits these methods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from edi_gateway.domain.acks import KnownAppRec
from edi_gateway.domain.overdue import ReceiverHealth
from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.engine import translate_errors
from edi_gateway.store.errors import DuplicateAppRec, StoreDefect
from edi_gateway.store.lookups import by_asked, chunks, normalised, spellings
from edi_gateway.store.moves import apply_transitions, lock_messages
from edi_gateway.store.records import (
    AppRecRecord,
    NewAppRec,
    NewParked,
    Transition,
)
from edi_gateway.store.tables import apprecs, parked, receiver_health


class AcknowledgementStore(StoreBase):
    """The store's methods for incoming AppRecs, parked documents and receiver health."""

    # -- writes ----------------------------------------------------------------------------------

    def save_acknowledgements(
        self,
        *,
        apprecs: Sequence[NewAppRec],
        parked: Sequence[NewParked],
        transitions: Sequence[Transition],
        health: Sequence[ReceiverHealth],
        actor: str,
    ) -> list[str]:
        """Write everything a batch of AppRecs decided, in one transaction; return the msg_ids changed.

        The messages named by ``transitions`` and ``apprecs`` are locked first; then the transitions
        apply exactly as ``transition_messages`` applies them (allowed ones only, one event each,
        ``sent_at``/``first_sent_at``/``attempts``/``resends`` kept), the AppRecs and parked
        documents are inserted, and the receivers' health is upserted (the last value per HER-id
        wins). Any failure writes nothing. The overdue sweep may use it too, with no AppRecs.

        Args:
            apprecs: AppRecs that answer stored messages (``AckDecision.record``), each id once.
            parked: documents set aside for an operator.
            transitions: the message state changes the AppRecs cause.
            health: the new health of the receivers concerned.
            actor: who does it, for the event rows (``worker:<hostname>``).

        Raises:
            DuplicateAppRec: an AppRec id is stored already (a racing worker); retry the batch.
            ValueError: the batch names an AppRec id twice, an id is too long, or a datetime is naive.
            StoreDefect: the database refused a row (e.g. an AppRec for a msg_id that is not stored).
            StoreUnavailable: the database cannot be reached.
        """
        batch = _Batch.of(apprecs, parked, health, now=self._now())
        if batch.empty and not transitions:
            return []
        with translate_errors():
            try:
                with self._transaction() as conn:
                    return self._save_batch(conn, batch, transitions, actor)
            except exc.IntegrityError:
                # A racing worker may have stored one of these AppRecs between check and insert.
                with self._engine.connect() as conn:
                    raced = _known(conn, batch.apprec_ids)
                if raced:
                    raise DuplicateAppRec(raced) from None
                raise

    def resolve_parked(self, parked_id: int, *, by: str, resolution: str) -> bool:
        """Mark a parked document resolved by an operator; return False if it is unknown or resolved already.

        Args:
            parked_id: ``ParkedRecord.id``.
            by: the operator's name.
            resolution: what was done or decided, in plain language (no personal data).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        query = (
            parked.update()
            .where(parked.c.id == parked_id, parked.c.resolved_at.is_(None))
            .values(resolved_at=self._now(), resolved_by=by, resolution=resolution)
        )
        with self._write() as conn:
            return conn.execute(query).rowcount == 1

    # -- reads -----------------------------------------------------------------------------------

    def known_apprecs(self, apprec_ids: Collection[str]) -> dict[str, KnownAppRec]:
        """Return the stored AppRec under each of ``apprec_ids`` that has one, keyed by the id as asked.

        Ids match when they are equal after trimming, regardless of case (as ``decide`` compares
        them); the ``KnownAppRec`` carries the id as stored. One query per 500 ids.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        with self._read() as conn:
            return _known(conn, apprec_ids)

    def apprecs_for_message(self, msg_id: str) -> list[AppRecRecord]:
        """Return the AppRecs stored for a message, in the order they were received."""
        query = (
            sa.select(apprecs).where(apprecs.c.msg_id == msg_id).order_by(apprecs.c.received_at, apprecs.c.id)
        )
        with self._read() as conn:
            return [rows.apprec_record(r) for r in conn.execute(query)]

    def receiver_health(self, her_ids: Collection[int]) -> dict[int, ReceiverHealth]:
        """Return the stored health of each receiver HER-id that has one (a receiver never stored is absent).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        found: dict[int, ReceiverHealth] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(her_ids))):
                query = sa.select(receiver_health).where(receiver_health.c.her_id.in_(chunk))
                found.update({r.her_id: rows.health_value(r) for r in conn.execute(query)})
        return found

    # -- helpers ---------------------------------------------------------------------------------

    def _save_batch(
        self, conn: sa.Connection, batch: _Batch, transitions: Sequence[Transition], actor: str
    ) -> list[str]:
        # Lock before inserting: an AppRec row share-locks its message, and share locks taken in
        # batch order could deadlock against another worker's locks taken in msg_id order.
        locked = lock_messages(conn, {t.msg_id for t in transitions} | batch.apprec_msg_ids)
        already = _known(conn, batch.apprec_ids)
        if already:
            raise DuplicateAppRec(already)
        changed = apply_transitions(conn, transitions, locked, now=batch.now, actor=actor)
        if batch.apprec_rows:
            conn.execute(apprecs.insert(), batch.apprec_rows)
        if batch.parked_rows:
            conn.execute(parked.insert(), batch.parked_rows)
        if batch.health_rows:
            conn.execute(_upsert_health(conn.dialect.name), batch.health_rows)
        return changed


class _Batch:
    """The rows of an acknowledgement batch, converted (and so checked) before a connection is taken."""

    def __init__(
        self,
        now: datetime,
        apprec_rows: list[dict[str, Any]],
        parked_rows: list[dict[str, Any]],
        health_rows: list[dict[str, Any]],
    ) -> None:
        self.now = now
        self.apprec_rows = apprec_rows
        self.parked_rows = parked_rows
        self.health_rows = health_rows
        self.apprec_ids: list[str] = [r["apprec_id"] for r in apprec_rows]
        self.apprec_msg_ids: set[str] = {r["msg_id"] for r in apprec_rows}

    @classmethod
    def of(
        cls,
        apprecs: Sequence[NewAppRec],
        parked: Sequence[NewParked],
        health: Sequence[ReceiverHealth],
        *,
        now: datetime,
    ) -> _Batch:
        """Convert a batch; raises ValueError for an AppRec id given twice, a bad id or a naive datetime."""
        twice = sorted(i for i, n in Counter(normalised(a.apprec_id) for a in apprecs).items() if n > 1)
        if twice:
            raise ValueError(f"the batch names AppRec id(s) more than once: {', '.join(twice)}")
        return cls(
            now,
            [rows.apprec_row(a) for a in apprecs],
            [rows.parked_row(p) for p in parked],
            rows.health_rows(health, now),
        )

    @property
    def empty(self) -> bool:
        """Whether there is no row to write."""
        return not (self.apprec_rows or self.parked_rows or self.health_rows)


def _known(conn: sa.Connection, apprec_ids: Collection[str]) -> dict[str, KnownAppRec]:
    found: dict[str, KnownAppRec] = {}
    for chunk in chunks(spellings(apprec_ids)):
        query = sa.select(apprecs.c.apprec_id, apprecs.c.fingerprint).where(apprecs.c.apprec_id.in_(chunk))
        found.update({r.apprec_id: KnownAppRec(r.apprec_id, r.fingerprint) for r in conn.execute(query)})
    return by_asked(apprec_ids, found)


_HEALTH_VALUES = ("consecutive_overdue", "quiet", "updated_at")


def _upsert_health(dialect_name: str) -> sa.Executable:
    """Return an INSERT that updates the row instead when the HER-id is stored already.

    Both databases spell it ``ON CONFLICT (her_id) DO UPDATE``, but SQLAlchemy builds it per dialect.
    """
    if dialect_name == "postgresql":
        pg = postgresql.insert(receiver_health)
        return pg.on_conflict_do_update(
            index_elements=[receiver_health.c.her_id], set_={c: pg.excluded[c] for c in _HEALTH_VALUES}
        )
    if dialect_name == "sqlite":
        lite = sqlite.insert(receiver_health)
        return lite.on_conflict_do_update(
            index_elements=[receiver_health.c.her_id], set_={c: lite.excluded[c] for c in _HEALTH_VALUES}
        )
    raise StoreDefect(f"receiver health cannot be stored on {dialect_name}")
