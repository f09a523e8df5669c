"""Broker fixtures for transport tests: a topology on the test's own prefix, removed afterwards.

``broker`` yields a ``BrokerScope``; at teardown it deletes the standard queues and exchange of
its prefix, every queue it was told about, and every other queue whose name starts with the prefix
(found with ``rabbitmqctl`` when the broker runs on this machine), so code under test may declare
queues of its own without the test tracking them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from edi_gateway.transport.names import Names
from edi_gateway.transport.topology import delete_topology
from tests.transport.helpers import BrokerScope, close_from_broker, queues_with_prefix


@pytest.fixture
def broker(amqp_url: str, queue_prefix: str) -> Iterator[BrokerScope]:
    """A ``BrokerScope`` on this test's prefix; everything under the prefix is deleted afterwards."""
    scope = BrokerScope(amqp_url, Names(queue_prefix))
    yield scope
    delete_topology(amqp_url, scope.names, scope.queues | queues_with_prefix(queue_prefix))


@pytest.fixture
def kill_connection() -> Callable[[str], int]:
    """A function that closes the named connection(s) from the broker side (``rabbitmqctl``)."""
    return close_from_broker
