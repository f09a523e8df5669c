"""What the fault tests share: a real worker process, waiting, the gateway set up, and the reconciliation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.services.context import open_gateway
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.settings import Settings
from edi_gateway.store.records import MessageRecord
from edi_gateway.transport.consumer import drain
from tests.services.conftest import RunningGateway, cleanup_gateway

REQUESTS = 120


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDI_GATEWAY_")}
    env.update(
        {
            "EDI_GATEWAY_HOME": str(settings.home),
            "EDI_GATEWAY_AMQP_URL": settings.amqp_url,
            "EDI_GATEWAY_DATABASE_URL": settings.effective_database_url,
            "EDI_GATEWAY_QUEUE_PREFIX": settings.queue_prefix,
            "EDI_GATEWAY_TEST_MODE": "true",
            "EDI_GATEWAY_BATCH_SIZE": "8",
            "EDI_GATEWAY_BATCH_WAIT_MS": "5",
        }
    )
    return env


def start_worker(
    settings: Settings, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``edi-gateway worker`` for ``settings``; ``env`` adds settings (e.g. short deadlines) on top."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edi_gateway", "worker"],
            env={**_env(settings), **(env or {})},
            stdout=out,
            stderr=out,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker if it still runs, and require the clean exit a graceful stop gives."""
    if worker.poll() is None:
        worker.terminate()
        worker.wait(30)
    assert worker.returncode == 0, f"the worker exited with {worker.returncode}"


def worker_log(log: Path, event: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines whose ``event`` is ``event`` (anything else in the file is skipped)."""
    found: list[dict[str, Any]] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


class EventTap:
    """Everything the gateway publishes on ``edi.events`` (status events and alerts), on a queue of our own."""

    def __init__(self, world: RunningGateway) -> None:
        self._url = world.settings.amqp_url
        self.queue = f"{world.settings.queue_prefix}events.tap"
        self.seen: list[dict[str, Any]] = []
        connection = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            channel = connection.channel()
            channel.queue_declare(self.queue, durable=True)
            channel.queue_bind(self.queue, world.gateway.names.events_exchange, routing_key="#")
        finally:
            connection.close()

    def read(self) -> list[dict[str, Any]]:
        """Every event published so far (those still on their way wait half a second)."""
        got = drain(self._url, self.queue, max_messages=100_000, timeout=0.5)
        self.seen += [json.loads(d.body) for d in got]
        return self.seen

    def close(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            connection.channel().queue_delete(self.queue)
        finally:
            connection.close()


@contextmanager
def event_tap(world: RunningGateway) -> Iterator[EventTap]:
    """An ``EventTap`` bound before the worker starts, deleted afterwards."""
    tap = EventTap(world)
    try:
        yield tap
    finally:
        tap.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not reached within {timeout} s")


@contextmanager
def gateway_set_up(settings: Settings, *, clean_queues: bool = True) -> Iterator[RunningGateway]:
    """The gateway's database migrated and its queues declared; no worker runs until a test starts one."""
    gateway = open_gateway(settings, migrate=True)
    declare_gateway_topology(gateway)
    running = RunningGateway(gateway, settings, events_queue=f"{settings.queue_prefix}unused")
    try:
        yield running
    finally:
        gateway.close()
        if clean_queues:
            cleanup_gateway(running)


def all_messages(world: RunningGateway, request_ids: list[str]) -> list[MessageRecord]:
    store = world.gateway.store
    messages: list[MessageRecord] = []
    for request_id in request_ids:
        request = store.get_request(request_id)
        assert request is not None
        messages += store.messages_for_request(request.ref)
    return messages


def reconcile_outbound(world: RunningGateway, request_ids: list[str]) -> list[MessageRecord]:
    """Assert one outcome per request, one MsgId per (request, receiver), every message on its queue."""
    store = world.gateway.store
    states = {store.get_request(rid).state for rid in request_ids}  # type: ignore[union-attr]
    assert states == {RequestState.ROUTED} and store.count_requests() == REQUESTS
    messages = all_messages(world, request_ids)
    per_receiver = {(m.request_ref, m.receiver_key) for m in messages}
    assert len(per_receiver) == len(messages) == 2 * REQUESTS  # a kommune and a fastlege each
    assert {m.state for m in messages} == {MessageState.SENT}
    delivered: set[str] = set()
    for queue in {m.queue.removeprefix(world.settings.queue_prefix) for m in messages}:
        on_queue = [m for m in messages if m.queue == world.gateway.names.prefixed(queue)]
        got = world.receiver_deliveries(queue, expect=len(on_queue), timeout=10)
        got += world.receiver_deliveries(queue, expect=len(on_queue), timeout=1)  # copies, if any
        delivered |= {d.message_id for d in got if d.message_id}
    assert delivered == {m.msg_id for m in messages}
    return messages
