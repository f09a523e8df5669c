"""The worker process: requests out, AppRecs and documents in, overdue sweep — until told to stop.

``ROLE`` chooses what it is. A hospital's worker consumes EPR requests; a kommune's does not (it
receives behovskartlegging, keeps the pathway worklist and sends fastlege notes). Both have an inbox
and share the rest. The loops share one confirming publisher, one transport and one store:

* on the hospital, the request consumer on ``edi.requests`` (``OutboundService``), in the calling
  thread;
* the inbox, in a thread (the calling thread on a kommune): the queue the Adresseregister names for
  our virksomhet on ``amqp``, the message service's inbox of every HER-id we serve on ``nhn`` (a
  kommune: the virksomhet and all its services). AppRecs go to ``AcknowledgementService``,
  business documents (a kommune's behovskartlegging, replies to the hospital) to the receiving path
  (``services.receiver``: stored, answered once, announced on ``edi.inbound``);
* the receiving path's follow-up (AppRecs and events a batch left undone), one worker at a time;
* on a kommune, the pathway sweep (received behovskartlegging into the worklist, points moved by the
  calendar, due-soon and overdue alerts), one worker at a time, and the fastlege notes
  (``NoteSender``: notes asked for on a completed point, built, signed, sent and tracked);
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
from datetime import UTC, datetime
from typing import Any

from edi_gateway.domain.events import StatusEvent
from edi_gateway.errors import TransientError
from edi_gateway.logging import get_logger
from edi_gateway.messaging.amqp import queue_consumer
from edi_gateway.messaging.base import Delivery, Disposition, Handler
from edi_gateway.messaging.factory import Messaging, open_messaging
from edi_gateway.nhn.msh import MshClient
from edi_gateway.registers.base import Virksomhet
from edi_gateway.services.acknowledgements import AckDeps, AcknowledgementService
from edi_gateway.services.announce import alert_outgoing, status_outgoing
from edi_gateway.services.context import ConfigurationError, Gateway
from edi_gateway.services.delivery_status import DeliveryStatusPoller
from edi_gateway.services.inbox import inbox_handler
from edi_gateway.services.leasing import run_with_lease
from edi_gateway.services.operator_actions import ActionRunner
from edi_gateway.services.outbound import OutboundDeps, OutboundService
from edi_gateway.services.overdue import OverdueSweeper
from edi_gateway.services.receiver.assessment import ReceiverBehaviour
from edi_gateway.services.receiver.system import ReceivingParty, ReceivingSystem
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


def run_worker(
    gateway: Gateway,
    stop: threading.Event,
    *,
    ready: threading.Event | None = None,
    behaviour: ReceiverBehaviour | None = None,
) -> None:
    """Run the worker's loops until ``stop`` is set, then finish the batches in hand and close cleanly.

    Args:
        gateway: the loaded registers, rules, signer and store.
        stop: set it (e.g. from a SIGTERM handler) to shut down gracefully.
        ready: set once the loops are started (for the demo and tests).
        behaviour: simulated misbehaviour of the receiving path (``edi-gateway receiver``, test mode).

    Raises:
        BaseException: the first failure of any loop, after all of them have stopped.
    """
    settings, names = gateway.settings, gateway.names
    actor = worker_actor()
    failures: list[BaseException] = []
    ours = our_virksomhet(gateway)
    inbox_queue = names.prefixed(ours.queue)
    kommune = settings.role == "kommune"
    with open_messaging(
        settings,
        name=f"edi-gateway {actor}",
        inbox_queue=inbox_queue,
        inbox_her_ids=settings.nhn.nhn_her_ids or (ours.all_her_ids if kommune else (settings.our_her_id,)),
    ) as messaging:
        publisher = messaging.publisher
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
        receiving = receiving_system(gateway, messaging, ours, behaviour=behaviour)
        sweeper = OverdueSweeper(ack_deps)
        actions = ActionRunner(
            gateway,
            ReplayService(gateway, publisher, transport=messaging.transport),
            actor,
            interval_s=settings.operator_action_interval_s,
            stale_after_s=settings.operator_action_stale_s,
        )
        inbox = store_gate(
            gateway.store,
            stop,
            inbox_handler(acks.handle_batch, receiving.handle_batch, unreadable_is_document=kommune),
        )
        loops: list[tuple[str, Callable[[], None]]] = [
            ("overdue", lambda: sweeper.run(stop)),
            ("operator_actions", lambda: actions.run(stop)),
            ("inbound_follow_up", lambda: _follow_up(gateway, receiving, actor, stop)),
        ]
        if kommune:
            loops += kommune_loops(gateway, messaging, receiving, actor, stop)
        if messaging.msh is not None:
            poller = delivery_status_poller(gateway, messaging, actor)
            loops.append(("delivery_status", lambda: poller.run(stop)))
        main: tuple[str, Callable[[], None]] = ("inbox", lambda: messaging.inbox.run(inbox, stop))
        if not kommune:
            loops.append(main)
            main = ("requests", _requests_loop(gateway, messaging, actor, stop))
        threads = [
            threading.Thread(target=_guarded, name=name, daemon=True, args=(name, loop, stop, failures))
            for name, loop in loops
        ]
        for thread in threads:
            thread.start()
        log.info(
            "worker started",
            role=settings.role,
            our_her_id=settings.our_her_id,
            transport=messaging.transport.name,
            inbox=inbox_queue if settings.transport == "amqp" else "nhn",
            batch_size=settings.batch_size,
        )
        if ready is not None:
            ready.set()
        _guarded(main[0], main[1], stop, failures)
        for thread in threads:
            thread.join()
    log.info("worker stopped")
    if failures:
        raise failures[0]


def our_virksomhet(gateway: Gateway) -> Virksomhet:
    """Our own virksomhet in the Adresseregister (its queue, services and HER-ids).

    Raises:
        ConfigurationError: OUR_HER_ID is not a virksomhet in the register.
    """
    found = gateway.registers.address.virksomhet(gateway.settings.our_her_id)
    if found is None:
        raise ConfigurationError(
            f"EDI_GATEWAY_OUR_HER_ID {gateway.settings.our_her_id} is not a virksomhet in the Adresseregister"
        )
    return found


def receiving_system(
    gateway: Gateway, messaging: Messaging, ours: Virksomhet, *, behaviour: ReceiverBehaviour | None = None
) -> ReceivingSystem:
    """The receiving path of our virksomhet; a kommune's marks behovskartlegging for the worklist."""
    settings = gateway.settings
    return ReceivingSystem(
        ReceivingParty(ours, gateway.registers, gateway.signer),
        gateway.store,
        messaging.transport,
        messaging.publisher,
        gateway.names,
        settings.test_mode,
        opens_pathways=settings.role == "kommune" and ours.kind == "kommune",
        behaviour=behaviour or ReceiverBehaviour(),
        confirm_timeout_s=settings.confirm_timeout_s,
    )


