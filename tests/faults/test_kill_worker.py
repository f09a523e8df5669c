"""``kill -9`` of a worker in the middle of its batches, outbound and inbound: restart, and count.

A real ``edi-gateway worker`` process works through requests (then AppRecs) on the real RabbitMQ and
database; the test kills it with SIGKILL while batches are in hand, starts a new one, and reconciles
broker, store and receivers: every request ends in exactly one outcome, every (request, receiver) has
exactly one MsgId, every stored message reached its receiver's queue (copies of one MsgId allowed:
receivers drop duplicates), and every AppRec is applied once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edi_gateway.domain.states import MessageState
from tests.faults.helpers import REQUESTS, gateway_set_up, reconcile_outbound, start_worker, wait_until
from tests.services.conftest import RunningGateway, example, make_settings
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox

pytestmark = [pytest.mark.rabbitmq, pytest.mark.faults]


@pytest.fixture
def world(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """The gateway's database and queues, set up; no worker runs until the test starts one."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=database_url, queue_prefix=queue_prefix
    )
    with gateway_set_up(settings) as running:
        yield running


def _kill_mid_way(
    world: RunningGateway, started: Callable[[], int], log: Path, *, after: int, until: Callable[[], bool]
) -> None:
    """Run a worker, SIGKILL it once ``started()`` reaches ``after``, then run a new one until ``until()``."""
    worker = start_worker(world.settings, log)
    try:
        wait_until(lambda: started() >= after, 60, "the first worker got going")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert not until(), "the worker finished before it could be killed; raise REQUESTS"
        worker = start_worker(world.settings, log)
        wait_until(until, 120, "the second worker finished the work")
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(30)


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
