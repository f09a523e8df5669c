"""Tests for edi_gateway.transport.consumer against the real RabbitMQ."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from edi_gateway.transport.consumer import BatchConsumer, Delivery, Disposition, drain, queue_depth
from edi_gateway.transport.errors import QueueNotFound
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from tests.transport.helpers import BrokerScope, ConsumerThread, wait_until

Handler = Callable[[Sequence[Delivery]], Sequence[Disposition]]


def _send(broker: BrokerScope, ids: Sequence[str], queue: str | None = None) -> None:
    msgs = [
        Outgoing("", queue or broker.names.requests, b"{}", message_id, message_id, "application/json")
        for message_id in ids
    ]
    with ConfirmingPublisher(broker.url) as publisher:
        assert publisher.publish_many(msgs, timeout=30) == [None] * len(msgs)


def _start(
    broker: BrokerScope,
    handler: Handler,
    *,
    prefetch: int = 20,
    batch_size: int = 10,
    batch_wait_ms: int = 100,
    name: str = "test consumer",
    queue: str | None = None,
) -> ConsumerThread:
    consumer = BatchConsumer(
        broker.url,
        queue or broker.names.requests,
        prefetch=prefetch,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        name=name,
        backoff_base=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(handler, stop), daemon=True)
    thread.start()
    return ConsumerThread(thread, stop)


def _depth_settles_at(broker: BrokerScope, queue: str, expected: int) -> None:
    wait_until(lambda: queue_depth(broker.url, queue) == expected, interval=0.2)


def test_dispositions_are_the_three_documented_words() -> None:
    """Dispositions compare equal to the plain strings a handler may also return."""
    assert [d.value for d in Disposition] == ["ack", "requeue", "dead_letter"]
    assert Disposition("requeue") is Disposition.REQUEUE


def test_configuration_out_of_range_is_refused() -> None:
    """A zero batch size or prefetch is refused at construction."""
    with pytest.raises(ValueError):
        BatchConsumer("amqp://x", "q", prefetch=0, batch_size=1, batch_wait_ms=0, name="x")
    with pytest.raises(ValueError):
        BatchConsumer("amqp://x", "q", prefetch=1, batch_size=0, batch_wait_ms=0, name="x")


@pytest.mark.rabbitmq
def test_deliveries_come_in_batches_and_are_acknowledged(broker: BrokerScope) -> None:
    """Waiting messages are handed over in full batches, each delivery once, and acked."""
    broker.declare()
    ids = [f"m{n:02}" for n in range(25)]
    _send(broker, ids)
    batches: list[list[Delivery]] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        batches.append(list(batch))
        return [Disposition.ACK] * len(batch)

    running = _start(broker, handler)
    wait_until(lambda: sum(map(len, batches)) >= 25)
    running.finish()
    assert [len(b) for b in batches][:2] == [10, 10]
    assert max(len(b) for b in batches) <= 10
    assert sorted(str(d.message_id) for b in batches for d in b) == ids
    first = batches[0][0]
    assert (first.content_type, first.correlation_id, first.body) == (
        "application/json",
        first.message_id,
        b"{}",
    )
    assert (first.redelivered, first.delivery_count) == (False, 0)
    assert queue_depth(broker.url, broker.names.requests) == 0


@pytest.mark.rabbitmq
def test_a_lone_message_is_handled_after_the_batch_wait(broker: BrokerScope) -> None:
    """A batch does not wait for batch_size messages: one message goes once batch_wait_ms is up."""
    broker.declare()
    batches: list[int] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        batches.append(len(batch))
        return [Disposition.ACK] * len(batch)

    running = _start(broker, handler, batch_size=50, batch_wait_ms=50)
    _send(broker, ["lone"])
    wait_until(lambda: batches == [1], timeout=5)
    running.finish()


@pytest.mark.rabbitmq
def test_requeued_message_comes_back_with_its_delivery_count(broker: BrokerScope) -> None:
    """REQUEUE returns the message; it comes back redelivered with x-delivery-count 1."""
    broker.declare()
    _send(broker, ["again"])
    seen: list[tuple[str | None, int, bool]] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        seen.extend((d.message_id, d.delivery_count, d.redelivered) for d in batch)
        return [Disposition.REQUEUE if len(seen) == 1 else Disposition.ACK for _ in batch]

    running = _start(broker, handler)
    wait_until(lambda: len(seen) >= 2)
    running.finish()
    assert seen == [("again", 0, False), ("again", 1, True)]
    assert queue_depth(broker.url, broker.names.requests) == 0


@pytest.mark.rabbitmq
def test_dead_letter_goes_to_the_dlq_while_the_rest_of_the_batch_is_acked(broker: BrokerScope) -> None:
    """DEAD_LETTER rejects one delivery into edi.requests.dlq; its batch mates are acked."""
    broker.declare()
    _send(broker, ["good-1", "bad", "good-2"])
    handled: list[str | None] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        handled.extend(d.message_id for d in batch)
        return [Disposition.DEAD_LETTER if d.message_id == "bad" else Disposition.ACK for d in batch]

    running = _start(broker, handler, batch_wait_ms=300)
    wait_until(lambda: len(handled) >= 3)
    running.finish()
    [dead] = drain(broker.url, broker.names.requests_dlq, max_messages=1, timeout=5)
    assert dead.message_id == "bad"
    assert queue_depth(broker.url, broker.names.requests) == 0


@pytest.mark.rabbitmq
def test_poison_message_is_dead_lettered_after_the_delivery_limit(broker: BrokerScope) -> None:
    """A message requeued on every delivery ends in the DLQ after delivery_limit returns."""
    broker.declare(delivery_limit=2)
    _send(broker, ["poison"])
    counts: list[int] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        counts.extend(d.delivery_count for d in batch)
        return [Disposition.REQUEUE] * len(batch)

    running = _start(broker, handler)
    _depth_settles_at(broker, broker.names.requests_dlq, 1)
    running.finish()
    assert counts == [0, 1, 2]
    assert queue_depth(broker.url, broker.names.requests) == 0


@pytest.mark.rabbitmq
def test_handler_exception_requeues_the_whole_batch(broker: BrokerScope) -> None:
    """When the handler raises, every delivery of the batch comes back and is handled again."""
    broker.declare()
    _send(broker, ["a", "b", "c"])
    calls: list[list[tuple[str | None, int]]] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        calls.append([(d.message_id, d.delivery_count) for d in batch])
        if len(calls) == 1:
            raise RuntimeError("bug in the handler")
        return [Disposition.ACK] * len(batch)

    running = _start(broker, handler, batch_wait_ms=300)
    wait_until(lambda: sum(map(len, calls)) >= 6)
    running.finish()
    assert calls[0] == [("a", 0), ("b", 0), ("c", 0)]
    assert sorted(item for call in calls[1:] for item in call) == [("a", 1), ("b", 1), ("c", 1)]
    assert queue_depth(broker.url, broker.names.requests) == 0


@pytest.mark.rabbitmq
def test_wrong_number_of_dispositions_counts_as_a_handler_failure(broker: BrokerScope) -> None:
    """A handler that answers for fewer deliveries than it got has its batch requeued."""
    broker.declare()
    _send(broker, ["x", "y"])
    calls: list[int] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        calls.append(len(batch))
        return [Disposition.ACK] if len(calls) == 1 else [Disposition.ACK] * len(batch)

    running = _start(broker, handler, batch_wait_ms=300)
    wait_until(lambda: sum(calls) >= 4)
    running.finish()
    assert calls == [2, 2]


@pytest.mark.rabbitmq
def test_stop_finishes_the_batch_in_hand_and_loses_nothing(broker: BrokerScope) -> None:
    """Setting stop mid-stream ends run after the current batch; every other message stays queued."""
    broker.declare()
    _send(broker, [f"m{n:03}" for n in range(100)])
    handled: list[str | None] = []
    stop_now = threading.Event()

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        stop_now.set()
        time.sleep(0.3)  # more deliveries arrive meanwhile, up to the prefetch
        handled.extend(d.message_id for d in batch)
        return [Disposition.ACK] * len(batch)

    running = _start(broker, handler, prefetch=30)
    assert stop_now.wait(10)
    running.finish()
    assert len(handled) == 10
    _depth_settles_at(broker, broker.names.requests, 90)


@pytest.mark.rabbitmq
def test_consumer_reconnects_after_the_broker_closes_its_connection(
    broker: BrokerScope, kill_connection: Callable[[str], int]
) -> None:
    """After a broker-side close the consumer reconnects and every message is still handled."""
    broker.declare()
    name = f"{broker.names.prefix}consumer"
    seen: set[str | None] = set()

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        seen.update(d.message_id for d in batch)
        return [Disposition.ACK] * len(batch)

    running = _start(broker, handler, name=name)
    _send(broker, [f"before-{n}" for n in range(20)])
    wait_until(lambda: len(seen) == 20)
    assert kill_connection(name) == 1
    _send(broker, [f"after-{n}" for n in range(20)])
    wait_until(lambda: len(seen) == 40, timeout=30)
    running.finish()
    assert queue_depth(broker.url, broker.names.requests) == 0


@pytest.mark.rabbitmq
def test_missing_queue_does_not_crash_run(broker: BrokerScope) -> None:
    """Consuming a queue that does not exist keeps retrying (and logging) until stopped."""
    broker.declare()
    running = _start(
        broker, lambda batch: [Disposition.ACK] * len(batch), queue=broker.names.prefixed("nope")
    )
    time.sleep(0.5)
    assert running.thread.is_alive()
    running.finish()


@pytest.mark.rabbitmq
def test_drain_takes_up_to_max_messages_and_acks_them(broker: BrokerScope) -> None:
    """drain returns the oldest messages first, at most max_messages, and removes them."""
    broker.declare()
    _send(broker, ["d1", "d2", "d3"])
    assert [d.message_id for d in drain(broker.url, broker.names.requests, max_messages=2, timeout=5)] == [
        "d1",
        "d2",
    ]
    assert queue_depth(broker.url, broker.names.requests) == 1
    started = time.monotonic()
    assert [d.message_id for d in drain(broker.url, broker.names.requests, max_messages=5, timeout=0.3)] == [
        "d3"
    ]
    assert time.monotonic() - started >= 0.3


@pytest.mark.rabbitmq
def test_missing_queue_is_queue_not_found(broker: BrokerScope) -> None:
    """queue_depth and drain name the missing queue in QueueNotFound."""
    missing = broker.names.prefixed("missing")
    with pytest.raises(QueueNotFound, match=missing):
        queue_depth(broker.url, missing)
    with pytest.raises(QueueNotFound):
        drain(broker.url, missing, max_messages=1, timeout=0)
