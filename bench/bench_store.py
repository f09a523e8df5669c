"""Benchmark the store's batched writes: one commit per item against one commit per 64 items.

Prints outcomes/s for ``save_outcomes`` (each request with 1-2 messages of about 6 KB) and
transitions/s for ``transition_messages`` (queued → sent), in batches of 1 and of 64.

    .venv/bin/python bench/bench_store.py                      # a temporary SQLite file
    .venv/bin/python bench/bench_store.py sqlite:///some.db    # a SQLite file of your choice
    .venv/bin/python bench/bench_store.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test

A PostgreSQL URL names the server: the benchmark creates a scratch database there and drops it after.
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.store import NewMessage, NewRequest, RequestOutcome, Store, Transition

BATCH_SIZES = (1, 64)
ACTOR = "bench"
MESSAGE_BYTES = 6 * 1024
T = TypeVar("T")


def _outcome(index: int) -> RequestOutcome:
    """A routed request; every second one also goes to a fastlege (1.5 messages per request)."""
    now = datetime.now(UTC)
    ref = str(uuid.uuid4())
    request = NewRequest(
        ref=ref,
        request_id=str(uuid.uuid4()),
        state=RequestState.ROUTED,
        received_at=now,
        content_type="application/json",
        body=b'{"synthetic": "' + b"r" * 1500 + b'"}',
        samhandlingspunkt=1,
        consent=True,
        send_to_fastlege=index % 2 == 0,
        kommunenummer="4001",
        sender_unit_her_id=8100002,
        problems=(),
        amqp_message_id=str(uuid.uuid4()),
        amqp_correlation_id=None,
        reason="routed",
    )
    receivers = [("kommune", 8200001, 8200011)] + ([("fastlege", 8300001, 8300011)] if index % 2 == 0 else [])
    messages = tuple(_message(kind, org, her_id, now) for kind, org, her_id in receivers)
    return RequestOutcome(request, messages)


def _message(kind: str, org: int, her_id: int, now: datetime) -> NewMessage:
    # Signed XML is mostly text with base64 digests and a signature in it: part filler, part random.
    random_part = base64.b64encode(os.urandom(1024))
    filler = b"<MsgHead>" + b"t" * (MESSAGE_BYTES - len(random_part) - 20)
    return NewMessage(
        msg_id=str(uuid.uuid4()),
        receiver_kind=kind,
        receiver_org_her_id=org,
        receiver_her_id=her_id,
        receiver_name="Synthetic receiver",
        queue=f"{org}_async",
        kommunenummer="4001",
        signed_xml=filler + random_part + b"</MsgHead>",
        msg_type="DIALOG_HELSEFAGLIG",
        conversation_ref=None,
        deadline_at=now + timedelta(hours=96),
    )


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _report(dialect: str, operation: str, size: int, count: int, unit: str, seconds: float) -> None:
    print(
        f"{dialect:<10} {operation:<19} batch {size:>3}: {count:>5} {unit:<11} in {seconds:6.2f} s"
        f" = {count / seconds:8.0f} {unit}/s"
    )


def _time_saves(store: Store, outcomes: Sequence[RequestOutcome], size: int) -> float:
    started = time.perf_counter()
    for chunk in _chunks(outcomes, size):
        store.save_outcomes(chunk, actor=ACTOR)
    return time.perf_counter() - started


def _time_transitions(store: Store, changes: Sequence[Transition], size: int) -> float:
    started = time.perf_counter()
    changed = 0
    for chunk in _chunks(changes, size):
        changed += len(store.transition_messages(chunk, actor=ACTOR))
    elapsed = time.perf_counter() - started
    if changed != len(changes):
        raise RuntimeError(f"only {changed} of {len(changes)} transitions applied")
    return elapsed


def bench_url(url: str, requests: int) -> None:
    """Run both measurements on one database and print a line per (operation, batch size)."""
    store = Store.connect(url)
    store.migrate()
    try:
        for size in BATCH_SIZES:
            outcomes = [_outcome(i) for i in range(requests)]
            elapsed = _time_saves(store, outcomes, size)
            _report(store.dialect_name, "save_outcomes", size, requests, "outcomes", elapsed)
            changes = [
                Transition(
                    m.msg_id,
                    MessageState.SENT,
                    "broker confirmed",
                    expected_from=MessageState.QUEUED,
                    count_attempt=True,
                )
                for o in outcomes
                for m in o.messages
            ]
            elapsed = _time_transitions(store, changes, size)
            _report(store.dialect_name, "transition_messages", size, len(changes), "transitions", elapsed)
    finally:
        store.close()


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    """A fresh database on the server named by ``server_url``, dropped afterwards."""
    name = f"edi_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """The URL to benchmark: a temporary SQLite file, the given SQLite URL, or a scratch PostgreSQL db."""
    if url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
    elif sa.make_url(url).get_backend_name() == "postgresql":
        with scratch_postgres(url) as scratch:
            yield scratch
    else:
        yield url


def main() -> None:
    """Parse the arguments and run the benchmark on each database named."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", nargs="?", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--postgres", metavar="URL", help="also run on this PostgreSQL server")
    parser.add_argument("--requests", type=int, default=1024, help="requests per measurement (default 1024)")
    args = parser.parse_args()
    print(f"{args.requests} requests per measurement, 1-2 messages of {MESSAGE_BYTES // 1024} KB each")
    for url in [args.url, *([args.postgres] if args.postgres else [])]:
        with database(url) as target:
            bench_url(target, args.requests)


if __name__ == "__main__":
    main()
