"""Request look-ups the worker and the demo use: a whole batch by request_id, one by AMQP message_id."""

from __future__ import annotations

from edi_gateway.domain.states import RequestState
from edi_gateway.store import RequestOutcome, Store
from tests.store.conftest import Builder


def test_get_requests_answers_a_batch_in_one_call(store: Store, build: Builder) -> None:
    """Stored ids come back keyed by request_id; unknown ids are simply absent."""
    first, second = build.request(), build.request(RequestState.REJECTED, reason="bad")
    store.save_outcomes([RequestOutcome(first, ()), RequestOutcome(second, ())], actor="test")
    found = store.get_requests({first.request_id or "", second.request_id or "", "not-stored"})
    assert set(found) == {first.request_id, second.request_id}
    assert found[second.request_id or ""].state == RequestState.REJECTED
    assert store.get_requests(set()) == {}


def test_request_without_request_id_is_found_by_amqp_message_id(store: Store, build: Builder) -> None:
    """A body that named no usable request_id is still found by the message_id it arrived with."""
    anonymous = build.request(RequestState.REJECTED, request_id=None, reason="not JSON")
    store.save_outcomes([RequestOutcome(anonymous, ())], actor="test")
    found = store.get_request_by_amqp_message_id(anonymous.amqp_message_id or "")
    assert found is not None and found.ref == anonymous.ref and found.request_id is None
    assert store.get_request_by_amqp_message_id("unknown") is None
