"""Status events and alerts as AMQP messages for the ``edi.events`` topic exchange."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from edi_gateway.domain.events import StatusEvent
from edi_gateway.transport.names import Names
from edi_gateway.transport.publisher import Outgoing

JSON = "application/json"


def status_outgoing(names: Names, event: StatusEvent) -> Outgoing:
    """The AMQP message for one status event (routing key ``status.<state>``)."""
    return Outgoing(
        exchange=names.events_exchange,
        routing_key=event.routing_key,
        body=json.dumps(event.as_json(), ensure_ascii=False).encode(),
        message_id=str(uuid.uuid4()),
        correlation_id=event.request_id,
        content_type=JSON,
        mandatory=False,  # nobody may be listening: an event without a subscriber is not an error
        headers={"state": event.state, **({"msg_id": event.msg_id} if event.msg_id else {})},
    )


def alert_outgoing(names: Names, alert: Mapping[str, object]) -> Outgoing:
    """The AMQP message for one alert built by ``domain.events.alert_json`` (routing key ``alert.<kind>``)."""
    return Outgoing(
        exchange=names.events_exchange,
        routing_key=f"alert.{alert['kind']}",
        body=json.dumps(dict(alert), ensure_ascii=False).encode(),
        message_id=str(uuid.uuid4()),
        correlation_id=None,
        content_type=JSON,
        mandatory=False,
        headers={"alert": str(alert["kind"])},
    )
