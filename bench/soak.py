"""Soak: N requests through K real worker processes to ``sent``, their AppRecs to ``acked``, in waves; reconcile.

Run (RabbitMQ on 127.0.0.1:5672; PostgreSQL on 127.0.0.1:5432 for ``--store postgres``, the default):

    .venv/bin/python bench/soak.py

Options: ``-n N`` requests (default 10000), ``--waves W`` (default 10, so waves of N/W), ``--workers K``
worker processes (default 2, each a ``python -m edi_gateway worker``), ``--store postgres|sqlite``
(default postgres: a throwaway database on ``--postgres-url``, dropped at the end), ``--batch-size``
(default 64, as the worker's).

It reuses ``bench_roundtrip``'s machinery: the same test-mode HOME (test PKI, worker logs), queue prefix
and throwaway database, the same example requests and pre-signed AppRecs, the same worker processes.
Each wave publishes its requests at once, waits until every one is stored and none of its messages is
still ``queued``, signs one AppRec (status 1) per message it sent (as the receiver would; not timed),
publishes them, waits until every message is ``acked``, drains the receiver queues (keeping the MsgIds)
and samples the workers' RSS. After the last wave the workers are stopped and the figures printed;
each line ends in OK or FAIL.

What each figure means:

* **requests** — published on ``edi.requests`` vs stored: each published request id stored exactly
  once, with one outcome, ``routed`` (the example requests are valid and route).
* **messages** — stored vs expected (one per request for the kommune, one more when the patient has a
  fastlege) vs the distinct MsgIds (AMQP ``message_id``) drained from the receiver queues: the two sets
  of MsgIds are equal. Copies of one MsgId (a publish retried) are allowed and counted: receivers drop
  duplicates.
* **acks** — messages ``acked`` vs stored, and AppRecs stored vs ``acked``: every message has exactly one
  AppRec row.
* **parked** — inbound documents set aside for an operator (resolved or not): must be 0.
* **dead-lettered** — the depth of ``edi.requests.dlq``: must be 0.
* **RSS** — VmRSS of each worker process from ``/proc/<pid>/status`` after the first wave and after the
  last, with the growth in %; "RSS flat" means every worker grew by less than 10 %. VmHWM is the peak.
* **error lines** — lines at level ``error`` or ``critical`` in the workers' JSON log files (INFO and
  up, under the temporary HOME), plus any line that is not JSON (a traceback written to stderr); the
  first few events' names are printed, never their other fields.

Exit code 0 only when every count reconciles, RSS is flat and there is no error line; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pika
import sqlalchemy as sa
from bench_roundtrip import (
    AMQP_URL,
    POSTGRES_URL,
    MiB,
    Patient,
    Phase,
    Workers,
    inbound_phase,
    outbound_settled,
    publish_confirmed,
    request_bodies,
    request_outgoing,
    routable_patients,
    run_on_fresh_gateway,
    signed_apprecs,
    start_process_workers,
    wait_for_consumers,
    wait_until,
)

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.services.context import Gateway, receiver_queues
from edi_gateway.store import tables
from edi_gateway.transport.consumer import queue_depth
from edi_gateway.transport.publisher import ConfirmingPublisher

RSS_FLAT = 0.10  # "RSS flat": every worker grew by less than this between the first wave and the last
ERROR_LEVELS = frozenset({"error", "critical"})
SHOWN_ERRORS = 5


# -- one wave --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wave:
    """What one wave did."""

    requests: int
    outbound: Phase
    inbound: Phase
    rss: list[tuple[int, int]]


def outbound_wave(gateway: Gateway, bodies: Sequence[tuple[str, bytes]], timeout: float) -> Phase:
    """Publish the wave's requests at once; time until they are all stored and none is still queued."""
    store = gateway.store
    requests_before, messages_before = store.count_requests(), store.count_messages()
    outgoing = [request_outgoing(gateway, rid, body) for rid, body in bodies]
    with ConfirmingPublisher(gateway.settings.amqp_url, name="soak epr") as publisher:
        t0 = time.perf_counter()
        publish_confirmed(publisher, outgoing, "requests")
        done = wait_until(
            "every message of the wave sent",
            outbound_settled(gateway, requests_before + len(bodies)),
            timeout,
        )
    return Phase(store.count_messages() - messages_before, done - t0)


def drain_receivers(gateway: Gateway, seen: Counter[str]) -> int:
    """Take every message off the receiver queues, counting each MsgId in ``seen``; return how many
    deliveries had no MsgId.

    ``basic.get`` with ``no_ack``: a message is gone once delivered. Manual acks sent just before the
    channel closes are sometimes dropped by quorum queues (rabbitmq/rabbitmq-server#10327), and those
    messages would come back in the next wave as false copies.
    """
    without_id = 0
    connection = pika.BlockingConnection(pika.URLParameters(gateway.settings.amqp_url))
    try:
        channel = connection.channel()
        for queue in receiver_queues(gateway):
            while True:
                method, properties, _body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                message_id = properties.message_id if properties is not None else None
                if message_id:
                    seen[message_id] += 1
                else:
                    without_id += 1
    finally:
        connection.close()
    return without_id


