"""Writing a batch of acknowledgements in one transaction, and reading AppRecs back, on both databases."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest
from sqlalchemy import exc

from edi_gateway.domain.acks import AckOutcome, KnownAppRec
from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.overdue import ReceiverHealth
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import Problem, StoreUnavailable, TransientError
from edi_gateway.store import (
    APPREC_ID_MAX_LEN,
    DuplicateAppRec,
    NewAppRec,
    Store,
    StoreDefect,
    Transition,
)
from edi_gateway.store import acks as acks_module
from tests.store.conftest import KOMMUNE_ORG, KOMMUNE_SERVICE, Builder, FakeClock

ACTOR = "worker:test"
UNKNOWN_MSG_ID = "00000000-0000-4000-8000-00000000dead"


def _sent_messages(store: Store, build: Builder, count: int = 1) -> list[str]:
    outcomes = [build.routed() for _ in range(count)]
    store.save_outcomes(outcomes, actor=ACTOR)
    msg_ids = [o.messages[0].msg_id for o in outcomes]
    store.transition_messages([Transition(m, MessageState.SENT, "confirmed") for m in msg_ids], actor=ACTOR)
    return msg_ids


def _acked(msg_id: str) -> Transition:
    return Transition(msg_id, MessageState.ACKED, "AppRec status 1 (OK): sent → acked")


def _nothing_written(store: Store, msg_id: str, apprec: NewAppRec | None) -> None:
    message = store.get_message(msg_id)
    assert message is not None and message.state is MessageState.SENT
    assert [e.to_state for e in store.events_for_message(msg_id)] == [MessageState.QUEUED, MessageState.SENT]
    assert store.apprecs_for_message(msg_id) == []
    if apprec is not None:
        assert store.known_apprecs([apprec.apprec_id]) == {}
    assert store.count_parked(unresolved_only=False) == 0
    assert store.receiver_health([KOMMUNE_SERVICE]) == {}


def test_a_batch_writes_apprec_transition_parked_and_health_together(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """One call stores the AppRec, moves the message with an event, parks the stray and upserts health."""
    (msg_id,) = _sent_messages(store, build)
    clock.advance(minutes=5)
    problems = (Problem("apprec.X99", "Ukjent feil hos mottaker"),)
    apprec = build.apprec(msg_id, status=AppRecStatus.OK_FEIL_I_DELMELDING, errors=problems)
    stray = build.parked(msg_id=UNKNOWN_MSG_ID, apprec_id="not-ours")
    step = Transition(msg_id, MessageState.ACKED_WITH_ERRORS, apprec.reason, details={"apprec_id": "x"})

    changed = store.save_acknowledgements(
        apprecs=[apprec],
        parked=[stray],
        transitions=[step],
        health=[ReceiverHealth(KOMMUNE_SERVICE)],
        actor=ACTOR,
    )

    assert changed == [msg_id]
    message = store.get_message(msg_id)
    assert message is not None
    assert (message.state, message.updated_at) == (MessageState.ACKED_WITH_ERRORS, clock.now)
    last = store.events_for_message(msg_id)[-1]
    assert (last.from_state, last.to_state, last.actor, last.details) == (
        MessageState.SENT,
        MessageState.ACKED_WITH_ERRORS,
        ACTOR,
        {"apprec_id": "x"},
    )
    (stored,) = store.apprecs_for_message(msg_id)
    expected = {f.name: getattr(apprec, f.name) for f in dataclasses.fields(apprec)}
    assert {k: getattr(stored, k) for k in expected} == expected
    assert stored.received_at.tzinfo is not None
    (parked,) = store.list_parked()
    assert (parked.code, parked.msg_id, parked.apprec_id, parked.raw, parked.details) == (
        stray.code,
        UNKNOWN_MSG_ID,
        "not-ours",
        stray.raw,
        {"sender_her_id": KOMMUNE_ORG},
    )
    assert store.receiver_health([KOMMUNE_SERVICE]) == {KOMMUNE_SERVICE: ReceiverHealth(KOMMUNE_SERVICE)}


def test_two_steps_for_a_queued_message_apply_in_one_batch(store: Store, build: Builder) -> None:
    """The steps decide() gives for a still-queued message (sent, then acked) both apply, two events."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor=ACTOR)
    msg_id = outcome.messages[0].msg_id

    changed = store.save_acknowledgements(
        apprecs=[build.apprec(msg_id)],
        parked=[],
        transitions=[Transition(msg_id, MessageState.SENT, "AppRec proves delivery"), _acked(msg_id)],
        health=[],
        actor=ACTOR,
    )

    assert changed == [msg_id, msg_id]
    message = store.get_message(msg_id)
    assert message is not None
    assert (message.state, message.first_sent_at) == (MessageState.ACKED, message.sent_at)
    assert message.first_sent_at is not None