PATHWAY_LEASE = "pathway_sweep"


def kommune_loops(
    gateway: Gateway, messaging: Messaging, receiving: ReceivingSystem, actor: str, stop: threading.Event
) -> list[tuple[str, Callable[[], None]]]:
    """A kommune's own loops: the pathway worklist (intake and calendar) and the fastlege notes.

    A received behovskartlegging enters the worklist right after its batch is stored (the inbox
    thread); the sweep catches up on anything that could not (the database was away) and moves the
    points by the calendar, raising each due-soon and overdue alert once on ``edi.events``.
    """
    from edi_gateway.services.fastlege_note import NoteSender
    from edi_gateway.services.pathways import desk_for

    settings, names, publisher = gateway.settings, gateway.names, messaging.publisher
    desk = desk_for(gateway)

    def announce(alerts: Sequence[dict[str, Any]]) -> None:
        if alerts:
            publisher.publish_many(
                [alert_outgoing(names, a) for a in alerts], timeout=settings.confirm_timeout_s
            )

    def intake() -> None:
        raised: list[dict[str, Any]] = []
        try:
            desk.apply_received(datetime.now(UTC), actor=actor, on_alert=raised.append)
        except TransientError as exc:  # the sweep takes them later: the AppRecs are out already
            log.warning("pathway intake deferred", error=type(exc).__name__)
        announce(raised)

    def sweep() -> None:
        raised: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        desk.apply_received(now, actor=actor, on_alert=raised.append)
        raised += desk.sweep(now, due_soon_days=settings.pathway_due_soon_days)
        announce(raised)

    receiving.on_stored = intake
    notes = NoteSender(
        gateway, publisher, messaging.transport, actor, interval_s=settings.pathway_note_interval_s
    )
    interval = settings.pathway_sweep_interval_s
    return [
        ("pathway_sweep", lambda: run_with_lease(gateway.store, PATHWAY_LEASE, actor, interval, sweep, stop)),
        ("fastlege_notes", lambda: notes.run(stop)),
    ]


FOLLOW_UP_LEASE = "inbound_follow_up"
FOLLOW_UP_INTERVAL_S = 5.0
DELAYED_FOLLOW_UP_INTERVAL_S = 0.2


def _follow_up(gateway: Gateway, receiving: ReceivingSystem, actor: str, stop: threading.Event) -> None:
    """One worker at a time sends what receiving batches left undone (see ``ReceivingSystem.follow_up``)."""
    delayed = receiving.behaviour.delay_s > 0
    interval = DELAYED_FOLLOW_UP_INTERVAL_S if delayed else FOLLOW_UP_INTERVAL_S
    job = lambda: receiving.follow_up(datetime.now(UTC))  # noqa: E731
    run_with_lease(gateway.store, FOLLOW_UP_LEASE, actor, interval, job, stop)


def _requests_loop(
    gateway: Gateway, messaging: Messaging, actor: str, stop: threading.Event
) -> Callable[[], None]:
    """The hospital's request consumer on ``edi.requests`` (``OutboundService``)."""
    settings, names = gateway.settings, gateway.names
    outbound = OutboundService(
        OutboundDeps(
            settings=settings,
            registers=gateway.registers,
            rules=gateway.rules,
            signer=gateway.signer,
            store=gateway.store,
            publisher=messaging.publisher,
            names=names,
            actor=actor,
            transport=messaging.transport,
        )
    )
    requests = queue_consumer(
        settings.amqp_url,
        names.requests,
        batch_size=settings.batch_size,
        batch_wait_ms=settings.batch_wait_ms,
        name=f"edi-gateway requests {actor}",
    )
    handle_requests = store_gate(gateway.store, stop, outbound.handle_batch)
    return lambda: requests.run(handle_requests, stop)


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
