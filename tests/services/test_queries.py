"""Operator queries as the CLI, web UI and REST API use them: lists, details, reports, registry look-up.

Most tests run on a stored history (``tests.store.test_queries.fill_scenario``) on SQLite and
PostgreSQL; one runs a real gateway on RabbitMQ and answers its message with a signed AppRec.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from edi_gateway.domain.routing import RoutingRules
from edi_gateway.domain.states import MessageState
from edi_gateway.registers.base import Registers
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import load_routing_rules
from edi_gateway.services.queries import (
    MAX_PAGE,
    UNKNOWN_PATIENT,
    MessageFilter,
    MessageRow,
    ReportRow,
    counts_by_state,
    list_messages,
    message_detail,
    overdue_messages,
    patient_id_of,
    quiet_receivers,
    registry_lookup,
    report,
    signed_xml,
    throughput_last_hour,
    to_jsonable,
)
from edi_gateway.store import RequestOutcome, Store
from edi_gateway.store.operators import NewReplay
from edi_gateway.xml.msghead import build_msghead, to_bytes
from tests.services.conftest import RunningGateway, example
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox, wait_state
from tests.store.conftest import T0, Builder, FakeClock
from tests.store.test_queries import (
    FASTLEGE,
    PATIENT_A,
    PATIENT_B,
    PORSGRUNN_KREFT,
    SKIEN,
    Scenario,
    fill_scenario,
    request_body,
)
from tests.xml.test_msghead import PATIENT, kommune_receiver, make_message

WEEK = {"since": T0, "until": T0 + timedelta(days=7)}


@pytest.fixture
def scenario(store: Store, build: Builder, clock: FakeClock) -> Scenario:
    """The fixed history of the store tests, stored."""
    return fill_scenario(store, build, clock)


@pytest.fixture(scope="module")
def registers() -> Registers:
    """The embedded fixture registers."""
    return load_fixture_registers(resource_dir("fixtures") / "registers")


def _no_full_person_number(value: object) -> None:
    text = json.dumps(to_jsonable(value), ensure_ascii=False)
    for person in (PATIENT_A, PATIENT_B, PATIENT.id):
        assert person not in text


# -- lists -------------------------------------------------------------------------------------------


def test_a_list_shows_each_patient_masked_and_never_in_full(store: Store, scenario: Scenario) -> None:
    """Rows carry the birth-date digits of the request's patient only; the JSON form has no full number."""
    page = list_messages(store, MessageFilter())
    masked = {r.msg_id: r.patient_masked for r in page.rows}
    assert masked[scenario.ka] == masked[scenario.fa] == PATIENT_A[:6] + "*****"
    assert masked[scenario.kb] == PATIENT_B[:6] + "*****"
    _no_full_person_number(page)


def test_a_list_page_says_its_paging_and_the_total(store: Store, scenario: Scenario) -> None:
    """The page echoes limit and offset, holds at most limit rows, and totals every match."""
    page = list_messages(store, MessageFilter(kommunenummer="4003", limit=1, offset=1))
    assert (page.total, page.limit, page.offset) == (2, 1, 1)
    assert [r.msg_id for r in page.rows] == [scenario.kb]
    row = page.rows[0]
    assert (row.state, row.apprec_status, row.samhandlingspunkt, row.request_id) == (
        "rejected_by_receiver",
        2,
        2,
        scenario.b.request_id,
    )


def test_list_filters_reach_the_store(store: Store, scenario: Scenario) -> None:
    """State, receiver, samhandlingspunkt, period and request_id filters all narrow the list."""
    assert [r.msg_id for r in list_messages(store, MessageFilter(state="overdue")).rows] == [scenario.fa]
    assert [r.msg_id for r in list_messages(store, MessageFilter(receiver_her_id=PORSGRUNN_KREFT)).rows] == [
        scenario.ka
    ]
    later = list_messages(store, MessageFilter(samhandlingspunkt=2, since=T0 + timedelta(days=2)))
    assert [r.msg_id for r in later.rows] == [scenario.kb2]
    by_request = list_messages(store, MessageFilter(request_id=scenario.e.request_id))
    assert [r.msg_id for r in by_request.rows] == [scenario.kb2]


