"""What goes into the store and what comes out of it: frozen value objects, no SQL.

``New*`` objects and ``Transition`` are written by the use cases; ``*Record`` objects are the read
models, one per row, with every column, timezone-aware UTC datetimes and ``Problem`` objects rebuilt
from their JSON form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import Problem


class EventKind(StrEnum):
    """What an event row is about."""

    REQUEST = "request"
    MESSAGE = "message"


@dataclass(frozen=True, slots=True)
class NewRequest:
    """One EPR request as received, with the outcome intake and routing reached.

    Attributes:
        ref: internal id (UUID string); a request may arrive without a usable ``request_id``.
        request_id: the EPR's id (UUID string), the idempotency key; None when unusable.
        state: the state the request reached (``received`` is passed through on the way).
        received_at: when the gateway took the delivery (timezone-aware).
        content_type: the AMQP content type of the request.
        body: the raw request bytes, as received; the system of record.
        problems: rejection reasons, or per-receiver problems of a routed request.
        reason: plain-language reason for the final state, written on the event row (no personal data).
    """

    ref: str
    request_id: str | None
    state: RequestState
    received_at: datetime
    content_type: str
    body: bytes
    samhandlingspunkt: int | None
    consent: bool | None
    send_to_fastlege: bool | None
    kommunenummer: str | None
    sender_unit_her_id: int | None
    problems: tuple[Problem, ...]
    amqp_message_id: str | None
    amqp_correlation_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One built and signed MsgHead for one receiver; it is stored as ``queued``.

    Attributes:
        msg_id: the MsgId (UUID string).
        receiver_kind: ``kommune`` or ``fastlege`` (a ``ReceiverKind`` value).
        receiver_org_her_id: the virksomhet's HER-id (``Receiver/Organisation/Ident``).
        receiver_her_id: the addressed, most specific HER-id (service, person, or virksomhet).
        receiver_name: display name of the receiver (no patient data).
        queue: the AMQP queue the message is published to.
        signed_xml: the signed MsgHead bytes, re-sent unchanged on a transport resend.
        msg_type: ``MsgInfo/Type`` V (e.g. ``DIALOG_HELSEFAGLIG``).
        conversation_ref: MsgId of an earlier message this one continues (a rebuild), if any.
        deadline_at: when an AppRec is due, if a deadline is set at build time.
    """

    msg_id: str
    receiver_kind: str
    receiver_org_her_id: int
    receiver_her_id: int
    receiver_name: str
    queue: str
    kommunenummer: str | None
    signed_xml: bytes
    msg_type: str
    conversation_ref: str | None = None
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """A request and the messages built for it, saved together."""

    request: NewRequest
    messages: tuple[NewMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    """A wished state change of one message.

    Attributes:
        msg_id: the message to move.
        to_state: the target state; applied only when ``can_transition`` allows it.
        reason: plain-language reason for the event row (no personal data).
        details: extra JSON for the event row (codes, HER-ids; no personal data).
        expected_from: apply only when the message is in exactly this state now.
        count_attempt: this change follows a publish attempt; add one to ``attempts``.
    """

    msg_id: str
    to_state: MessageState
    reason: str
    details: Mapping[str, Any] | None = None
    expected_from: MessageState | None = None
    count_attempt: bool = False


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A stored request, every column."""

    ref: str
    request_id: str | None
    state: RequestState
    received_at: datetime
    updated_at: datetime
    content_type: str
    body: bytes
    samhandlingspunkt: int | None
    consent: bool | None
    send_to_fastlege: bool | None
    kommunenummer: str | None
    sender_unit_her_id: int | None
    problems: tuple[Problem, ...]
    amqp_message_id: str | None
    amqp_correlation_id: str | None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A stored message, every column.

    Attributes:
        receiver_key: the uniqueness key of (receiver, conversation) within the request.
        attempts: how many publish attempts have been recorded.
        sent_at: when the broker last confirmed a publish, if it has.
    """

    msg_id: str
    request_ref: str
    receiver_kind: ReceiverKind
    receiver_org_her_id: int
    receiver_her_id: int
    receiver_key: str
    receiver_name: str
    queue: str
    kommunenummer: str | None
    state: MessageState
    signed_xml: bytes
    msg_type: str
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    attempts: int
    conversation_ref: str | None
    deadline_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of a request's or message's history.

    Attributes:
        id: increasing row id; orders events written at the same instant.
        msg_id: the message, for message events; None for request events.
        from_state: the state left; None for the first event and for events without a state change.
        to_state: the state reached (for events without a state change: the state the message is in).
        actor: who did it, e.g. ``worker:<hostname>`` or an operator name.
    """

    id: int
    request_ref: str
    msg_id: str | None
    kind: EventKind
    from_state: RequestState | MessageState | None
    to_state: RequestState | MessageState
    at: datetime
    actor: str
    reason: str
    details: dict[str, Any] | None