def run_wave(
    gateway: Gateway,
    workers: Workers,
    bodies: Sequence[tuple[str, bytes]],
    seen: Counter[str],
    timeout: float,
) -> tuple[Wave, int]:
    """One wave: requests to ``sent``, AppRecs to ``acked``, receiver queues drained, RSS sampled."""
    outbound = outbound_wave(gateway, bodies, timeout)
    sent = gateway.store.messages_in_state([MessageState.SENT], limit=10 * len(bodies) + 100)
    inbound = inbound_phase(gateway, signed_apprecs(gateway.settings, sent), timeout)
    without_id = drain_receivers(gateway, seen)
    return Wave(len(bodies), outbound, inbound, workers.rss()), without_id


def wave_sizes(n: int, waves: int) -> list[int]:
    """``n`` split into ``waves`` parts as equal as they come."""
    return [n // waves + (1 if i < n % waves else 0) for i in range(waves)]


# -- reconciling -----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "OK" if ok else "FAIL"


def _states(counts: Counter[str]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(counts.items())) or "none"


def reconcile(
    gateway: Gateway,
    published: set[str],
    expected_messages: int,
    seen: Counter[str],
    without_id: int,
) -> list[tuple[str, bool]]:
    """The count lines (text, reconciled) of requests, messages, acks, parked and dead-lettered."""
    settings, names = gateway.settings, gateway.names
    engine = sa.create_engine(settings.effective_database_url)
    try:
        with engine.connect() as conn:
            request_rows = conn.execute(
                sa.select(tables.requests.c.request_id, tables.requests.c.state)
            ).all()
            message_rows = conn.execute(sa.select(tables.messages.c.msg_id, tables.messages.c.state)).all()
            apprecs_per_message = Counter(
                {
                    str(msg_id): int(count)
                    for msg_id, count in conn.execute(
                        sa.select(tables.apprecs.c.msg_id, sa.func.count()).group_by(tables.apprecs.c.msg_id)
                    )
                }
            )
    finally:
        engine.dispose()

    stored_ids = [str(r.request_id) for r in request_rows]
    request_states = Counter(str(r.state) for r in request_rows)
    requests_ok = (
        len(stored_ids) == len(published)
        and set(stored_ids) == published
        and request_states == Counter({RequestState.ROUTED.value: len(published)})
    )
    requests_line = (
        f"requests:      {len(published)} published, {len(stored_ids)} stored, "
        f"{len(set(stored_ids) & published)} of them published ids, each one outcome ({_states(request_states)})"
    )

    msg_states = {str(r.msg_id): str(r.state) for r in message_rows}
    stored_msg_ids = set(msg_states)
    distinct = set(seen)
    copies = sum(seen.values()) - len(distinct)
    missing, unknown = len(stored_msg_ids - distinct), len(distinct - stored_msg_ids)
    messages_ok = len(message_rows) == expected_messages and distinct == stored_msg_ids and without_id == 0
    messages_line = (
        f"messages:      {len(message_rows)} stored (expected {expected_messages}), {len(distinct)} distinct "
        f"MsgIds on the receiver queues ({sum(seen.values())} deliveries, {copies} copies of a MsgId; "
        f"{missing} stored but not on a queue, {unknown} on a queue but not stored"
        + (f", {without_id} without a MsgId" if without_id else "")
        + ")"
    )

    acked = sum(1 for s in msg_states.values() if s == MessageState.ACKED.value)
    apprec_rows = sum(apprecs_per_message.values())
    not_one = sum(1 for m in stored_msg_ids if apprecs_per_message.get(m, 0) != 1)
    acks_ok = (
        acked == len(message_rows)
        and apprec_rows == acked
        and not_one == 0
        and set(apprecs_per_message) == stored_msg_ids
    )
    acks_line = (
        f"acks:          {acked} of {len(message_rows)} messages acked ({_states(Counter(msg_states.values()))}), "
        f"{apprec_rows} AppRecs stored for {len(apprecs_per_message)} messages, "
        f"{not_one} messages without exactly one AppRec"
    )

    parked = gateway.store.count_parked(unresolved_only=False)
    dead = queue_depth(settings.amqp_url, names.requests_dlq)
    left_requests = queue_depth(settings.amqp_url, names.requests)
    left_inbox = queue_depth(settings.amqp_url, names.inbox(settings.our_her_id))
    return [
        (requests_line, requests_ok),
        (messages_line, messages_ok),
        (acks_line, acks_ok),
        (f"parked:        {parked} documents", parked == 0),
        (
            f"dead-lettered: {dead} requests on edi.requests.dlq "
            f"({left_requests} left on edi.requests, {left_inbox} on the inbox)",
            dead == 0,
        ),
    ]


def rss_figures(first: list[tuple[int, int]], last: list[tuple[int, int]]) -> tuple[list[str], bool]:
    """One line per worker (VmRSS after the first wave → after the last, growth, peak) and "RSS flat"."""
    lines: list[str] = []
    flat = True
    for i, ((before, _), (after, peak)) in enumerate(zip(first, last, strict=True), start=1):
        growth = (after - before) / before if before else float("inf")
        flat = flat and growth < RSS_FLAT
        lines.append(
            f"  worker {i}: {before / MiB:.1f} MiB -> {after / MiB:.1f} MiB ({100 * growth:+.1f} %), "
            f"peak {peak / MiB:.1f} MiB"
        )
    return lines, flat


def error_lines(logs: Sequence[Path]) -> tuple[int, int, list[str]]:
    """(error lines, lines read, the first events' names) across the workers' log files.

    An error line is a JSON line at level error or critical, or a line that is not JSON at all.
    """
    errors, total = 0, 0
    first: list[str] = []
    for i, path in enumerate(logs, start=1):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            total += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and str(record.get("level", "")).lower() not in ERROR_LEVELS:
                continue
            errors += 1
            if len(first) < SHOWN_ERRORS:
                name = str(record.get("event", "?"))[:80] if isinstance(record, dict) else "(not JSON)"
                first.append(f"worker {i}: {name}")
    return errors, total, first


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="requests in all (default 10000)")
    parser.add_argument("--waves", type=int, default=10, help="waves of n/waves requests (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--amqp-url", default=AMQP_URL)
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="server for the throwaway database")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.waves < 2 or args.n < args.waves:
        parser.error("--workers must be at least 1, --waves at least 2 and -n at least --waves")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the waves, print the reconciled figures; return the exit code."""
    args = parse_args(argv)
    return run_on_fresh_gateway(args, "soak", lambda gateway, stack: soak(args, gateway, stack))


def soak(args: argparse.Namespace, gateway: Gateway, stack: ExitStack) -> int:
    """Start the workers, run the waves, stop the workers, print the figures; ``stack`` cleans up."""
    settings = gateway.settings
    patients: list[Patient] = routable_patients(gateway)
    workers = start_process_workers(settings, args.workers)
    stack.callback(workers.stop)
    wait_for_consumers(
        gateway, [gateway.names.requests, gateway.names.inbox(settings.our_her_id)], args.workers
    )
    sizes = wave_sizes(args.n, args.waves)
    print(
        f"soak: {gateway.store.dialect_name}, {args.workers} worker processes (python -m edi_gateway worker), "
        f"batch size {settings.batch_size}, {os.cpu_count() or 1} cores; {args.n} requests in "
        f"{args.waves} waves of {sizes[0]}",
        flush=True,
    )

    published: set[str] = set()
    expected_messages = 0
    seen: Counter[str] = Counter()
    without_id = 0
    waves: list[Wave] = []
    started = time.perf_counter()
    for number, size in enumerate(sizes, start=1):
        bodies = request_bodies(patients, size)
        published.update(rid for rid, _ in bodies)
        expected_messages += sum(2 if patients[i % len(patients)].fastlege else 1 for i in range(size))
        wave, missing_ids = run_wave(gateway, workers, bodies, seen, timeout=120 + size / 5)
        without_id += missing_ids
        waves.append(wave)
        print(
            f"wave {number:2d}/{len(sizes)}: {size} requests -> {wave.outbound.count} messages sent in "
            f"{wave.outbound.seconds:.1f} s ({wave.outbound.rate:.0f}/s); {wave.inbound.count} AppRecs -> "
            f"acked in {wave.inbound.seconds:.1f} s ({wave.inbound.rate:.0f}/s); worker RSS "
            + ", ".join(f"{rss / MiB:.0f}" for rss, _ in wave.rss)
            + " MiB",
            flush=True,
        )
    elapsed = time.perf_counter() - started
    workers.stop()  # every log line is written before the logs are read

    counts = reconcile(gateway, published, expected_messages, seen, without_id)
    rss_lines, flat = rss_figures(waves[0].rss, waves[-1].rss)
    errors, lines_read, first_errors = error_lines(workers.logs)

    outbound_s = sum(w.outbound.seconds for w in waves)
    inbound_s = sum(w.inbound.seconds for w in waves)
    messages = sum(w.outbound.count for w in waves)
    print(
        f"timed: {messages} messages sent in {outbound_s:.1f} s ({messages / outbound_s:.0f}/s), "
        f"{sum(w.inbound.count for w in waves)} AppRecs acked in {inbound_s:.1f} s "
        f"({sum(w.inbound.count for w in waves) / inbound_s:.0f}/s); whole soak {elapsed:.0f} s "
        "(with signing the AppRecs and draining the receiver queues)"
    )
    for text, ok in counts:
        print(f"{text}: {_verdict(ok)}")
    print(
        f"worker RSS (VmRSS after wave 1 -> after wave {len(waves)}), flat = every worker grew < "
        f"{100 * RSS_FLAT:.0f} %: {'RSS flat' if flat else 'RSS NOT flat'}: {_verdict(flat)}"
    )
    print(*rss_lines, sep="\n")
    print(
        f"worker log error lines: {errors} of {lines_read} lines in {len(workers.logs)} files: "
        f"{_verdict(errors == 0)}"
    )
    for name in first_errors:
        print(f"  {name}")
    passed = all(ok for _, ok in counts) and flat and errors == 0
    print(f"verdict: {'PASS' if passed else 'FAIL'} (exit {0 if passed else 1})")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
