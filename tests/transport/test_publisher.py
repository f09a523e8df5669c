"""Tests for edi_gateway.transport.publisher against the real RabbitMQ."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures

import pika
import pytest

from edi_gateway.errors import BrokerUnavailable, UnknownError, Unroutable
from edi_gateway.transport.consumer import queue_depth
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing, publish_once
from tests.transport.helpers import BrokerScope, connection_pids, wait_until

pytestmark = pytest.mark.rabbitmq


def _msg(queue: str, n: int, **changes: object) -> Outgoing:
    fields: dict[str, object] = {
        "exchange": "",
        "routing_key": queue,
        "body": f"<MsgHead n='{n}'/>".encode(),
        "message_id": f"msg-{n}",
        "correlation_id": f"req-{n // 10}",
        "content_type": "application/xml",
        "headers": {"msg_id": f"msg-{n}", "receiver_her_id": 8100010, "message_type": "DIALOG_HELSEFAGLIG"},
    }
    fields.update(changes)
    return Outgoing(**fields)  # type: ignore[arg-type]


def _read_all(url: str, queue: str, count: int) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take ``count`` messages with their raw AMQP properties (acknowledging them)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        taken: list[tuple[pika.BasicProperties, bytes]] = []
        for _ in range(count):
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            assert method is not None, f"only {len(taken)} of {count} messages in {queue}"
            assert properties is not None and body is not None
            taken.append((properties, body))
        return taken
    finally:
        connection.close()


def test_publish_many_confirms_500_messages_with_all_properties(broker: BrokerScope) -> None:
    """500 publishes are all confirmed and sit in the queue, in order, with the gateway's properties."""
    queue = broker.receiver(8100010)
    msgs = [_msg(queue, n) for n in range(500)]
    started = int(time.time())
    with ConfirmingPublisher(broker.url, name=f"{broker.names.prefix}publisher") as publisher:
        assert publisher.publish_many(msgs, timeout=30) == [None] * 500
    assert queue_depth(broker.url, queue) == 500
    for msg, (properties, body) in zip(msgs, _read_all(broker.url, queue, 500), strict=True):
        assert body == msg.body
        assert properties.message_id == msg.message_id
        assert properties.correlation_id == msg.correlation_id
        assert properties.delivery_mode == 2
        assert properties.content_type == "application/xml"
        # The quorum queue adds its delivery counter; everything else is ours.
        headers = dict(properties.headers or {})
        assert {k: v for k, v in headers.items() if k != "x-delivery-count"} == msg.headers
        assert properties.app_id == "edi_gateway"
        assert properties.timestamp is not None and abs(properties.timestamp - started) < 60


def test_mandatory_publish_without_queue_fails_only_that_message(broker: BrokerScope) -> None:
    """In one batch, the publish to a missing queue is Unroutable and the others are confirmed."""
    queue = broker.receiver(8100010)
    missing = broker.names.receiver_queue(8199999)
    msgs = [_msg(queue, 0), _msg(queue, 1), _msg(missing, 2), _msg(queue, 3), _msg(queue, 4)]
    with ConfirmingPublisher(broker.url) as publisher:
        outcomes = publisher.publish_many(msgs, timeout=10)
    assert [type(o) if o else None for o in outcomes] == [None, None, Unroutable, None, None]
    assert missing in str(outcomes[2])
    assert queue_depth(broker.url, queue) == 4


def test_returned_twin_does_not_fail_its_routed_twin(broker: BrokerScope) -> None:
    """Two publishes with one message_id, one routed and one not: only the unroutable one fails."""
    queue = broker.receiver(8100010)
    missing = broker.names.receiver_queue(8199999)
    with ConfirmingPublisher(broker.url) as publisher:
        outcomes = publisher.publish_many([_msg(missing, 7), _msg(queue, 7)], timeout=10)
    assert [type(o) if o else None for o in outcomes] == [Unroutable, None]


def test_non_mandatory_publish_without_queue_is_confirmed(broker: BrokerScope) -> None:
    """Without mandatory the broker confirms a message it could not route (and drops it)."""
    broker.declare()
    with ConfirmingPublisher(broker.url) as publisher:
        missing = broker.names.receiver_queue(8199999)
        assert publisher.publish_many([_msg(missing, 0, mandatory=False)], timeout=10) == [None]