def test_a_bad_filter_is_refused_and_a_huge_page_is_cut(store: Store, scenario: Scenario) -> None:
    """An unknown state or a limit below 1 raises ValueError; a limit above MAX_PAGE is cut to it."""
    with pytest.raises(ValueError):
        list_messages(store, MessageFilter(state="delivered"))
    with pytest.raises(ValueError):
        list_messages(store, MessageFilter(limit=0))
    assert list_messages(store, MessageFilter(limit=MAX_PAGE * 10)).limit == MAX_PAGE


def test_an_unreadable_request_body_shows_a_fully_masked_patient(store: Store, build: Builder) -> None:
    """A message whose request body names no patient is listed with every digit hidden."""
    outcome = build.routed()  # its body is synthetic filler without a patient
    store.save_outcomes([outcome], actor="worker:test")
    (row,) = list_messages(store, MessageFilter()).rows
    assert row.patient_masked == UNKNOWN_PATIENT
    assert patient_id_of(store, row.msg_id) is None


def test_the_patient_of_an_epr_built_msghead_is_read_from_the_xml(store: Store, build: Builder) -> None:
    """For a request the EPR sent as a MsgHead, the patient comes from its XML."""
    xml = to_bytes(build_msghead(make_message(kommune_receiver())))
    request = dataclasses.replace(build.request(), content_type="application/xml", body=xml)
    store.save_outcomes([RequestOutcome(request, (build.message(),))], actor="worker:test")
    (row,) = list_messages(store, MessageFilter()).rows
    assert row.patient_masked == PATIENT.id[:6] + "*****"
    assert patient_id_of(store, row.msg_id) == PATIENT.id
    _no_full_person_number(row)


def test_the_patient_of_an_edited_replay_comes_from_the_edited_request(
    store: Store, build: Builder, scenario: Scenario
) -> None:
    """A message an operator made from an edited request names the edited request's patient."""
    new = dataclasses.replace(build.message(her_id=8100011), conversation_ref=scenario.kb)
    edited = request_body(PATIENT_A)
    store.add_replay_message(
        NewReplay(
            scenario.kb, new, username="anne", kind="edit", reason="wrong patient", request_body=edited
        ),
        actor="operator:anne",
    )
    assert patient_id_of(store, new.msg_id) == PATIENT_A
    assert patient_id_of(store, scenario.kb) == PATIENT_B
    (row,) = list_messages(store, MessageFilter(request_id=scenario.b.request_id, state="queued")).rows
    assert row.patient_masked == PATIENT_A[:6] + "*****"


# -- details -----------------------------------------------------------------------------------------


def test_a_detail_tells_the_whole_story_of_a_rejected_message(store: Store, scenario: Scenario) -> None:
    """The detail has the AppRec with its 8221 code and text, the history in order, and the replay."""
    detail = message_detail(store, scenario.kb)
    assert detail is not None
    assert (detail.row.msg_id, detail.row.state, detail.request_state) == (
        scenario.kb,
        "rejected_by_receiver",
        "routed",
    )
    (apprec,) = detail.apprecs
    assert (apprec.status, apprec.status_text, apprec.signature) == (2, "Avvist", "verified")
    assert apprec.errors == (("E35", "Pasienten finnes ikke i mottakersystemet"),)
    steps = [(e.kind, e.from_state, e.to_state) for e in detail.timeline]
    assert steps == [
        ("request", None, "received"),
        ("request", "received", "routed"),
        ("message", None, "queued"),
        ("message", "queued", "sent"),
        ("apprec", None, None),
        ("message", "sent", "rejected_by_receiver"),
    ]
    assert [e.at for e in detail.timeline] == sorted(e.at for e in detail.timeline)
    assert "E35" in detail.timeline[4].reason
    assert [r.msg_id for r in detail.related] == [scenario.kb2]
    _no_full_person_number(detail)


def test_a_detail_lists_the_other_messages_of_the_request_and_the_problems(
    store: Store, scenario: Scenario
) -> None:
    """The fastlege message's detail relates the kommune message; only its own events are in its history."""
    detail = message_detail(store, scenario.fa)
    assert detail is not None
    assert [r.msg_id for r in detail.related] == [scenario.ka]
    assert {e.msg_id for e in detail.timeline} == {None, scenario.fa}
    assert (detail.attempts, detail.resends, detail.apprecs) == (0, 0, ())
    assert detail.sent_at == T0 + timedelta(minutes=1)


