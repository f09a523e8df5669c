"""The worker process: requests out, AppRecs in, overdue sweep — until told to stop.

Three loops share one confirming publisher and one store:

* the request consumer on ``edi.requests`` (``OutboundService``), in the calling thread;
* the inbox consumer on ``<ourHerId>_async`` (``AcknowledgementService``), in a thread;
* the overdue sweep (``OverdueSweeper``), in a thread.

Setting ``stop`` ends all three: each finishes the batch in hand, acks, and returns.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from edi_gateway.logging import get_logger
from edi_gateway.services.acknowledgements import AckDeps, AcknowledgementService
from edi_gateway.services.context import Gateway
from edi_gateway.services.outbound import OutboundDeps, OutboundService
from edi_gateway.services.overdue import OverdueSweeper
from edi_gateway.transport.consumer import BatchConsumer
from edi_gateway.transport.publisher import ConfirmingPublisher

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
    with ConfirmingPublisher(settings.amqp_url, name=f"edi-gateway publisher {actor}") as publisher:
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
            )
        )
        ack_deps = AckDeps(
            settings=settings,
            registers=gateway.registers,
            store=gateway.store,
            publisher=publisher,
            names=names,
            actor=actor,
        )
        acks = AcknowledgementService(ack_deps)
        sweeper = OverdueSweeper(ack_deps)
        requests = BatchConsumer(
            settings.amqp_url,
            names.requests,
            prefetch=settings.batch_size * 2,
            batch_size=settings.batch_size,
            batch_wait_ms=settings.batch_wait_ms,
            name=f"edi-gateway requests {actor}",
        )
        inbox_queue = names.inbox(settings.our_her_id)
        inbox = BatchConsumer(
            settings.amqp_url,
            inbox_queue,
            prefetch=settings.batch_size * 2,
            batch_size=settings.batch_size,
            batch_wait_ms=settings.batch_wait_ms,
            name=f"edi-gateway inbox {actor}",
        )
        threads = [
            threading.Thread(
                target=_guarded,
                name="inbox",
                daemon=True,
                args=("inbox", lambda: inbox.run(acks.handle_batch, stop), stop, failures),
            ),
            threading.Thread(
                target=_guarded,
                name="overdue",
                daemon=True,
                args=("overdue", lambda: sweeper.run(stop), stop, failures),
            ),
        ]
        for thread in threads:
            thread.start()
        log.info("worker started", queue=names.requests, inbox=inbox_queue, batch_size=settings.batch_size)
        if ready is not None:
            ready.set()
        _guarded("requests", lambda: requests.run(outbound.handle_batch, stop), stop, failures)
        for thread in threads:
            thread.join()
    log.info("worker stopped")
    if failures:
        raise failures[0]
