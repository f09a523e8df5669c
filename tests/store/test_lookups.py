"""Batch look-ups: get_messages, known_apprecs and receiver health, and the pure id matching behind them."""

from __future__ import annotations

import dataclasses
import uuid

from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.acks import (
    AckOutcome,
    KnownAppRec,
    SentMessage,
    apprec_fingerprint,
    decide,
)
from edi_gateway.domain.apprec import AppRec, AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.overdue import ReceiverHealth
from edi_gateway.domain.states import MessageState
from edi_gateway.store import NewAppRec, Store, Transition
from edi_gateway.store.lookups import CHUNK, by_asked, chunks, spellings
from tests.store.conftest import KOMMUNE_ORG, KOMMUNE_SERVICE, LEGEKONTOR, Builder, FakeClock

ACTOR = "worker:test"


def _save_apprecs(store: Store, *apprecs: NewAppRec) -> None:
    store.save_acknowledgements(apprecs=apprecs, parked=[], transitions=[], health=[], actor=ACTOR)


def test_get_messages_finds_many_ids_at_once_keyed_as_asked(store: Store, build: Builder) -> None:
    """get_messages returns the stored messages among more ids than one query takes, keyed as asked."""
    outcome = build.routed(receivers=2)
    store.save_outcomes([outcome], actor=ACTOR)
    kommune, fastlege = (m.msg_id for m in outcome.messages)
    unknown = [str(uuid.uuid4()) for _ in range(CHUNK * 2)]
    shouting = f" {fastlege.upper()} "

    found = store.get_messages([*unknown, kommune, shouting])

    assert set(found) == {kommune, shouting}
    assert found[kommune] == store.get_message(kommune)
    assert found[shouting].msg_id == fastlege
    assert store.get_messages([]) == {}


def test_known_apprecs_gives_what_decide_needs(store: Store, build: Builder) -> None:
    """With known_apprecs, a redelivered AppRec is judged a duplicate, another content a conflict."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor=ACTOR)
    msg_id = outcome.messages[0].msg_id
    store.transition_messages([Transition(msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    apprec = _apprec(msg_id)
    stored = dataclasses.replace(
        build.apprec(msg_id, apprec_id=apprec.id), fingerprint=apprec_fingerprint(apprec)
    )
    _save_apprecs(store, stored)
    original = SentMessage(msg_id, MessageState.ACKED, KOMMUNE_ORG, KOMMUNE_SERVICE)

    known = store.known_apprecs([apprec.id, "never-seen"])

    assert known == {apprec.id: KnownAppRec(apprec.id, apprec_fingerprint(apprec))}
    same = decide(apprec, original=original, previous=known.get(apprec.id), sender_org_her_id=KOMMUNE_ORG)
    assert same.kind is AckOutcome.DUPLICATE
    other = _apprec(msg_id, status=AppRecStatus.AVVIST, apprec_id=apprec.id.upper())
    previous = store.known_apprecs([other.id]).get(other.id)
    assert previous is not None and previous.apprec_id == apprec.id
    judged = decide(other, original=original, previous=previous, sender_org_her_id=KOMMUNE_ORG)
    assert judged.kind is AckOutcome.CONFLICT


def test_known_apprecs_looks_up_many_ids(store: Store, build: Builder) -> None:
    """known_apprecs answers for every stored id among more ids than one query takes."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor=ACTOR)
    msg_id = outcome.messages[0].msg_id
    stored = [build.apprec(msg_id) for _ in range(3)]
    _save_apprecs(store, *stored)
    asked = [str(uuid.uuid4()) for _ in range(CHUNK + 7)] + [a.apprec_id for a in stored]

    known = store.known_apprecs(asked)

    assert known == {a.apprec_id: KnownAppRec(a.apprec_id, a.fingerprint) for a in stored}


def test_receiver_health_round_trips_and_the_last_value_wins(store: Store, clock: FakeClock) -> None:
    """Health rows are inserted, then updated in place; within one batch the last value per HER-id wins."""
    quiet = ReceiverHealth(KOMMUNE_SERVICE, consecutive_overdue=3, quiet=True)
    store.save_acknowledgements(
        apprecs=[],
        parked=[],
        transitions=[],
        health=[ReceiverHealth(KOMMUNE_SERVICE, 1), quiet, ReceiverHealth(LEGEKONTOR, 1)],
        actor=ACTOR,
    )
    assert store.receiver_health([KOMMUNE_SERVICE, LEGEKONTOR, 999]) == {
        KOMMUNE_SERVICE: quiet,
        LEGEKONTOR: ReceiverHealth(LEGEKONTOR, 1),
    }

    clock.advance(hours=1)
    store.save_acknowledgements(
        apprecs=[], parked=[], transitions=[], health=[ReceiverHealth(KOMMUNE_SERVICE)], actor=ACTOR
    )
    assert store.receiver_health([KOMMUNE_SERVICE]) == {KOMMUNE_SERVICE: ReceiverHealth(KOMMUNE_SERVICE)}
    assert store.receiver_health([LEGEKONTOR])[LEGEKONTOR] == ReceiverHealth(LEGEKONTOR, 1)
    assert store.receiver_health([]) == {}


def test_chunks_cover_the_input_in_order() -> None:
    """chunks() yields every item once, in order, in slices of at most the size."""
    items = list(range(1234))
    sliced = list(chunks(items, 500))
    assert [len(s) for s in sliced] == [500, 500, 234]
    assert [i for s in sliced for i in s] == items
    assert list(chunks([], 500)) == []


@given(
    stored=st.lists(st.uuids().map(str), min_size=1, max_size=5, unique=True),
    data=st.data(),
)
def test_any_spelling_of_a_stored_id_finds_it(stored: list[str], data: st.DataObject) -> None:
    """An id asked in upper or lower case, padded or not, finds the stored id through spellings()."""
    target = data.draw(st.sampled_from(stored))
    asked = data.draw(st.sampled_from([target, target.upper(), f" {target.upper()}\n", f"\t{target} "]))
    looked_up = set(spellings([asked]))
    found = {s: s for s in stored if s in looked_up}
    assert by_asked([asked], found) == {asked: target}


def test_an_exact_spelling_wins_over_another_case() -> None:
    """When two stored ids differ only in case, the one spelled as asked is the answer."""
    found = {"abc": 1, "ABC": 2}
    assert by_asked(["ABC", "abc", "Abc", "zzz"], found) == {"ABC": 2, "abc": 1, "Abc": 2}


def _apprec(msg_id: str, *, status: AppRecStatus = AppRecStatus.OK, apprec_id: str | None = None) -> AppRec:
    sender = AppRecParty(PartyId(str(KOMMUNE_ORG), "HER"), "Porsgrunn kommune")
    receiver = AppRecParty(PartyId("8100001", "HER"), "Sykehuset Telemark")
    return AppRec(
        version="1.1",
        id=apprec_id or str(uuid.uuid4()),
        gen_date="2024-11-04T09:00:00",
        status=status,
        sender=sender,
        receiver=receiver,
        original_msg_id=msg_id,
        original_msg_type="DIALOG_HELSEFAGLIG",
        original_issue_date="2024-11-04T08:30:00",
    )