def test_an_unknown_message_has_no_detail_xml_or_patient(store: Store, scenario: Scenario) -> None:
    """Unknown msg_ids give None everywhere."""
    unknown = "00000000-0000-4000-8000-000000000000"
    assert message_detail(store, unknown) is None
    assert signed_xml(store, unknown) is None
    assert patient_id_of(store, unknown) is None


def test_signed_xml_and_the_full_patient_id_are_there_for_audited_callers(
    store: Store, scenario: Scenario
) -> None:
    """The signed bytes come back as stored; patient_id_of gives the full person number."""
    xml = signed_xml(store, scenario.ka)
    assert xml is not None and xml.startswith(b"<MsgHead>")
    assert patient_id_of(store, scenario.ka) == PATIENT_A


# -- reports and dashboard ---------------------------------------------------------------------------


def test_a_report_counts_outcomes_per_kommune_with_consent_and_median(
    store: Store, scenario: Scenario, registers: Registers
) -> None:
    """Rows name the kommune, request-level outcomes count too, and the median is of the AppRec delays."""
    found = report(store, registers, **WEEK)
    assert found.rows == (
        ReportRow("4001", "Porsgrunn kommune", 1, "acked", 1),
        ReportRow("4001", "Porsgrunn kommune", 1, "overdue", 1),
        ReportRow("4003", "Skien kommune", 1, "no_consent", 1),
        ReportRow("4003", "Skien kommune", 2, "queued", 1),
        ReportRow("4003", "Skien kommune", 2, "rejected_by_receiver", 1),
        ReportRow(None, None, None, "rejected", 1),
    )
    assert (found.consent_yes, found.consent_no, found.requests, found.messages) == (3, 1, 5, 4)
    assert found.median_seconds_to_apprec == (59 + 179) * 60 / 2


def test_an_empty_period_reports_nothing(store: Store, scenario: Scenario, registers: Registers) -> None:
    """A period with no traffic has no rows, zero counts and no median."""
    since = T0 - timedelta(days=30)
    found = report(store, registers, since=since, until=T0)
    assert (found.rows, found.requests, found.messages, found.median_seconds_to_apprec) == ((), 0, 0, None)


def test_dashboard_functions(store: Store, scenario: Scenario) -> None:
    """Counts cover every state, overdue messages are rows, quiet receivers and throughput are counted."""
    counts = counts_by_state(store)
    assert set(counts) == {s.value for s in MessageState}
    assert (counts["acked"], counts["sent"], counts["failed"]) == (1, 0, 0)
    overdue = overdue_messages(store)
    assert [type(r) for r in overdue] == [MessageRow]
    assert [r.msg_id for r in overdue] == [scenario.fa]
    assert quiet_receivers(store) == [(FASTLEGE, 3)]
    now = T0 + timedelta(days=2, minutes=30)
    assert throughput_last_hour(store, now) == {"requests": 3, "messages": 1, "acked": 0}


# -- registry look-up --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> RoutingRules:
    """The shipped routing rules."""
    return load_routing_rules(resource_dir("routing_rules"))


def test_a_person_lookup_gives_kommune_chosen_service_and_fastlege(
    registers: Registers, rules: RoutingRules
) -> None:
    """A person number resolves as routing would: bosted kommune, its chosen service, the fastlege."""
    answer = registry_lookup(registers, rules, PATIENT_A)
    assert answer["query_kind"] == "person" and answer["found"] is True
    assert answer["patient_masked"] == PATIENT_A[:6] + "*****"
    assert answer["bosted_kommunenummer"] == "4001"
    assert answer["kommune"]["name"] == "Porsgrunn kommune"
    assert answer["kommune"]["chosen_service"] == {
        "her_id": 8100007,
        "name": "Tjenestekontoret",
        "code": "KD0501",
    }
    assert (
        answer["fastlege"]["her_id"] == 8100098 and answer["fastlege"]["legekontor"]["kind"] == "legekontor"
    )
    assert PATIENT_A not in json.dumps(answer)


def test_a_kommune_lookup_shows_the_chosen_service_and_why(registers: Registers, rules: RoutingRules) -> None:
    """Tinn (4026) follows the default rule: its tjenestekontor is chosen, and the reason says so."""
    answer = registry_lookup(registers, rules, "4026")
    assert (answer["query_kind"], answer["found"], answer["name"]) == ("kommune", True, "Tinn kommune")
    assert (answer["service_preference"], answer["routing_rule"]) == (["KD0501", "KX06", "KP02"], "default")
    assert answer["chosen_service"]["code"] == "KD0501"
    assert (
        answer["chosen_reason"]
        == "tjenestekontor (KD0501) registered: the first preference of the routing rules"
    )


