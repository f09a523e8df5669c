"""End-to-end throughput of the outbound pipeline on the local RabbitMQ.

Publishes N requests to a private ``edi.requests`` (own queue prefix), runs one worker, and prints
requests/s and messages/s from the first publish until every request has its outcome stored.

    python bench/bench_pipeline.py [--requests 2000] [--database-url URL] [--batch-size 64]

Figures go to stdout; nothing here is asserted (targets are read, not enforced, see docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pika

from edi_gateway.logging import configure_logging
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import open_gateway, receiver_queues
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.services.worker import run_worker
from edi_gateway.settings import Settings
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing

PATIENTS = [  # (person number, fastlege?) from the synthetic registers: several kommuner, some with a GP
    ("23915700969", True),
    ("07926217857", False),
    ("18897219545", True),
    ("04885543095", False),
    ("43858828997", False),
    ("08818028386", False),
]


def _requests(n: int) -> list[bytes]:
    base = json.loads(
        (resource_dir("fixtures") / "requests" / "kommune-only.json").read_text(encoding="utf-8")
    )
    bodies = []
    for i in range(n):
        person, fastlege = PATIENTS[i % len(PATIENTS)]
        base["request_id"] = str(uuid.uuid4())
        base["patient"]["id"] = person
        base["send_to_fastlege"] = fastlege
        bodies.append(json.dumps(base, ensure_ascii=False).encode())
    return bodies


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    args = parser.parse_args()
    configure_logging(level="WARNING")
    home = Path(tempfile.mkdtemp(prefix="edi-bench-"))
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = Settings(
        home=home,
        amqp_url=args.amqp_url,
        database_url=args.database_url,
        test_mode=True,
        queue_prefix=prefix,
        batch_size=args.batch_size,
    )
    gateway = open_gateway(settings, migrate=True)
    declare_gateway_topology(gateway)
    bodies = _requests(args.requests)
    stop, ready = threading.Event(), threading.Event()
    worker = threading.Thread(target=run_worker, args=(gateway, stop), kwargs={"ready": ready}, daemon=True)
    try:
        started = time.perf_counter()
        with ConfirmingPublisher(settings.amqp_url, name="bench sender") as publisher:
            outgoing = [
                Outgoing(
                    exchange="",
                    routing_key=gateway.names.requests,
                    body=b,
                    message_id=str(uuid.uuid4()),
                    correlation_id=None,
                    content_type="application/json",
                )
                for b in bodies
            ]
            publisher.publish_many(outgoing, timeout=120)
        published = time.perf_counter()
        worker.start()
        ready.wait(30)
        t0 = time.perf_counter()
        while gateway.store.count_requests() < args.requests:
            time.sleep(0.05)
        while gateway.store.count_messages(state="queued") > 0:
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        messages = gateway.store.count_messages()
        print(f"database: {gateway.store.dialect_name}, batch size {args.batch_size}")
        print(f"published {args.requests} requests in {published - started:.2f} s")
        print(
            f"processed {args.requests} requests / {messages} signed messages in {elapsed:.2f} s: "
            f"{args.requests / elapsed:.0f} requests/s, {messages / elapsed:.0f} messages/s"
        )
    finally:
        stop.set()
        worker.join(30)
        connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
        channel = connection.channel()
        for queue in [
            gateway.names.requests,
            gateway.names.requests_dlq,
            gateway.names.inbox(settings.our_her_id),
            *receiver_queues(gateway),
        ]:
            channel.queue_delete(queue)
        channel.exchange_delete(gateway.names.events_exchange)
        connection.close()
        gateway.close()


if __name__ == "__main__":
    main()
