"""The full round trip through the real worker: requests → signed MsgHeads ``sent`` → signed AppRecs → ``acked``.

Run (RabbitMQ on 127.0.0.1:5672; PostgreSQL on 127.0.0.1:5432 for ``--store postgres``):

    .venv/bin/python bench/bench_roundtrip.py --store sqlite

Options: ``--store sqlite|postgres`` (postgres: a throwaway database on ``--postgres-url``, dropped at
the end), ``--workers K`` (1: ``run_worker`` in a thread of this process; K > 1: K ``python -m edi_gateway
worker`` processes on one database and broker, all with this run's ``EDI_GATEWAY_QUEUE_PREFIX``),
``-n N`` requests (default 3000), ``--latency-requests M`` (default 1000; 0 skips that phase),
``--latency-rate`` (default 100 requests/s), ``--batch-size`` (default 64, as the worker's).

Everything runs in test mode on its own queue prefix, HOME (test PKI, SQLite file, worker logs) and
database, all removed at the end. Requests are the example requests of ``fixtures/requests/``
(``kommune-only`` and, for patients with a fastlege, ``kommune-and-fastlege``) with fresh request ids and
the synthetic patients of the fixture Folkeregister, so they route to many kommuner (and legekontor).
The worker logs at INFO, as ``edi-gateway worker`` does, into files under the temporary HOME.

What each figure means:

* **outbound** messages/s — from the first request published on ``edi.requests`` until every request
  is stored and none of its messages is still ``queued`` (built, validated, signed, stored, published
  with confirms, recorded ``sent``); requests/s alongside.
* **inbound** AppRecs/s — one AppRec (status 1) per sent message, built and signed beforehand with the
  receiving virksomhet's key from the test PKI exactly as ``tests/services/test_acknowledgements.py``
  does (signing them is not timed); from the first AppRec published on ``<ourHerId>_async`` until
  every message is ``acked``.
* **round trips/s** — messages / (outbound time + inbound time).
* **floor** — measured in the same run: the median time of one RSA-2048 signature (PKCS#1 v1.5,
  SHA-256, the worker's own key) over a canonical ``SignedInfo`` of this run. A round trip
  costs about 3.7 signatures' worth of CPU, so its floor is ``cores / (3.7 × sign_time)`` round trips/s;
  signing is about half of that, and outbound alone costs about 1.85 signatures' worth, so the
  outbound floor is ``cores / (1.85 × sign_time)`` messages/s (cores = ``os.cpu_count()``). Each rate is
  printed as a percentage of its floor (the target for outbound alone is at least 60 %).
* **latency** p50/p99 — a separate phase: M requests published one by one at a steady rate (default
  100/s); a request's latency is the ``sent_at`` the store recorded for its last message minus the
  wall-clock time it was published.
* **RSS** — VmRSS of each worker process from ``/proc/<pid>/status`` once the worker is ready and after
  the last phase, with VmHWM (the peak). With the in-thread worker that is this benchmark's own process
  (which also holds the pre-signed AppRecs).

Figures go to stdout; nothing is asserted (targets are read, not enforced, see docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeVar

import pika
from bench_store import scratch_postgres
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from edi_gateway.domain.apprec import AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import RequestRejected
from edi_gateway.logging import configure_logging
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import Gateway, open_gateway, receiver_queues
from edi_gateway.services.receivers import resolve_receivers
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.services.worker import run_worker
from edi_gateway.settings import Settings
from edi_gateway.store.records import MessageRecord
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from edi_gateway.xml.apprec import AppRecSpec, build_apprec
from edi_gateway.xml.msghead import to_bytes
from edi_gateway.xml.namespaces import XMLDSIG
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.signing import Signer

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
POSTGRES_URL = os.environ.get(
    "EDI_GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ROUND_TRIP_SIGNATURES = 3.7  # a round trip costs about this many signatures' worth of CPU
OUTBOUND_SIGNATURES = 1.85  # outbound alone: about half of it
SIGN_SAMPLES = 300
POLL_S = 0.05
MiB = 1024 * 1024


# -- requests --------------------------------------------------------------------------------------


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Patient:
    """A synthetic person from the fixture Folkeregister that routes cleanly."""

    person_id: str
    given_name: str
    family_name: str
    kommunenummer: str
    fastlege: bool


def routable_patients(gateway: Gateway) -> list[Patient]:
    """Every fixture person whose kommune can be routed to (and whether a fastlege can be too)."""
    data = json.loads(
        (resource_dir("fixtures") / "registers" / "folkeregister.json").read_text(encoding="utf-8")
    )
    patients: list[Patient] = []
    for person in data["persons"]:
        try:
            resolution = resolve_receivers(
                person_id=person["id"],
                kommunenummer=None,
                send_to_fastlege=True,
                registers=gateway.registers,
                rules=gateway.rules,
            )
        except RequestRejected:
            continue
        patients.append(
            Patient(
                person["id"],
                person["given_name"],
                person["family_name"],
                resolution.kommunenummer,
                fastlege=len(resolution.receivers) > 1 and not resolution.problems,
            )
        )
    if not patients:
        raise SystemExit("no fixture patient can be routed: check fixtures/registers and routing_rules")
    return patients


def request_bodies(patients: Sequence[Patient], n: int) -> list[tuple[str, bytes]]:
    """``n`` example requests, fresh request ids, patients in turn; (request_id, JSON body) each."""
    examples = resource_dir("fixtures") / "requests"
    templates = {
        name: json.loads((examples / f"{name}.json").read_text(encoding="utf-8"))
        for name in ("kommune-only", "kommune-and-fastlege")
    }
    bodies: list[tuple[str, bytes]] = []
    for i in range(n):
        patient = patients[i % len(patients)]
        data = templates["kommune-and-fastlege" if patient.fastlege else "kommune-only"]
        request_id = str(uuid.uuid4())
        data["request_id"] = request_id
        data["patient"].update(
            id=patient.person_id, given_name=patient.given_name, family_name=patient.family_name
        )
        bodies.append((request_id, json.dumps(data, ensure_ascii=False).encode()))
    return bodies


def request_outgoing(gateway: Gateway, request_id: str, body: bytes) -> Outgoing:
    """A request as an EPR publishes it on ``edi.requests``."""
    return Outgoing(
        exchange="",
        routing_key=gateway.names.requests,
        body=body,
        message_id=str(uuid.uuid4()),
        correlation_id=request_id,
        content_type="application/json",
    )


# -- AppRecs, as tests/services/test_acknowledgements.py builds and signs them -----------------------


def _her(value: int) -> PartyId:
    return PartyId(str(value), "HER")


def apprec_for(message: MessageRecord, our_her_id: int) -> bytes:
    """An unsigned AppRec v1.1, status 1 (OK), from the message's receiver to us."""
    addressed = message.receiver_her_id
    sender = AppRecParty(
        inst=_her(message.receiver_org_her_id),
        dept=_her(addressed) if message.receiver_kind == ReceiverKind.KOMMUNE else None,
        person=_her(addressed) if message.receiver_kind == ReceiverKind.FASTLEGE else None,
    )
    spec = AppRecSpec(
        id=str(uuid.uuid4()),
        gen_date=datetime.now(UTC),
        status=AppRecStatus.OK,
        errors=(),
        sender=sender,
        receiver=AppRecParty(inst=_her(our_her_id)),
        original_msg_id=message.msg_id,
        original_msg_type=message.msg_type,
        original_issue_date=message.created_at,
    )
    return to_bytes(build_apprec(spec))


