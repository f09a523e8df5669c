"""Saving batches of outcomes and reading them back, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import Problem, StoreUnavailable
from edi_gateway.store import (
    DuplicateRequest,
    EventKind,
    RequestOutcome,
    Store,
    StoreDefect,
)
from edi_gateway.store import store as store_module
from tests.store.conftest import FASTLEGE, KOMMUNE_SERVICE, LEGEKONTOR, Builder, FakeClock

ACTOR = "worker:test"


def test_a_saved_batch_reads_back_field_for_field(store: Store, build: Builder, clock: FakeClock) -> None:
    """Every request and message of a batch reads back with the values it was saved with."""
    outcomes = [build.routed(receivers=2), build.routed(receivers=1)]
    store.save_outcomes(outcomes, actor=ACTOR)

    for outcome in outcomes:
        new = outcome.request
        assert new.request_id is not None
        got = store.get_request(new.request_id)
        assert got is not None
        assert got == store.get_request_by_ref(new.ref)
        expected = {f.name: getattr(new, f.name) for f in dataclasses.fields(got) if hasattr(new, f.name)}
        assert {k: getattr(got, k) for k in expected} == expected
        assert got.updated_at == clock.now
        messages = store.messages_for_request(new.ref)
        assert {m.msg_id for m in messages} == {m.msg_id for m in outcome.messages}
        for saved in outcome.messages:
            message = store.get_message(saved.msg_id)
            assert message is not None
            assert message.state is MessageState.QUEUED
            assert message.signed_xml == saved.signed_xml
            assert message.receiver_kind == ReceiverKind(saved.receiver_kind)
            assert (message.receiver_org_her_id, message.receiver_her_id) == (
                saved.receiver_org_her_id,
                saved.receiver_her_id,
            )
            assert (message.queue, message.msg_type, message.deadline_at) == (
                saved.queue,
                saved.msg_type,
                saved.deadline_at,
            )
            assert (message.attempts, message.sent_at, message.request_ref) == (0, None, new.ref)
    assert store.count_requests() == 2
    assert store.count_messages() == 3
    assert store.count_messages(state="queued") == 3


def test_unknown_ids_read_as_none(store: Store) -> None:
    """Looking up ids nobody stored gives None or an empty list, never an error."""
    assert store.get_request("00000000-0000-4000-8000-000000000000") is None
    assert store.get_request_by_ref("nope") is None
    assert store.get_message("nope") is None
    assert store.messages_for_request("nope") == []
    assert store.events_for_request("nope") == []


def test_a_rejected_request_keeps_its_problems(store: Store, build: Builder) -> None:
    """A rejected request without a usable request_id round-trips its problems, field included."""
    problems = (
        Problem("patient.id.checksum", "The person number has a wrong check digit.", "patient.id"),
        Problem("consent.missing", "Consent is required."),
    )
    rejected = build.request(RequestState.REJECTED, request_id=None, problems=problems, reason="invalid")
    also_without_id = build.request(RequestState.REJECTED, request_id=None, problems=problems[1:])
    store.save_outcomes([RequestOutcome(rejected), RequestOutcome(also_without_id)], actor=ACTOR)

    got = store.get_request_by_ref(rejected.ref)
    assert got is not None
    assert got.state is RequestState.REJECTED
    assert got.request_id is None
    assert got.problems == problems
    assert store.messages_for_request(rejected.ref) == []
    events = store.events_for_request(rejected.ref)
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, RequestState.RECEIVED),
        (RequestState.RECEIVED, RequestState.REJECTED),
    ]
    assert events[1].reason == "invalid"
    assert events[1].details == {"problems": [p.as_dict() for p in problems]}


def test_a_duplicate_request_id_writes_nothing_of_the_batch(store: Store, build: Builder) -> None:
    """A batch with one already stored request_id raises DuplicateRequest naming it, and stores nothing."""
    first = build.routed()
    store.save_outcomes([first], actor=ACTOR)
    fresh = build.routed()
    repeat = RequestOutcome(
        dataclasses.replace(build.request(), request_id=first.request.request_id), (build.message(),)
    )

    with pytest.raises(DuplicateRequest) as caught:
        store.save_outcomes([fresh, repeat], actor=ACTOR)

    assert caught.value.request_ids == (first.request.request_id,)
    assert store.get_request_by_ref(fresh.request.ref) is None
    assert store.get_request_by_ref(repeat.request.ref) is None
    assert store.count_requests() == 1
    assert store.count_messages() == 1


def test_a_request_id_stored_by_a_racing_worker_is_reported_as_duplicate(
    store: Store, build: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the unique constraint, not the pre-check, catches a duplicate, DuplicateRequest still says so."""
    first = build.routed()
    store.save_outcomes([first], actor=ACTOR)
    real_check = store_module._existing_request_ids
    calls: list[int] = []

    def blind_first_check(conn: object, ids: list[str]) -> list[str]:
        # The pre-check misses it, as if the other worker committed just after it.
        calls.append(1)
        return [] if len(calls) == 1 else real_check(conn, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "_existing_request_ids", blind_first_check)
    fresh = build.routed()
    repeat = RequestOutcome(dataclasses.replace(build.request(), request_id=first.request.request_id))

    with pytest.raises(DuplicateRequest) as caught:
        store.save_outcomes([fresh, repeat], actor=ACTOR)

    assert caught.value.request_ids == (first.request.request_id,)
    assert len(calls) == 2
    assert store.count_requests() == 1


