"""The worker process: consume ``edi.requests`` in batches until told to stop."""

from __future__ import annotations

import os
import socket
import threading

from edi_gateway.logging import get_logger
from edi_gateway.services.context import Gateway
from edi_gateway.services.outbound import OutboundDeps, OutboundService
from edi_gateway.transport.consumer import BatchConsumer
from edi_gateway.transport.publisher import ConfirmingPublisher

log = get_logger(__name__)


def worker_actor() -> str:
    """The actor name written on every transition this worker makes."""
    return f"worker:{socket.gethostname()}:{os.getpid()}"


def run_worker(gateway: Gateway, stop: threading.Event, *, ready: threading.Event | None = None) -> None:
    """Consume requests until ``stop`` is set, then finish the batch in hand and close cleanly.

    Args:
        gateway: the loaded registers, rules, signer and store.
        stop: set it (e.g. from a SIGTERM handler) to shut down gracefully.
        ready: set once the worker is connected and consuming (for the demo and tests).
    """
    settings = gateway.settings
    actor = worker_actor()
    with ConfirmingPublisher(settings.amqp_url, name=f"edi-gateway publisher {actor}") as publisher:
        service = OutboundService(
            OutboundDeps(
                settings=settings,
                registers=gateway.registers,
                rules=gateway.rules,
                signer=gateway.signer,
                store=gateway.store,
                publisher=publisher,
                names=gateway.names,
                actor=actor,
            )
        )
        consumer = BatchConsumer(
            settings.amqp_url,
            gateway.names.requests,
            prefetch=settings.batch_size * 2,
            batch_size=settings.batch_size,
            batch_wait_ms=settings.batch_wait_ms,
            name=f"edi-gateway {actor}",
        )
        log.info("worker started", queue=gateway.names.requests, batch_size=settings.batch_size)
        if ready is not None:
            ready.set()
        consumer.run(service.handle_batch, stop)
    log.info("worker stopped")
