"""Tests for edi_gateway.transport.topology against the real RabbitMQ."""

from __future__ import annotations

import pika
import pytest

from edi_gateway.errors import UnknownError
from edi_gateway.transport.consumer import drain, queue_depth
from edi_gateway.transport.errors import QueueNotFound, TopologyMismatch
from edi_gateway.transport.names import Names
from edi_gateway.transport.publisher import Outgoing, publish_once
from edi_gateway.transport.topology import declare_topology, delete_topology, requests_queue_arguments
from tests.transport.helpers import BrokerScope


def _request(names: Names, message_id: str) -> Outgoing:
    return Outgoing("", names.requests, b"{}", message_id, None, "application/json")


def test_requests_queue_is_a_quorum_queue_dead_lettering_to_its_dlq() -> None:
    """edi.requests is a quorum queue with the delivery limit and the DLQ as dead-letter target."""
    names = Names("p.")
    assert requests_queue_arguments(names, delivery_limit=5) == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "p.edi.requests.dlq",
    }
    with pytest.raises(ValueError, match="delivery_limit"):
        requests_queue_arguments(names, delivery_limit=0)


@pytest.mark.rabbitmq
def test_declaring_twice_is_harmless(broker: BrokerScope) -> None:
    """Declaring the same topology twice succeeds and keeps the messages already queued."""
    receiver, inbox = broker.names.receiver_queue(8100010), broker.names.inbox(8100001)
    broker.declare(delivery_limit=3, receiver_queues=[receiver], inbox=inbox)
    publish_once(broker.url, _request(broker.names, "kept"), timeout=10)
    broker.declare(delivery_limit=3, receiver_queues=[receiver], inbox=inbox)
    assert queue_depth(broker.url, broker.names.requests) == 1
    assert queue_depth(broker.url, receiver) == queue_depth(broker.url, inbox) == 0
    assert queue_depth(broker.url, broker.names.requests_dlq) == 0


@pytest.mark.rabbitmq
def test_events_exchange_is_a_durable_topic_exchange(broker: BrokerScope) -> None:
    """edi.events routes status.<state> to a queue bound with a topic pattern."""
    broker.declare()
    watcher = broker.names.prefixed("watcher")
    broker.track(watcher)
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        channel = connection.channel()
        channel.exchange_declare(
            broker.names.events_exchange, exchange_type="topic", durable=True, passive=True
        )
        channel.queue_declare(watcher, durable=True)
        channel.queue_bind(watcher, broker.names.events_exchange, routing_key="status.*")
    finally:
        connection.close()
    event = Outgoing(broker.names.events_exchange, "status.sent", b"{}", "ev-1", "req-1", "application/json")
    publish_once(broker.url, event, timeout=10)
    [delivered] = drain(broker.url, watcher, max_messages=1, timeout=5)
    assert delivered.message_id == "ev-1"


@pytest.mark.rabbitmq
def test_rejected_request_lands_in_the_dlq(broker: BrokerScope) -> None:
    """A request rejected without requeue is dead-lettered to edi.requests.dlq."""
    broker.declare()
    publish_once(broker.url, _request(broker.names, "poison"), timeout=10)
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        channel = connection.channel()
        method, _, _ = channel.basic_get(broker.names.requests)
        assert method is not None and method.delivery_tag is not None
        channel.basic_reject(method.delivery_tag, requeue=False)
    finally:
        connection.close()
    [dead] = drain(broker.url, broker.names.requests_dlq, max_messages=1, timeout=5)
    assert dead.message_id == "poison"


@pytest.mark.rabbitmq
def test_changed_delivery_limit_is_a_clear_topology_mismatch(broker: BrokerScope) -> None:
    """Re-declaring with another delivery limit raises TopologyMismatch naming the queue."""
    broker.declare(delivery_limit=3)
    with pytest.raises(TopologyMismatch) as caught:
        declare_topology(broker.url, broker.names, delivery_limit=4)
    assert isinstance(caught.value, UnknownError)
    assert caught.value.name == broker.names.requests
    assert repr(broker.names.requests) in str(caught.value)
    assert "x-delivery-limit" in str(caught.value)


@pytest.mark.rabbitmq
def test_classic_queue_in_the_way_is_a_topology_mismatch(broker: BrokerScope) -> None:
    """A receiver queue that exists as a classic queue is reported, not silently used."""
    receiver = broker.names.receiver_queue(8100020)
    broker.track(receiver)
    connection = pika.BlockingConnection(pika.URLParameters(broker.url))
    try:
        connection.channel().queue_declare(receiver, durable=True)
    finally:
        connection.close()
    with pytest.raises(TopologyMismatch, match=receiver):
        declare_topology(broker.url, broker.names, delivery_limit=3, receiver_queues=[receiver])


@pytest.mark.rabbitmq
def test_delete_topology_removes_queues_and_is_idempotent(amqp_url: str, queue_prefix: str) -> None:
    """delete_topology removes what it is given, and deleting again is no error."""
    names = Names(queue_prefix)
    receiver = names.receiver_queue(8100030)
    declare_topology(amqp_url, names, delivery_limit=2, receiver_queues=[receiver])
    delete_topology(amqp_url, names, [receiver])
    delete_topology(amqp_url, names, [receiver])
    for queue in (names.requests, names.requests_dlq, receiver):
        with pytest.raises(QueueNotFound):
            queue_depth(amqp_url, queue)
