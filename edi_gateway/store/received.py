"""Business documents received on our inbox, each stored with the one AppRec that answers it.

The receiving path stores a verified document *before* its AppRec leaves, together with that AppRec
(signed bytes and id). So a redelivery of the document, after a crash or a requeue, finds the row:
it sends the stored AppRec if it had not gone out yet, and nothing if it had: never a second AppRec
with another id. ``apprec_sent_at`` is set once the transport accepted the AppRec; a crash between
the two sends the same AppRec (same id) again, which a receiver recognises as a copy.

The key is the sender's HER-id and its MsgId (unique), written only for documents whose signature
verified against the claimed sender's certificate: a forged copy can never take a genuine message's
place. ``Store`` inherits this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.lookups import chunks
from edi_gateway.store.records import NewParked
from edi_gateway.store.tables import parked, received_messages


@dataclass(frozen=True, slots=True)
class NewReceived:
    """A verified document and the AppRec that answers it, to be stored before the AppRec is sent.

    Attributes:
        msg_id: the sender's MsgId (a UUID).
        sender_her_id: the sending virksomhet (verified).
        receiver_her_id: our virksomhet the document is addressed to.
        addressed_her_id: the service or person within it, if any.
        body: the signed document as received (holds patient data).
        patient_ref: keyed hash of the person number; patient_masked: the number masked.
        apprec_status: kodeverk 8258 (1 OK, 2 Avvist, 3 OK feil i delmelding).
        apprec_errors: ``[{"code": …, "text": …}]`` (kodeverk 8221).
        pathway_state: ``pending`` when a pathway should be opened or continued from it, else None.
        thread_msg_id: the message of ours it answers (ConversationRef), if we sent that message.
    """

    msg_id: str
    sender_her_id: int
    receiver_her_id: int
    addressed_her_id: int | None
    msg_type: str
    conversation_ref: str | None
    received_at: datetime
    body: bytes = field(repr=False)
    patient_ref: str | None
    patient_masked: str | None
    apprec_id: str
    apprec_status: int
    apprec_errors: list[dict[str, str]]
    apprec_body: bytes = field(repr=False)
    pathway_state: str | None = None
    thread_msg_id: str | None = None
    transport_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReceivedRecord:
    """A stored received document (``body`` and ``apprec_body`` hold what was received and sent)."""

    id: int
    msg_id: str
    sender_her_id: int
    receiver_her_id: int
    addressed_her_id: int | None
    msg_type: str
    conversation_ref: str | None
    received_at: datetime
    body: bytes = field(repr=False)
    patient_ref: str | None
    patient_masked: str | None
    apprec_id: str
    apprec_status: int
    apprec_errors: list[dict[str, str]]
    apprec_body: bytes = field(repr=False)
    apprec_sent_at: datetime | None
    announced_at: datetime | None
    pathway_state: str | None
    thread_msg_id: str | None
    transport_id: str | None

    @property
    def key(self) -> tuple[int, str]:
        """The sender's HER-id and its MsgId: what makes a document the same document."""
        return self.sender_her_id, self.msg_id


def _record(row: sa.Row[Any]) -> ReceivedRecord:
    m = row._mapping
    return ReceivedRecord(
        id=int(m["id"]),
        msg_id=m["msg_id"],
        sender_her_id=int(m["sender_her_id"]),
        receiver_her_id=int(m["receiver_her_id"]),
        addressed_her_id=m["addressed_her_id"],
        msg_type=m["msg_type"],
        conversation_ref=m["conversation_ref"],
        received_at=m["received_at"],
        body=bytes(m["body"]),
        patient_ref=m["patient_ref"],
        patient_masked=m["patient_masked"],
        apprec_id=m["apprec_id"],
        apprec_status=int(m["apprec_status"]),
        apprec_errors=list(m["apprec_errors"]),
        apprec_body=bytes(m["apprec_body"]),
        apprec_sent_at=m["apprec_sent_at"],
        announced_at=m["announced_at"],
        pathway_state=m["pathway_state"],
        thread_msg_id=m["thread_msg_id"],
        transport_id=m["transport_id"],
    )


def _values(new: NewReceived) -> dict[str, Any]:
    return {name: getattr(new, name) for name in NewReceived.__dataclass_fields__}


