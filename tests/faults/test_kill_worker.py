"""``kill -9`` of a worker in the middle of its batches, outbound and inbound: restart, and count.

A real ``edi-gateway worker`` process works through requests (then AppRecs) on the real RabbitMQ and
database; the test kills it with SIGKILL while batches are in hand, starts a new one, and reconciles
broker, store and receivers: every request ends in exactly one outcome, every (request, receiver) has
exactly one MsgId, every stored message reached its receiver's queue (copies of one MsgId allowed:
receivers drop duplicates), and every AppRec is applied once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.services.context import open_gateway
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.settings import Settings
from edi_gateway.store.records import MessageRecord
from tests.services.conftest import RunningGateway, cleanup_gateway, example, make_settings
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox

pytestmark = [pytest.mark.rabbitmq, pytest.mark.faults]

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


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edi_gateway", "worker"], env=_env(settings), stdout=out, stderr=out
        )


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not reached within {timeout} s")


@pytest.fixture
def world(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """The gateway's database and queues, set up; no worker runs until the test starts one."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=database_url, queue_prefix=queue_prefix
    )
    gateway = open_gateway(settings, migrate=True)
    declare_gateway_topology(gateway)
    running = RunningGateway(gateway, settings, events_queue=f"{queue_prefix}unused")
    try:
        yield running
    finally:
        gateway.close()
        cleanup_gateway(running)


def _kill_mid_way(
    world: RunningGateway, started: Callable[[], int], log: Path, *, after: int, until: Callable[[], bool]
) -> None:
    """Run a worker, SIGKILL it once ``started()`` reaches ``after``, then run a new one until ``until()``."""
    worker = _start_worker(world.settings, log)
    try:
        _wait(lambda: started() >= after, 60, "the first worker got going")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert not until(), "the worker finished before it could be killed; raise REQUESTS"
        worker = _start_worker(world.settings, log)
        _wait(until, 120, "the second worker finished the work")
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(30)


def _all_messages(world: RunningGateway, request_ids: list[str]) -> list[MessageRecord]:
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
    messages = _all_messages(world, request_ids)
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


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(
    world: RunningGateway, tmp_path: Path
) -> None:
    """Outbound then inbound, each with a kill -9 in the middle: one outcome per request, one MsgId per
    receiver, every message on its queue, every AppRec applied once."""
    store = world.gateway.store
    requests = [example("kommune-and-fastlege") for _ in range(REQUESTS)]
    request_ids = [r["request_id"] for r in requests]
    world.send(*requests)

    def routed_and_sent() -> bool:
        if store.count_requests() < REQUESTS:
            return False
        return store.count_messages(MessageState.QUEUED) == 0

    _kill_mid_way(
        world, store.count_requests, tmp_path / "worker.log", after=REQUESTS // 4, until=routed_and_sent
    )

    messages = reconcile_outbound(world, request_ids)

    apprecs = [signed_by(world, m.receiver_org_her_id, apprec_for(m)) for m in messages]
    to_inbox(world, *apprecs)
    _kill_mid_way(
        world,
        lambda: store.count_messages(MessageState.ACKED),
        tmp_path / "worker.log",
        after=len(messages) // 4,
        until=lambda: store.count_messages(MessageState.ACKED) == len(messages),
    )
    assert all(len(store.apprecs_for_message(m.msg_id)) == 1 for m in messages)
    assert store.count_parked() == 0
