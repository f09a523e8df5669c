"""The broker drops every connection mid-stream (as a restart does), twice: the worker process reconnects
by itself, publishers and consumers alike, and nothing is lost or duplicated.

Only this test's own RabbitMQ vhost is disturbed (``own_vhost``), never the node others share.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edi_gateway.domain.states import MessageState
from tests.conftest import drop_vhost_connections
from tests.faults.helpers import REQUESTS, gateway_set_up, reconcile_outbound, start_worker, wait_until
from tests.services.conftest import RunningGateway, example, make_settings
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox

pytestmark = [pytest.mark.rabbitmq, pytest.mark.faults]


@pytest.fixture
def world(
    tmp_path: Path, pki_template: Path, database_url: str, queue_prefix: str, own_vhost: tuple[str, str]
) -> Iterator[tuple[RunningGateway, str]]:
    """The gateway's database and queues on this test's own vhost; no worker runs yet."""
    vhost, url = own_vhost
    settings = make_settings(
        tmp_path, pki_template, amqp_url=url, database_url=database_url, queue_prefix=queue_prefix
    )
    # The vhost goes with its queues: nothing to delete one by one.
    with gateway_set_up(settings, clean_queues=False) as running:
        yield running, vhost


def test_dropped_broker_connections_mid_stream_lose_and_duplicate_nothing(
    world: tuple[RunningGateway, str], tmp_path: Path
) -> None:
    """Connections dropped twice while requests, then AppRecs, stream through: every outcome exactly once."""
    running, vhost = world
    store = running.gateway.store
    requests = [example("kommune-and-fastlege") for _ in range(REQUESTS)]
    request_ids = [r["request_id"] for r in requests]
    worker = start_worker(running.settings, tmp_path / "worker.log")
    try:
        running.send(*requests)
        wait_until(lambda: store.count_requests() >= REQUESTS // 4, 60, "the worker got going")
        drop_vhost_connections(vhost)
        wait_until(lambda: store.count_requests() >= REQUESTS // 2, 60, "the worker went on")
        drop_vhost_connections(vhost)
        wait_until(
            lambda: store.count_requests() == REQUESTS and store.count_messages(MessageState.QUEUED) == 0,
            120,
            "every request routed and sent",
        )
        messages = reconcile_outbound(running, request_ids)

        to_inbox(running, *[signed_by(running, m.receiver_org_her_id, apprec_for(m)) for m in messages])
        wait_until(
            lambda: store.count_messages(MessageState.ACKED) >= len(messages) // 4, 60, "AppRecs applied"
        )
        drop_vhost_connections(vhost)
        wait_until(
            lambda: store.count_messages(MessageState.ACKED) == len(messages), 120, "every message acked"
        )
        assert all(len(store.apprecs_for_message(m.msg_id)) == 1 for m in messages)
        assert store.count_parked() == 0
        assert worker.poll() is None, "the worker exited instead of reconnecting"
    finally:
        worker.terminate()
        worker.wait(30)