def test_an_apprec_for_a_message_not_stored_rolls_back_the_whole_batch(store: Store, build: Builder) -> None:
    """An AppRec row naming a msg_id nobody stored is refused (StoreDefect) and nothing of the batch stays."""
    (msg_id,) = _sent_messages(store, build)
    good, orphan = build.apprec(msg_id), build.apprec(UNKNOWN_MSG_ID)

    with pytest.raises(StoreDefect):
        store.save_acknowledgements(
            apprecs=[good, orphan],
            parked=[build.parked()],
            transitions=[_acked(msg_id)],
            health=[ReceiverHealth(KOMMUNE_SERVICE, 3, quiet=True)],
            actor=ACTOR,
        )

    _nothing_written(store, msg_id, good)


def test_a_failure_at_the_last_step_rolls_back_the_whole_batch(
    store: Store, build: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the connection fails while health is written, StoreUnavailable is raised and nothing stays."""
    (msg_id,) = _sent_messages(store, build)
    apprec = build.apprec(msg_id)

    def broken_upsert(dialect_name: str) -> object:
        raise exc.OperationalError("upsert", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(acks_module, "_upsert_health", broken_upsert)
    with pytest.raises(StoreUnavailable):
        store.save_acknowledgements(
            apprecs=[apprec],
            parked=[build.parked()],
            transitions=[_acked(msg_id)],
            health=[ReceiverHealth(KOMMUNE_SERVICE)],
            actor=ACTOR,
        )

    _nothing_written(store, msg_id, apprec)


def test_an_apprec_id_stored_before_refuses_the_batch_as_transient(store: Store, build: Builder) -> None:
    """Saving an AppRec id stored already raises DuplicateAppRec (retry and decide again); nothing stays."""
    first, second = _sent_messages(store, build, 2)
    stored = build.apprec(first)
    store.save_acknowledgements(
        apprecs=[stored], parked=[], transitions=[_acked(first)], health=[], actor=ACTOR
    )
    again = build.apprec(second, apprec_id=stored.apprec_id.upper())

    with pytest.raises(DuplicateAppRec) as caught:
        store.save_acknowledgements(
            apprecs=[again], parked=[build.parked()], transitions=[_acked(second)], health=[], actor=ACTOR
        )

    assert isinstance(caught.value, TransientError)
    assert caught.value.apprec_ids == (again.apprec_id,)
    assert [a.msg_id for a in store.apprecs_for_message(first)] == [first]
    _nothing_written(store, second, None)


def test_a_racing_worker_that_stored_the_apprec_first_is_reported_as_duplicate(
    store: Store, build: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the unique index, not the pre-check, catches a stored AppRec id, DuplicateAppRec still says so."""
    first, second = _sent_messages(store, build, 2)
    stored = build.apprec(first)
    store.save_acknowledgements(apprecs=[stored], parked=[], transitions=[], health=[], actor=ACTOR)
    real_known = acks_module._known
    calls: list[int] = []

    def blind_first_check(conn: object, ids: list[str]) -> dict[str, KnownAppRec]:
        # The pre-check misses it, as if the other worker committed just after it.
        calls.append(1)
        return {} if len(calls) == 1 else real_known(conn, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(acks_module, "_known", blind_first_check)
    again = build.apprec(second, apprec_id=stored.apprec_id)
    with pytest.raises(DuplicateAppRec) as caught:
        store.save_acknowledgements(
            apprecs=[again], parked=[], transitions=[_acked(second)], health=[], actor=ACTOR
        )

    assert caught.value.apprec_ids == (stored.apprec_id,)
    assert len(calls) == 2
    assert store.apprecs_for_message(second) == []


def test_one_apprec_id_twice_in_a_batch_is_refused(store: Store, build: Builder) -> None:
    """A batch naming one AppRec id twice (in any case) is a caller defect: ValueError, nothing written."""
    (msg_id,) = _sent_messages(store, build)
    one = build.apprec(msg_id)
    twin = build.apprec(msg_id, apprec_id=f" {one.apprec_id.upper()} ")
    with pytest.raises(ValueError, match="more than once"):
        store.save_acknowledgements(
            apprecs=[one, twin], parked=[], transitions=[_acked(msg_id)], health=[], actor=ACTOR
        )
    _nothing_written(store, msg_id, one)


def test_an_overlong_apprec_id_is_refused_but_can_be_parked(store: Store, build: Builder) -> None:
    """An AppRec id longer than the column is refused for apprecs, while a parked document keeps it whole."""
    (msg_id,) = _sent_messages(store, build)
    long_id = "x" * (APPREC_ID_MAX_LEN + 1)
    with pytest.raises(ValueError, match="park it instead"):
        store.save_acknowledgements(
            apprecs=[build.apprec(msg_id, apprec_id=long_id)],
            parked=[],
            transitions=[],
            health=[],
            actor=ACTOR,
        )

    long_msg_id = "y" * 1000
    parked = build.parked("apprec.malformed", apprec_id=long_id, msg_id=long_msg_id)
    store.save_acknowledgements(apprecs=[], parked=[parked], transitions=[], health=[], actor=ACTOR)
    (got,) = store.list_parked()
    assert (got.apprec_id, got.msg_id) == (long_id, long_msg_id)


def test_an_empty_batch_is_a_no_op(store: Store) -> None:
    """Saving no AppRec, parked document, transition or health writes nothing and changes nothing."""
    assert store.save_acknowledgements(apprecs=[], parked=[], transitions=[], health=[], actor=ACTOR) == []
    assert store.count_parked(unresolved_only=False) == 0


def test_an_already_terminal_answer_is_recorded_without_a_transition(store: Store, build: Builder) -> None:
    """A second answer to an acked message is stored as already_terminal; the state and history stay."""
    (msg_id,) = _sent_messages(store, build)
    store.save_acknowledgements(
        apprecs=[build.apprec(msg_id)], parked=[], transitions=[_acked(msg_id)], health=[], actor=ACTOR
    )
    events_before = store.events_for_message(msg_id)
    build.clock.advance(hours=1)
    late = build.apprec(msg_id, status=AppRecStatus.AVVIST, outcome=AckOutcome.ALREADY_TERMINAL)

    assert (
        store.save_acknowledgements(apprecs=[late], parked=[], transitions=[], health=[], actor=ACTOR) == []
    )

    assert [a.outcome for a in store.apprecs_for_message(msg_id)] == [
        AckOutcome.TRANSITION,
        AckOutcome.ALREADY_TERMINAL,
    ]
    assert store.events_for_message(msg_id) == events_before


def test_apprecs_for_a_message_come_in_the_order_received(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """apprecs_for_message lists a message's AppRecs by receipt time, and only that message's."""
    first, other = _sent_messages(store, build, 2)
    late = build.apprec(first, outcome=AckOutcome.ALREADY_TERMINAL)
    clock.advance(minutes=1)
    early = dataclasses.replace(build.apprec(first), received_at=late.received_at - timedelta(seconds=1))
    store.save_acknowledgements(
        apprecs=[late, early, build.apprec(other)], parked=[], transitions=[], health=[], actor=ACTOR
    )

    assert [a.apprec_id for a in store.apprecs_for_message(first)] == [early.apprec_id, late.apprec_id]
    assert store.apprecs_for_message(UNKNOWN_MSG_ID) == []


def test_two_workers_saving_one_apprec_at_once_store_it_once(store: Store, build: Builder) -> None:
    """Two threads saving copies of one AppRec at once: one stores it, the other gets DuplicateAppRec."""
    (msg_id,) = _sent_messages(store, build)
    apprec = build.apprec(msg_id)
    barrier = threading.Barrier(2)
    results: dict[str, list[str] | Exception] = {}

    def worker(name: str) -> None:
        barrier.wait(timeout=30)
        try:
            results[name] = store.save_acknowledgements(
                apprecs=[apprec], parked=[], transitions=[_acked(msg_id)], health=[], actor=name
            )
        except DuplicateAppRec as error:
            results[name] = error

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("worker:a", "worker:b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    outcomes = sorted(results.values(), key=lambda r: isinstance(r, Exception))
    assert outcomes[0] == [msg_id]
    assert isinstance(outcomes[1], DuplicateAppRec)
    assert len(store.apprecs_for_message(msg_id)) == 1
    assert [e.to_state for e in store.events_for_message(msg_id)].count(MessageState.ACKED) == 1


@pytest.mark.parametrize("rounds", [5])
def test_overlapping_batches_in_opposite_order_do_not_deadlock(
    store: Store, build: Builder, rounds: int
) -> None:
    """Two workers answering the same messages in opposite orders both finish; each message moves once."""
    for _ in range(rounds):
        msg_ids = _sent_messages(store, build, 30)
        results = _answer_in_opposite_orders(store, build, msg_ids)
        assert all(isinstance(r, list) for r in results), results
        assert sorted(m for r in results if isinstance(r, list) for m in r) == sorted(msg_ids)
        assert all(len(store.apprecs_for_message(m)) == 2 for m in msg_ids)


def _answer_in_opposite_orders(
    store: Store, build: Builder, msg_ids: list[str]
) -> list[list[str] | Exception]:
    """Let two threads save an AppRec and an ack for each message, one forwards, one backwards, at once."""
    barrier = threading.Barrier(2)
    results: list[list[str] | Exception] = [[], []]

    def worker(slot: int, ordered: list[str]) -> None:
        apprecs = [build.apprec(m) for m in ordered]
        barrier.wait(timeout=30)
        try:
            results[slot] = store.save_acknowledgements(
                apprecs=apprecs,
                parked=[],
                transitions=[_acked(m) for m in ordered],
                health=[ReceiverHealth(KOMMUNE_SERVICE)],
                actor=f"worker:{slot}",
            )
        except Exception as error:  # a deadlock surfaces as StoreUnavailable
            results[slot] = error

    threads = [
        threading.Thread(target=worker, args=(0, msg_ids)),
        threading.Thread(target=worker, args=(1, msg_ids[::-1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results
