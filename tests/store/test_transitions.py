"""Message state changes: the allowed ones apply, the others change nothing, and races have one winner."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edi_gateway.domain.states import TERMINAL_MESSAGE_STATES, MessageState, can_transition
from edi_gateway.store import EventKind, MessageNotFound, RequestOutcome, Store, Transition
from tests.store.conftest import Builder, FakeClock

ACTOR = "worker:test"


def _one_message(store: Store, build: Builder) -> tuple[RequestOutcome, str]:
    outcome = build.routed()
    store.save_outcomes([outcome], actor=ACTOR)
    return outcome, outcome.messages[0].msg_id


def _state(store: Store, msg_id: str) -> MessageState:
    message = store.get_message(msg_id)
    assert message is not None
    return message.state


def test_sent_stamps_sent_at_and_counts_the_attempt(store: Store, build: Builder, clock: FakeClock) -> None:
    """queued → sent applies, sets sent_at and updated_at, and adds one attempt when asked."""
    _, msg_id = _one_message(store, build)
    sent_at = clock.advance(seconds=2)

    changed = store.transition_messages(
        [
            Transition(
                msg_id,
                MessageState.SENT,
                "broker confirmed",
                expected_from=MessageState.QUEUED,
                count_attempt=True,
            )
        ],
        actor=ACTOR,
    )

    assert changed == [msg_id]
    message = store.get_message(msg_id)
    assert message is not None
    assert (message.state, message.sent_at, message.updated_at, message.attempts) == (
        MessageState.SENT,
        sent_at,
        sent_at,
        1,
    )
    assert message.created_at < message.updated_at


def test_a_refused_transition_changes_nothing(store: Store, build: Builder) -> None:
    """queued → acked is not allowed: no state change, no event, not in the result."""
    outcome, msg_id = _one_message(store, build)
    before = store.events_for_request(outcome.request.ref)

    assert store.transition_messages([Transition(msg_id, MessageState.ACKED, "apprec")], actor=ACTOR) == []

    assert _state(store, msg_id) is MessageState.QUEUED
    assert store.events_for_request(outcome.request.ref) == before


@pytest.mark.parametrize("terminal", sorted(TERMINAL_MESSAGE_STATES))
def test_a_terminal_state_is_never_overwritten(store: Store, build: Builder, terminal: MessageState) -> None:
    """Once an AppRec answer is recorded, no later change (resend, overdue, failure, other answer) applies."""
    _, msg_id = _one_message(store, build)
    store.transition_messages(
        [Transition(msg_id, MessageState.SENT, "confirmed"), Transition(msg_id, terminal, "apprec")],
        actor=ACTOR,
    )
    assert _state(store, msg_id) is terminal

    later = [Transition(msg_id, s, "late") for s in MessageState if s is not terminal]
    assert store.transition_messages(later, actor=ACTOR) == []
    assert _state(store, msg_id) is terminal


def test_an_expected_from_mismatch_changes_nothing(store: Store, build: Builder) -> None:
    """A change that expects another current state than the stored one is skipped, even if allowed."""
    _, msg_id = _one_message(store, build)
    store.transition_messages([Transition(msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)

    stale = Transition(
        msg_id, MessageState.SENT, "resend", expected_from=MessageState.QUEUED, count_attempt=True
    )
    assert store.transition_messages([stale], actor=ACTOR) == []

    message = store.get_message(msg_id)
    assert message is not None
    assert (message.state, message.attempts) == (MessageState.SENT, 0)


def test_a_batch_applies_what_it_may_and_reports_exactly_that(store: Store, build: Builder) -> None:
    """In a batch the allowed changes apply in order (twice to one message, too); the rest are skipped."""
    outcome = build.routed(receivers=2)
    store.save_outcomes([outcome], actor=ACTOR)
    kommune, fastlege = (m.msg_id for m in outcome.messages)

    changed = store.transition_messages(
        [
            Transition(kommune, MessageState.SENT, "confirmed"),
            Transition(kommune, MessageState.ACKED, "apprec status 1"),
            Transition(fastlege, MessageState.ACKED, "apprec before send"),  # refused
            Transition("00000000-0000-4000-8000-00000000dead", MessageState.SENT, "unknown"),  # skipped
            Transition(fastlege, MessageState.FAILED, "broker has no queue", count_attempt=True),
        ],
        actor=ACTOR,
    )

    assert changed == [kommune, kommune, fastlege]
    assert (_state(store, kommune), _state(store, fastlege)) == (MessageState.ACKED, MessageState.FAILED)


def test_events_keep_actor_reason_and_time_order(store: Store, build: Builder, clock: FakeClock) -> None:
    """The history of a request lists every event with its actor and reason, oldest first."""
    outcome, msg_id = _one_message(store, build)
    clock.advance(seconds=1)
    store.record_message_event(
        msg_id, actor="worker:a", reason="publish attempt 1", details={"queue": "8200001_async"}
    )
    clock.advance(seconds=1)
    store.transition_messages(
        [Transition(msg_id, MessageState.SENT, "broker confirmed", details={"attempt": 1})], actor="worker:a"
    )
    clock.advance(seconds=1)
    store.transition_messages(
        [Transition(msg_id, MessageState.ACKED, "apprec status 1")], actor="operator:kari"
    )

    history = [
        (e.kind, e.from_state, e.to_state, e.actor, e.reason, e.details)
        for e in store.events_for_request(outcome.request.ref)
    ]
    assert history == [
        (EventKind.REQUEST, None, "received", ACTOR, "request received", None),
        (EventKind.REQUEST, "received", "routed", ACTOR, "routed", None),
        (EventKind.MESSAGE, None, "queued", ACTOR, "message built, signed and stored", None),
        (EventKind.MESSAGE, None, "queued", "worker:a", "publish attempt 1", {"queue": "8200001_async"}),
        (EventKind.MESSAGE, "queued", "sent", "worker:a", "broker confirmed", {"attempt": 1}),
        (EventKind.MESSAGE, "sent", "acked", "operator:kari", "apprec status 1", None),
    ]
    message_events = store.events_for_message(msg_id)
    assert [e.reason for e in message_events] == [h[4] for h in history[2:]]
    stamps = [e.at for e in message_events]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4


def test_an_event_for_an_unknown_message_is_refused(store: Store) -> None:
    """record_message_event names a msg_id nobody stored: MessageNotFound."""
    with pytest.raises(MessageNotFound):
        store.record_message_event("nope", actor=ACTOR, reason="publish attempt")


def test_messages_in_state_finds_the_ones_unchanged_since_before(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """messages_in_state filters by state and by last change before ``older_than``, oldest first."""
    early, late = build.routed(), build.routed()
    store.save_outcomes([early], actor=ACTOR)
    t1 = clock.advance(minutes=10)
    store.save_outcomes([late], actor=ACTOR)
    clock.advance(minutes=10)
    sent_id = late.messages[0].msg_id
    store.transition_messages([Transition(sent_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    early_id = early.messages[0].msg_id

    assert [m.msg_id for m in store.messages_in_state([MessageState.QUEUED])] == [early_id]
    assert [m.msg_id for m in store.messages_in_state([MessageState.QUEUED], older_than=t1)] == [early_id]
    assert store.messages_in_state([MessageState.SENT], older_than=clock.now) == []
    both = store.messages_in_state(
        [MessageState.QUEUED, MessageState.SENT], older_than=clock.advance(seconds=1)
    )
    assert [m.msg_id for m in both] == [early_id, sent_id]
    assert [m.msg_id for m in store.messages_in_state({MessageState.QUEUED, MessageState.SENT}, limit=1)] == [
        early_id
    ]
    assert store.messages_in_state([]) == []


@pytest.mark.parametrize("rounds", [25])
def test_two_workers_racing_on_one_message_have_exactly_one_winner(
    store: Store, build: Builder, rounds: int
) -> None:
    """Two threads moving the same queued message to sent at once: it moves once, for one of them."""
    outcomes = [build.routed() for _ in range(rounds)]
    store.save_outcomes(outcomes, actor=ACTOR)
    msg_ids = [o.messages[0].msg_id for o in outcomes]
    barrier = threading.Barrier(2)
    won: dict[str, list[str]] = {"worker:a": [], "worker:b": []}

    def worker(name: str) -> None:
        for msg_id in msg_ids:
            change = Transition(
                msg_id,
                MessageState.SENT,
                f"confirmed to {name}",
                expected_from=MessageState.QUEUED,
                count_attempt=True,
            )
            barrier.wait(timeout=30)  # both threads go for the same message at the same moment
            won[name] += store.transition_messages([change], actor=name)

    threads = [threading.Thread(target=worker, args=(name,)) for name in won]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    winners = won["worker:a"] + won["worker:b"]
    assert sorted(winners) == sorted(msg_ids)
    for msg_id in msg_ids:
        message = store.get_message(msg_id)
        assert message is not None and (message.state, message.attempts) == (MessageState.SENT, 1)
        sent_events = [e for e in store.events_for_message(msg_id) if e.to_state is MessageState.SENT]
        assert len(sent_events) == 1


def test_overlapping_batches_in_opposite_order_neither_deadlock_nor_double_apply(
    store: Store, build: Builder
) -> None:
    """Two threads transitioning the same batch in opposite orders finish, and every message moves once."""
    outcomes = [build.routed() for _ in range(40)]
    store.save_outcomes(outcomes, actor=ACTOR)
    msg_ids = [o.messages[0].msg_id for o in outcomes]
    barrier = threading.Barrier(2)
    results: dict[str, list[str]] = {}

    def worker(name: str, ordered: list[str]) -> None:
        changes = [
            Transition(m, MessageState.SENT, "confirmed", expected_from=MessageState.QUEUED) for m in ordered
        ]
        barrier.wait(timeout=30)
        results[name] = store.transition_messages(changes, actor=name)

    threads = [
        threading.Thread(target=worker, args=("a", msg_ids)),
        threading.Thread(target=worker, args=("b", msg_ids[::-1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert not any(t.is_alive() for t in threads)
    assert sorted(results["a"] + results["b"]) == sorted(msg_ids)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(targets=st.lists(st.sampled_from(list(MessageState)), max_size=8))
def test_the_stored_state_follows_the_transition_rules(
    store: Store, build: Builder, targets: list[MessageState]
) -> None:
    """For any sequence of wished states, the store applies exactly the ones can_transition allows."""
    _, msg_id = _one_message(store, build)
    expected, applied = MessageState.QUEUED, []
    for target in targets:
        if can_transition(expected, target):
            expected = target
            applied.append(msg_id)

    changed = store.transition_messages([Transition(msg_id, t, "property") for t in targets], actor=ACTOR)

    assert changed == applied
    assert _state(store, msg_id) is expected
    assert len(store.events_for_message(msg_id)) == 1 + len(applied)


def test_first_sent_at_is_set_once_and_a_resend_does_not_move_it(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """The first send stamps first_sent_at; later resends (sent → sent, overdue → sent) move only sent_at."""
    _, msg_id = _one_message(store, build)
    first = clock.advance(seconds=2)
    store.transition_messages(
        [Transition(msg_id, MessageState.SENT, "confirmed", count_attempt=True)], actor=ACTOR
    )
    resent = clock.advance(hours=24)
    resend = Transition(msg_id, MessageState.SENT, "resend 1", count_attempt=True, count_resend=True)
    assert store.transition_messages([resend], actor=ACTOR) == [msg_id]
    clock.advance(hours=72)
    store.transition_messages([Transition(msg_id, MessageState.OVERDUE, "no AppRec")], actor=ACTOR)
    last = clock.advance(hours=1)
    replay = Transition(msg_id, MessageState.SENT, "resend 2", count_attempt=True, count_resend=True)
    assert store.transition_messages([replay], actor=ACTOR) == [msg_id]

    message = store.get_message(msg_id)
    assert message is not None
    assert (message.first_sent_at, message.sent_at, message.attempts, message.resends) == (first, last, 3, 2)
    assert resent < last


def test_a_resend_is_counted_only_when_it_applies(store: Store, build: Builder) -> None:
    """count_resend adds to resends for an applied change only; a refused or stale one adds nothing."""
    _, msg_id = _one_message(store, build)
    early = Transition(msg_id, MessageState.SENT, "resend before send", expected_from=MessageState.SENT)
    assert store.transition_messages([dataclasses.replace(early, count_resend=True)], actor=ACTOR) == []
    store.transition_messages([Transition(msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    store.transition_messages([Transition(msg_id, MessageState.ACKED, "apprec status 1")], actor=ACTOR)
    late = Transition(msg_id, MessageState.SENT, "resend after answer", count_resend=True)
    assert store.transition_messages([late], actor=ACTOR) == []

    message = store.get_message(msg_id)
    assert message is not None
    assert (message.state, message.resends, message.first_sent_at is not None) == (
        MessageState.ACKED,
        0,
        True,
    )


def test_a_message_never_sent_has_no_first_send(store: Store, build: Builder) -> None:
    """A message that goes queued → failed keeps first_sent_at empty and resends at zero."""
    _, msg_id = _one_message(store, build)
    store.transition_messages([Transition(msg_id, MessageState.FAILED, "no queue")], actor=ACTOR)
    message = store.get_message(msg_id)
    assert message is not None
    assert (message.state, message.first_sent_at, message.resends) == (MessageState.FAILED, None, 0)
