"""Shared fixtures: the real RabbitMQ and PostgreSQL, each test on its own names.

A missing broker or database fails the tests that need them (never skips): CI must go red when a
service is down. ``pytest -m "not rabbitmq and not postgres"`` runs the fast set alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from edi_gateway.store import Store
    from tests.store.conftest import Builder, FakeClock

REPO = Path(__file__).resolve().parent.parent
# Reference material the tests read, all inside the repository (tests/data/README.md says where each
# piece came from): official sample messages, the synthetic register data the fixtures were derived
# from, and the example requests that fix the request format (the demo sends the same files).
DATA = REPO / "tests" / "data"
SAMPLES = DATA / "samples"
REGISTER_SOURCE = DATA / "registers.json"
EXAMPLE_REQUESTS = REPO / "fixtures" / "requests"

AMQP_URL = os.environ.get("EDI_GATEWAY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
POSTGRES_URL = os.environ.get(
    "EDI_GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def data_files(folder: Path, pattern: str) -> list[Path]:
    """The files below ``folder`` matching ``pattern``, sorted; raises when there are none.

    Tests parametrised over a data folder call this at import time, so a missing or emptied folder
    stops collection with an error instead of quietly collecting zero cases.
    """
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(
            f"no test data matching {pattern!r} in {folder}: it belongs in the repository"
        )
    return found


def _require_port(url: str, default_port: int, what: str) -> None:
    parts = urlsplit(url.replace("+psycopg", ""))
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        pytest.fail(f"{what} is not reachable at {host}:{port} ({exc}); start it (see README)", pytrace=False)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run the test with umask 000, the loosest a process can have."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """URL of the real RabbitMQ; fails the test when the broker is down."""
    _require_port(AMQP_URL, 5672, "RabbitMQ")
    return AMQP_URL


@pytest.fixture
def own_vhost(amqp_url: str) -> Iterator[tuple[str, str]]:
    """A RabbitMQ virtual host of this test's own, as (name, AMQP URL); deleted afterwards.

    Tests that drop the broker's connections do it to this vhost only (``rabbitmqctl
    close_all_connections --vhost``), never to the node every other test and process shares.
    """
    name = f"edi-test-{uuid.uuid4().hex[:10]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, timeout=60)
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
            check=True,
            timeout=60,
        )
        base = amqp_url.rsplit("/", 1)[0]
        yield name, f"{base}/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, timeout=60)


def drop_vhost_connections(vhost: str) -> None:
    """Close every client connection to ``vhost`` from the broker's side, as a broker restart would."""
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "--vhost", vhost, "test: broker connections dropped"],
        check=True,
        timeout=60,
    )


@pytest.fixture
def queue_prefix() -> str:
    """A prefix unique to this test for every queue and exchange it declares."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of the real PostgreSQL; fails the test when the server is down."""
    _require_port(POSTGRES_URL, 5432, "PostgreSQL")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    name = f"edi_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own."""
    return f"sqlite:///{tmp_path / 'edi.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'edi.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def pki_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One test PKI for every register party, generated once per session and copied into each home."""
    from edi_gateway.registers.fixtures import load_fixture_registers
    from edi_gateway.resources import resource_dir
    from edi_gateway.services.context import ensure_gateway_pki
    from edi_gateway.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("pki-home"), test_mode=True)
    ensure_gateway_pki(settings, load_fixture_registers(resource_dir("fixtures") / "registers"))
    return settings.pki_dir


# -- a migrated store on each database, with a hand-driven clock (store and service tests) --------


@pytest.fixture
def clock() -> FakeClock:
    """A fresh clock at T0."""
    from tests.store.conftest import FakeClock

    return FakeClock()


@pytest.fixture
def build(clock: FakeClock) -> Builder:
    """Record builders on the test clock."""
    from tests.store.conftest import Builder

    return Builder(clock)


@pytest.fixture
def store(database_url: str, clock: FakeClock) -> Iterator[Store]:
    """A migrated, empty store on SQLite and on PostgreSQL."""
    from edi_gateway.store import Store

    s = Store.connect(database_url, clock=clock)
    s.migrate()
    try:
        yield s
    finally:
        s.close()
