"""Consuming in batches, with explicit dispositions, graceful stop and reconnects.

The worker handles requests in batches (one database commit and one round of pipelined confirms per
batch), so ``BatchConsumer`` collects up to ``batch_size`` deliveries: every one that has arrived
already, then waiting at most ``batch_wait_ms`` for more once the first is in hand (0: no wait, so a
batch is what arrived while the previous one was handled), and calls the handler once per batch. The handler says
what becomes of each delivery (``Disposition``); nothing is acknowledged before the handler has
returned, so a crash, a lost connection or a stop never loses a message: the broker delivers every
unacknowledged one again, counting the attempt in ``x-delivery-count``. On ``edi.requests`` the
broker dead-letters a request once that count passes the delivery limit, so a poison request cannot
loop forever.

Redelivery means a handler may see a message twice: handlers must be idempotent (the request id is
the idempotency key). The handler runs in the consumer's thread, which also answers the broker's
heartbeats, so a batch must be done well within two heartbeat intervals (a minute).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from edi_gateway.errors import BrokerUnavailable
from edi_gateway.transport.connection import (
    PIKA_ERRORS,
    backoff_delay,
    broker_location,
    close_quietly,
    connect,
)
from edi_gateway.transport.errors import QueueNotFound

log = structlog.get_logger(__name__)

NOT_FOUND = 404
_DRAIN_POLL_S = 0.05
# What makes ``run`` reconnect: the broker, the network or the channel failed.
_RECONNECT_ON: tuple[type[BaseException], ...] = (BrokerUnavailable, *PIKA_ERRORS)


@dataclass(frozen=True)
class Delivery:
    """One message as the broker delivered it.

    Attributes:
        delivery_tag: the channel's tag for it; only the consumer uses it.
        body: the payload.
        content_type: the ``content_type`` property, if any.
        message_id: the ``message_id`` property (MsgId), if any.
        correlation_id: the ``correlation_id`` property (request id), if any.
        headers: the AMQP headers.
        redelivered: the broker has delivered it before.
        delivery_count: earlier deliveries counted by the quorum queue (0 on the first).
        transport_id: the transport's own id of the document (NHN's message id); None on AMQP.
        attested_sender_her_id: the sender's HER-id as the transport authenticated it (NHN's message
            metadata). Never taken from AMQP headers, which any publisher can write: None on AMQP.
        inbox_her_id: the HER-id whose inbox the document came from (NHN); None on AMQP.
    """

    delivery_tag: int
    body: bytes
    content_type: str | None
    message_id: str | None
    correlation_id: str | None
    headers: Mapping[str, object] = field(default_factory=dict)
    redelivered: bool = False
    delivery_count: int = 0
    transport_id: str | None = None
    attested_sender_her_id: int | None = None
    inbox_her_id: int | None = None


class Disposition(StrEnum):
    """What the consumer does with a delivery once the handler is done with it."""

    ACK = "ack"
    """Done: the broker forgets the message."""
    REQUEUE = "requeue"
    """Try again later: back in the queue; counts towards the delivery limit."""
    DEAD_LETTER = "dead_letter"
    """Give up: rejected without requeue, so the queue's dead-letter exchange gets it."""


Handler = Callable[[Sequence[Delivery]], Sequence[Disposition]]
"""Takes a batch, returns one disposition per delivery, in the same order."""


