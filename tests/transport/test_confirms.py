"""Tests for edi_gateway.transport.confirms: delivery tags, multiple confirms, returns, losses."""

from __future__ import annotations

from concurrent.futures import Future

import pika.exceptions
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.errors import BrokerUnavailable, Unroutable
from edi_gateway.transport.confirms import ConfirmTracker, InFlight, channel_loss_error, settle


def _publish(tracker: ConfirmTracker, message_id: str, routing_key: str = "q") -> tuple[int, Future[None]]:
    future: Future[None] = Future()
    return tracker.add(InFlight(message_id, "", routing_key, future)), future


def _outcome(future: Future[None]) -> type[BaseException] | None:
    assert future.done()
    error = future.exception()
    return None if error is None else type(error)


def test_tags_count_from_one_in_publish_order() -> None:
    """The n-th publish on a channel gets delivery tag n."""
    tracker = ConfirmTracker()
    assert [_publish(tracker, f"m{i}")[0] for i in range(3)] == [1, 2, 3]
    assert len(tracker) == 3


def test_single_ack_settles_only_its_tag() -> None:
    """An ack without ``multiple`` resolves exactly the publish with that tag."""
    tracker = ConfirmTracker()
    (_, first), (tag, second) = _publish(tracker, "a"), _publish(tracker, "b")
    assert tracker.on_confirm(tag, multiple=False, nacked=False) == 1
    assert second.result() is None
    assert not first.done()


def test_multiple_ack_settles_every_tag_up_to_it() -> None:
    """An ack with ``multiple`` resolves all outstanding publishes up to and including its tag."""
    tracker = ConfirmTracker()
    futures = [_publish(tracker, f"m{i}")[1] for i in range(5)]
    assert tracker.on_confirm(3, multiple=True, nacked=False) == 3
    assert [f.done() for f in futures] == [True, True, True, False, False]
    assert len(tracker) == 2


def test_nack_fails_with_broker_unavailable() -> None:
    """A nack means the broker did not take the message: retry, so BrokerUnavailable."""
    tracker = ConfirmTracker()
    tag, future = _publish(tracker, "a")
    tracker.on_confirm(tag, multiple=False, nacked=True)
    assert _outcome(future) is BrokerUnavailable


def test_return_before_ack_makes_that_publish_unroutable() -> None:
    """A basic.return turns the following ack of the same publish into Unroutable, others succeed."""
    tracker = ConfirmTracker()
    _, ok = _publish(tracker, "a", "queue.ok")
    _, lost = _publish(tracker, "b", "queue.missing")
    _, also_ok = _publish(tracker, "c", "queue.ok")
    assert tracker.on_return("b", "", "queue.missing", "312 NO_ROUTE")
    tracker.on_confirm(3, multiple=True, nacked=False)
    assert (_outcome(ok), _outcome(lost), _outcome(also_ok)) == (None, Unroutable, None)
    assert "queue.missing" in str(lost.exception())


def test_return_matches_the_oldest_twin_first() -> None:
    """Two publishes alike in message_id and route are returned oldest first."""
    tracker = ConfirmTracker()
    (_, first), (_, second) = _publish(tracker, "same"), _publish(tracker, "same")
    tracker.on_return("same", "", "q", "312 NO_ROUTE")
    tracker.on_confirm(2, multiple=True, nacked=False)
    assert (_outcome(first), _outcome(second)) == (Unroutable, None)


def test_unmatched_return_is_reported_and_ignored() -> None:
    """A return that matches no outstanding publish changes nothing."""
    tracker = ConfirmTracker()
    tag, future = _publish(tracker, "a")
    assert not tracker.on_return("other", "", "q", "312 NO_ROUTE")
    tracker.on_confirm(tag, multiple=False, nacked=False)
    assert _outcome(future) is None


def test_fail_all_fails_outstanding_and_restarts_tags() -> None:
    """A lost channel fails what is in flight and the next channel counts tags from 1 again."""
    tracker = ConfirmTracker()
    futures = [_publish(tracker, f"m{i}")[1] for i in range(3)]
    tracker.fail_all(lambda _item: BrokerUnavailable("lost"))
    assert [_outcome(f) for f in futures] == [BrokerUnavailable] * 3
    assert len(tracker) == 0
    assert _publish(tracker, "next")[0] == 1


def test_confirm_for_unknown_tag_is_ignored() -> None:
    """A confirm for a tag already settled (or never known) settles nothing."""
    tracker = ConfirmTracker()
    assert tracker.on_confirm(7, multiple=False, nacked=False) == 0


def test_settle_keeps_the_first_outcome() -> None:
    """A future settled twice keeps its first outcome."""
    future: Future[None] = Future()
    settle(future, None)
    settle(future, BrokerUnavailable("late"))
    assert future.result() is None


def test_missing_exchange_is_unroutable_for_its_publishes_only() -> None:
    """A channel closed with 404 for a missing exchange fails publishes to it as Unroutable."""
    reason = pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no exchange 'gone' in vhost '/'")
    error_for = channel_loss_error(reason)
    to_gone = InFlight("a", "gone", "status.sent", Future())
    to_default = InFlight("b", "", "q", Future())
    assert isinstance(error_for(to_gone), Unroutable)
    assert isinstance(error_for(to_default), BrokerUnavailable)


def test_other_channel_losses_are_broker_unavailable() -> None:
    """Any other channel close fails every publish in flight as BrokerUnavailable (retry)."""
    error_for = channel_loss_error(pika.exceptions.ChannelClosedByBroker(406, "PRECONDITION_FAILED"))
    assert isinstance(error_for(InFlight("a", "gone", "k", Future())), BrokerUnavailable)


@st.composite
def _confirm_script(draw: st.DrawFn) -> tuple[int, set[int], list[tuple[int, bool, bool]]]:
    """A number of publishes, the tags the broker returns, and a valid order of confirms."""
    count = draw(st.integers(min_value=1, max_value=40))
    returned = draw(st.sets(st.integers(min_value=1, max_value=count)))
    outstanding = list(range(1, count + 1))
    confirms: list[tuple[int, bool, bool]] = []
    while outstanding:
        tag = draw(st.sampled_from(outstanding))
        multiple = draw(st.booleans())
        nacked = draw(st.booleans())
        confirms.append((tag, multiple, nacked))
        outstanding = (
            [t for t in outstanding if t > tag] if multiple else [t for t in outstanding if t != tag]
        )
    return count, returned, confirms


@given(_confirm_script())
def test_every_publish_is_settled_once_with_the_right_outcome(
    script: tuple[int, set[int], list[tuple[int, bool, bool]]],
) -> None:
    """Whatever order and grouping the broker confirms in, each future gets its own outcome."""
    count, returned, confirms = script
    tracker = ConfirmTracker()
    futures = {tag: future for tag, future in (_publish(tracker, f"m{i}") for i in range(1, count + 1))}
    for tag in sorted(returned):
        assert tracker.on_return(f"m{tag}", "", "q", "312 NO_ROUTE")
    expected: dict[int, type[BaseException] | None] = {}
    for tag, multiple, nacked in confirms:
        covered = [t for t in futures if t not in expected and (t <= tag if multiple else t == tag)]
        for t in covered:
            expected[t] = BrokerUnavailable if nacked else (Unroutable if t in returned else None)
        assert tracker.on_confirm(tag, multiple=multiple, nacked=nacked) == len(covered)
    assert len(tracker) == 0
    assert {tag: _outcome(future) for tag, future in futures.items()} == expected
