"""Publish throughput: one confirm at a time versus ConfirmingPublisher's pipelined confirms.

Publishes 6 KB persistent messages to a quorum queue of its own for about three seconds per mode
and prints messages per second:

(a) BlockingConnection in confirm mode, each publish waiting for its own confirm;
(b) ConfirmingPublisher.publish_many in batches of 64 (what the worker does per batch).

The queue has a length limit (oldest dropped) so a long run cannot fill the broker's disk, and it
is deleted at the end. Usage: ``python bench/bench_publish.py [--seconds 3] [--url amqp://...]``.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable

from edi_gateway.transport.connection import close_quietly, connect
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing

BODY = b"x" * 6 * 1024
BATCH = 64
MAX_QUEUE_LENGTH = 5_000
DEFAULT_URL = os.environ.get("EDI_GATEWAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _message(queue: str, n: int) -> Outgoing:
    return Outgoing(
        exchange="",
        routing_key=queue,
        body=BODY,
        message_id=f"bench-{n}",
        correlation_id=None,
        content_type="application/xml",
        headers={"message_type": "DIALOG_HELSEFAGLIG"},
    )


def one_confirm_at_a_time(url: str, queue: str, seconds: float) -> float:
    """Return messages/s for a blocking channel that waits for each confirm."""
    connection = connect(url, name="edi_gateway.bench.blocking")
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        count, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            msg = _message(queue, count)
            channel.basic_publish(msg.exchange, msg.routing_key, msg.body, msg.properties(), mandatory=True)
            count += 1
        return count / (time.monotonic() - started)
    finally:
        close_quietly(connection)


def pipelined_batches(url: str, queue: str, seconds: float) -> float:
    """Return messages/s for ConfirmingPublisher.publish_many in batches of ``BATCH``."""
    with ConfirmingPublisher(url, name="edi_gateway.bench.pipelined") as publisher:
        count, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            outcomes = publisher.publish_many([_message(queue, count + i) for i in range(BATCH)], timeout=30)
            failed = sum(o is not None for o in outcomes)
            if failed:
                raise SystemExit(f"{failed} publishes were not confirmed: {next(o for o in outcomes if o)}")
            count += BATCH
        return count / (time.monotonic() - started)


def _with_queue(url: str, run: Callable[[str], float]) -> float:
    """Run one mode against a fresh bench queue and delete the queue afterwards."""
    queue = f"bench.{uuid.uuid4().hex[:8]}.publish"
    connection = connect(url, name="edi_gateway.bench.setup")
    try:
        arguments = {"x-queue-type": "quorum", "x-max-length": MAX_QUEUE_LENGTH}
        connection.channel().queue_declare(queue, durable=True, arguments=arguments)
        return run(queue)
    finally:
        connection.channel().queue_delete(queue)
        close_quietly(connection)


def main() -> None:
    """Run both modes and print their throughput."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="AMQP URL (default: EDI_GATEWAY_AMQP_URL or local)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each mode")
    args = parser.parse_args()
    print(f"6 KB persistent messages to a quorum queue, {args.seconds:g} s per mode")
    blocking = _with_queue(args.url, lambda q: one_confirm_at_a_time(args.url, q, args.seconds))
    print(f"(a) BlockingConnection, one confirm per publish: {blocking:9,.0f} msg/s")
    pipelined = _with_queue(args.url, lambda q: pipelined_batches(args.url, q, args.seconds))
    print(f"(b) ConfirmingPublisher.publish_many x{BATCH}:      {pipelined:9,.0f} msg/s")
    print(f"speed-up: {pipelined / blocking:.1f}x")


if __name__ == "__main__":
    main()
