"""Overdue rules: when an unanswered message is resent or marked overdue, and when a receiver is quiet.

Everything here is pure: no I/O and no clock. The overdue sweep passes ``now`` to
:func:`overdue_actions`; receiver health is a small state machine (:func:`on_overdue`,
:func:`on_apprec`) whose state the services store per receiver HER-id.

Nothing in a ``reason`` names a person: reasons carry states, counts, MsgIds and HER-ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from edi_gateway.domain.states import MessageState

STANDARD_ACK_DEADLINE = timedelta(hours=96)
"""The standard time a receiver has to answer a message with an AppRec."""


# --- Overdue -----------------------------------------------------------------------------------


class OverdueKind(StrEnum):
    """What the overdue sweep does to one message."""

    MARK_OVERDUE = "mark_overdue"  # move sent → overdue, once
    RESEND = "resend"  # transport resend: the same stored bytes, the same MsgId


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A message still waiting for its AppRec.

    Attributes:
        msg_id: the MsgId.
        state: ``sent`` or ``overdue`` (other states get no action).
        sent_at: when the broker last confirmed it (the latest resend), timezone-aware.
        first_sent_at: when the broker first confirmed it; the deadline counts from here.
        resends: transport resends made so far.
    """

    msg_id: str
    state: MessageState
    sent_at: datetime
    first_sent_at: datetime
    resends: int = 0


@dataclass(frozen=True, slots=True)
class OverdueAction:
    """One action of the overdue sweep.

    Attributes:
        msg_id: the message it concerns.
        kind: mark overdue, or resend.
        reason: plain-language reason for the event row.
    """

    msg_id: str
    kind: OverdueKind
    reason: str


def ack_deadline(sent_at: datetime, *, deadline: timedelta) -> datetime:
    """Return when the AppRec for a message first sent at ``sent_at`` is due.

    Args:
        sent_at: when the broker first confirmed the message.
        deadline: how long the receiver has (``STANDARD_ACK_DEADLINE`` unless configured otherwise).
    """
    return sent_at + deadline


def overdue_actions(
    messages: Sequence[PendingMessage],
    *,
    now: datetime,
    deadline: timedelta,
    resend_after: timedelta | None,
    max_resends: int,
) -> list[OverdueAction]:
    """Return what to do with each pending message at ``now``, in the order given.

    A message in ``sent`` is marked overdue when ``now`` reaches its deadline, counted from the first
    send (a resend does not give the receiver more time). Before that, when automatic resend is
    configured, it is resent once ``resend_after`` has passed since its latest send, up to
    ``max_resends`` times. A message already ``overdue`` gets nothing: it is marked once, and only an
    AppRec or an operator's replay moves it on. Messages in any other state get nothing either.

    Args:
        messages: the messages to judge.
        now: the current time, timezone-aware.
        deadline: how long a receiver has to answer.
        resend_after: time after the latest send before a transport resend; None turns resend off.
        max_resends: the most transport resends per message.

    Raises:
        ValueError: a naive ``now``, or a non-positive ``deadline``/``resend_after``, or a negative
            ``max_resends``.
    """
    _check_sweep_arguments(now, deadline, resend_after, max_resends)
    actions = []
    for message in messages:
        action = _overdue_action(message, now, deadline, resend_after, max_resends)
        if action is not None:
            actions.append(action)
    return actions


def sweep_cutoff(
    now: datetime, *, deadline: timedelta, resend_after: timedelta | None, max_resends: int
) -> datetime:
    """Return the latest first send for which :func:`overdue_actions` can act at ``now``.

    A message is marked overdue ``deadline`` after its first send and resent ``resend_after`` after
    its latest send, which is never before its first. So nothing first sent after
    ``now - min(deadline, resend_after)`` is due yet, and the sweep need not read it.

    Args:
        now: the current time, timezone-aware.
        deadline: how long a receiver has to answer.
        resend_after: time after the latest send before a transport resend; None turns resend off.
        max_resends: the most transport resends per message (0 turns resend off too).

    Raises:
        ValueError: as :func:`overdue_actions`.
    """
    _check_sweep_arguments(now, deadline, resend_after, max_resends)
    if resend_after is None or max_resends == 0:
        return now - deadline
    return now - min(deadline, resend_after)