def test_one_request_id_twice_in_a_batch_is_refused(store: Store, build: Builder) -> None:
    """A batch naming one request_id twice is a caller defect (ValueError) and writes nothing."""
    one = build.routed()
    twin = RequestOutcome(dataclasses.replace(build.request(), request_id=one.request.request_id))
    with pytest.raises(ValueError, match="more than once"):
        store.save_outcomes([one, twin], actor=ACTOR)
    assert store.count_requests() == 0


def test_one_receiver_gets_one_message_per_conversation(store: Store, build: Builder) -> None:
    """One request gets one message per receiver, unless the messages belong to different conversations."""
    first = build.message()
    doubled = RequestOutcome(build.request(), (first, build.message()))
    with pytest.raises(StoreDefect):
        store.save_outcomes([doubled], actor=ACTOR)
    assert store.count_requests() == 0

    rebuilt = build.message(conversation_ref=first.msg_id)
    store.save_outcomes([RequestOutcome(build.request(), (first, rebuilt))], actor=ACTOR)
    assert store.count_messages() == 2


def test_a_constraint_error_does_not_leak_the_payload(store: Store, build: Builder) -> None:
    """A refused write raises StoreDefect whose text (and cause) carries no request body or signed XML."""
    message = build.message()
    secret = b"SYNTHETIC-PATIENT-MARKER"
    outcome = RequestOutcome(
        dataclasses.replace(build.request(), body=secret), (dataclasses.replace(message, signed_xml=secret),)
    )
    store.save_outcomes([build.routed()], actor=ACTOR)
    clash = RequestOutcome(build.request(), (dataclasses.replace(build.message(), msg_id=message.msg_id),))
    store.save_outcomes([clash], actor=ACTOR)

    with pytest.raises(StoreDefect) as caught:
        store.save_outcomes([outcome], actor=ACTOR)

    text = f"{caught.value} {caught.value.__cause__}"
    assert "SYNTHETIC-PATIENT-MARKER" not in text
    assert "parameters hidden" in text


def test_datetimes_read_back_timezone_aware_in_utc(store: Store, build: Builder) -> None:
    """Datetimes come back aware and in UTC, the same instant whatever zone they were saved in."""
    oslo = timezone(timedelta(hours=1))
    received = datetime(2024, 11, 4, 9, 30, 15, 123456, tzinfo=oslo)
    deadline = datetime(2024, 11, 8, 9, 30, tzinfo=oslo)
    outcome = RequestOutcome(
        dataclasses.replace(build.request(), received_at=received),
        (dataclasses.replace(build.message(), deadline_at=deadline),),
    )
    store.save_outcomes([outcome], actor=ACTOR)

    request = store.get_request_by_ref(outcome.request.ref)
    (message,) = store.messages_for_request(outcome.request.ref)
    assert request is not None
    stamps = [
        request.received_at,
        request.updated_at,
        message.created_at,
        message.updated_at,
        message.deadline_at,
        *(e.at for e in store.events_for_request(request.ref)),
    ]
    assert all(s is not None and s.tzinfo is UTC for s in stamps)
    assert request.received_at == received
    assert message.deadline_at == deadline


