"""Declaring the gateway's queues and exchange (DESIGN §3), idempotently.

``edi-gateway setup`` calls ``declare_topology`` on every start; declaring what already exists with
the same arguments is a no-op on the broker. Everything is durable and every queue is a quorum queue,
so messages survive a broker restart and a node loss in a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.exchange_type import ExchangeType

from edi_gateway.errors import BrokerUnavailable
from edi_gateway.transport.connection import PIKA_ERRORS, broker_location, close_quietly, connect
from edi_gateway.transport.errors import TopologyMismatch
from edi_gateway.transport.names import Names

PRECONDITION_FAILED = 406
QUORUM: dict[str, object] = {"x-queue-type": "quorum"}


def requests_queue_arguments(names: Names, *, delivery_limit: int) -> dict[str, object]:
    """Return the arguments of ``edi.requests``.

    A poison request (one that crashes the worker every time) must not loop forever: after
    ``delivery_limit`` returns the broker dead-letters it, through the default exchange, to
    ``edi.requests.dlq``, where an operator can look at it.

    Args:
        names: the names in force.
        delivery_limit: deliveries before the broker gives up on a request; at least 1.

    Returns:
        The ``x-`` arguments for the queue declaration.

    Raises:
        ValueError: ``delivery_limit`` is less than 1.
    """
    if delivery_limit < 1:
        raise ValueError(f"delivery_limit must be at least 1, got {delivery_limit}")
    return {
        **QUORUM,
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": names.requests_dlq,
    }


def declare_topology(
    url: str,
    names: Names,
    *,
    delivery_limit: int,
    receiver_queues: Iterable[str] = (),
    inbox: str | None = None,
) -> None:
    """Declare the request queue and its DLQ, the events exchange, receiver queues and the inbox.

    Args:
        url: AMQP URL.
        names: the names in force.
        delivery_limit: deliveries of one request before it is dead-lettered.
        receiver_queues: full queue names (already prefixed, e.g. from ``names.receiver_queue``).
        inbox: full name of the gateway's own inbox, or None to leave it out.

    Raises:
        TopologyMismatch: a queue or the exchange exists with other arguments.
        BrokerUnavailable: the broker could not be reached or dropped the connection.
    """
    request_args = requests_queue_arguments(names, delivery_limit=delivery_limit)
    plain_queues = list(dict.fromkeys([*receiver_queues, *([inbox] if inbox else [])]))
    connection = connect(url, name="edi_gateway.setup")
    try:
        channel = connection.channel()
        # The DLQ first: the request queue points at it, and a request dead-lettered in between
        # must find it there.
        _declare_queue(channel, names.requests_dlq, QUORUM)
        _declare_queue(channel, names.requests, request_args)
        _declare_exchange(channel, names.events_exchange)
        _declare_exchange(channel, names.inbound_exchange)
        for queue in plain_queues:
            _declare_queue(channel, queue, QUORUM)
    except PIKA_ERRORS as exc:
        raise BrokerUnavailable(
            f"declaring the topology on {broker_location(url)} failed ({type(exc).__name__})"
        ) from exc
    finally:
        close_quietly(connection)


def delete_topology(url: str, names: Names, queues: Iterable[str] = ()) -> None:
    """Delete the request queue, its DLQ, the events exchange and ``queues`` (for test clean-up).

    Deleting what does not exist is not an error.

    Args:
        url: AMQP URL.
        names: the names whose standard queues and exchange go.
        queues: further full queue names to delete (receiver queues, inbox).

    Raises:
        BrokerUnavailable: the broker could not be reached.
    """
    connection = connect(url, name="edi_gateway.teardown")
    try:
        channel = connection.channel()
        for queue in dict.fromkeys([names.requests, names.requests_dlq, *queues]):
            channel.queue_delete(queue)
        channel.exchange_delete(names.events_exchange)
        channel.exchange_delete(names.inbound_exchange)
    except PIKA_ERRORS as exc:
        raise BrokerUnavailable(
            f"deleting the topology on {broker_location(url)} failed ({type(exc).__name__})"
        ) from exc
    finally:
        close_quietly(connection)


def _declare_queue(channel: BlockingChannel, queue: str, arguments: dict[str, object]) -> None:
    try:
        channel.queue_declare(queue, durable=True, arguments=arguments)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            raise TopologyMismatch("queue", queue, exc.reply_text) from exc
        raise


def _declare_exchange(channel: BlockingChannel, exchange: str) -> None:
    try:
        channel.exchange_declare(exchange, exchange_type=ExchangeType.topic, durable=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            raise TopologyMismatch("exchange", exchange, exc.reply_text) from exc
        raise