def test_a_kommune_lookup_without_tjenestekontor_shows_the_fallback(
    registers: Registers, rules: RoutingRules
) -> None:
    """Seljord (4022) has no tjenestekontor: the kreftkoordinator is chosen and the reason names the gap."""
    answer = registry_lookup(registers, rules, "4022")
    assert answer["chosen_service"]["code"] == "KX06"
    assert answer["chosen_reason"].startswith("no tjenestekontor (KD0501) registered")


def test_her_id_lookups_name_the_party_and_its_virksomhet(registers: Registers, rules: RoutingRules) -> None:
    """A HER-id resolves to a virksomhet, a service under a kommune, or a fastlege under a legekontor."""
    kommune = registry_lookup(registers, rules, str(SKIEN))
    assert (kommune["role"], kommune["name"], kommune["virksomhet"]["chosen_service"]["her_id"]) == (
        "virksomhet",
        "Skien kommune",
        8100012,
    )
    service = registry_lookup(registers, rules, "8100006")
    assert (service["role"], service["code"], service["virksomhet"]["her_id"]) == ("service", "KX06", 8100005)
    person = registry_lookup(registers, rules, " 8100083 ")
    assert (person["role"], person["name"], person["virksomhet"]["her_id"]) == (
        "person",
        "Tone Hansen",
        8100082,
    )


def test_unknown_and_malformed_lookups(registers: Registers, rules: RoutingRules) -> None:
    """Well-formed unknown ids answer found=False; anything else raises ValueError."""
    assert registry_lookup(registers, rules, "9999999")["found"] is False
    assert registry_lookup(registers, rules, "0301") == {
        "query_kind": "kommune",
        "found": False,
        "kommunenummer": "0301",
    }
    unknown_person = registry_lookup(registers, rules, "01010150000")
    assert (unknown_person["found"], unknown_person["kommune"], unknown_person["fastlege"]) == (
        False,
        None,
        None,
    )
    for bad in ("abc", "", "01234", "1234567890"):
        with pytest.raises(ValueError):
            registry_lookup(registers, rules, bad)


# -- a real gateway ----------------------------------------------------------------------------------


@pytest.mark.rabbitmq
def test_a_real_run_is_found_detailed_and_reported(running: RunningGateway, registers: Registers) -> None:
    """After a real request and a signed AppRec, the queries find, detail and report the messages."""
    store = running.gateway.store
    request = example("kommune-and-fastlege")
    started = datetime.now(UTC) - timedelta(seconds=1)
    running.send(request)
    stored = running.wait_request(request["request_id"])
    kommune = next(m for m in store.messages_for_request(stored.ref) if m.receiver_kind == "kommune")
    to_inbox(running, signed_by(running, kommune.receiver_org_her_id, apprec_for(kommune)))
    wait_state(running, kommune.msg_id, MessageState.ACKED)

    page = list_messages(store, MessageFilter(request_id=request["request_id"]))
    assert {(r.receiver_kind, r.state, r.apprec_status) for r in page.rows} == {
        ("kommune", "acked", 1),
        ("fastlege", "sent", None),
    }
    patient = request["patient"]["id"]
    assert {r.patient_masked for r in page.rows} == {patient[:6] + "*****"}
    assert patient not in json.dumps(to_jsonable(page))

    detail = message_detail(store, kommune.msg_id)
    assert detail is not None
    assert [k for k in ("request", "message", "apprec") if k in {e.kind for e in detail.timeline}] == [
        "request",
        "message",
        "apprec",
    ]
    assert detail.apprecs[0].signature == "verified" and detail.row.kommunenummer == "4003"
    assert signed_xml(store, kommune.msg_id) == kommune.signed_xml
    assert patient_id_of(store, kommune.msg_id) == patient

    found = report(store, registers, since=started, until=datetime.now(UTC) + timedelta(seconds=1))
    assert {(r.kommune_name, r.samhandlingspunkt, r.outcome, r.count) for r in found.rows} == {
        ("Skien kommune", 1, "acked", 1),
        ("Skien kommune", 1, "sent", 1),
    }
    assert found.median_seconds_to_apprec is not None and found.median_seconds_to_apprec >= 0