class BatchConsumer:
    """Consumes one queue in batches on a blocking connection, in the calling thread."""

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        prefetch: int,
        batch_size: int,
        batch_wait_ms: int,
        name: str,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        stop_poll_s: float = 0.2,
    ) -> None:
        """Configure the consumer; nothing connects before ``run``.

        Args:
            url: AMQP URL.
            queue: full name of the queue to consume.
            prefetch: most unacknowledged deliveries the broker sends ahead (at least ``batch_size``
                to ever fill a batch).
            batch_size: most deliveries per handler call.
            batch_wait_ms: longest wait to fill a batch once its first delivery is in hand.
            name: connection name shown by the broker.
            backoff_base: first reconnect delay, in seconds.
            backoff_cap: longest reconnect delay, in seconds.
            stop_poll_s: how often an idle consumer looks at the stop event, in seconds.

        Raises:
            ValueError: a count or wait is out of range.
        """
        if prefetch < 1 or batch_size < 1 or batch_wait_ms < 0:
            raise ValueError("prefetch and batch_size must be at least 1, batch_wait_ms at least 0")
        self._url = url
        self._name = name
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._location = broker_location(url)
        self._batching = _Batching(queue, prefetch, batch_size, batch_wait_ms / 1000, stop_poll_s)

    def run(self, handler: Handler, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, reconnecting with backoff when the broker goes away.

        When ``stop`` is set the batch in hand is finished and settled, deliveries received but not
        yet handled go back to the queue, the consumer is cancelled and the connection closed.

        Args:
            handler: called once per batch; an exception from it requeues the whole batch.
            stop: set it (from a signal handler or another thread) to end ``run``.
        """
        failures = 0
        while not stop.is_set():
            connection: pika.BlockingConnection | None = None
            try:
                connection = connect(self._url, name=self._name)
                session = _Session(self._batching, connection)
                failures = 0
                session.consume(handler, stop)
                return
            except _RECONNECT_ON as exc:
                failures += 1
                self._log_failure(exc)
                stop.wait(backoff_delay(failures, base=self._backoff_base, cap=self._backoff_cap))
            finally:
                close_quietly(connection)

    def _log_failure(self, exc: BaseException) -> None:
        if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code == NOT_FOUND:
            log.error("consumer.queue_missing", queue=self._batching.queue, broker=self._location)
        else:
            log.warning(
                "consumer.connection_lost",
                queue=self._batching.queue,
                broker=self._location,
                error=type(exc).__name__,
            )


@dataclass(frozen=True)
class _Batching:
    """What a consumer session needs to know about its queue and its batches."""

    queue: str
    prefetch: int
    batch_size: int
    batch_wait_s: float
    stop_poll_s: float


class _Session:
    """One connection's consumer: its channel, and what it has received but not yet handled."""

    def __init__(self, batching: _Batching, connection: pika.BlockingConnection) -> None:
        self._batching = batching
        self._connection = connection
        self._received: list[Delivery] = []
        self._channel = connection.channel()
        self._channel.basic_qos(prefetch_count=batching.prefetch)
        self._consumer_tag = self._channel.basic_consume(
            batching.queue, on_message_callback=self._on_message, auto_ack=False
        )

    def consume(self, handler: Handler, stop: threading.Event) -> None:
        """Hand batches to ``handler`` until ``stop`` is set, then shut down cleanly."""
        while not stop.is_set():
            batch = self._next_batch()
            if batch:
                self._handle(batch, handler)
        self._shut_down()

    def _on_message(
        self, _channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        tag = method.delivery_tag
        assert tag is not None, "the broker always tags a delivery"
        self._received.append(_delivery(tag, bool(method.redelivered), properties, body))

    def _next_batch(self) -> list[Delivery]:
        """Wait briefly for a first delivery, then up to ``batch_wait_ms`` to fill the batch."""
        config = self._batching
        if not self._received:
            # Returns as soon as deliveries are dispatched, or after the poll time to look at stop.
            self._connection.process_data_events(time_limit=config.stop_poll_s)
            if not self._received:
                return []
        if len(self._received) < config.batch_size:
            self._connection.process_data_events(time_limit=0)  # what has arrived already, no wait
        deadline = time.monotonic() + config.batch_wait_s
        while len(self._received) < config.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._connection.process_data_events(time_limit=remaining)
        batch = self._received[: config.batch_size]
        del self._received[: config.batch_size]
        return batch

    def _handle(self, batch: list[Delivery], handler: Handler) -> None:
        try:
            dispositions = [Disposition(d) for d in handler(batch)]
            if len(dispositions) != len(batch):
                raise ValueError(f"handler returned {len(dispositions)} dispositions for {len(batch)}")
        except Exception as exc:
            # Only the type and place: an exception's text may quote the payload.
            log.error(
                "consumer.handler_failed",
                queue=self._batching.queue,
                batch_size=len(batch),
                error=type(exc).__name__,
                raised_at=_raised_at(exc),
            )
            self._channel.basic_nack(batch[-1].delivery_tag, multiple=True, requeue=True)
            return
        self._settle(batch, dispositions)

    def _settle(self, batch: list[Delivery], dispositions: list[Disposition]) -> None:
        # Deliveries are handled in the order they came, so every unsettled tag up to the batch's
        # last one belongs to this batch: one multiple ack settles it all.
        if all(d is Disposition.ACK for d in dispositions):
            self._channel.basic_ack(batch[-1].delivery_tag, multiple=True)
            return
        for delivery, disposition in zip(batch, dispositions, strict=True):
            if disposition is Disposition.ACK:
                self._channel.basic_ack(delivery.delivery_tag)
            elif disposition is Disposition.REQUEUE:
                self._channel.basic_nack(delivery.delivery_tag, requeue=True)
            else:
                self._channel.basic_reject(delivery.delivery_tag, requeue=False)

    def _shut_down(self) -> None:
        # Cancel first so nothing new arrives; pika requeues what arrived but was not dispatched.
        self._channel.basic_cancel(self._consumer_tag)
        if self._received:
            self._channel.basic_nack(self._received[-1].delivery_tag, multiple=True, requeue=True)
            self._received.clear()
        self._channel.close()
        self._connection.close()


def _delivery(
    delivery_tag: int, redelivered: bool, properties: BasicProperties | None, body: bytes
) -> Delivery:
    properties = properties or BasicProperties()
    headers: dict[str, object] = dict(properties.headers or {})
    return Delivery(
        delivery_tag=delivery_tag,
        body=body,
        content_type=properties.content_type,
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        headers=headers,
        redelivered=redelivered,
        delivery_count=_delivery_count(headers),
    )


def _delivery_count(headers: Mapping[str, object]) -> int:
    """Read ``x-delivery-count``, which quorum queues set; absent on a first delivery."""
    value = headers.get("x-delivery-count", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _raised_at(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


def drain(url: str, queue: str, *, max_messages: int, timeout: float) -> list[Delivery]:
    """Take up to ``max_messages`` from ``queue``, acknowledging them (for tests and the demo).

    Polls with ``basic.get`` until ``max_messages`` are in hand or ``timeout`` has passed, so it
    also waits for messages still on their way.

    Args:
        url: AMQP URL.
        queue: full queue name.
        max_messages: most messages to take.
        timeout: longest wait, in seconds.

    Returns:
        The messages, oldest first.

    Raises:
        QueueNotFound: the queue does not exist.
        BrokerUnavailable: the broker could not be reached.
    """
    deadline = time.monotonic() + timeout
    connection = connect(url, name="edi_gateway.drain")
    try:
        channel = connection.channel()
        taken: list[Delivery] = []
        while len(taken) < max_messages:
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None or method.delivery_tag is None:
                if time.monotonic() >= deadline:
                    break
                connection.sleep(_DRAIN_POLL_S)
                continue
            received = _delivery(method.delivery_tag, bool(method.redelivered), properties, body or b"")
            taken.append(received)
        if taken:
            channel.basic_ack(taken[-1].delivery_tag, multiple=True)
        return taken
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise _queue_error(url, queue, exc) from exc
    except PIKA_ERRORS as exc:
        raise BrokerUnavailable(f"draining {queue!r} on {broker_location(url)} failed") from exc
    finally:
        close_quietly(connection)


def queue_depth(url: str, queue: str) -> int:
    """Return how many messages are ready in ``queue`` (unacknowledged ones not counted).

    Args:
        url: AMQP URL.
        queue: full queue name.

    Raises:
        QueueNotFound: the queue does not exist.
        BrokerUnavailable: the broker could not be reached.
    """
    connection = connect(url, name="edi_gateway.queue_depth")
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count or 0)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise _queue_error(url, queue, exc) from exc
    except PIKA_ERRORS as exc:
        raise BrokerUnavailable(f"reading the depth of {queue!r} on {broker_location(url)} failed") from exc
    finally:
        close_quietly(connection)


def _queue_error(url: str, queue: str, exc: pika.exceptions.ChannelClosedByBroker) -> Exception:
    if exc.reply_code == NOT_FOUND:
        return QueueNotFound(queue)
    return BrokerUnavailable(f"the broker closed the channel on {broker_location(url)} ({exc.reply_code})")
