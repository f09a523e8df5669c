"""Writing a batch of message transitions inside a write transaction: lock, move, record the events.

``Store.transition_messages`` and ``Store.save_acknowledgements`` both go through here, so a state
change is race-safe and leaves the same event rows whichever use case makes it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edi_gateway.domain.states import MessageState
from edi_gateway.errors import StoreUnavailable
from edi_gateway.store.lookups import chunks
from edi_gateway.store.records import Transition
from edi_gateway.store.tables import UtcDateTime, events, messages
from edi_gateway.store.transitions import Current, Move, plan_transitions


def lock_messages(conn: sa.Connection, msg_ids: Collection[str]) -> dict[str, Current]:
    """Return the current state of each message, row-locked on PostgreSQL until the transaction ends.

    Locks are taken in msg_id order (across chunks too), so two workers locking overlapping batches
    cannot deadlock. SQLite has no row locks; ``BEGIN IMMEDIATE`` already serialises its writers.
    Call it before any other write of the transaction: an insert referring to a message takes a
    share lock on it, and share locks taken in another order could deadlock against this one.
    """
    current: dict[str, Current] = {}
    for chunk in chunks(sorted(set(msg_ids))):
        query = (
            sa.select(messages.c.msg_id, messages.c.state, messages.c.request_ref)
            .where(messages.c.msg_id.in_(chunk))
            .order_by(messages.c.msg_id)
            .with_for_update()
        )
        current.update({r.msg_id: Current(MessageState(r.state), r.request_ref) for r in conn.execute(query)})
    return current


def apply_transitions(
    conn: sa.Connection,
    changes: Sequence[Transition],
    locked: Mapping[str, Current],
    *,
    now: datetime,
    actor: str,
) -> list[str]:
    """Apply the allowed ``changes`` to messages ``lock_messages`` has locked; return the msg_ids changed.

    Raises:
        StoreUnavailable: a row was not in its locked state (cannot happen while every writer locks
            first); the caller's transaction must roll back rather than half-apply.
    """
    plan = plan_transitions(changes, locked, now=now, actor=actor)
    if not plan.moves:
        return plan.changed
    moved = conn.execute(_MOVE, [_move_params(i, m, now) for i, m in plan.moves.items()]).rowcount
    if moved != len(plan.moves):
        raise StoreUnavailable("message states changed under a lock; retry the batch")
    conn.execute(events.insert(), plan.events)
    return plan.changed


# One statement for every row of a batch (executemany): each row moves from the state the
# transaction locked to its final state; the state guard keeps it race-safe even without the lock.
# first_sent_at is written once: coalesce keeps the first send when a resend stamps sent_at again.
_SENT_AT = sa.bindparam("m_sent_at", type_=UtcDateTime())
_MOVE = (
    messages.update()
    .where(messages.c.msg_id == sa.bindparam("m_msg_id"), messages.c.state == sa.bindparam("m_from"))
    .values(
        state=sa.bindparam("m_to"),
        updated_at=sa.bindparam("m_now", type_=UtcDateTime()),
        sent_at=sa.func.coalesce(_SENT_AT, messages.c.sent_at),
        first_sent_at=sa.func.coalesce(messages.c.first_sent_at, _SENT_AT),
        attempts=messages.c.attempts + sa.bindparam("m_attempts", type_=sa.Integer()),
        resends=messages.c.resends + sa.bindparam("m_resends", type_=sa.Integer()),
        transport=sa.func.coalesce(sa.bindparam("m_transport", type_=sa.String()), messages.c.transport),
        transport_id=sa.func.coalesce(
            sa.bindparam("m_transport_id", type_=sa.String()), messages.c.transport_id
        ),
    )
)


def _move_params(msg_id: str, move: Move, now: datetime) -> dict[str, Any]:
    return {
        "m_msg_id": msg_id,
        "m_from": move.from_state.value,
        "m_to": move.to_state.value,
        "m_now": now,
        "m_sent_at": now if move.sent else None,
        "m_attempts": move.attempts,
        "m_resends": move.resends,
        "m_transport": move.transport,
        "m_transport_id": move.transport_id,
    }
