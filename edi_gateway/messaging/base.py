"""The transport interface: how a business document reaches its receiver, and how ours reach us.

Two implementations, chosen by ``EDI_GATEWAY_TRANSPORT``:

* ``amqp`` (``messaging.amqp``) — the receiver's ``<herId>_async`` queue on our RabbitMQ, confirmed
  by the broker; our inbox is the ``<ourHerId>_async`` queue;
* ``nhn`` (``messaging.nhn``) — NHN's EDI 2.0 message service: one ``POST /Messages`` per document,
  and a poller over the inbox of every HER-id we serve.

The use cases (outbound, acknowledgements, overdue, replay, the receiving side) see only this module:
``send_many`` answers one ``SendResult`` per envelope, and an ``Inbox`` hands batches of ``Delivery``
to the same handler whichever transport delivered them. The EPR side (``edi.requests``,
``edi.events``) stays on RabbitMQ in both cases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edi_gateway.transport.consumer import Delivery, Disposition

__all__ = [
    "Accepted",
    "AppRecAnswer",
    "Deferred",
    "Delivery",
    "Disposition",
    "EdiTransport",
    "Envelope",
    "Handler",
    "Inbox",
    "Refused",
    "SendResult",
]


@dataclass(frozen=True)
class Envelope:
    """One signed business document (MsgHead, or an AppRec) for one receiver.

    Attributes:
        msg_id: the document's MsgId (AMQP ``message_id``; NHN's ``BusinessDocumentId``).
        correlation_id: the request id, when there is one.
        sender_her_id: our HER-id as the document names it.
        receiver_her_id: the receiver's HER-id (virksomhet, service or legekontor).
        queue: the receiver's AMQP queue as stored, prefix included (unused by the ``nhn`` transport).
        msg_type: the MsgHead message type (``DIALOG_HELSEFAGLIG``, ``APPREC``, ...).
        body: the signed document, UTF-8 XML.
        labels: extra non-sensitive ids for the AMQP headers (a replay's kind, a resend); NHN's
            message service has no place for them.
    """

    msg_id: str
    correlation_id: str | None
    sender_her_id: int
    receiver_her_id: int
    queue: str
    msg_type: str
    body: bytes
    labels: Mapping[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    """The transport has the document for good (broker confirm, or NHN's 201).

    Attributes:
        transport_id: the transport's own id of it (NHN's message id); None on AMQP.
    """

    transport_id: str | None = None


@dataclass(frozen=True)
class Refused:
    """The transport refused the document for good: the message fails; retrying cannot help.

    Attributes:
        reason: one plain line for the timeline (no personal data).
        details: what the transport said (NHN's error body: errorCode, validationErrors, requestId).
    """

    reason: str
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Deferred:
    """The transport could not take the document now (down, busy, timed out): try again later.

    Attributes:
        reason: one plain line for the log (no personal data).
        retry_after_s: how long the transport asked us to wait, when it said.
    """

    reason: str
    retry_after_s: float | None = None


SendResult = Accepted | Refused | Deferred


@dataclass(frozen=True)
class AppRecAnswer:
    """Our AppRec for one inbound document.

    Transports that carry documents (AMQP) send ``envelope``, the signed AppRec; NHN's message
    service has an operation of its own that takes the status and errors for the message it delivered
    (``in_reply_to``) and builds the AppRec itself.

    Attributes:
        envelope: the signed AppRec, addressed to the original sender's inbox.
        in_reply_to: the transport's id of the answered document (NHN's message id); None on AMQP.
        status: kodeverk 8258: 1 OK, 2 Avvist, 3 OK, feil i delmelding.
        errors: kodeverk 8221 codes with their descriptions.
    """

    envelope: Envelope
    in_reply_to: str | None
    status: int
    errors: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Sequence[Delivery]], Sequence[Disposition]]
"""Takes a batch of inbound documents, returns one disposition per document, in the same order."""


class EdiTransport(Protocol):
    """Sends business documents to receivers; thread-safe."""

    @property
    def name(self) -> str:
        """``amqp`` or ``nhn``: for logs, metrics and ``/readyz``."""
        ...

    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        """Deliver every envelope; one result each, in order. Never raises for one document's fault."""
        ...

    def send_apprecs(self, answers: Sequence[AppRecAnswer]) -> list[SendResult]:
        """Send our AppRec for each answered document; one result each, in order."""
        ...


class Inbox(Protocol):
    """Our inbox on a transport: hands inbound documents to a handler, in batches, until stopped.

    A document the handler answers ``ACK`` is done (acked on AMQP, marked read on NHN); ``REQUEUE``
    comes back later; ``DEAD_LETTER`` is set aside (AMQP's dead-letter queue; on NHN marked read, since
    the handler has parked it in the store first).
    """

    def run(self, handler: Handler, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; finish the batch in hand, then return."""
        ...
