"""Operator read queries on both databases: filters, paging, totals, related messages, report counts.

``fill_scenario`` stores a small, fixed history (acked, overdue, rejected by the receiver, queued,
rejected and no-consent requests, a message continuing another by ConversationRef) that the service
and CLI tests reuse.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.overdue import ReceiverHealth
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import Problem
from edi_gateway.store import NewMessage, NewRequest, RequestOutcome, Store, Transition
from edi_gateway.store.queries import MessageCriteria, OutcomeCount
from tests.store.conftest import T0, Builder, FakeClock

ACTOR = "worker:test"
PATIENT_A = "18897219545"  # synthetic (month + 80), lives in 4001 Porsgrunn
PATIENT_B = "23915700969"  # synthetic (month + 80), lives in 4003 Skien
PORSGRUNN, PORSGRUNN_KREFT = 8100005, 8100006
SKIEN, SKIEN_KREFT = 8100010, 8100011
LEGEKONTOR, FASTLEGE = 8100082, 8100083


def request_body(patient_id: str, **changes: object) -> bytes:
    """A synthetic JSON request body naming a patient (only the fields the queries read)."""
    data: dict[str, object] = {
        "samhandlingspunkt": 1,
        "consent": True,
        "patient": {"id": patient_id, "given_name": "Test", "family_name": "Testesen"},
        **changes,
    }
    return json.dumps(data).encode()


@dataclass
class Scenario:
    """The ids of what ``fill_scenario`` stored.

    Messages: ``ka`` (Porsgrunn, acked after 59 min), ``fa`` (fastlege, overdue) of request ``a``;
    ``kb`` (Skien, rejected with E35 after 2 h 59 min) of ``b``; ``kb2`` (Skien, queued, continues
    ``kb`` by ConversationRef) of ``e``. Requests ``c`` (rejected, unreadable body) and ``d``
    (no consent) built nothing.
    """

    a: NewRequest
    b: NewRequest
    c: NewRequest
    d: NewRequest
    e: NewRequest
    ka: str
    fa: str
    kb: str
    kb2: str


def _request(build: Builder, body: bytes, **changes: object) -> NewRequest:
    return dataclasses.replace(build.request(), body=body, **changes)  # type: ignore[arg-type]


def _message(build: Builder, org: int, her_id: int, kommunenummer: str, **changes: object) -> NewMessage:
    kind = "fastlege" if her_id == FASTLEGE else "kommune"
    message = build.message(kind=kind, org=org, her_id=her_id)
    name = (
        "Skien legesenter 1 / fastlege"
        if kind == "fastlege"
        else f"Kommune {kommunenummer} / Kreftkoordinator"
    )
    return dataclasses.replace(message, kommunenummer=kommunenummer, receiver_name=name, **changes)  # type: ignore[arg-type]


def fill_scenario(store: Store, build: Builder, clock: FakeClock) -> Scenario:
    """Store the fixed history described on ``Scenario``; the clock ends at T0 + 5 days."""
    a = _request(build, request_body(PATIENT_A), kommunenummer="4001", samhandlingspunkt=1)
    ka, fa = (
        _message(build, PORSGRUNN, PORSGRUNN_KREFT, "4001"),
        _message(build, LEGEKONTOR, FASTLEGE, "4001"),
    )
    store.save_outcomes([RequestOutcome(a, (ka, fa))], actor=ACTOR)
    clock.advance(minutes=1)
    store.transition_messages(
        [Transition(m.msg_id, MessageState.SENT, "confirmed") for m in (ka, fa)], actor=ACTOR
    )
    clock.advance(minutes=59)
    _answer(store, build, ka.msg_id, AppRecStatus.OK, MessageState.ACKED)

    clock.now = T0 + timedelta(days=1)
    b = _request(
        build, request_body(PATIENT_B, samhandlingspunkt=2), kommunenummer="4003", samhandlingspunkt=2
    )
    kb = _message(build, SKIEN, SKIEN_KREFT, "4003")
    store.save_outcomes([RequestOutcome(b, (kb,))], actor=ACTOR)
    clock.advance(minutes=1)
    store.transition_messages([Transition(kb.msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    clock.advance(hours=2, minutes=59)
    e35 = (Problem("apprec.E35", "Pasienten finnes ikke i mottakersystemet"),)
    _answer(store, build, kb.msg_id, AppRecStatus.AVVIST, MessageState.REJECTED_BY_RECEIVER, e35)

    clock.now = T0 + timedelta(days=2)
    not_json = (Problem("request.not_json", "The body is not JSON."),)
    c = dataclasses.replace(
        build.request(RequestState.REJECTED, problems=not_json),
        body=b"not json",
        kommunenummer=None,
        samhandlingspunkt=None,
        consent=None,
    )
    d = _request(
        build,
        request_body(PATIENT_B, consent=False),
        state=RequestState.NO_CONSENT,
        kommunenummer="4003",
        consent=False,
    )
    store.save_outcomes([RequestOutcome(c), RequestOutcome(d)], actor=ACTOR)
    clock.advance(minutes=1)
    e = _request(
        build, request_body(PATIENT_B, samhandlingspunkt=2), kommunenummer="4003", samhandlingspunkt=2
    )
    kb2 = _message(build, SKIEN, SKIEN_KREFT, "4003", conversation_ref=kb.msg_id)
    store.save_outcomes([RequestOutcome(e, (kb2,))], actor=ACTOR)

    clock.now = T0 + timedelta(days=5)
    store.save_acknowledgements(
        apprecs=[],
        parked=[],
        transitions=[Transition(fa.msg_id, MessageState.OVERDUE, "no AppRec within 96 h")],
        health=[ReceiverHealth(FASTLEGE, 3, quiet=True), ReceiverHealth(SKIEN_KREFT)],
        actor=ACTOR,
    )
    return Scenario(a, b, c, d, e, ka.msg_id, fa.msg_id, kb.msg_id, kb2.msg_id)


def _answer(
    store: Store,
    build: Builder,
    msg_id: str,
    status: AppRecStatus,
    state: MessageState,
    errors: tuple[Problem, ...] = (),
) -> None:
    store.save_acknowledgements(
        apprecs=[build.apprec(msg_id, status=status, errors=errors)],
        parked=[],
        transitions=[Transition(msg_id, state, f"AppRec status {int(status)}")],
        health=[],
        actor=ACTOR,
    )


@pytest.fixture
def scenario(store: Store, build: Builder, clock: FakeClock) -> Scenario:
    """The fixed history, stored."""
    return fill_scenario(store, build, clock)


def _ids(store: Store, criteria: MessageCriteria, **paging: int) -> list[str]:
    listings, _ = store.message_page(criteria, limit=paging.get("limit", 50), offset=paging.get("offset", 0))
    return [m.msg_id for m in listings]


def test_a_page_lists_messages_newest_first_with_the_total(store: Store, scenario: Scenario) -> None:
    """Without filters every message is listed newest first, ties broken by msg_id, with the total."""
    s = scenario
    listings, total = store.message_page(MessageCriteria(), limit=50)
    assert total == 4
    assert [m.msg_id for m in listings] == [s.kb2, s.kb, *sorted([s.ka, s.fa], reverse=True)]


def test_pages_are_cut_in_sql_and_the_total_ignores_paging(store: Store, scenario: Scenario) -> None:
    """limit and offset cut the page; the total counts every match; limit 0 gives the total only."""
    everything = _ids(store, MessageCriteria())
    pages = [store.message_page(MessageCriteria(), limit=3, offset=o) for o in (0, 3)]
    assert [m.msg_id for page, _ in pages for m in page] == everything
    assert [total for _, total in pages] == [4, 4]
    assert store.message_page(MessageCriteria(), limit=0) == ([], 4)
    assert store.message_page(MessageCriteria(), limit=10, offset=10) == ([], 4)


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (MessageCriteria(state=MessageState.ACKED), ["ka"]),
        (MessageCriteria(state=MessageState.OVERDUE), ["fa"]),
        (MessageCriteria(kommunenummer="4003"), ["kb2", "kb"]),
        (MessageCriteria(receiver_her_id=PORSGRUNN), ["ka"]),
        (MessageCriteria(receiver_her_id=PORSGRUNN_KREFT), ["ka"]),
        (MessageCriteria(receiver_her_id=FASTLEGE), ["fa"]),
        (MessageCriteria(samhandlingspunkt=2), ["kb2", "kb"]),
        (MessageCriteria(since=T0 + timedelta(days=1)), ["kb2", "kb"]),
        (MessageCriteria(until=T0 + timedelta(days=1)), ["ka", "fa"]),
        (MessageCriteria(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2)), ["kb"]),
        (MessageCriteria(kommunenummer="4003", state=MessageState.QUEUED), ["kb2"]),
        (MessageCriteria(kommunenummer="4001", samhandlingspunkt=2), []),
    ],
)
def test_each_filter_narrows_the_list_and_the_total(
    store: Store, scenario: Scenario, criteria: MessageCriteria, expected: list[str]
) -> None:
    """A filter on state, kommune, receiver (service or virksomhet), samhandlingspunkt or period applies."""
    listings, total = store.message_page(criteria, limit=50)
    wanted = {getattr(scenario, name) for name in expected}
    assert {m.msg_id for m in listings} == wanted
    assert total == len(wanted)


def test_the_request_id_filter_finds_the_messages_of_one_request(store: Store, scenario: Scenario) -> None:
    """Filtering by the EPR's request_id lists exactly that request's messages."""
    found = _ids(store, MessageCriteria(request_id=scenario.a.request_id))
    assert sorted(found) == sorted([scenario.ka, scenario.fa])


def test_a_listing_carries_the_request_keys_and_the_last_apprec_status(
    store: Store, scenario: Scenario
) -> None:
    """Each listing has its request's request_id and samhandlingspunkt and the last AppRec's status."""
    by_id = {m.msg_id: m for m in store.message_listings([scenario.ka, scenario.fa, scenario.kb])}
    assert (
        by_id[scenario.ka].apprec_status,
        by_id[scenario.kb].apprec_status,
        by_id[scenario.fa].apprec_status,
    ) == (1, 2, None)
    kb = by_id[scenario.kb]
    assert (kb.request_id, kb.samhandlingspunkt, kb.kommunenummer, kb.state) == (
        scenario.b.request_id,
        2,
        "4003",
        MessageState.REJECTED_BY_RECEIVER,
    )
    assert (kb.receiver_her_id, kb.receiver_org_her_id, kb.receiver_kind) == (SKIEN_KREFT, SKIEN, "kommune")


def test_the_last_apprec_wins_when_a_message_has_several(
    store: Store, scenario: Scenario, build: Builder, clock: FakeClock
) -> None:
    """A later AppRec for the same message changes the listed status to its own."""
    clock.advance(minutes=1)
    store.save_acknowledgements(
        apprecs=[build.apprec(scenario.ka, status=AppRecStatus.OK_FEIL_I_DELMELDING)],
        parked=[],
        transitions=[],
        health=[],
        actor=ACTOR,
    )
    (listing,) = store.message_listings([scenario.ka])
    assert listing.apprec_status == 3


def test_related_messages_follow_the_request_and_conversation_refs(store: Store, scenario: Scenario) -> None:
    """Related are the request's other messages and the messages linked by ConversationRef, both ways."""
    s = scenario
    assert store.related_msg_ids(s.ka) == [s.fa]
    assert store.related_msg_ids(s.kb) == [s.kb2]
    assert store.related_msg_ids(s.kb2) == [s.kb]
    assert store.related_msg_ids("00000000-0000-4000-8000-000000000000") == []


