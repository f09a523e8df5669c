"""Publishing with pipelined publisher confirms.

A message counts as *sent* only when the broker has confirmed it (DESIGN §5: ``queued`` → ``sent``).
Waiting for each confirm before the next publish (``BlockingConnection.confirm_delivery``) caps a
connection near a thousand messages a second, so ``ConfirmingPublisher`` keeps many publishes in
flight: one background thread owns a pika ``SelectConnection`` and its I/O loop, callers hand
messages over through a thread-safe queue and get a ``Future`` each, and the confirms settle the
futures as they arrive (one ``basic.ack`` may confirm many delivery tags at once).

Outcomes of a future:

* result ``None`` — the broker has the message (persistent, in a quorum queue: replicated);
* ``Unroutable`` — a mandatory publish came back with ``basic.return`` (no such queue);
* ``BrokerUnavailable`` — nack, connection or channel lost before the confirm, or the publisher
  closed; the caller retries, so receivers may see a message twice and dedupe on ``message_id``.

Everything that touches pika runs in the I/O thread; the only shared state is the outbox, the
wake-up flag and the closing flag, all under one lock.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass
from enum import Enum, auto
from types import TracebackType

import pika.exceptions
import structlog
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.channel import Channel
from pika.frame import Method
from pika.spec import Basic, BasicProperties, Confirm
from pika.spec import Connection as ConnectionMethods

from edi_gateway.errors import BrokerUnavailable, UnknownError
from edi_gateway.transport.confirms import ConfirmTracker, InFlight, channel_loss_error, settle
from edi_gateway.transport.connection import (
    PIKA_ERRORS,
    backoff_delay,
    broker_location,
    connection_parameters,
)
from edi_gateway.transport.outgoing import Outgoing

__all__ = ["ConfirmingPublisher", "Outgoing", "publish_once"]

log = structlog.get_logger(__name__)

_CLOSE_POLL_S = 0.01
_CLOSE_HANDSHAKE_S = 2.0
# A message pika cannot encode (a header value of an unsupported type, say): the caller's fault.
_ENCODING_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.ProtocolSyntaxError,
    ValueError,
    TypeError,
)
# A publish that fails inside pika for any of these leaves the channel's delivery tags in doubt.
_PUBLISH_ERRORS: tuple[type[BaseException], ...] = (*PIKA_ERRORS, *_ENCODING_ERRORS)


@dataclass
class _Queued:
    """A message handed to the publisher, not yet written, and the future its caller waits on."""

    msg: Outgoing
    future: Future[None]


class _State(Enum):
    IDLE = auto()  # no connection; the next publish connects (after the backoff)
    CONNECTING = auto()  # a connect is scheduled or under way
    OPENING_CHANNEL = auto()  # connected; the confirming channel is being opened
    READY = auto()  # publishes go straight out
    CLOSED = auto()  # close() was called; nothing new goes out


class ConfirmingPublisher:
    """Thread-safe publisher with pipelined confirms over one connection in a background thread.

    Use as a context manager, or call ``start()`` and ``close()``. Do not call ``close()`` from a
    future's done-callback: those run in the I/O thread.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "edi_gateway.publisher",
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
    ) -> None:
        """Prepare the publisher; nothing connects before ``start()`` or the first publish.

        Args:
            url: AMQP URL.
            name: connection name shown by the broker.
            backoff_base: first reconnect delay after a failure, in seconds.
            backoff_cap: longest reconnect delay, in seconds.
        """
        self._params = connection_parameters(url, name=name, connection_attempts=1)
        self._location = broker_location(url)
        self._name = name
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._lock = threading.Lock()
        self._outbox: collections.deque[_Queued] = collections.deque()
        self._wakeup_scheduled = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._ioloop: IOLoop | None = None
        self._blocked = False
        # Owned by the I/O thread from here on.
        self._state = _State.IDLE
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None
        self._tracker = ConfirmTracker()
        self._failures = 0
        self._last_failure = 0.0

    # ----------------------------------------------------------------- caller side

    def __enter__(self) -> ConfirmingPublisher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_connected(self) -> bool:
        """True while a confirming channel is open (for readiness checks)."""
        return self._state is _State.READY

    @property
    def is_blocked(self) -> bool:
        """True while the broker blocks the connection (memory or disk alarm)."""
        return self._blocked

    def start(self) -> None:
        """Start the I/O thread and begin connecting; returns at once.

        Raises:
            BrokerUnavailable: the publisher was closed.
        """
        with self._lock:
            if self._closing:
                raise BrokerUnavailable("the publisher is closed")
            self._start_locked()
            assert self._ioloop is not None
            self._ioloop.add_callback_threadsafe(self._connect_early)

    def publish(self, msg: Outgoing) -> Future[None]:
        """Hand ``msg`` to the I/O thread; never blocks.

        Args:
            msg: the message.

        Returns:
            A future that resolves to None when the broker confirms, or fails with ``Unroutable``
            (returned mandatory publish) or ``BrokerUnavailable`` (nack, connection lost, closed).
        """
        future: Future[None] = Future()
        # Once handed over the message may reach the broker, so the caller cannot cancel it.
        future.set_running_or_notify_cancel()
        with self._lock:
            if not self._closing:
                self._start_locked()
                self._outbox.append(_Queued(msg, future))
                self._wake_locked()
                return future
        future.set_exception(BrokerUnavailable("the publisher is closed"))
        return future

    def publish_many(self, msgs: Sequence[Outgoing], *, timeout: float) -> list[BaseException | None]:
        """Publish every message and wait for all confirms.

        Args:
            msgs: the messages, published in this order.
            timeout: longest wait for all confirms together, in seconds.

        Returns:
            One outcome per message, in order: None when confirmed, else the exception
            (``Unroutable``, or ``BrokerUnavailable`` also for a confirm that did not come in time).
        """
        futures = [self.publish(msg) for msg in msgs]
        wait_for_futures(futures, timeout=timeout)
        return [self._outcome(future, timeout) for future in futures]

    def close(self, timeout: float = 10) -> None:
        """Wait up to ``timeout`` seconds for outstanding confirms, then close the connection.

        Messages still unconfirmed then fail with ``BrokerUnavailable``. Closing twice is harmless.

        Args:
            timeout: longest wait for outstanding confirms, in seconds.
        """
        with self._lock:
            already_closing = self._closing
            self._closing = True
            thread, ioloop = self._thread, self._ioloop
            if thread is not None and ioloop is not None and not already_closing:
                deadline = time.monotonic() + timeout
                ioloop.add_callback_threadsafe(lambda: self._begin_close(deadline))
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout + _CLOSE_HANDSHAKE_S + 1.0)
        if thread.is_alive():
            log.warning("publisher.close_timeout", broker=self._location, connection_name=self._name)

    def _outcome(self, future: Future[None], timeout: float) -> BaseException | None:
        if future.done():
            return future.exception()
        reason = " (the connection is blocked by a broker resource alarm)" if self._blocked else ""
        return BrokerUnavailable(f"the broker did not confirm within {timeout:g} s{reason}")

    def _start_locked(self) -> None:
        if self._thread is not None:
            return
        self._ioloop = IOLoop()
        self._thread = threading.Thread(target=self._run, name=f"{self._name}-io", daemon=True)
        self._thread.start()

    def _wake_locked(self) -> None:
        # One scheduled wake-up drains everything queued until it runs: a busy caller costs the
        # I/O loop one callback per batch, not one per message.
        if self._wakeup_scheduled or self._ioloop is None:
            return
        self._wakeup_scheduled = True
        self._ioloop.add_callback_threadsafe(self._on_wakeup)

    # ----------------------------------------------------------------- I/O thread: publishing

    def _run(self) -> None:
        assert self._ioloop is not None
        try:
            self._ioloop.start()
        except Exception:
            log.exception("publisher.io_loop_crashed", broker=self._location)
        finally:
            with self._lock:
                self._closing = True
            self._state = _State.CLOSED
            self._fail_all(BrokerUnavailable("the publisher stopped before the broker confirmed"))
            self._ioloop.close()

    def _on_wakeup(self) -> None:
        with self._lock:
            self._wakeup_scheduled = False
        self._pump()

    def _connect_early(self) -> None:
        # Connecting before the first publish makes is_connected meaningful for readiness checks
        # and takes the connection set-up off the first batch's latency.
        if self._state is _State.IDLE:
            self._schedule_connect()

    def _pump(self) -> None:
        """Move the outbox forward: publish when ready, else make sure a connection is coming."""
        if self._state is _State.READY:
            self._publish_outbox()
        elif self._state is _State.IDLE and self._outbox:
            self._schedule_connect()

    def _publish_outbox(self) -> None:
        channel = self._channel
        while self._outbox and channel is not None and channel.is_open:
            queued = self._outbox.popleft()
            msg = queued.msg
            self._tracker.add(InFlight(msg.message_id, msg.exchange, msg.routing_key, queued.future))
            try:
                channel.basic_publish(
                    msg.exchange, msg.routing_key, msg.body, msg.properties(), mandatory=msg.mandatory
                )
            except _PUBLISH_ERRORS as exc:
                self._on_publish_error(channel, queued.future, exc)
                return

    def _on_publish_error(self, channel: Channel, culprit: Future[None], exc: BaseException) -> None:
        # The broker's delivery tags and ours may no longer agree, so the channel goes: everything
        # in flight on it fails (callers retry) and the next channel starts counting afresh. The
        # message that could not be encoded gets an error of its own: retrying cannot help it.
        log.error("publisher.publish_failed", broker=self._location, error=type(exc).__name__)
        failed = BrokerUnavailable(f"publishing failed on this channel ({type(exc).__name__})")
        own: BaseException = failed
        if isinstance(exc, _ENCODING_ERRORS):
            own = UnknownError(f"the message cannot be encoded as AMQP ({type(exc).__name__})")
        self._tracker.fail_all(lambda item: own if item.future is culprit else failed)
        if channel.is_open:
            channel.close()

    def _on_return(
        self, _channel: Channel, method: Basic.Return, properties: BasicProperties, _body: bytes
    ) -> None:
        reason = f"{method.reply_code} {method.reply_text}"
        exchange, routing_key = method.exchange or "", method.routing_key or ""
        if not self._tracker.on_return(properties.message_id, exchange, routing_key, reason):
            log.warning("publisher.return_unmatched", broker=self._location, routing_key=method.routing_key)

    def _on_confirm(self, frame: Method[Basic.Ack | Basic.Nack]) -> None:
        method = frame.method
        nacked = isinstance(method, Basic.Nack)
        self._tracker.on_confirm(method.delivery_tag, multiple=method.multiple, nacked=nacked)

    # ----------------------------------------------------------------- I/O thread: connection

    def _schedule_connect(self) -> None:
        delay = backoff_delay(self._failures, base=self._backoff_base, cap=self._backoff_cap)
        remaining = max(0.0, self._last_failure + delay - time.monotonic())
        self._state = _State.CONNECTING
        assert self._ioloop is not None
        self._ioloop.call_later(remaining, self._connect)

    def _connect(self) -> None:
        if self._state is not _State.CONNECTING:
            return
        assert self._ioloop is not None
        try:
            self._connection = SelectConnection(
                self._params,
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_connection_open_error,
                on_close_callback=self._on_connection_closed,
                custom_ioloop=self._ioloop,
            )
        except PIKA_ERRORS as exc:
            self._on_connection_open_error(None, exc)

    def _on_connection_open(self, connection: SelectConnection) -> None:
        if self._state is _State.CLOSED:
            connection.close()
            return
        connection.add_on_connection_blocked_callback(self._on_blocked)
        connection.add_on_connection_unblocked_callback(self._on_unblocked)
        self._open_channel(connection)

    def _open_channel(self, connection: SelectConnection) -> None:
        self._state = _State.OPENING_CHANNEL
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_selected)

    def _on_confirm_selected(self, _frame: Method[Confirm.SelectOk]) -> None:
        if self._state is _State.CLOSED:
            return
        self._failures = 0
        self._state = _State.READY
        log.info("publisher.ready", broker=self._location, connection_name=self._name)
        self._pump()

    def _on_connection_open_error(self, _connection: SelectConnection | None, error: BaseException) -> None:
        self._connection = None
        if self._state is _State.CLOSED:
            self._stop_loop()
            return
        self._note_failure()
        log.warning("publisher.connect_failed", broker=self._location, error=type(error).__name__)
        self._fail_outbox(
            BrokerUnavailable(f"cannot connect to RabbitMQ at {self._location} ({type(error).__name__})")
        )

    def _on_connection_closed(self, _connection: SelectConnection, reason: BaseException) -> None:
        self._connection = None
        self._channel = None
        self._blocked = False
        if self._state is _State.CLOSED:
            self._stop_loop()
            return
        self._note_failure()
        log.warning("publisher.connection_lost", broker=self._location, reason=type(reason).__name__)
        lost = BrokerUnavailable(
            f"the connection to {self._location} was lost before the broker confirmed "
            f"({type(reason).__name__})"
        )
        self._tracker.fail_all(lambda _item: lost)
        # Messages not yet written go out on the next connection, after the backoff.
        self._pump()

    def _on_channel_closed(self, channel: Channel, reason: Exception) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        connection = self._connection
        if connection is None or not connection.is_open:
            return  # the connection is going: its close callback fails what was in flight
        self._tracker.fail_all(channel_loss_error(reason))
        if self._state is _State.CLOSED:
            return
        log.warning("publisher.channel_closed", broker=self._location, reason=str(reason))
        self._open_channel(connection)

    def _on_blocked(self, _connection: SelectConnection, _frame: Method[ConnectionMethods.Blocked]) -> None:
        self._blocked = True
        log.warning("publisher.blocked", broker=self._location)

    def _on_unblocked(
        self, _connection: SelectConnection, _frame: Method[ConnectionMethods.Unblocked]
    ) -> None:
        self._blocked = False
        log.info("publisher.unblocked", broker=self._location)

    def _note_failure(self) -> None:
        self._failures += 1
        self._last_failure = time.monotonic()
        self._state = _State.IDLE

    # ----------------------------------------------------------------- I/O thread: closing

    def _begin_close(self, deadline: float) -> None:
        pending = bool(self._outbox) or len(self._tracker) > 0
        if pending and time.monotonic() < deadline and self._state is not _State.CLOSED:
            assert self._ioloop is not None
            self._ioloop.call_later(_CLOSE_POLL_S, lambda: self._begin_close(deadline))
            return
        self._state = _State.CLOSED
        connection = self._connection
        if connection is None or connection.is_closed:
            self._stop_loop()
            return
        if not connection.is_closing:
            connection.close()
        # The close handshake normally ends in _on_connection_closed; this bounds it.
        assert self._ioloop is not None
        self._ioloop.call_later(_CLOSE_HANDSHAKE_S, self._stop_loop)

    def _stop_loop(self) -> None:
        self._fail_all(BrokerUnavailable("the publisher closed before the broker confirmed"))
        assert self._ioloop is not None
        self._ioloop.stop()

    def _fail_outbox(self, error: BaseException) -> None:
        while self._outbox:
            settle(self._outbox.popleft().future, error)

    def _fail_all(self, error: BaseException) -> None:
        self._tracker.fail_all(lambda _item: error)
        self._fail_outbox(error)


def publish_once(url: str, msg: Outgoing, *, timeout: float) -> None:
    """Publish one message and wait for its confirm (for ``edi-gateway send``).

    Args:
        url: AMQP URL.
        msg: the message.
        timeout: longest wait for the connection and the confirm, in seconds.

    Raises:
        Unroutable: the broker returned the (mandatory) message.
        BrokerUnavailable: no connection, nack, or no confirm within ``timeout``.
    """
    publisher = ConfirmingPublisher(url, name="edi_gateway.send")
    try:
        [outcome] = publisher.publish_many([msg], timeout=timeout)
    finally:
        # The wait is over either way: do not wait a second time while closing.
        publisher.close(timeout=0)
    if outcome is not None:
        raise outcome