def test_missing_exchange_is_unroutable_and_the_publisher_recovers(broker: BrokerScope) -> None:
    """A publish to a missing exchange is Unroutable; the next batch goes out on a new channel."""
    queue = broker.receiver(8100010)
    missing_exchange = broker.names.prefixed("no.such.exchange")
    with ConfirmingPublisher(broker.url) as publisher:
        [outcome] = publisher.publish_many([_msg(queue, 0, exchange=missing_exchange)], timeout=10)
        assert isinstance(outcome, Unroutable)
        assert publisher.publish_many([_msg(queue, 1)], timeout=10) == [None]
    assert queue_depth(broker.url, queue) == 1


def test_message_pika_cannot_encode_fails_alone_and_publishing_goes_on(broker: BrokerScope) -> None:
    """A header value AMQP cannot carry fails that message as UnknownError; later ones are confirmed."""
    queue = broker.receiver(8100010)
    bad = _msg(queue, 1, headers={"not_encodable": object()})
    with ConfirmingPublisher(broker.url) as publisher:
        outcomes = publisher.publish_many([bad, _msg(queue, 2)], timeout=10)
        assert type(outcomes[0]) is UnknownError
        assert outcomes[1] is None  # still in the outbox when the channel went: sent on the next one
        assert publisher.publish_many([_msg(queue, 3)], timeout=10) == [None]


def test_unconfirmed_in_time_is_broker_unavailable_and_never_blocks(broker: BrokerScope) -> None:
    """A confirm that does not come within the timeout is reported, and publish_many returns."""
    queue = broker.receiver(8100010)
    with ConfirmingPublisher(broker.url) as publisher:
        started = time.monotonic()
        [outcome] = publisher.publish_many([_msg(queue, 0)], timeout=0)
        assert time.monotonic() - started < 1
        assert isinstance(outcome, BrokerUnavailable)
        assert "did not confirm within 0 s" in str(outcome)
    # The message was handed over all the same; close() waited for it. Receivers dedupe on MsgId.
    assert queue_depth(broker.url, queue) == 1


def test_timeout_while_blocked_names_the_resource_alarm(broker: BrokerScope) -> None:
    """While the broker blocks the connection, a timed-out wait says so (alarm simulated in-process)."""
    queue = broker.receiver(8100010)
    with ConfirmingPublisher(broker.url) as publisher:
        publisher._on_blocked(None, None)  # type: ignore[arg-type]  # what connection.blocked calls
        assert publisher.is_blocked
        [outcome] = publisher.publish_many([_msg(queue, 0)], timeout=0)
        assert isinstance(outcome, BrokerUnavailable)
        assert "resource alarm" in str(outcome)


def test_unreachable_broker_fails_publishes_promptly() -> None:
    """Without a broker, publishes fail with BrokerUnavailable instead of hanging."""
    url = "amqp://guest:secret-pw@127.0.0.1:1/%2F"
    with ConfirmingPublisher(url) as publisher:
        started = time.monotonic()
        [outcome] = publisher.publish_many([_msg("q", 0)], timeout=20)
    assert isinstance(outcome, BrokerUnavailable)
    assert "cannot connect" in str(outcome) and "secret-pw" not in str(outcome)
    assert time.monotonic() - started < 10


def test_closed_publisher_refuses_new_messages(broker: BrokerScope) -> None:
    """After close() a publish fails at once and start() is refused."""
    queue = broker.receiver(8100010)
    publisher = ConfirmingPublisher(broker.url)
    publisher.start()
    publisher.close()
    publisher.close()
    assert isinstance(publisher.publish(_msg(queue, 0)).exception(timeout=1), BrokerUnavailable)
    with pytest.raises(BrokerUnavailable):
        publisher.start()


