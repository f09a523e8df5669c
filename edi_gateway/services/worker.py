"""The worker process: requests out, AppRecs in, overdue sweep — until told to stop.

The loops share one confirming publisher, one transport and one store:

* the request consumer on ``edi.requests`` (``OutboundService``), in the calling thread;
* the inbox (``AcknowledgementService``), in a thread: the ``<ourHerId>_async`` queue on ``amqp``,
  the message service's inbox of every HER-id we serve on ``nhn``;
* the overdue sweep (``OverdueSweeper``), in a thread;
* operator actions (``ActionRunner``): replays asked for in the web UI or API, which the web process
  records and never publishes itself, in a thread;
* on ``nhn`` only, the poll of NHN's delivery states (``DeliveryStatusPoller``), in a thread.

Setting ``stop`` ends them all: each finishes the batch in hand, acks, and returns.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence

from edi_gateway.domain.events import StatusEvent
from edi_gateway.errors import TransientError
from edi_gateway.logging import get_logger
from edi_gateway.messaging.amqp import queue_consumer
from edi_gateway.messaging.base import Delivery, Disposition, Handler
from edi_gateway.messaging.factory import Messaging, open_messaging, served_her_ids
from edi_gateway.nhn.msh import MshClient
from edi_gateway.services.acknowledgements import AckDeps, AcknowledgementService
from edi_gateway.services.announce import status_outgoing
from edi_gateway.services.context import Gateway
from edi_gateway.services.delivery_status import DeliveryStatusPoller
from edi_gateway.services.operator_actions import ActionRunner
from edi_gateway.services.outbound import OutboundDeps, OutboundService
from edi_gateway.services.overdue import OverdueSweeper
from edi_gateway.services.replay import ReplayService
from edi_gateway.store import Store

log = get_logger(__name__)


def worker_actor() -> str:
    """The actor name written on every transition this worker makes."""
    return f"worker:{socket.gethostname()}:{os.getpid()}"


def _guarded(
    name: str, target: Callable[[], None], stop: threading.Event, failures: list[BaseException]
) -> None:
    """Run one loop; if it dies, stop the others too so the process exits instead of half-working."""
    try:
        target()
    except BaseException as exc:
        log.error("worker loop failed", loop=name, error=type(exc).__name__, exc_info=exc)
        failures.append(exc)
        stop.set()


def run_worker(gateway: Gateway, stop: threading.Event, *, ready: threading.Event | None = None) -> None:
    """Run the worker's loops until ``stop`` is set, then finish the batches in hand and close cleanly.

    Args:
        gateway: the loaded registers, rules, signer and store.
        stop: set it (e.g. from a SIGTERM handler) to shut down gracefully.
        ready: set once the loops are started (for the demo and tests).

    Raises:
        BaseException: the first failure of any loop, after all of them have stopped.
    """
    settings, names = gateway.settings, gateway.names
    actor = worker_actor()
    failures: list[BaseException] = []
    inbox_queue = names.inbox(settings.our_her_id)
    with open_messaging(
        settings,
        name=f"edi-gateway {actor}",
        inbox_queue=inbox_queue,
        inbox_her_ids=served_her_ids(settings),
    ) as messaging:
        publisher = messaging.publisher
        outbound = OutboundService(
            OutboundDeps(
                settings=settings,
                registers=gateway.registers,
                rules=gateway.rules,
                signer=gateway.signer,
                store=gateway.store,
                publisher=publisher,
                names=names,
                actor=actor,
                transport=messaging.transport,
            )
        )
        ack_deps = AckDeps(
            settings=settings,
            registers=gateway.registers,
            store=gateway.store,
            publisher=publisher,
            names=names,
            actor=actor,
            transport=messaging.transport,
        )
        acks = AcknowledgementService(ack_deps)
        sweeper = OverdueSweeper(ack_deps)
        requests = queue_consumer(
            settings.amqp_url,
            names.requests,
            batch_size=settings.batch_size,
            batch_wait_ms=settings.batch_wait_ms,
            name=f"edi-gateway requests {actor}",
        )
        actions = ActionRunner(
            gateway,
            ReplayService(gateway, publisher, transport=messaging.transport),
            actor,
            interval_s=settings.operator_action_interval_s,
            stale_after_s=settings.operator_action_stale_s,
        )
        loops: list[tuple[str, Callable[[], None]]] = [
            ("inbox", lambda: messaging.inbox.run(store_gate(gateway.store, stop, acks.handle_batch), stop)),
            ("overdue", lambda: sweeper.run(stop)),
            ("operator_actions", lambda: actions.run(stop)),
        ]
        if messaging.msh is not None:
            poller = delivery_status_poller(gateway, messaging, actor)
            loops.append(("delivery_status", lambda: poller.run(stop)))
        threads = [
            threading.Thread(target=_guarded, name=name, daemon=True, args=(name, loop, stop, failures))
            for name, loop in loops
        ]
        for thread in threads:
            thread.start()
        log.info(
            "worker started",
            queue=names.requests,
            transport=messaging.transport.name,
            inbox=inbox_queue if settings.transport == "amqp" else list(served_her_ids(settings)),
            batch_size=settings.batch_size,
        )
        if ready is not None:
            ready.set()
        handle_requests = store_gate(gateway.store, stop, outbound.handle_batch)
        _guarded("requests", lambda: requests.run(handle_requests, stop), stop, failures)
        for thread in threads:
            thread.join()
    log.info("worker stopped")
    if failures:
        raise failures[0]


STORE_WAIT_FIRST_S = 0.5
STORE_WAIT_MAX_S = 5.0


def store_gate(store: Store, stop: threading.Event, handler: Handler) -> Handler:
    """``handler``, but a batch waits while the database is down instead of being requeued at once.

    Without it each delivery of a batch would come back within milliseconds, be requeued again, and
    reach the queue's delivery limit (and the dead-letter queue) long before a database restart is
    over. Holding the batch unacked stops the consumer taking more; the broker keeps the rest. When
    ``stop`` is set the batch goes to the handler anyway, which requeues what it cannot store.
    """

    def gated(batch: Sequence[Delivery]) -> Sequence[Disposition]:
        wait, warned = STORE_WAIT_FIRST_S, False
        while not stop.is_set():
            try:
                store.ping()
                break
            except TransientError as exc:
                if not warned:
                    log.warning("database unavailable: consuming paused", error=type(exc).__name__)
                    warned = True
                stop.wait(wait)
                wait = min(wait * 2, STORE_WAIT_MAX_S)
        if warned:
            log.info("database back: consuming resumed")
        return handler(batch)

    return gated


def delivery_status_poller(gateway: Gateway, messaging: Messaging, actor: str) -> DeliveryStatusPoller:
    """The poll of NHN's delivery states, announcing failures on ``edi.events`` with the shared publisher."""
    from edi_gateway.nhn.metrics import record_error

    settings, names, publisher = gateway.settings, gateway.names, messaging.publisher

    def announce(events: list[StatusEvent]) -> None:
        if events:
            outgoing = [status_outgoing(names, e) for e in events]
            publisher.publish_many(outgoing, timeout=settings.confirm_timeout_s)

    assert isinstance(messaging.msh, MshClient)
    return DeliveryStatusPoller(
        gateway.store,
        messaging.msh,
        actor,
        settings.nhn.nhn_status_poll_interval_s,
        announce,
        on_error=lambda kind: record_error("status", kind),
    )
