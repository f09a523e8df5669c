"""``edi-gateway setup``: database schema, RabbitMQ topology and test PKI, all idempotent."""

from __future__ import annotations

from edi_gateway.services.context import Gateway, open_gateway, receiver_queues
from edi_gateway.settings import Settings
from edi_gateway.transport.topology import declare_topology


def declare_gateway_topology(gateway: Gateway) -> list[str]:
    """Declare edi.requests (+ DLQ), edi.events, every register receiver queue and our inbox."""
    settings = gateway.settings
    queues = receiver_queues(gateway)
    declare_topology(
        settings.amqp_url,
        gateway.names,
        delivery_limit=settings.request_delivery_limit,
        receiver_queues=queues,
        inbox=gateway.names.inbox(settings.our_her_id),
    )
    return queues


def run_setup(settings: Settings) -> str:
    """Migrate the store, declare the topology, generate the test PKI; return a one-line summary."""
    gateway = open_gateway(settings, migrate=True)
    try:
        queues = declare_gateway_topology(gateway)
    finally:
        gateway.close()
    return (
        f"database ready ({gateway.store.dialect_name}); {len(queues)} receiver queues, "
        f"{gateway.names.requests} and {gateway.names.events_exchange} declared"
    )
