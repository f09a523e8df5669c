"""The ``amqp`` transport: each receiver's ``<herId>_async`` queue on our RabbitMQ, confirmed by the broker.

Sending is a pipelined, confirmed, mandatory publish per document (``transport.publisher``); a
document the broker returns (no queue bound) is refused, since no retry can create the queue. The
inbox is ``<ourHerId>_async`` read by the batch consumer (``transport.consumer``). AppRecs for
inbound documents go back as signed AppRec XML on the original sender's queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from edi_gateway.errors import Unroutable
from edi_gateway.messaging.base import Accepted, AppRecAnswer, Deferred, Envelope, Refused, SendResult
from edi_gateway.transport.consumer import BatchConsumer
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing

XML: Final = "application/xml"


class AmqpTransport:
    """Delivers envelopes to the receivers' queues through a shared confirming publisher."""

    name: Final = "amqp"

    def __init__(self, publisher: ConfirmingPublisher, *, confirm_timeout_s: float) -> None:
        """Use ``publisher`` (owned by the caller); envelopes name their queue, prefix included."""
        self._publisher = publisher
        self._timeout = confirm_timeout_s

    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        """Publish every envelope to its receiver's queue and wait once for all the confirms."""
        if not envelopes:
            return []
        outgoing = [self._outgoing(e) for e in envelopes]
        errors = self._publisher.publish_many(outgoing, timeout=self._timeout)
        return [_result(error) for error in errors]

    def send_apprecs(self, answers: Sequence[AppRecAnswer]) -> list[SendResult]:
        """Publish each signed AppRec on the original sender's inbox queue."""
        return self.send_many([a.envelope for a in answers])

    def _outgoing(self, envelope: Envelope) -> Outgoing:
        headers: dict[str, str | int] = {
            "msg_id": envelope.msg_id,
            "msg_type": envelope.msg_type,
            "sender_her_id": envelope.sender_her_id,
            "receiver_her_id": envelope.receiver_her_id,
            **envelope.labels,
        }
        return Outgoing(
            exchange="",
            routing_key=envelope.queue,
            body=envelope.body,
            message_id=envelope.msg_id,
            correlation_id=envelope.correlation_id,
            content_type=XML,
            headers=headers,
        )


def _result(error: BaseException | None) -> SendResult:
    if error is None:
        return Accepted()
    if isinstance(error, Unroutable):
        return Refused(f"broker has no queue: {error}")
    return Deferred(f"publish not confirmed ({type(error).__name__})")


def queue_consumer(url: str, queue: str, *, batch_size: int, batch_wait_ms: int, name: str) -> BatchConsumer:
    """The batch consumer over one queue (already prefixed): ``edi.requests``, or an inbox (an ``Inbox``)."""
    return BatchConsumer(
        url, queue, prefetch=batch_size * 2, batch_size=batch_size, batch_wait_ms=batch_wait_ms, name=name
    )