def signed_apprecs(settings: Settings, messages: Sequence[MessageRecord]) -> list[bytes]:
    """One AppRec per message, signed with the receiving virksomhet's key from the test PKI."""
    signers: dict[int, Signer] = {}
    out: list[bytes] = []
    for message in messages:
        her_id = message.receiver_org_her_id
        signer = signers.get(her_id)
        if signer is None:
            pki = settings.pki_dir
            signer = signers[her_id] = Signer.from_files(
                pki / f"{her_id}.key.pem", pki / f"{her_id}.cert.pem"
            )
        out.append(signer.sign(parse_xml(apprec_for(message, settings.our_her_id))))
    return out


def apprec_outgoing(gateway: Gateway, body: bytes) -> Outgoing:
    """An AppRec as a receiver publishes it on our inbox."""
    return Outgoing(
        exchange="",
        routing_key=gateway.names.inbox(gateway.settings.our_her_id),
        body=body,
        message_id=str(uuid.uuid4()),
        correlation_id=None,
        content_type="application/xml",
    )


# -- workers ---------------------------------------------------------------------------------------


@dataclass
class Workers:
    """The worker under test: a thread of this process, or K ``python -m edi_gateway worker`` processes."""

    pids: list[int]
    stop: Callable[[], None]
    logs: list[Path] = field(default_factory=list)

    def rss(self) -> list[tuple[int, int]]:
        """(VmRSS, VmHWM) in bytes of each worker process."""
        return [_memory(pid) for pid in self.pids]


