"""Helpers for transport tests: a test's broker scope, waiting, a consumer thread, broker-side closes."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edi_gateway.transport.names import Names
from edi_gateway.transport.topology import declare_topology

RABBITMQCTL_TIMEOUT_S = 30


@dataclass
class BrokerScope:
    """A test's view of the broker: its URL, its names, and the queues to delete afterwards.

    Attributes:
        url: AMQP URL of the test broker.
        names: names under the test's own prefix.
        queues: extra queues (receiver queues, inbox, ...) deleted at teardown.
    """

    url: str
    names: Names
    queues: set[str] = field(default_factory=set)

    def declare(
        self, *, delivery_limit: int = 3, receiver_queues: Iterable[str] = (), inbox: str | None = None
    ) -> None:
        """Declare the topology under the test's prefix and remember its queues for teardown."""
        receiver_queues = list(receiver_queues)
        self.track(*receiver_queues, *([inbox] if inbox else []))
        declare_topology(
            self.url, self.names, delivery_limit=delivery_limit, receiver_queues=receiver_queues, inbox=inbox
        )

    def track(self, *queues: str) -> None:
        """Delete these queues at teardown too."""
        self.queues.update(queues)

    def receiver(self, her_id: int) -> str:
        """Declare the standard topology plus the receiver queue of ``her_id``; return its name."""
        queue = self.names.receiver_queue(her_id)
        self.declare(receiver_queues=[queue])
        return queue


def queues_with_prefix(prefix: str) -> set[str]:
    """Return the broker's queues whose names start with ``prefix``; empty without ``rabbitmqctl``."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return set()
    listed = subprocess.run(
        [rabbitmqctl, "list_queues", "-q", "--no-table-headers", "name"],
        capture_output=True,
        text=True,
        timeout=RABBITMQCTL_TIMEOUT_S,
        check=False,
    )
    if listed.returncode != 0:
        return set()
    return {line.strip() for line in listed.stdout.splitlines() if line.strip().startswith(prefix)}


def connection_pids(connection_name: str) -> list[str]:
    rabbitmqctl = shutil.which("rabbitmqctl")
    assert rabbitmqctl is not None, "rabbitmqctl is needed to close a connection from the broker side"
    listed = subprocess.run(
        [rabbitmqctl, "list_connections", "-q", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=RABBITMQCTL_TIMEOUT_S,
        check=True,
    )
    marker = f'{{"connection_name","{connection_name}"}}'
    return [line.split("\t", 1)[0] for line in listed.stdout.splitlines() if marker in line]


def close_from_broker(connection_name: str, *, timeout: float = 20) -> int:
    """Make the broker close every connection named ``connection_name``; return how many.

    Waits until at least one such connection exists (a client may still be connecting).
    """
    rabbitmqctl = shutil.which("rabbitmqctl")
    assert rabbitmqctl is not None
    deadline = time.monotonic() + timeout
    pids = connection_pids(connection_name)
    while not pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = connection_pids(connection_name)
    assert pids, f"no connection named {connection_name!r} on the broker"
    for pid in pids:
        subprocess.run(
            [rabbitmqctl, "close_connection", pid, "closed by a transport test"],
            capture_output=True,
            timeout=RABBITMQCTL_TIMEOUT_S,
            check=True,
        )
    return len(pids)


def wait_until(predicate: Callable[[], bool], *, timeout: float = 15, interval: float = 0.05) -> None:
    """Wait until ``predicate()`` holds; fail the test when it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


@dataclass
class ConsumerThread:
    """A ``BatchConsumer.run`` in a thread of its own, and the stop event that ends it."""

    thread: threading.Thread
    stop: threading.Event

    def finish(self, timeout: float = 15) -> None:
        """Set stop and wait for ``run`` to return; fail when it does not."""
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "BatchConsumer.run did not return after stop"