def _check_sweep_arguments(
    now: datetime, deadline: timedelta, resend_after: timedelta | None, max_resends: int
) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if deadline <= timedelta(0):
        raise ValueError("deadline must be positive")
    if resend_after is not None and resend_after <= timedelta(0):
        raise ValueError("resend_after must be positive")
    if max_resends < 0:
        raise ValueError("max_resends must not be negative")


def _overdue_action(
    message: PendingMessage,
    now: datetime,
    deadline: timedelta,
    resend_after: timedelta | None,
    max_resends: int,
) -> OverdueAction | None:
    if message.state != MessageState.SENT:
        return None
    if now >= ack_deadline(message.first_sent_at, deadline=deadline):
        reason = f"no AppRec within {_hours(deadline)} of the first send"
        return OverdueAction(message.msg_id, OverdueKind.MARK_OVERDUE, reason)
    if resend_after is None or message.resends >= max_resends or now < message.sent_at + resend_after:
        return None
    waited = _hours(resend_after)
    reason = f"no AppRec {waited} after the latest send; resend {message.resends + 1} of {max_resends}"
    return OverdueAction(message.msg_id, OverdueKind.RESEND, reason)


def _hours(span: timedelta) -> str:
    hours = span / timedelta(hours=1)
    return f"{hours:g} h"


# --- Receiver health ---------------------------------------------------------------------------


class AlertKind(StrEnum):
    """What an operator alert about a receiver says."""

    RECEIVER_QUIET = "receiver_quiet"
    RECEIVER_RECOVERED = "receiver_recovered"


@dataclass(frozen=True, slots=True)
class Alert:
    """An operator alert about a receiver (no personal data).

    Attributes:
        her_id: the receiver's HER-id.
        kind: it went quiet, or it answers again.
        reason: plain-language explanation.
    """

    her_id: int
    kind: AlertKind
    reason: str


@dataclass(frozen=True, slots=True)
class ReceiverHealth:
    """Whether a receiver answers its messages; start a new receiver as ``ReceiverHealth(her_id)``.

    Attributes:
        her_id: the receiver's HER-id.
        consecutive_overdue: messages in a row that went overdue with no AppRec from it in between.
        quiet: the receiver is considered quiet (the quiet alert was raised, recovery not yet seen).
    """

    her_id: int
    consecutive_overdue: int = 0
    quiet: bool = False


def on_overdue(h: ReceiverHealth, *, threshold: int) -> tuple[ReceiverHealth, Alert | None]:
    """Count one more overdue message of the receiver; alert once when it goes quiet.

    Args:
        h: the receiver's health before.
        threshold: overdue messages in a row that make a receiver quiet (at least 1).

    Returns:
        The new health, and a ``receiver_quiet`` alert on the overdue message that makes the receiver
        quiet; None otherwise (also for every further overdue message while it stays quiet).

    Raises:
        ValueError: ``threshold`` is below 1.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    count = h.consecutive_overdue + 1
    if h.quiet or count < threshold:
        return ReceiverHealth(h.her_id, count, h.quiet), None
    alert = Alert(
        h.her_id,
        AlertKind.RECEIVER_QUIET,
        f"{count} messages in a row to HER-id {h.her_id} went overdue without an AppRec",
    )
    return ReceiverHealth(h.her_id, count, quiet=True), alert


def on_apprec(h: ReceiverHealth) -> tuple[ReceiverHealth, Alert | None]:
    """Note an AppRec from the receiver: the overdue run ends; alert once if it had gone quiet.

    Any authentic AppRec counts (``acks.AckDecision.record``), a late one for an overdue message too: it
    shows the receiver's system answers again.

    Returns:
        The reset health, and a ``receiver_recovered`` alert when the receiver was quiet; else None.
    """
    healthy = ReceiverHealth(h.her_id)
    if not h.quiet:
        return healthy, None
    alert = Alert(h.her_id, AlertKind.RECEIVER_RECOVERED, f"HER-id {h.her_id} answers with AppRecs again")
    return healthy, alert
