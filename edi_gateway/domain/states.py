"""Request and message states, and the transitions allowed between them (DESIGN §5)."""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    """Where an EPR request stands."""

    RECEIVED = "received"
    REJECTED = "rejected"  # invalid: errors stored and reported
    ROUTED = "routed"  # messages built (possibly none, when consent is false)
    NO_CONSENT = "no_consent"  # recorded for reports; nothing was sent
    FAILED = "failed"  # the gateway itself could not process it, after retries; parked for an operator


class MessageState(StrEnum):
    """Where one outgoing MsgHead (one per receiver) stands."""

    QUEUED = "queued"  # built, signed and stored; not yet confirmed by the broker
    SENT = "sent"  # the broker confirmed the publish to the receiver's queue
    ACKED = "acked"  # AppRec status 1
    ACKED_WITH_ERRORS = "acked_with_errors"  # AppRec status 3
    REJECTED_BY_RECEIVER = "rejected_by_receiver"  # AppRec status 2
    OVERDUE = "overdue"  # no AppRec by the deadline
    FAILED = "failed"  # gave up after retries


TERMINAL_MESSAGE_STATES = frozenset(
    {MessageState.ACKED, MessageState.ACKED_WITH_ERRORS, MessageState.REJECTED_BY_RECEIVER}
)

_MESSAGE_TRANSITIONS: dict[MessageState, frozenset[MessageState]] = {
    MessageState.QUEUED: frozenset({MessageState.SENT, MessageState.FAILED}),
    MessageState.SENT: frozenset(
        {MessageState.OVERDUE, MessageState.FAILED, MessageState.SENT, *TERMINAL_MESSAGE_STATES}
    ),
    # An AppRec that arrives after the deadline still lands; a resend goes back to sent.
    MessageState.OVERDUE: frozenset({MessageState.SENT, *TERMINAL_MESSAGE_STATES}),
    MessageState.FAILED: frozenset({MessageState.QUEUED, MessageState.SENT}),
    MessageState.ACKED: frozenset(),
    MessageState.ACKED_WITH_ERRORS: frozenset(),
    MessageState.REJECTED_BY_RECEIVER: frozenset(),
}


def can_transition(current: MessageState, target: MessageState) -> bool:
    """Return whether a message may move from ``current`` to ``target``.

    Terminal states (an AppRec answer) are never left; ``sent`` → ``sent`` is a transport resend.
    """
    return target in _MESSAGE_TRANSITIONS[current]