def test_a_naive_datetime_is_refused(store: Store, build: Builder) -> None:
    """A naive received_at is refused before anything is written."""
    naive = dataclasses.replace(build.request(), received_at=datetime(2024, 11, 4, 9, 30))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.save_outcomes([RequestOutcome(naive)], actor=ACTOR)
    assert store.count_requests() == 0


def test_save_writes_the_first_events(store: Store, build: Builder, clock: FakeClock) -> None:
    """Saving writes received, the final request state and queued per message, with the actor."""
    outcome = build.routed(receivers=2)
    store.save_outcomes([outcome], actor=ACTOR)

    events = store.events_for_request(outcome.request.ref)
    assert [(e.kind, e.msg_id, e.from_state, e.to_state) for e in events[:2]] == [
        (EventKind.REQUEST, None, None, RequestState.RECEIVED),
        (EventKind.REQUEST, None, RequestState.RECEIVED, RequestState.ROUTED),
    ]
    queued = events[2:]
    assert {e.msg_id for e in queued} == {m.msg_id for m in outcome.messages}
    assert all(e.kind is EventKind.MESSAGE and e.to_state is MessageState.QUEUED for e in queued)
    assert {e.actor for e in events} == {ACTOR}
    assert all(e.at == clock.now for e in events)


def test_an_empty_batch_is_a_no_op(store: Store) -> None:
    """Saving or transitioning nothing touches nothing."""
    store.save_outcomes([], actor=ACTOR)
    assert store.transition_messages([], actor=ACTOR) == []
    assert store.count_requests() == 0


def test_ping_answers_on_a_live_database(store: Store) -> None:
    """ping() returns quietly when the database answers."""
    store.ping()


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://postgres@127.0.0.1:1/x", "sqlite:///{tmp}/missing/folder/edi.sqlite3"],
    ids=["postgres-closed-port", "sqlite-missing-folder"],
)
def test_an_unreachable_database_raises_store_unavailable(url: str, tmp_path: Path, build: Builder) -> None:
    """Every call on a database that cannot be reached raises StoreUnavailable, a transient error."""
    store = Store.connect(url.format(tmp=tmp_path))
    try:
        with pytest.raises(StoreUnavailable):
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.migrate()
        with pytest.raises(StoreUnavailable):
            store.get_request("00000000-0000-4000-8000-000000000000")
        with pytest.raises(StoreUnavailable):
            store.save_outcomes([build.routed()], actor=ACTOR)
    finally:
        store.close()


def test_messages_keep_their_receivers_apart(store: Store, build: Builder) -> None:
    """A request to kommune and fastlege keeps each message's own receiver and lists the kommune first."""
    routed = build.routed(receivers=2)
    outcome = dataclasses.replace(routed, messages=routed.messages[::-1])  # fastlege handed over first
    store.save_outcomes([outcome], actor=ACTOR)
    listed = store.messages_for_request(outcome.request.ref)
    assert [m.receiver_kind for m in listed] == [ReceiverKind.KOMMUNE, ReceiverKind.FASTLEGE]
    by_kind = {m.receiver_kind: m for m in listed}
    assert by_kind[ReceiverKind.KOMMUNE].receiver_her_id == KOMMUNE_SERVICE
    assert (
        by_kind[ReceiverKind.FASTLEGE].receiver_org_her_id,
        by_kind[ReceiverKind.FASTLEGE].receiver_her_id,
    ) == (LEGEKONTOR, FASTLEGE)
    assert all(m.created_at.tzinfo is UTC for m in by_kind.values())
