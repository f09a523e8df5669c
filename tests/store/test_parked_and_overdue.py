"""Reading what operators and the overdue sweep need: parked documents (bounded), and messages by first send."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

from edi_gateway.domain.overdue import OverdueKind, PendingMessage, overdue_actions
from edi_gateway.domain.states import MessageState
from edi_gateway.store import NewParked, ParkedKind, Store, Transition
from edi_gateway.store.rows import PARKED_RAW_KEEP_BYTES
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


def test_a_large_parked_document_is_cut_with_its_size_and_sha256_recorded(
    store: Store, build: Builder
) -> None:
    """Past 256 KiB only the beginning is stored; details keep the original size and the whole sha256."""
    huge = b"<AppRec>" + b"x" * (PARKED_RAW_KEEP_BYTES + 1000) + b"</AppRec>"
    _park(store, dataclasses.replace(build.parked("apprec.malformed"), raw=huge))
    (parked,) = store.list_parked()
    assert parked.raw == huge[:PARKED_RAW_KEEP_BYTES]
    assert parked.details == {
        "sender_her_id": build.parked().details["sender_her_id"],  # type: ignore[index]
        "raw_size": len(huge),
        "raw_sha256": hashlib.sha256(huge).hexdigest(),
        "raw_kept": PARKED_RAW_KEEP_BYTES,
    }


def test_a_parked_document_at_the_bound_is_kept_whole(store: Store, build: Builder) -> None:
    """A document of exactly 256 KiB is stored as it came, with no size or sha256 added."""
    exact = b"a" * PARKED_RAW_KEEP_BYTES
    _park(store, dataclasses.replace(build.parked(), raw=exact))
    (parked,) = store.list_parked()
    assert (parked.raw, parked.details) == (exact, {"sender_her_id": build.parked().details["sender_her_id"]})  # type: ignore[index]


def test_get_parked_returns_one_document_with_its_payload(store: Store, build: Builder) -> None:
    """get_parked finds a document by id, payload and all; an unknown id is None."""
    _park(store, build.parked("apprec.bad_signature", msg_id="m-1", apprec_id="a-1"))
    (listed,) = store.list_parked()
    found = store.get_parked(listed.id)
    assert found == listed
    assert store.get_parked(listed.id + 1000) is None


def test_parked_page_lists_newest_first_without_payloads(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """parked_page gives summaries newest first with the stored length, filtered, paged, with the total."""
    first = build.parked("apprec.unknown_message")
    clock.advance(minutes=1)
    second = dataclasses.replace(build.parked("apprec.wrong_sender"), raw=b"<AppRec>longer one</AppRec>")
    clock.advance(minutes=1)
    third = build.parked("apprec.unknown_message")
    _park(store, first, second, third)
    oldest = store.list_parked()[0]
    store.resolve_parked(oldest.id, by="operator:kari", resolution="resolved: resent")

    waiting, total = store.parked_page()
    assert total == 2
    assert [(p.code, p.raw_kept) for p in waiting] == [
        ("apprec.unknown_message", len(third.raw)),
        ("apprec.wrong_sender", len(second.raw)),
    ]
    assert not hasattr(waiting[0], "raw")
    handled, handled_total = store.parked_page(resolved=True)
    assert ([p.id for p in handled], handled_total) == ([oldest.id], 1)
    assert handled[0].resolution == "resolved: resent" and handled[0].resolved_by == "operator:kari"
    everything, all_total = store.parked_page(resolved=None, limit=1, offset=2)
    assert ([p.id for p in everything], all_total) == ([oldest.id], 3)
    by_code, code_total = store.parked_page(resolved=None, code="apprec.unknown_message")
    assert ({p.code for p in by_code}, code_total) == ({"apprec.unknown_message"}, 2)


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


def test_pending_for_overdue_pages_lean_sent_messages_first_sent_by_the_cutoff(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """The sweep's lean list: sent only, first sent at or before the cutoff, by first send, in pages."""
    outcomes = [build.routed() for _ in range(5)]
    store.save_outcomes(outcomes, actor=ACTOR)
    a, b, c, young, never = (o.messages[0].msg_id for o in outcomes)
    for msg_id in (a, b, c, young):
        clock.advance(minutes=1)
        store.transition_messages([Transition(msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    cutoff = store.get_message(c).first_sent_at  # type: ignore[union-attr]
    assert cutoff is not None
    resent_at = clock.advance(hours=1)
    resend = Transition(a, MessageState.SENT, "resend 1", count_resend=True)
    store.transition_messages([resend, Transition(b, MessageState.OVERDUE, "no AppRec")], actor=ACTOR)

    listed = store.pending_for_overdue(first_sent_by=cutoff)
    assert [p.msg_id for p in listed] == [a, c]  # c exactly at the cutoff; b overdue, young too young
    assert listed[0] == PendingMessage(a, MessageState.SENT, resent_at, cutoff - timedelta(minutes=2), 1)
    first = store.pending_for_overdue(first_sent_by=cutoff, limit=1)
    assert [p.msg_id for p in first] == [a]
    after = (first[0].first_sent_at, first[0].msg_id)
    assert [p.msg_id for p in store.pending_for_overdue(first_sent_by=cutoff, after=after)] == [c]
    assert never not in {p.msg_id for p in store.pending_for_overdue(first_sent_by=clock.now)}


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
