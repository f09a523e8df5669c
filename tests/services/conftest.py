"""A running gateway for pipeline tests: own queues, own database, shared test PKI, a worker thread."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest

from edi_gateway.domain.assessment_text import render_assessment
from edi_gateway.domain.request import parse_request
from edi_gateway.domain.states import RequestState
from edi_gateway.resources import resource_dir
from edi_gateway.services.building import MessageBuilder
from edi_gateway.services.context import Gateway, open_gateway, receiver_queues
from edi_gateway.services.receivers import resolve_receivers
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.services.worker import run_worker
from edi_gateway.settings import Settings
from edi_gateway.store import NewMessage, NewRequest, RequestOutcome
from edi_gateway.transport.consumer import Delivery, drain
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing

EXAMPLES = resource_dir("fixtures") / "requests"


def example(name: str, **changes: Any) -> dict[str, Any]:
    """An example request with a fresh request_id (and any top-level changes)."""
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    data["request_id"] = str(uuid.uuid4())
    data.update(changes)
    return data


@dataclass
class RunningGateway:
    """A gateway with a worker thread, its settings, and helpers to talk to it."""

    gateway: Gateway
    settings: Settings
    events_queue: str
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def send(self, *bodies: dict[str, Any] | bytes, content_type: str = "application/json") -> None:
        """Publish request bodies to edi.requests (dicts are JSON-encoded)."""
        outgoing = [
            Outgoing(
                exchange="",
                routing_key=self.gateway.names.requests,
                body=b if isinstance(b, bytes) else json.dumps(b, ensure_ascii=False).encode(),
                message_id=str(uuid.uuid4()),
                correlation_id=None,
                content_type=content_type,
            )
            for b in bodies
        ]
        with ConfirmingPublisher(self.settings.amqp_url, name="test sender") as publisher:
            assert publisher.publish_many(outgoing, timeout=10) == [None] * len(outgoing)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        """Wait until predicate() holds; fail the test on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("condition not reached in time")

    def wait_request(self, request_id: str, timeout: float = 20) -> Any:
        """Wait until the request is stored and none of its messages is still queued; return it."""
        store = self.gateway.store

        def settled() -> bool:
            request = store.get_request(request_id)
            return request is not None and all(
                m.state != "queued" for m in store.messages_for_request(request.ref)
            )

        self.wait_for(settled, timeout)
        return store.get_request(request_id)

    def receiver_deliveries(self, queue: str, *, expect: int, timeout: float = 10) -> list[Delivery]:
        """Read ``expect`` messages from a receiver queue (prefix added)."""
        name = self.gateway.names.prefixed(queue)
        got: list[Delivery] = []
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            got += drain(self.settings.amqp_url, name, max_messages=expect - len(got), timeout=0.5)
        return got

    def events(self, *, expect: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Read ``expect`` status events captured from edi.events."""
        got: list[Delivery] = []
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            got += drain(
                self.settings.amqp_url, self.events_queue, max_messages=expect - len(got), timeout=0.5
            )
        return [json.loads(d.body) for d in got]


def _cleanup(settings: Settings, gateway: Gateway, extra: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    names = gateway.names
    for queue in [
        names.requests,
        names.requests_dlq,
        names.inbox(settings.our_her_id),
        *receiver_queues(gateway),
        *extra,
    ]:
        channel.queue_delete(queue)
    channel.exchange_delete(names.events_exchange)
    channel.exchange_delete(names.inbound_exchange)
    connection.close()


def start_gateway(
    settings: Settings, customize: Callable[[Gateway], Gateway] | None = None
) -> RunningGateway:
    """Set up and start a worker for ``settings``; the caller stops it with ``stop_gateway``.

    ``customize`` may swap parts of the gateway (e.g. a register that fails) before the worker starts.
    """
    gateway = open_gateway(settings, migrate=True)
    if customize is not None:
        gateway = customize(gateway)
    declare_gateway_topology(gateway)
    events_queue = f"{settings.queue_prefix}events.capture"
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    channel = connection.channel()
    channel.queue_declare(events_queue, durable=True)
    channel.queue_bind(
        events_queue, gateway.names.events_exchange, routing_key="#"
    )  # status events and alerts
    connection.close()
    running = RunningGateway(gateway, settings, events_queue)
    ready = threading.Event()
    running.thread = threading.Thread(
        target=run_worker, args=(gateway, running.stop), kwargs={"ready": ready}, daemon=True
    )
    running.thread.start()
    assert ready.wait(20), "worker did not start"
    return running


def stop_gateway(running: RunningGateway) -> None:
    """Stop the worker cleanly and close the store."""
    running.stop.set()
    if running.thread is not None:
        running.thread.join(30)
        assert not running.thread.is_alive(), "worker did not stop"
    running.gateway.close()


def make_settings(
    tmp_path: Path,
    pki_template: Path,
    *,
    amqp_url: str,
    database_url: str,
    queue_prefix: str,
    **overrides: Any,
) -> Settings:
    """Settings for one test: own home (with the shared PKI copied in), database and queue prefix."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    return Settings(
        home=home,
        amqp_url=amqp_url,
        database_url=database_url,
        test_mode=True,
        queue_prefix=queue_prefix,
        batch_wait_ms=5,
        **overrides,
    )


