"""The message the gateway publishes, and the AMQP properties it always carries (DESIGN §3)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from pika.delivery_mode import DeliveryMode
from pika.spec import BasicProperties

APP_ID = "edi_gateway"


@dataclass(frozen=True)
class Outgoing:
    """One message to publish.

    Attributes:
        exchange: target exchange; ``""`` (the default exchange) to address a queue by name.
        routing_key: the queue name on the default exchange, or the topic routing key.
        body: the payload (signed MsgHead XML, status event JSON).
        message_id: MsgId, or the event id; also how a ``basic.return`` is matched to its publish.
        correlation_id: the request id, when there is one.
        content_type: MIME type of ``body``.
        headers: non-sensitive ids only (MsgId, HER-ids, message type): never a person number or name.
        mandatory: ask the broker to return the message when no queue takes it.
    """

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    correlation_id: str | None
    content_type: str
    headers: Mapping[str, str | int] = field(default_factory=dict)
    mandatory: bool = True

    def properties(self) -> BasicProperties:
        """Return the AMQP properties the gateway puts on every publish (DESIGN §3)."""
        return BasicProperties(
            message_id=self.message_id,
            correlation_id=self.correlation_id,
            delivery_mode=DeliveryMode.Persistent,
            content_type=self.content_type,
            headers=dict(self.headers),
            timestamp=int(time.time()),
            app_id=APP_ID,
        )
