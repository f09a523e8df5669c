"""From a stored message to an envelope, and from a transport's answer to the message's next state.

Shared by every use case that hands messages to the transport (the worker's first send, the overdue
sweep's resends, operators' replays), so a message reads the same on its timeline whichever of them
sent it and whichever transport carried it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from edi_gateway.domain.states import MessageState
from edi_gateway.messaging.base import Accepted, Deferred, Envelope, Refused, SendResult
from edi_gateway.store.records import Transition


class Deliverable(Protocol):
    """What a stored or new message offers for delivery."""

    @property
    def msg_id(self) -> str: ...
    @property
    def receiver_her_id(self) -> int: ...
    @property
    def queue(self) -> str: ...
    @property
    def msg_type(self) -> str: ...
    @property
    def signed_xml(self) -> bytes: ...


def envelope_of(
    message: Deliverable,
    sender_her_id: int,
    request_id: str | None,
    labels: Mapping[str, str | int] | None = None,
) -> Envelope:
    """The envelope that carries ``message``'s signed bytes to its receiver (``labels``: see Envelope)."""
    return Envelope(
        msg_id=message.msg_id,
        correlation_id=request_id,
        sender_her_id=sender_her_id,
        receiver_her_id=message.receiver_her_id,
        queue=message.queue,
        msg_type=message.msg_type,
        body=message.signed_xml,
        labels=dict(labels or {}),
    )


def accepted_reason(transport: str, result: Accepted) -> str:
    """The timeline's words for a document the transport took."""
    if transport == "amqp":
        return "broker confirmed the publish"
    return f"{transport} message service accepted it (id {result.transport_id})"


def delivery_transition(
    msg_id: str,
    result: SendResult,
    transport: str,
    *,
    expected_from: MessageState = MessageState.QUEUED,
    reason: str | None = None,
    resend: bool = False,
) -> Transition | None:
    """The state change one send result asks for; None when the document must be sent again later.

    Accepted → ``sent`` (with the transport's id); refused → ``failed`` with the transport's words and
    details, except on a resend, where the message keeps its state (it was delivered once already);
    deferred → None.

    Args:
        msg_id: the message sent.
        result: what the transport answered.
        transport: its name (``amqp``, ``nhn``).
        expected_from: the state the message must be in for the change to apply.
        reason: the words for a sent message's event, instead of the transport's.
        resend: the send repeated an earlier one (counted in ``resends``).
    """
    if isinstance(result, Deferred):
        return None
    if isinstance(result, Accepted):
        details = (
            {"transport": transport, "transport_id": result.transport_id} if result.transport_id else None
        )
        return Transition(
            msg_id,
            MessageState.SENT,
            reason or accepted_reason(transport, result),
            details=details,
            expected_from=expected_from,
            count_attempt=True,
            count_resend=resend,
            transport=transport,
            transport_id=result.transport_id,
        )
    assert isinstance(result, Refused)
    if resend:
        return None
    return Transition(
        msg_id,
        MessageState.FAILED,
        result.reason,
        details={"transport": transport, "refusal": dict(result.details)} if result.details else None,
        expected_from=expected_from,
        count_attempt=True,
    )
