"""Reading what operators and the overdue sweep need: parked documents, and messages by first send."""

from __future__ import annotations

from datetime import timedelta

from edi_gateway.domain.overdue import OverdueKind, PendingMessage, overdue_actions
from edi_gateway.domain.states import MessageState
from edi_gateway.store import NewParked, ParkedKind, Store, Transition
from tests.store.conftest import Builder, FakeClock

ACTOR = "worker:test"


def _park(store: Store, *documents: NewParked) -> None:
    store.save_acknowledgements(apprecs=[], parked=documents, transitions=[], health=[], actor=ACTOR)


def test_parked_documents_list_oldest_first_with_filters(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """list_parked and count_parked filter by resolution, kind and code, and list the oldest first."""
    unknown = build.parked("apprec.unknown_message")
    clock.advance(minutes=1)
    wrong = build.parked("apprec.wrong_sender")
    _park(store, wrong, unknown)  # handed over newest first

    listed = store.list_parked()
    assert [p.code for p in listed] == ["apprec.unknown_message", "apprec.wrong_sender"]
    assert all(p.kind is ParkedKind.APPREC and p.resolved_at is None for p in listed)
    assert [p.code for p in store.list_parked(code="apprec.wrong_sender")] == ["apprec.wrong_sender"]
    assert store.count_parked(kind=ParkedKind.APPREC) == 2
    assert store.count_parked(code="apprec.conflict") == 0
    assert len(store.list_parked(limit=1)) == 1


def test_a_resolved_document_leaves_the_unresolved_list(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """resolve_parked stamps who resolved it, when and how, once; it then lists only with resolved ones."""
    _park(store, build.parked("apprec.conflict"), build.parked("apprec.bad_signature"))
    conflict, bad_signature = store.list_parked()
    resolved_at = clock.advance(hours=2)

    assert store.resolve_parked(conflict.id, by="operator:kari", resolution="confirmed with the kommune")
    assert not store.resolve_parked(conflict.id, by="operator:ola", resolution="again")
    assert not store.resolve_parked(10_000_000, by="operator:ola", resolution="no such document")

    assert [p.id for p in store.list_parked()] == [bad_signature.id]
    assert store.count_parked() == 1
    assert store.count_parked(unresolved_only=False) == 2
    done = store.list_parked(unresolved_only=False)[0]
    assert (done.id, done.resolved_at, done.resolved_by, done.resolution) == (
        conflict.id,
        resolved_at,
        "operator:kari",
        "confirmed with the kommune",
    )


def test_messages_for_overdue_lists_sent_messages_by_first_send(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """The sweep's list holds sent messages oldest first send first; a resend does not reorder it."""
    outcomes = [build.routed() for _ in range(4)]
    store.save_outcomes(outcomes, actor=ACTOR)
    a, b, c, never = (o.messages[0].msg_id for o in outcomes)
    for msg_id in (a, b, c):
        clock.advance(minutes=1)
        store.transition_messages([Transition(msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    clock.advance(hours=1)
    resend = Transition(a, MessageState.SENT, "resend 1", count_resend=True)
    store.transition_messages([resend, Transition(c, MessageState.OVERDUE, "no AppRec")], actor=ACTOR)

    assert [m.msg_id for m in store.messages_for_overdue()] == [a, b]
    both = store.messages_for_overdue(states=[MessageState.SENT, MessageState.OVERDUE])
    assert [m.msg_id for m in both] == [a, b, c]
    assert never not in {m.msg_id for m in both}
    first = store.messages_for_overdue(limit=1)
    assert [m.msg_id for m in first] == [a]
    assert first[0].resends == 1 and first[0].first_sent_at is not None
    page_two = store.messages_for_overdue(after=(first[0].first_sent_at, first[0].msg_id))
    assert [m.msg_id for m in page_two] == [b]
    b_record = page_two[0]
    assert b_record.first_sent_at is not None
    assert store.messages_for_overdue(first_sent_before=b_record.first_sent_at) == first
    assert store.messages_for_overdue(states=[]) == []


def test_the_sweep_can_judge_what_the_store_lists(store: Store, build: Builder, clock: FakeClock) -> None:
    """Listed records become PendingMessages that overdue_actions marks overdue at the deadline."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor=ACTOR)
    msg_id = outcome.messages[0].msg_id
    store.transition_messages([Transition(msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    now = clock.advance(hours=96)

    pending = [
        PendingMessage(m.msg_id, m.state, m.sent_at, m.first_sent_at, m.resends)  # type: ignore[arg-type]
        for m in store.messages_for_overdue()
    ]
    actions = overdue_actions(
        pending, now=now, deadline=timedelta(hours=96), resend_after=None, max_resends=0
    )

    assert [(a.msg_id, a.kind) for a in actions] == [(msg_id, OverdueKind.MARK_OVERDUE)]