def _memory(pid: int) -> tuple[int, int]:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024  # kB
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def start_thread_worker(gateway: Gateway, stack: ExitStack) -> Workers:
    """``run_worker`` in a daemon thread of this process, logging at INFO into HOME/worker.log."""
    log_path = gateway.settings.home / "worker.log"
    log_file: TextIO = stack.enter_context(log_path.open("w", encoding="utf-8"))
    stack.callback(configure_logging, level="WARNING", stream=sys.stderr)  # before the file closes
    configure_logging(level="INFO", stream=log_file)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(gateway, stop), kwargs={"ready": ready}, name="worker", daemon=True
    )
    thread.start()
    if not ready.wait(60):
        raise SystemExit("the in-thread worker did not start within 60 s")

    def _stop() -> None:
        stop.set()
        thread.join(60)

    return Workers([os.getpid()], _stop, [log_path])


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment of a ``python -m edi_gateway worker`` on this run's home, database and queues."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDI_GATEWAY_")}
    env.update(
        EDI_GATEWAY_HOME=str(settings.home),
        EDI_GATEWAY_DATABASE_URL=settings.effective_database_url,
        EDI_GATEWAY_AMQP_URL=settings.amqp_url,
        EDI_GATEWAY_TEST_MODE="true",
        EDI_GATEWAY_QUEUE_PREFIX=settings.queue_prefix,
        EDI_GATEWAY_BATCH_SIZE=str(settings.batch_size),
        EDI_GATEWAY_BATCH_WAIT_MS=str(settings.batch_wait_ms),
    )
    return env


def start_process_workers(settings: Settings, k: int) -> Workers:
    """K worker processes sharing this run's database and broker; their output goes to HOME/worker-<i>.log."""
    env = worker_environment(settings)
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    for i in range(k):
        log_path = settings.home / f"worker-{i}.log"
        with log_path.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "edi_gateway", "worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=settings.home,
                )
            )
        logs.append(log_path)

    def _stop() -> None:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    return Workers([p.pid for p in processes], _stop, logs)


def wait_for_consumers(gateway: Gateway, queues: Sequence[str], k: int, timeout: float = 90) -> None:
    """Wait until each of ``queues`` has at least ``k`` consumers (the workers are really listening)."""
    connection = pika.BlockingConnection(pika.URLParameters(gateway.settings.amqp_url))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        while True:
            counts = [channel.queue_declare(q, passive=True).method.consumer_count for q in queues]
            if all(c >= k for c in counts):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"workers not consuming after {timeout:.0f} s: consumers {counts}")
            time.sleep(0.2)
    finally:
        connection.close()


