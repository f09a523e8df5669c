"""Tests for edi_gateway.transport.names: every name carries the prefix."""

from __future__ import annotations

from edi_gateway.transport.names import Names


def test_production_names_have_no_prefix() -> None:
    """Without a prefix the names are exactly those of DESIGN §3."""
    names = Names()
    assert (names.requests, names.requests_dlq, names.events_exchange) == (
        "edi.requests",
        "edi.requests.dlq",
        "edi.events",
    )


def test_every_name_carries_the_prefix() -> None:
    """A prefix goes in front of the request queue, its DLQ, the exchange and every receiver queue."""
    names = Names("t1.")
    assert names.requests == "t1.edi.requests"
    assert names.requests_dlq == "t1.edi.requests.dlq"
    assert names.events_exchange == "t1.edi.events"
    assert names.receiver_queue(8100010) == "t1.8100010_async"
    assert names.prefixed("8100010_async") == "t1.8100010_async"


def test_inbox_follows_nhn_naming() -> None:
    """The gateway's inbox is named like any receiver queue: ``<herId>_async``."""
    assert Names("p.").inbox(8100001) == Names("p.").receiver_queue(8100001) == "p.8100001_async"