def test_signed_xml_and_patient_sources_are_read_per_message(store: Store, scenario: Scenario) -> None:
    """The stored signed bytes and the request body behind each message come back as stored."""
    xml = store.signed_xml_of(scenario.ka)
    assert xml is not None and xml.startswith(b"<MsgHead>")
    assert store.signed_xml_of("unknown") is None
    sources = store.patient_sources([scenario.ka, scenario.kb, "unknown"])
    assert set(sources) == {scenario.ka, scenario.kb}
    assert json.loads(sources[scenario.kb].body)["patient"]["id"] == PATIENT_B
    assert PATIENT_B not in repr(sources[scenario.kb])


def test_outcomes_are_grouped_by_kommune_samhandlingspunkt_and_outcome(
    store: Store, scenario: Scenario
) -> None:
    """Messages count under their state, requests that built none under the request state."""
    found = store.outcome_counts(since=T0, until=T0 + timedelta(days=7))
    assert sorted(found, key=lambda c: (c.kommunenummer or "", c.outcome)) == [
        OutcomeCount(None, None, "rejected", 1),
        OutcomeCount("4001", 1, "acked", 1),
        OutcomeCount("4001", 1, "overdue", 1),
        OutcomeCount("4003", 1, "no_consent", 1),
        OutcomeCount("4003", 2, "queued", 1),
        OutcomeCount("4003", 2, "rejected_by_receiver", 1),
    ]