class ReceivedStore(StoreBase):
    """Received documents and the AppRecs that answer them."""

    def received_by_keys(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], ReceivedRecord]:
        """Return the stored documents among ``keys`` (sender HER-id, MsgId), by key."""
        found: dict[tuple[int, str], ReceivedRecord] = {}
        if not keys:
            return found
        t = received_messages
        with self._read() as conn:
            for part in chunks(list(dict.fromkeys(keys)), 200):
                wanted = sa.tuple_(t.c.sender_her_id, t.c.msg_id).in_(part)
                for row in conn.execute(sa.select(t).where(wanted)):
                    record = _record(row)
                    found[record.key] = record
        return found

    def add_received(self, new: Sequence[NewReceived]) -> list[ReceivedRecord | None]:
        """Store documents in one transaction; one result per document, in order.

        Returns:
            The stored record, or None for a document another worker stored first (same sender and
            MsgId): the caller treats it as a duplicate delivery.
        """
        if not new:
            return []
        try:
            with self._write() as conn:
                return [self._insert(conn, n) for n in new]
        except exc.IntegrityError:
            pass  # a racing worker stored one of them: store the rest one by one
        results: list[ReceivedRecord | None] = []
        for one in new:
            try:
                with self._write() as conn:
                    results.append(self._insert(conn, one))
            except exc.IntegrityError:
                results.append(None)
        return results

    def _insert(self, conn: sa.Connection, new: NewReceived) -> ReceivedRecord:
        inserted = conn.execute(
            sa.insert(received_messages).values(**_values(new)).returning(received_messages)
        )
        return _record(inserted.one())

    def mark_apprecs_sent(self, received_ids: Sequence[int]) -> None:
        """Record that the AppRecs of these documents were accepted by the transport."""
        if received_ids:
            t = received_messages
            with self._write() as conn:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id.in_(list(received_ids)), t.c.apprec_sent_at.is_(None))
                    .values(apprec_sent_at=self._now())
                )

    def unsent_apprecs(self, received_before: datetime, *, limit: int = 100) -> list[ReceivedRecord]:
        """Documents received before ``received_before`` whose AppRec has not gone out, oldest first."""
        t = received_messages
        query = (
            sa.select(t)
            .where(t.c.apprec_sent_at.is_(None), t.c.received_at < received_before)
            .order_by(t.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def mark_announced(self, received_ids: Sequence[int]) -> None:
        """Record that the ``edi.inbound`` events of these documents were confirmed by the broker."""
        if received_ids:
            t = received_messages
            with self._write() as conn:
                conn.execute(
                    sa.update(t).where(t.c.id.in_(list(received_ids))).values(announced_at=self._now())
                )

    def unannounced(self, received_before: datetime, *, limit: int = 100) -> list[ReceivedRecord]:
        """Accepted documents received before ``received_before`` not yet announced on ``edi.inbound``."""
        t = received_messages
        query = (
            sa.select(t)
            .where(t.c.announced_at.is_(None), t.c.apprec_status != 2, t.c.received_at < received_before)
            .order_by(t.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def park_documents(self, documents: Sequence[NewParked]) -> None:
        """Set documents aside for an operator (untrusted or unreadable messages), in one transaction."""
        if documents:
            with self._write() as conn:
                conn.execute(sa.insert(parked), [rows.parked_row(d) for d in documents])

    def received(self, received_id: int) -> ReceivedRecord | None:
        """One stored document by its row id."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(received_messages).where(received_messages.c.id == received_id)
            ).first()
        return _record(row) if row is not None else None

    def received_list(self, *, limit: int = 100) -> list[ReceivedRecord]:
        """The latest received documents, newest first."""
        t = received_messages
        with self._read() as conn:
            return [_record(r) for r in conn.execute(sa.select(t).order_by(t.c.id.desc()).limit(limit))]

    def received_page(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        sender_her_id: int | None = None,
        pathway_state: str | None = None,
        apprec_status: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[ReceivedRecord], int]:
        """Return one page of received documents, newest first, and how many match in all.

        A filter left None matches everything; ``since`` is inclusive, ``until`` exclusive.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        t = received_messages
        where = _page_conditions(since, until, sender_her_id, pathway_state, apprec_status)
        query = (
            sa.select(t)
            .where(*where)
            .order_by(t.c.received_at.desc(), t.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(t).where(*where)
        with self._read() as conn:
            found = [_record(r) for r in conn.execute(query)]
            total = int(conn.execute(count).scalar_one())
        return found, total

    def replies_to(self, msg_id: str) -> list[ReceivedRecord]:
        """Documents received that answer our message ``msg_id`` (its thread), oldest first."""
        t = received_messages
        query = sa.select(t).where(t.c.thread_msg_id == msg_id).order_by(t.c.id)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]


def _page_conditions(
    since: datetime | None,
    until: datetime | None,
    sender_her_id: int | None,
    pathway_state: str | None,
    apprec_status: int | None,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of ``received_page`` (None: no condition on that column)."""
    t = received_messages.c
    where: list[sa.ColumnElement[bool]] = []
    if since is not None:
        where.append(t.received_at >= since)
    if until is not None:
        where.append(t.received_at < until)
    if sender_her_id is not None:
        where.append(t.sender_her_id == sender_her_id)
    if pathway_state is not None:
        where.append(t.pathway_state == pathway_state)
    if apprec_status is not None:
        where.append(t.apprec_status == apprec_status)
    return where
