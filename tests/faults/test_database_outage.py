"""PostgreSQL refuses every connection for 30 s while requests stream in: the worker stops consuming,
resumes when the database is back, and loses nothing (no request dead-lettered, none duplicated).

The outage is this test's own database (``postgres_url``): new connections refused
(``ALLOW_CONNECTIONS false``) and every open one terminated, then allowed again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from edi_gateway.domain.states import MessageState
from edi_gateway.transport.consumer import queue_depth
from tests.faults.helpers import REQUESTS, gateway_set_up, reconcile_outbound, start_worker, wait_until
from tests.services.conftest import RunningGateway, example, make_settings

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.faults]

OUTAGE_S = 30


@pytest.fixture
def world(
    tmp_path: Path, pki_template: Path, amqp_url: str, postgres_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """The gateway's own PostgreSQL database and queues, set up; no worker runs yet."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=postgres_url, queue_prefix=queue_prefix
    )
    with gateway_set_up(settings) as running:
        yield running


def _allow_connections(postgres_server_url: str, database: str, allowed: bool) -> None:
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                sa.text(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
            )
            if not allowed:
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                    {"db": database},
                )
    finally:
        admin.dispose()


def test_a_database_outage_pauses_the_worker_and_loses_nothing(
    world: RunningGateway, postgres_server_url: str, tmp_path: Path
) -> None:
    """30 s without the database mid-stream: afterwards every request has its one outcome, none dead-lettered."""
    store = world.gateway.store
    database = sa.make_url(world.settings.effective_database_url).database
    assert database is not None
    requests = [example("kommune-and-fastlege") for _ in range(REQUESTS)]
    request_ids = [r["request_id"] for r in requests]
    worker = start_worker(world.settings, tmp_path / "worker.log")
    try:
        wait_until(lambda: store.count_requests() == 0, 30, "the worker's schema in place")
        world.send(*requests[: REQUESTS // 2])
        wait_until(lambda: store.count_requests() >= REQUESTS // 8, 60, "the worker got going")
        _allow_connections(postgres_server_url, database, allowed=False)
        try:
            world.send(*requests[REQUESTS // 2 :])  # these arrive while the database is away
            time.sleep(OUTAGE_S)
            assert worker.poll() is None, "the worker died instead of waiting for the database"
        finally:
            _allow_connections(postgres_server_url, database, allowed=True)
        wait_until(
            lambda: store.count_requests() == REQUESTS and store.count_messages(MessageState.QUEUED) == 0,
            120,
            "every request routed and sent after the outage",
        )
        reconcile_outbound(world, request_ids)
        assert queue_depth(world.settings.amqp_url, world.gateway.names.requests_dlq) == 0
    finally:
        worker.terminate()
        worker.wait(30)