def test_report_queries_count_only_the_period(store: Store, scenario: Scenario) -> None:
    """A period counts the requests received and messages created in it, and only their AppRec delays."""
    everything = {"since": T0, "until": T0 + timedelta(days=7)}
    day_two = {"since": T0 + timedelta(days=1), "until": T0 + timedelta(days=2)}
    assert store.period_totals(**everything) == (5, 4)
    assert store.period_totals(**day_two) == (1, 1)
    assert store.consent_counts(**everything) == {True: 3, False: 1, None: 1}
    assert sorted(store.apprec_delays(**everything)) == [59 * 60.0, (2 * 60 + 59) * 60.0]
    assert store.apprec_delays(**day_two) == [(2 * 60 + 59) * 60.0]
    assert store.outcome_counts(**day_two) == [OutcomeCount("4003", 2, "rejected_by_receiver", 1)]


def test_a_report_period_must_be_aware_and_forward(store: Store) -> None:
    """A naive datetime or an until before since is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.outcome_counts(since=datetime(2024, 11, 1), until=T0)
    with pytest.raises(ValueError, match="before"):
        store.period_totals(since=T0, until=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="negative"):
        store.message_page(MessageCriteria(), limit=-1)


def test_dashboard_counts(store: Store, scenario: Scenario) -> None:
    """States are counted, quiet receivers listed, and the last hour's activity counted."""
    assert store.message_state_counts() == {"acked": 1, "overdue": 1, "rejected_by_receiver": 1, "queued": 1}
    assert store.quiet_receiver_health() == [(FASTLEGE, 3)]
    assert store.activity_since(T0 + timedelta(minutes=30)) == {"requests": 4, "messages": 2, "acked": 1}
    assert store.activity_since(T0 + timedelta(days=3)) == {"requests": 0, "messages": 0, "acked": 0}