# -- waiting on the store --------------------------------------------------------------------------


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> float:
    """Poll ``done`` every POLL_S; return perf_counter() when it first holds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)
    return time.perf_counter()


def outbound_settled(gateway: Gateway, expected_requests: int) -> Callable[[], bool]:
    """True once every request is stored and none of the messages is still queued."""
    store = gateway.store
    return lambda: (
        store.count_requests() >= expected_requests and store.count_messages(MessageState.QUEUED) == 0
    )


# -- the phases ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    """One timed phase."""

    count: int
    seconds: float

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.count / self.seconds if self.seconds > 0 else math.inf


def outbound_phase(gateway: Gateway, bodies: Sequence[tuple[str, bytes]], timeout: float) -> Phase:
    """Publish every request at once (pipelined confirms); time until all their messages are sent."""
    outgoing = [request_outgoing(gateway, rid, body) for rid, body in bodies]
    with ConfirmingPublisher(gateway.settings.amqp_url, name="bench epr") as publisher:
        t0 = time.perf_counter()
        publish_confirmed(publisher, outgoing, "requests")
        done = wait_until("every message sent", outbound_settled(gateway, len(bodies)), timeout)
    return Phase(gateway.store.count_messages(MessageState.SENT), done - t0)


def publish_confirmed(publisher: ConfirmingPublisher, outgoing: Sequence[Outgoing], what: str) -> None:
    """Publish and wait for every confirm; stop the benchmark if the broker did not take them all."""
    errors = publisher.publish_many(outgoing, timeout=120)
    if any(errors):
        raise SystemExit(f"{sum(1 for e in errors if e)} {what} were not confirmed by the broker")


def inbound_phase(gateway: Gateway, apprecs: Sequence[bytes], timeout: float) -> Phase:
    """Publish every pre-signed AppRec at once; time until every message they answer is acked."""
    store = gateway.store
    expected = len(apprecs) + store.count_messages(MessageState.ACKED)
    outgoing = [apprec_outgoing(gateway, body) for body in apprecs]
    with ConfirmingPublisher(gateway.settings.amqp_url, name="bench receivers") as publisher:
        t0 = time.perf_counter()
        publish_confirmed(publisher, outgoing, "AppRecs")
        done = wait_until(
            "every message acked",
            lambda: store.count_messages(MessageState.ACKED) + store.count_parked() >= expected,
            timeout,
        )
    return Phase(len(apprecs), done - t0)


def sign_time(gateway: Gateway, message: MessageRecord, samples: int = SIGN_SAMPLES) -> float:
    """Median seconds of one RSA-2048 signature (PKCS#1 v1.5, SHA-256) with the worker's own key.

    What is signed is this run's canonical ``SignedInfo`` of a real message: the RSA operation that
    every signature of the round trip costs, whatever XML work surrounds it.
    """
    settings = gateway.settings
    key = serialization.load_pem_private_key(
        (settings.pki_dir / f"{settings.our_her_id}.key.pem").read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    signed_info = parse_xml(message.signed_xml).find(f".//{{{XMLDSIG}}}SignedInfo")
    assert signed_info is not None
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    for _ in range(5):  # warm caches outside the measurement
        key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
    times: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency_phase(
    gateway: Gateway, bodies: Sequence[tuple[str, bytes]], rate: float, timeout: float
) -> tuple[list[float], float]:
    """Publish requests one by one at ``rate``/s; return each one's publish → last message sent, in s.

    Also returns the publishing rate actually achieved.
    """
    store = gateway.store
    already = store.count_requests()
    published_at: dict[str, float] = {}
    futures: list[Future[None]] = []
    with ConfirmingPublisher(gateway.settings.amqp_url, name="bench epr (paced)") as publisher:
        start = time.perf_counter()
        for i, (request_id, body) in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            published_at[request_id] = time.time()
            futures.append(publisher.publish(request_outgoing(gateway, request_id, body)))
        achieved = len(bodies) / max(time.perf_counter() - start, 1e-9) if len(bodies) > 1 else rate
        for future in futures:
            future.result(timeout=60)
        wait_until("the paced requests to be sent", outbound_settled(gateway, already + len(bodies)), timeout)
    latencies: list[float] = []
    for request_id, at in published_at.items():
        request = store.get_request(request_id)
        assert request is not None
        sent = [m.sent_at for m in store.messages_for_request(request.ref)]
        if sent and all(s is not None for s in sent):
            latencies.append(max(s.timestamp() for s in sent if s is not None) - at)
    return latencies, achieved


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- database and broker lifetime ------------------------------------------------------------------


def delete_topology(gateway: Gateway) -> None:
    """Delete every queue and the exchange this run declared (all under its own prefix)."""
    settings, names = gateway.settings, gateway.names
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        for queue in [
            names.requests,
            names.requests_dlq,
            names.inbox(settings.our_her_id),
            *receiver_queues(gateway),
        ]:
            channel.queue_delete(queue)
        channel.exchange_delete(names.events_exchange)
    finally:
        connection.close()


# -- main ------------------------------------------------------------------------------------------


def _mib(value: int) -> str:
    return f"{value / MiB:.0f} MiB"


def _rss_line(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> str:
    parts = [f"{_mib(b[0])} → {_mib(a[0])} (peak {_mib(a[1])})" for b, a in zip(before, after, strict=True)]
    return "; ".join(parts)


def _show_worker_logs(home: Path, lines: int = 15) -> None:
    """Print the last lines of each worker log to stderr (the run failed; HOME is about to go)."""
    for path in sorted(home.glob("worker*.log")):
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {path.name} ---", *tail, sep="\n", file=sys.stderr)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="1: in-thread; K > 1: K worker processes")
    parser.add_argument("-n", type=int, default=3000, help="requests in the round-trip phases")
    parser.add_argument("--latency-requests", type=int, default=1000, help="paced requests; 0 skips")
    parser.add_argument("--latency-rate", type=float, default=100.0, help="requests/s in the latency phase")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--amqp-url", default=AMQP_URL)
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="server for the throwaway database")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.n < 1 or args.latency_requests < 0 or args.latency_rate <= 0:
        parser.error("--workers and -n must be at least 1, --latency-requests at least 0, the rate > 0")
    return args


def run_on_fresh_gateway(args: argparse.Namespace, name: str, body: Callable[[Gateway, ExitStack], T]) -> T:
    """Run ``body`` on a gateway of its own: a temporary HOME, queue prefix and (on PostgreSQL) database.

    ``args`` brings ``store``, ``postgres_url``, ``amqp_url`` and ``batch_size``. Everything is removed
    afterwards (``body`` registers its own clean-ups on the stack); on a failure the workers' log tails
    are shown first.
    """
    home = Path(tempfile.mkdtemp(prefix=f"edi-{name}-"))
    prefix = f"{name[:4]}{uuid.uuid4().hex[:8]}."
    try:
        with ExitStack() as stack:
            database_url = (
                stack.enter_context(scratch_postgres(args.postgres_url))
                if args.store == "postgres"
                else f"sqlite:///{home / 'edi_gateway.sqlite3'}"
            )
            settings = Settings(
                home=home,
                amqp_url=args.amqp_url,
                database_url=database_url,
                test_mode=True,
                queue_prefix=prefix,
                batch_size=args.batch_size,
            )
            configure_logging(level="WARNING", stream=sys.stderr)
            gateway = open_gateway(settings, migrate=True)  # also generates the test PKI (not timed)
            stack.callback(gateway.close)
            stack.callback(delete_topology, gateway)
            declare_gateway_topology(gateway)
            try:
                return body(gateway, stack)
            except BaseException:
                _show_worker_logs(home)
                raise
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the phases and print the figures."""
    args = parse_args(argv)
    cores = os.cpu_count() or 1
    run_on_fresh_gateway(args, "roundtrip", lambda gateway, stack: run(args, gateway, stack, cores))


def run(args: argparse.Namespace, gateway: Gateway, stack: ExitStack, cores: int) -> None:
    """Start the worker(s), run the phases, print the figures; ``stack`` stops the workers."""
    settings = gateway.settings
    patients = routable_patients(gateway)
    bodies = request_bodies(patients, args.n)
    with_fastlege = sum(1 for i in range(args.n) if patients[i % len(patients)].fastlege)
    paced = request_bodies(patients, args.latency_requests)
    if args.workers == 1:
        workers = start_thread_worker(gateway, stack)
        mode = "1 worker (run_worker in a thread of this process)"
    else:
        workers = start_process_workers(settings, args.workers)
        mode = f"{args.workers} worker processes (python -m edi_gateway worker)"
    stack.callback(workers.stop)
    wait_for_consumers(
        gateway, [gateway.names.requests, gateway.names.inbox(settings.our_her_id)], args.workers
    )
    rss_before = workers.rss()
    timeout = 120 + args.n / 5

    outbound = outbound_phase(gateway, bodies, timeout)
    sent = gateway.store.messages_in_state([MessageState.SENT], limit=10 * args.n + 100)
    started = time.perf_counter()
    apprecs = signed_apprecs(settings, sent)
    presign_s = time.perf_counter() - started
    inbound = inbound_phase(gateway, apprecs, timeout)
    acked = gateway.store.count_messages(MessageState.ACKED)
    parked = gateway.store.count_parked()
    failed = gateway.store.count_messages(MessageState.FAILED)
    median_sign = sign_time(gateway, sent[0])

    latencies: list[float] = []
    achieved = 0.0
    if paced:
        latencies, achieved = latency_phase(gateway, paced, args.latency_rate, timeout)
    rss_after = workers.rss()

    round_trip_s = outbound.seconds + inbound.seconds
    round_trips = acked / round_trip_s
    rt_floor = cores / (ROUND_TRIP_SIGNATURES * median_sign)
    out_floor = cores / (OUTBOUND_SIGNATURES * median_sign)
    kommuner = len({m.kommunenummer for m in sent})
    receivers = len({m.receiver_org_her_id for m in sent})
    print(
        f"round trip: {gateway.store.dialect_name}, {mode}, batch size {settings.batch_size}, {cores} cores"
    )
    print(
        f"requests: {args.n} ({with_fastlege} also to the fastlege) -> {outbound.count} messages to {receivers} virksomheter "
        f"in {kommuner} kommuner"
    )
    print(
        f"outbound: {outbound.count} messages sent in {outbound.seconds:.2f} s: "
        f"{outbound.rate:.0f} messages/s ({args.n / outbound.seconds:.0f} requests/s)"
        + (f"; {failed} messages failed" if failed else "")
    )
    print(
        f"inbound:  {inbound.count} signed AppRecs (pre-signed in {presign_s:.1f} s, not timed) -> "
        f"{acked} acked in {inbound.seconds:.2f} s: {inbound.rate:.0f} AppRecs/s"
        + (f"; {parked} parked" if parked else "")
    )
    print(f"round trips: {acked} in {round_trip_s:.2f} s: {round_trips:.0f} round trips/s")
    print(f"floor: one RSA-2048 signature (median of {SIGN_SAMPLES}): {median_sign * 1000:.3f} ms")
    print(
        f"  round trips {round_trips:.0f}/s = {100 * round_trips / rt_floor:.0f}% of the round-trip floor "
        f"cores / ({ROUND_TRIP_SIGNATURES} x sign_time) = {rt_floor:.0f}/s"
    )
    print(
        f"  outbound {outbound.rate:.0f} messages/s = {100 * outbound.rate / out_floor:.0f}% of the outbound "
        f"floor cores / ({OUTBOUND_SIGNATURES} x sign_time) = {out_floor:.0f}/s (target: at least 60%)"
    )
    if latencies:
        print(
            f"latency publish -> sent, {len(latencies)} requests paced at {achieved:.0f}/s: "
            f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
    else:
        print("latency: skipped (--latency-requests 0)")
    print(f"worker RSS (VmRSS ready -> after the last phase): {_rss_line(rss_before, rss_after)}")


if __name__ == "__main__":
    main()
