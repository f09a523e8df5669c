"""The store's API: batched writes and the look-ups the use cases need, on SQLite or PostgreSQL.

Synchronous and thread-safe: every call takes a connection from the engine's pool for its own
transaction. Writes are batched (one transaction per batch of outcomes or transitions) because the
commit, not the statement, is what costs on both databases. Requests and messages live here; the
AppRec side (stored AppRecs, parked documents, receiver health) in ``acks.py``, which ``Store``
inherits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import exc

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.overdue import PendingMessage
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.store import rows
from edi_gateway.store.acks import AcknowledgementStore
from edi_gateway.store.actions import ActionStore
from edi_gateway.store.base import Clock, utc_now
from edi_gateway.store.delivery import DeliveryStore
from edi_gateway.store.engine import create_store_engine, translate_errors
from edi_gateway.store.errors import DuplicateRequest, MessageNotFound
from edi_gateway.store.leases import LeaseStore
from edi_gateway.store.lookups import by_asked, chunks, spellings
from edi_gateway.store.moves import apply_transitions, lock_messages
from edi_gateway.store.notes import NoteStore
from edi_gateway.store.operators import OperatorStore
from edi_gateway.store.parked import ParkedStore
from edi_gateway.store.pathways import PathwayStore
from edi_gateway.store.pilot import PilotStore
from edi_gateway.store.queries import QueryStore
from edi_gateway.store.received import ReceivedStore
from edi_gateway.store.records import (
    EventRecord,
    MessageRecord,
    RequestOutcome,
    RequestRecord,
    Transition,
)
from edi_gateway.store.tables import events, messages, requests

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x6564695F6777  # "edi_gw": any constant unique to this application


class Store(
    QueryStore,
    OperatorStore,
    AcknowledgementStore,
    ParkedStore,
    DeliveryStore,
    LeaseStore,
    ActionStore,
    NoteStore,
    PathwayStore,
    ReceivedStore,
    PilotStore,
):
    """Requests, messages and their event history; AppRecs, parked documents and receiver health.

    Build it with ``Store.connect(url)``; call ``migrate()`` once at set-up.
    """

    @classmethod
    def connect(cls, url: str, *, clock: Clock = utc_now) -> Store:
        """Create a store for a SQLAlchemy URL; no connection is opened until the first call.

        Args:
            url: ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``.
            clock: source of "now" (timezone-aware); tests pass a fixed one.
        """
        return cls(create_store_engine(url), clock=clock)

    @property
    def dialect_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- life cycle ------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision; a no-op when it is there already.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                # Several workers may start at once; one migrates, the others then find head.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            # env.py runs on this connection, so SQLite gets the same pragmas as everything else.
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def ping(self) -> None:
        """Check that the database answers.

        Raises:
            StoreUnavailable: it does not.
        """
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))

    # -- writes ----------------------------------------------------------------------------------

    def save_outcomes(self, outcomes: Sequence[RequestOutcome], *, actor: str) -> None:
        """Store a batch of new requests with their messages and first events, in one transaction.

        Each request gets the events ``None → received`` and (unless it stays there) ``received →``
        its state; each message is stored ``queued`` with the event ``None → queued``.

        Raises:
            DuplicateRequest: a request_id is already stored; nothing of the batch was written.
            ValueError: the batch names one request_id twice, or a datetime is naive.
            StoreUnavailable: the database cannot be reached.
        """
        if not outcomes:
            return
        request_ids = _unique_request_ids(outcomes)
        now = self._now()
        request_rows, message_rows, event_rows = rows.outcome_rows(outcomes, now=now, actor=actor)
        with translate_errors():
            try:
                with self._transaction() as conn:
                    already = _existing_request_ids(conn, request_ids)
                    if already:
                        raise DuplicateRequest(already)
                    conn.execute(requests.insert(), request_rows)
                    if message_rows:
                        conn.execute(messages.insert(), message_rows)
                    conn.execute(events.insert(), event_rows)
            except exc.IntegrityError:
                # Another worker may have stored one of these request_ids between check and insert.
                with self._engine.connect() as conn:
                    raced = _existing_request_ids(conn, request_ids)
                if raced:
                    raise DuplicateRequest(raced) from None
                raise

    def transition_messages(self, changes: Sequence[Transition], *, actor: str) -> list[str]:
        """Apply the allowed state changes of a batch in one transaction; return the msg_ids changed.

        A change applies when ``can_transition(current, to_state)`` holds and, if ``expected_from``
        is given, the message is in exactly that state; others (and unknown msg_ids) are skipped.
        Each applied change writes an event row; reaching ``sent`` sets ``sent_at`` (and
        ``first_sent_at`` the first time only); ``count_attempt`` adds one to ``attempts`` and
        ``count_resend`` one to ``resends``. Two workers racing on one message: one wins.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        if not changes:
            return []
        now = self._now()
        with self._write() as conn:
            locked = lock_messages(conn, {c.msg_id for c in changes})
            return apply_transitions(conn, changes, locked, now=now, actor=actor)

    def record_message_event(
        self, msg_id: str, *, actor: str, reason: str, details: dict[str, Any] | None = None
    ) -> None:
        """Add an event to a message's history without changing its state (e.g. a publish attempt).

        The event has no ``from_state``; its ``to_state`` is the state the message is in.

        Raises:
            MessageNotFound: no message has this msg_id.
            StoreUnavailable: the database cannot be reached.
        """
        with self._write() as conn:
            found = conn.execute(
                sa.select(messages.c.state, messages.c.request_ref).where(messages.c.msg_id == msg_id)
            ).first()
            if found is None:
                raise MessageNotFound(msg_id)
            conn.execute(
                events.insert(),
                [
                    rows.event_row(
                        request_ref=found.request_ref,
                        msg_id=msg_id,
                        from_state=None,
                        to_state=found.state,
                        at=self._now(),
                        actor=actor,
                        reason=reason,
                        details=details,
                    )
                ],
            )

    # -- reads -----------------------------------------------------------------------------------

    def get_request(self, request_id: str) -> RequestRecord | None:
        """Return the request with this EPR request_id, or None."""
        return self._one_request(requests.c.request_id == request_id)

    def get_request_by_ref(self, ref: str) -> RequestRecord | None:
        """Return the request with this internal ref, or None."""
        return self._one_request(requests.c.ref == ref)

    def get_request_by_amqp_message_id(self, message_id: str) -> RequestRecord | None:
        """Return the request that arrived with this AMQP message_id (one without a usable request_id)."""
        return self._one_request(requests.c.amqp_message_id == message_id)

    def get_requests(self, request_ids: Collection[str]) -> dict[str, RequestRecord]:
        """Return the stored requests among ``request_ids``, keyed by request_id; one query per 500 ids.

        The worker's idempotency check asks once per batch instead of once per request.
        """
        found: dict[str, RequestRecord] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(request_ids))):
                query = sa.select(requests).where(requests.c.request_id.in_(chunk))
                found.update({r.request_id: rows.request_record(r) for r in conn.execute(query)})
        return found

    def get_message(self, msg_id: str) -> MessageRecord | None:
        """Return the message with this msg_id, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(messages).where(messages.c.msg_id == msg_id)).first()
        return rows.message_record(row) if row is not None else None

    def get_messages(self, msg_ids: Collection[str]) -> dict[str, MessageRecord]:
        """Return the stored message under each of ``msg_ids`` that has one, keyed by the id as asked.

        Ids match when they are equal after trimming, regardless of case (as ``decide`` compares
        an AppRec's ``OriginalMsgId``); the record carries the msg_id as stored. One query per 500 ids.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        found: dict[str, MessageRecord] = {}
        with self._read() as conn:
            for chunk in chunks(spellings(msg_ids)):
                query = sa.select(messages).where(messages.c.msg_id.in_(chunk))
                found.update({r.msg_id: rows.message_record(r) for r in conn.execute(query)})
        return by_asked(msg_ids, found)

    def request_ids_of(self, msg_ids: Collection[str]) -> dict[str, str]:
        """Return the EPR request_id of each stored message that has one, by msg_id as stored.

        One query per 500 ids (status events name the request; the AppRec batch needs them all).

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        found: dict[str, str] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(msg_ids))):
                query = (
                    sa.select(messages.c.msg_id, requests.c.request_id)
                    .join(requests, requests.c.ref == messages.c.request_ref)
                    .where(messages.c.msg_id.in_(chunk), requests.c.request_id.is_not(None))
                )
                found.update({r.msg_id: r.request_id for r in conn.execute(query)})
        return found

    def messages_for_request(self, request_ref: str) -> list[MessageRecord]:
        """Return a request's messages, oldest first; of one batch, the kommune's before the fastlege's."""
        kommune_first = sa.case((messages.c.receiver_kind == ReceiverKind.KOMMUNE.value, 0), else_=1)
        query = (
            sa.select(messages)
            .where(messages.c.request_ref == request_ref)
            .order_by(messages.c.created_at, kommune_first, messages.c.receiver_her_id, messages.c.msg_id)
        )
        return self._messages(query)

    def messages_in_state(
        self, states: Collection[MessageState], *, older_than: datetime | None = None, limit: int = 1000
    ) -> list[MessageRecord]:
        """Return messages in any of ``states``, longest unchanged first.

        Args:
            states: the states wanted.
            older_than: only messages whose last state change (``updated_at``) is before this instant.
            limit: at most this many.
        """
        if not states:
            return []
        query = sa.select(messages).where(messages.c.state.in_([MessageState(s).value for s in states]))
        if older_than is not None:
            query = query.where(messages.c.updated_at < rows.aware(older_than, "older_than"))
        return self._messages(query.order_by(messages.c.updated_at, messages.c.msg_id).limit(limit))

    def messages_for_overdue(
        self,
        *,
        states: Collection[MessageState] = (MessageState.SENT,),
        first_sent_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 1000,
    ) -> list[MessageRecord]:
        """Return whole messages waiting for an AppRec (signed bytes too), by first send, oldest first.

        Messages never confirmed sent (no ``first_sent_at``) are not listed. The overdue sweep reads
        the lean ``pending_for_overdue`` instead. A resent message stays in ``sent`` with the same
        first send, so a reader of more than ``limit`` messages pages on with ``after`` instead of
        asking for the first page again.

        Args:
            states: the states wanted (``sent``; ``overdue`` too when a report wants them).
            first_sent_before: only messages first sent before this instant (nothing younger can be due).
            after: ``(first_sent_at, msg_id)`` of the last message of the previous page.
            limit: at most this many.
        """
        if not states:
            return []
        first_sent = messages.c.first_sent_at
        query = sa.select(messages).where(
            messages.c.state.in_([MessageState(s).value for s in states]), first_sent.is_not(None)
        )
        if first_sent_before is not None:
            query = query.where(first_sent < rows.aware(first_sent_before, "first_sent_before"))
        if after is not None:
            at = rows.aware(after[0], "after")
            query = query.where(
                sa.or_(first_sent > at, sa.and_(first_sent == at, messages.c.msg_id > after[1]))
            )
        return self._messages(query.order_by(first_sent, messages.c.msg_id).limit(limit))

    def pending_for_overdue(
        self, *, first_sent_by: datetime, after: tuple[datetime, str] | None = None, limit: int = 500
    ) -> list[PendingMessage]:
        """Return what the overdue sweep judges of each ``sent`` message, by first send, oldest first.

        Only the columns ``domain.overdue.overdue_actions`` reads, never the signed bytes: the sweep
        reads every page of these and loads whole rows only for the messages it acts on. A sent
        message without a ``sent_at`` (none should lack it) counts as sent when it last changed.

        Args:
            first_sent_by: only messages first sent at or before this instant
                (``domain.overdue.sweep_cutoff``: nothing younger is due).
            after: ``(first_sent_at, msg_id)`` of the last message of the previous page.
            limit: at most this many.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        m = messages.c
        query = sa.select(m.msg_id, m.state, m.sent_at, m.updated_at, m.first_sent_at, m.resends).where(
            m.state == MessageState.SENT.value,
            m.first_sent_at.is_not(None),
            m.first_sent_at <= rows.aware(first_sent_by, "first_sent_by"),
        )
        if after is not None:
            at = rows.aware(after[0], "after")
            query = query.where(
                sa.or_(m.first_sent_at > at, sa.and_(m.first_sent_at == at, m.msg_id > after[1]))
            )
        query = query.order_by(m.first_sent_at, m.msg_id).limit(limit)
        with self._read() as conn:
            return [
                PendingMessage(
                    r.msg_id, MessageState(r.state), r.sent_at or r.updated_at, r.first_sent_at, r.resends
                )
                for r in conn.execute(query)
            ]

    def events_for_request(self, request_ref: str) -> list[EventRecord]:
        """Return the events of a request and of its messages, in time order."""
        return self._events(events.c.request_ref == request_ref)

    def events_for_message(self, msg_id: str) -> list[EventRecord]:
        """Return the events of one message, in time order."""
        return self._events(events.c.msg_id == msg_id)

    def count_requests(self, state: RequestState | None = None) -> int:
        """Return how many requests are stored (in ``state``, when given)."""
        query = sa.select(sa.func.count()).select_from(requests)
        if state is not None:
            query = query.where(requests.c.state == RequestState(state).value)
        return self._scalar_int(query)

    def count_messages(self, state: MessageState | str | None = None) -> int:
        """Return how many messages are stored (in ``state``, when given)."""
        query = sa.select(sa.func.count()).select_from(messages)
        if state is not None:
            query = query.where(messages.c.state == MessageState(state).value)
        return self._scalar_int(query)

    # -- helpers ---------------------------------------------------------------------------------

    def _one_request(self, where: sa.ColumnElement[bool]) -> RequestRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(requests).where(where)).first()
        return rows.request_record(row) if row is not None else None

    def _messages(self, query: sa.Select[Any]) -> list[MessageRecord]:
        with self._read() as conn:
            return [rows.message_record(r) for r in conn.execute(query)]

    def _events(self, where: sa.ColumnElement[bool]) -> list[EventRecord]:
        query = sa.select(events).where(where).order_by(events.c.at, events.c.id)
        with self._read() as conn:
            return [rows.event_record(r) for r in conn.execute(query)]


def _unique_request_ids(outcomes: Sequence[RequestOutcome]) -> list[str]:
    ids = [o.request.request_id for o in outcomes if o.request.request_id is not None]
    twice = sorted(i for i, n in Counter(ids).items() if n > 1)
    if twice:
        raise ValueError(f"the batch names request_id(s) more than once: {', '.join(twice)}")
    return ids


def _existing_request_ids(conn: sa.Connection, request_ids: Sequence[str]) -> list[str]:
    if not request_ids:
        return []
    query = sa.select(requests.c.request_id).where(requests.c.request_id.in_(request_ids))
    return [r for r in conn.execute(query).scalars() if r is not None]