def test_publish_is_safe_from_many_threads(broker: BrokerScope) -> None:
    """Eight threads publishing at once all get their confirms and every message arrives."""
    queue = broker.receiver(8100010)
    futures: list[Future[None]] = []
    lock = threading.Lock()

    def publish_hundred(publisher: ConfirmingPublisher, thread_no: int) -> None:
        mine = [publisher.publish(_msg(queue, thread_no * 1000 + n)) for n in range(100)]
        with lock:
            futures.extend(mine)

    with ConfirmingPublisher(broker.url) as publisher:
        threads = [threading.Thread(target=publish_hundred, args=(publisher, t)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done, not_done = wait_for_futures(futures, timeout=30)
    assert not not_done
    assert all(f.exception() is None for f in done)
    assert queue_depth(broker.url, queue) == 800


def test_publish_once_raises_unroutable_for_a_missing_queue(broker: BrokerScope) -> None:
    """publish_once confirms a routable message and raises Unroutable for a returned one."""
    queue = broker.receiver(8100010)
    publish_once(broker.url, _msg(queue, 0), timeout=10)
    with pytest.raises(Unroutable):
        publish_once(broker.url, _msg(broker.names.receiver_queue(8199999), 1), timeout=10)
    assert queue_depth(broker.url, queue) == 1


def _on_io_thread(publisher: ConfirmingPublisher, action: Callable[[], object]) -> None:
    """Run ``action`` in the publisher's I/O thread (test access to its internals)."""
    ioloop = publisher._ioloop
    assert ioloop is not None
    ioloop.add_callback_threadsafe(action)


def test_connection_loss_fails_pending_futures_and_next_publish_reconnects(broker: BrokerScope) -> None:
    """Publishes in flight when the TCP connection drops fail with BrokerUnavailable; later ones work."""
    queue = broker.receiver(8100010)
    with ConfirmingPublisher(broker.url, backoff_base=0.05) as publisher:
        assert publisher.publish_many([_msg(queue, 0)], timeout=10) == [None]
        # Hold the I/O loop so the publishes below and the drop run in the same turn of it: the
        # frames only reach pika's send buffer, and the socket is gone before they could be sent.
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            held.set()
            release.wait(10)

        _on_io_thread(publisher, hold)
        assert held.wait(10)
        pending = [publisher.publish(_msg(queue, n)) for n in range(1, 51)]
        connection = publisher._connection
        assert connection is not None
        sock: socket.socket = connection._transport._sock  # type: ignore[attr-defined]
        _on_io_thread(publisher, lambda: sock.shutdown(socket.SHUT_RDWR))  # the network goes
        release.set()
        done, not_done = wait_for_futures(pending, timeout=15)
        assert not not_done
        assert all(isinstance(f.exception(), BrokerUnavailable) for f in done)
        assert "connection to" in str(pending[0].exception())
        assert publisher.publish_many([_msg(queue, 99)], timeout=10) == [None]
    assert queue_depth(broker.url, queue) == 2


def test_publisher_survives_the_broker_closing_its_connection(
    broker: BrokerScope, kill_connection: Callable[[str], int]
) -> None:
    """When the broker closes the connection mid-stream, in-flight publishes fail and publishing resumes.

    The close may land while a batch is in flight (its unconfirmed messages fail) or between two
    batches (nothing fails); either way the publisher opens a new connection and goes on.
    """
    queue = broker.receiver(8100010)
    name = f"{broker.names.prefix}publisher"
    outcomes: list[BaseException | None] = []
    stop = threading.Event()

    def keep_publishing(publisher: ConfirmingPublisher) -> None:
        n = 0
        while not stop.is_set():
            batch = [_msg(queue, n + i) for i in range(64)]
            n += 64
            outcomes.extend(publisher.publish_many(batch, timeout=10))

    with ConfirmingPublisher(broker.url, name=name, backoff_base=0.05) as publisher:
        sender = threading.Thread(target=keep_publishing, args=(publisher,))
        sender.start()
        try:
            wait_until(lambda: len(outcomes) > 500)
            before = connection_pids(name)
            killed_at = len(outcomes)
            assert kill_connection(name) == 1
            wait_until(lambda: bool(connection_pids(name)) and connection_pids(name) != before)
            wait_until(lambda: len(outcomes) > killed_at + 2000)
        finally:
            stop.set()
            sender.join(30)
    assert all(o is None or isinstance(o, BrokerUnavailable) for o in outcomes)
    failed = [i for i, o in enumerate(outcomes) if o is not None]
    # Only messages in flight at the close fail: some of one batch, none before the close.
    assert all(i >= killed_at for i in failed)
    assert not failed or max(failed) - min(failed) < 64
    assert all(o is None for o in outcomes[-500:])
    # Every confirmed message is in the queue (an unconfirmed one may be there too).
    assert queue_depth(broker.url, queue) >= sum(o is None for o in outcomes)
