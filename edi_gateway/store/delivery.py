"""NHN's delivery state of sent messages: which ones to ask about, and what the answer changes.

The message service tells, per sent message, whether the receiver's system has taken it
(``Acknowledged``), could not be reached (``Rejected``), or not yet (``Unconfirmed``). The worker's
status poll writes each new state once: a guarded update (so two workers polling at once record it
once) and an event on the message's timeline; ``Rejected`` also moves a ``sent`` message to ``failed``.
``Store`` inherits these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from edi_gateway.domain.states import MessageState
from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.moves import apply_transitions, lock_messages
from edi_gateway.store.records import MessageRecord, Transition
from edi_gateway.store.tables import events, messages

FINAL_TRANSPORT_STATES = ("Acknowledged", "Rejected")
"""Delivery states that do not change any more: the poll stops asking."""


@dataclass(frozen=True, slots=True)
class TransportStateChange:
    """A delivery state the message service reported for one message.

    Attributes:
        msg_id: our MsgId.
        seen: the state we had recorded before asking (None before the first answer).
        state: the state the service reports now.
        reason: the words for the timeline.
    """

    msg_id: str
    seen: str | None
    state: str
    reason: str


class DeliveryStore(StoreBase):
    """The store's side of the delivery-status poll."""

    def messages_awaiting_delivery(self, *, transport: str, limit: int = 100) -> list[MessageRecord]:
        """Sent messages the transport has an id for and has not yet reported delivered or rejected.

        Oldest first, so a long backlog is worked through in order.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        pending = sa.or_(
            messages.c.transport_state.is_(None), messages.c.transport_state.not_in(FINAL_TRANSPORT_STATES)
        )
        query = (
            sa.select(messages)
            .where(messages.c.transport == transport, messages.c.transport_id.is_not(None), pending)
            .where(messages.c.state != MessageState.QUEUED.value)
            .order_by(messages.c.sent_at, messages.c.msg_id)
            .limit(limit)
        )
        with self._read() as conn:
            return [rows.message_record(r) for r in conn.execute(query)]

    def record_transport_states(self, changes: Sequence[TransportStateChange], *, actor: str) -> list[str]:
        """Record each new delivery state once, in one transaction; return the msg_ids recorded.

        A change applies only while the stored state is still ``seen`` (another worker may have
        recorded it first). ``Rejected`` moves a ``sent`` message to ``failed``.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        if not changes:
            return []
        now = self._now()
        recorded: list[str] = []
        with self._write() as conn:
            locked = lock_messages(conn, {c.msg_id for c in changes})
            failing: list[Transition] = []
            for change in changes:
                found = locked.get(change.msg_id)
                if found is None or not self._moved(conn, change):
                    continue
                recorded.append(change.msg_id)
                if change.state == "Rejected" and found.state == MessageState.SENT:
                    failing.append(
                        Transition(
                            change.msg_id, MessageState.FAILED, change.reason, expected_from=MessageState.SENT
                        )
                    )
                    continue
                conn.execute(
                    events.insert(),
                    [
                        rows.event_row(
                            request_ref=found.request_ref,
                            msg_id=change.msg_id,
                            from_state=None,
                            to_state=found.state.value,
                            at=now,
                            actor=actor,
                            reason=change.reason,
                            details={"transport_state": change.state},
                        )
                    ],
                )
            apply_transitions(conn, failing, locked, now=now, actor=actor)
        return recorded

    @staticmethod
    def _moved(conn: sa.Connection, change: TransportStateChange) -> bool:
        seen = (
            messages.c.transport_state.is_(None)
            if change.seen is None
            else messages.c.transport_state == change.seen
        )
        result = conn.execute(
            messages.update()
            .where(messages.c.msg_id == change.msg_id, seen)
            .values(transport_state=change.state)
        )
        return result.rowcount == 1
