"""Deciding a batch of message transitions: which apply, what each message ends as, which events to write.

Pure: it works on the states the store has just locked, so the store can write the whole batch with
one UPDATE per message (all in one ``executemany``) and one ``executemany`` of events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edi_gateway.domain.states import MessageState, can_transition
from edi_gateway.store import rows
from edi_gateway.store.records import Transition


@dataclass(frozen=True, slots=True)
class Current:
    """A message's state as locked at the start of the transaction."""

    state: MessageState
    request_ref: str


@dataclass(slots=True)
class Move:
    """What the batch does to one message row.

    Attributes:
        from_state: the state the row is in now (the UPDATE's guard).
        to_state: the state after every applied change of the batch.
        sent: some applied change reached ``sent`` (stamps ``sent_at``, and ``first_sent_at`` if unset).
        attempts: publish attempts to add.
        resends: transport resends to add.
        transport: the transport of the latest applied change that named one.
        transport_id: the transport's id of the message from the latest change that named one.
    """

    from_state: MessageState
    to_state: MessageState
    sent: bool = False
    attempts: int = 0
    resends: int = 0
    transport: str | None = None
    transport_id: str | None = None


@dataclass(slots=True)
class TransitionPlan:
    """The outcome of planning a batch: applied msg_ids in order, row moves, event rows."""

    changed: list[str] = field(default_factory=list)
    moves: dict[str, Move] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


def applies(change: Transition, current: MessageState) -> bool:
    """Return whether ``change`` may move a message that is in ``current``."""
    if change.expected_from is not None and current != change.expected_from:
        return False
    return can_transition(current, change.to_state)


def plan_transitions(
    changes: Sequence[Transition], current: Mapping[str, Current], *, now: datetime, actor: str
) -> TransitionPlan:
    """Apply ``changes`` in order to the ``current`` states; unknown msg_ids and refused changes are skipped.

    A message changed twice in one batch (``queued → sent → acked``) is judged against its state
    after the first change, gets one row move and two events.
    """
    plan = TransitionPlan()
    for change in changes:
        found = current.get(change.msg_id)
        if found is None:
            continue
        move = plan.moves.get(change.msg_id)
        state = move.to_state if move is not None else found.state
        if not applies(change, state):
            continue
        if move is None:
            move = plan.moves[change.msg_id] = Move(from_state=found.state, to_state=state)
        move.to_state = change.to_state
        move.sent = move.sent or change.to_state == MessageState.SENT
        move.attempts += 1 if change.count_attempt else 0
        move.resends += 1 if change.count_resend else 0
        move.transport = change.transport or move.transport
        move.transport_id = change.transport_id or move.transport_id
        plan.changed.append(change.msg_id)
        plan.events.append(
            rows.event_row(
                request_ref=found.request_ref,
                msg_id=change.msg_id,
                from_state=state.value,
                to_state=change.to_state.value,
                at=now,
                actor=actor,
                reason=change.reason,
                details=change.details,
            )
        )
    return plan