def cleanup_gateway(running: RunningGateway) -> None:
    """Delete every queue and the exchange the test's gateway declared."""
    _cleanup(running.settings, running.gateway, [running.events_queue])


@pytest.fixture
def start(
    tmp_path: Path, pki_template: Path, amqp_url: str, sqlite_url: str, queue_prefix: str
) -> Iterator[Callable[..., RunningGateway]]:
    """Start a gateway with setting overrides (SQLite, own queues); stopped and cleaned up after the test.

    ``start(apprec_deadline_s=0.5)``; ``start(customize=f)`` swaps gateway parts before the worker starts.
    """
    started: list[RunningGateway] = []

    def _start(*, customize: Callable[[Gateway], Gateway] | None = None, **overrides: Any) -> RunningGateway:
        settings = make_settings(
            tmp_path,
            pki_template,
            amqp_url=amqp_url,
            database_url=sqlite_url,
            queue_prefix=queue_prefix,
            **overrides,
        )
        started.append(start_gateway(settings, customize))
        return started[-1]

    yield _start
    for gw in started:
        stop_gateway(gw)
        cleanup_gateway(gw)


@pytest.fixture
def running(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """A started gateway on the real RabbitMQ and the parametrized database (SQLite and PostgreSQL)."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=database_url, queue_prefix=queue_prefix
    )
    gw = start_gateway(settings)
    try:
        yield gw
    finally:
        stop_gateway(gw)
        _cleanup(settings, gw.gateway, [gw.events_queue])


# -- a gateway without a broker, on the parametrised database (routing, access and query tests) ----


@pytest.fixture
def settings(tmp_path: Path, pki_template: Path, database_url: str) -> Settings:
    """Settings with an own home and the parametrised database; no broker is used here."""
    return make_settings(
        tmp_path, pki_template, amqp_url="amqp://unused", database_url=database_url, queue_prefix="unused."
    )


@pytest.fixture
def gateway(settings: Settings) -> Iterator[Gateway]:
    """A gateway on a migrated store, its patient key bound."""
    gw = open_gateway(settings, migrate=True)
    try:
        yield gw
    finally:
        gw.close()


def store_routed_request(gateway: Gateway, person_id: str, *, fastlege: bool = False) -> list[NewMessage]:
    """Route, build and store one request the way the worker does (no broker); return its messages."""
    data = example("kommune-and-fastlege" if fastlege else "kommune-only")
    data["patient"]["id"] = person_id
    body = json.dumps(data).encode()
    request = parse_request(body, content_type="application/json", max_bytes=10**6, test_mode=True)
    resolution = resolve_receivers(
        person_id=person_id,
        kommunenummer=None,
        send_to_fastlege=fastlege,
        registers=gateway.registers,
        rules=gateway.rules,
    )
    builder = MessageBuilder(
        gateway.settings, gateway.registers, gateway.rules, gateway.signer, gateway.names
    )
    text = render_assessment(request, kommune_name=resolution.receivers[0].organisation.name)
    messages = [builder.build(request, r, resolution.kommunenummer, text) for r in resolution.receivers]
    stored = NewRequest(
        ref=str(uuid.uuid4()),
        request_id=str(request.request_id),
        state=RequestState.ROUTED,
        received_at=gateway.store._now(),
        content_type="application/json",
        body=body,
        samhandlingspunkt=1,
        consent=True,
        send_to_fastlege=fastlege,
        kommunenummer=resolution.kommunenummer,
        sender_unit_her_id=None,
        problems=resolution.problems,
        amqp_message_id=None,
        amqp_correlation_id=None,
        reason="routed",
    )
    gateway.store.save_outcomes([RequestOutcome(stored, tuple(messages))], actor="worker:test")
    return messages
