"""What goes into the store and what comes out of it: frozen value objects, no SQL.

``New*`` objects and ``Transition`` are written by the use cases; ``*Record`` objects are the read
models, one per row, with every column, timezone-aware UTC datetimes and ``Problem`` objects rebuilt
from their JSON form. Receiver health is stored and read as ``domain.overdue.ReceiverHealth``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from edi_gateway.domain.acks import AckOutcome
from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import Problem


class EventKind(StrEnum):
    """What an event row is about."""

    REQUEST = "request"
    MESSAGE = "message"


class SignatureCheck(StrEnum):
    """What became of an incoming document's XML signature."""

    VERIFIED = "verified"  # a signature was there and checked against the sender's pinned certificate
    ABSENT = "absent"  # none was there, and the policy accepts that (e.g. NHN's CMS-protected channels)
    SKIPPED = "skipped"  # the policy turned checking off


class ParkedKind(StrEnum):
    """What sort of inbound document was parked."""

    APPREC = "apprec"
    MESSAGE = "message"  # a business document (MsgHead) that could not be trusted or read


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
        routing: how routing chose the kommune service and why (``ServiceChoice.as_details``), kept
            under ``routing`` in the details of the message's first event; None for other receivers.
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
    routing: Mapping[str, Any] | None = None


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
        count_resend: this change is a transport resend (the overdue sweep's); add one to ``resends``.
        transport: the transport that accepted the message (``amqp``, ``nhn``), on a move to sent.
        transport_id: the transport's own id of the message (NHN's message id), when it gave one.
    """

    msg_id: str
    to_state: MessageState
    reason: str
    details: Mapping[str, Any] | None = None
    expected_from: MessageState | None = None
    count_attempt: bool = False
    count_resend: bool = False
    transport: str | None = None
    transport_id: str | None = None


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
        first_sent_at: when the broker first confirmed a publish; the AppRec deadline counts from here.
        resends: how many transport resends have been recorded.
        transport: the transport that accepted it (``amqp``, ``nhn``); None while queued.
        transport_id: the transport's own id of it (NHN's message id); None on AMQP.
        transport_state: NHN's delivery state as last polled (``Unconfirmed``, ``Acknowledged``,
            ``Rejected``); None on AMQP and before the first poll.
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
    first_sent_at: datetime | None
    resends: int
    transport: str | None = None
    transport_id: str | None = None
    transport_state: str | None = None


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


@dataclass(frozen=True, slots=True)
class NewAppRec:
    """An authentic AppRec that answers one of our messages (``AckDecision.record``).

    Only AppRecs correlated with a stored message are kept here; everything else is ``NewParked``.

    Attributes:
        apprec_id: the AppRec's own ``Id``; unique in the store (at most ``APPREC_ID_MAX_LEN`` characters).
        msg_id: the stored message it answers, spelled as the store holds it (``MessageRecord.msg_id``),
            which may differ in case from the AppRec's ``OriginalMsgId``.
        version: ``"1.0"`` or ``"1.1"``.
        status: kodeverk 8258.
        errors: the AppRec's errors as problems (``AckDecision.errors``).
        fingerprint: ``domain.acks.apprec_fingerprint`` of the AppRec.
        sender_her_id: the virksomhet the address register resolved for the sender, if it did.
        outcome: what the AppRec did (``transition`` or ``already_terminal``).
        reason: the decision's plain-language reason (no personal data).
        signature: what became of its XML signature.
        received_at: when the gateway took the delivery (timezone-aware).
        raw: the document as received, signature included.
    """

    apprec_id: str
    msg_id: str
    version: str
    status: AppRecStatus
    errors: tuple[Problem, ...]
    fingerprint: str
    sender_her_id: int | None
    outcome: AckOutcome
    reason: str
    signature: SignatureCheck
    received_at: datetime
    raw: bytes


@dataclass(frozen=True, slots=True)
class NewParked:
    """An inbound document set aside for an operator (malformed, unknown, wrong sender, conflicting ...).

    Attributes:
        kind: what sort of document it is.
        code: a stable dotted code, e.g. ``apprec.unknown_message`` or ``apprec.bad_signature``.
        reason: plain-language reason (no personal data).
        received_at: when the gateway took the delivery (timezone-aware).
        raw: the document as received.
        amqp_message_id: the delivery's AMQP ``message_id``, if it had one.
        apprec_id: the AppRec's ``Id``, when it could be read; any length.
        msg_id: the MsgId the document names, when it could be read; it need not be one of ours.
        details: extra JSON for the operator (codes, HER-ids, fingerprints; no personal data).
    """

    kind: ParkedKind
    code: str
    reason: str
    received_at: datetime
    raw: bytes
    amqp_message_id: str | None = None
    apprec_id: str | None = None
    msg_id: str | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AppRecRecord(NewAppRec):
    """A stored AppRec, every column: the ``NewAppRec`` as written, and its row id.

    Attributes:
        id: increasing row id; orders AppRecs received at the same instant.
    """

    id: int


@dataclass(frozen=True, slots=True)
class ParkedColumns:
    """A parked document's columns but its payload: what the operators' lists show.

    Attributes:
        id: increasing row id; the handle an operator resolves it by.
        details: the JSON the worker recorded; ``raw_size`` and ``raw_sha256`` there when the stored
            payload was cut (``rows.PARKED_RAW_KEEP_BYTES``).
        resolved_at: when an operator resolved it; None while it waits.
        resolved_by: the operator who resolved it.
        resolution: what the operator did or decided, in plain language.
    """

    id: int
    kind: ParkedKind
    code: str
    reason: str
    received_at: datetime
    amqp_message_id: str | None
    apprec_id: str | None
    msg_id: str | None
    details: dict[str, Any] | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class ParkedSummary(ParkedColumns):
    """A parked document without its payload; ``raw_kept`` is how many bytes of it the store holds."""

    raw_kept: int


@dataclass(frozen=True, slots=True)
class ParkedRecord(ParkedColumns):
    """A parked document, every column: its ``ParkedColumns`` and the stored payload."""

    raw: bytes
