"""The kommune's pathway desk on both databases, fed with real signed hospital messages."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from edi_gateway.domain.assessment_text import render_assessment
from edi_gateway.domain.pathway import PathwayError, TransitionRefused
from edi_gateway.domain.request import parse_request
from edi_gateway.services.access import AccessDenied, Operator, Role, patient_ref_for
from edi_gateway.services.building import MessageBuilder
from edi_gateway.services.context import Gateway
from edi_gateway.services.pathway_models import shipped_model
from edi_gateway.services.pathways import (
    MoveUnknown,
    NoteRefused,
    NotKommune,
    PathwayDesk,
    PathwayNotFound,
    desk_for,
)
from edi_gateway.services.receivers import resolve_receivers
from edi_gateway.store import NewMessage
from edi_gateway.store.tables import audit_log, pathway_alerts, pathway_notes, pathways, received_messages
from tests.services.conftest import example

OSLO = ZoneInfo("Europe/Oslo")
PERSON = "07926217857"  # the example request's synthetic patient, living in Kviteseid (4028)
OTHER_PERSON = "18897219545"  # another synthetic patient (Porsgrunn, 4001)
NEIGHBOUR = "28836737557"  # another synthetic patient of Kviteseid (4028)
OLA = Operator("ola", Role.OPERATOR, "Ola Nordmann")
VIEWER = Operator("vera", Role.VIEWER, "Vera")
WORKER = "worker:test"


def noon(day: date) -> datetime:
    """Noon Norwegian time on ``day``."""
    return datetime.combine(day, time(12), OSLO)


def hospital_message(gateway: Gateway, person: str = PERSON, **changes: Any) -> NewMessage:
    """The signed MsgHead the hospital sends the patient's kommune for the example request."""
    data = example("kommune-only")
    data["patient"]["id"] = person
    data["diagnosis"].update(changes.pop("diagnosis", {}))
    data.update(changes)
    request = parse_request(
        json.dumps(data).encode(), content_type="application/json", max_bytes=10**6, test_mode=True
    )
    resolution = resolve_receivers(
        person_id=person,
        kommunenummer=None,
        send_to_fastlege=False,
        registers=gateway.registers,
        rules=gateway.rules,
    )
    receiver = resolution.receivers[0]
    builder = MessageBuilder(
        gateway.settings, gateway.registers, gateway.rules, gateway.signer, gateway.names
    )
    text = render_assessment(request, kommune_name=receiver.organisation.name)
    return builder.build(request, receiver, resolution.kommunenummer, text)


def receive(
    gateway: Gateway, message: NewMessage, *, at: datetime, person: str = PERSON, body: bytes | None = None
) -> int:
    """Store a received_messages row as the kommune's receiving side does for a verified message."""
    values = {
        "msg_id": message.msg_id,
        "sender_her_id": 8100001,
        "receiver_her_id": message.receiver_org_her_id,
        "addressed_her_id": message.receiver_her_id,
        "msg_type": message.msg_type,
        "received_at": at,
        "body": message.signed_xml if body is None else body,
        "patient_ref": patient_ref_for(gateway.store, person),
        "patient_masked": person[:6] + "*****",
        "apprec_id": str(uuid.uuid4()),
        "apprec_status": 1,
        "apprec_errors": [],
        "apprec_body": b"<AppRec/>",
        "pathway_state": "pending",
    }
    with _engine(gateway) as engine, engine.begin() as conn:
        return int(
            conn.execute(received_messages.insert().returning(received_messages.c.id), [values]).scalar_one()
        )


@contextmanager
def _engine(gateway: Gateway) -> Iterator[sa.Engine]:
    """An engine on the gateway's database, disposed of afterwards."""
    engine = sa.create_engine(gateway.settings.effective_database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def rows(gateway: Gateway, table: sa.Table) -> list[dict[str, Any]]:
    """Every row of ``table``, in primary-key order."""
    with _engine(gateway) as engine, engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()
        ]


def received_states(gateway: Gateway) -> list[str]:
    """The pathway_state of every received message, in id order."""
    return [r["pathway_state"] for r in rows(gateway, received_messages)]


def desk_of(gateway: Gateway, message: NewMessage, **kw: Any) -> PathwayDesk:
    """The desk of the kommune the message is addressed to."""
    return PathwayDesk(
        gateway.store,
        shipped_model("telemark"),
        gateway.registers,
        our_her_id=message.receiver_org_her_id,
        **kw,
    )


@pytest.fixture
def first(gateway: Gateway) -> NewMessage:
    """The hospital's first behovskartlegging (diagnosis 12.10.2026, assessed 02.11.2026), received."""
    message = hospital_message(gateway)
    receive(gateway, message, at=noon(date(2026, 11, 4)))
    return message


def opened(gateway: Gateway, first: NewMessage) -> tuple[PathwayDesk, int]:
    """Apply the first message and return the desk and the new pathway's id."""
    desk = desk_of(gateway, first)
    assert desk.apply_received(noon(date(2026, 11, 4)), actor=WORKER) == 1
    return desk, desk.worklist()[0].pathway_id


def test_a_received_behovskartlegging_opens_the_patients_pathway(gateway: Gateway, first: NewMessage) -> None:
    """The signed message opens a pathway: point 1 done, points 2 and 3 planned from the diagnosis date."""
    desk, pathway_id = opened(gateway, first)
    assert received_states(gateway) == ["applied"]
    assert [p.as_json() for p in desk.worklist()] == [
        {
            "pathway_id": pathway_id,
            "samhandlingspunkt": 1,
            "title": "Behovskartlegging på sykehuset etter kreftdiagnosen",
            "due_from": "2026-10-12",
            "due_to": None,
            "state": "done",
            "assigned_to": None,
            "patient": "079262*****",
            "msg_id": first.msg_id,
        },
        {
            **desk.worklist()[1].as_json(),
            "due_from": "2027-01-12",
            "due_to": "2027-02-12",
            "state": "planned",
        },
        {
            **desk.worklist()[2].as_json(),
            "due_from": "2027-10-12",
            "due_to": "2028-04-12",
            "state": "planned",
        },
    ]
    view = desk.show(pathway_id)
    assert (view.kommunenummer, view.course, view.diagnosis_date) == ("4028", 1, date(2026, 10, 12))
    assert [s.msg_id for s in view.sources] == [first.msg_id]
    assert PERSON not in json.dumps([p.as_json() for p in desk.worklist()])


def test_applying_again_changes_nothing(gateway: Gateway, first: NewMessage) -> None:
    """A second run finds nothing pending: no new version, no new history."""
    desk, pathway_id = opened(gateway, first)
    before = desk.show(pathway_id)
    assert desk.apply_received(noon(date(2026, 11, 5)), actor=WORKER) == 0
    after = desk.show(pathway_id)
    assert (after.version, after.history) == (before.version, before.history)


def test_two_workers_racing_apply_each_message_once(gateway: Gateway) -> None:
    """Desks applying the same pending messages at once: one pathway per patient, each message once."""
    messages = [hospital_message(gateway), hospital_message(gateway)]
    other = hospital_message(gateway, OTHER_PERSON)
    for message in messages:
        receive(gateway, message, at=noon(date(2026, 11, 4)))
    desks = [desk_of(gateway, messages[0]) for _ in range(3)]
    counts: list[int] = []
    threads = [
        threading.Thread(
            target=lambda d=d: counts.append(d.apply_received(noon(date(2026, 11, 4)), actor=WORKER))
        )
        for d in desks
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 2 and received_states(gateway) == ["applied", "applied"]
    points = desks[0].worklist()
    assert len({p.pathway_id for p in points}) == 1 and len(points) == 3
    history = desks[0].show(points[0].pathway_id).history
    assert sum(1 for h in history if h.kind == "diagnosis_date") == 1
    assert other.receiver_org_her_id != messages[0].receiver_org_her_id  # another kommune's patient


def test_a_relapse_restarts_the_pathway_from_the_new_diagnosis(gateway: Gateway, first: NewMessage) -> None:
    """A later message stating a relapse closes the open points and plans a new course from its date."""
    desk, pathway_id = opened(gateway, first)
    relapse = hospital_message(
        gateway,
        diagnosis={"date": "2027-03-01", "relapse": True},
        assessment={**example("kommune-only")["assessment"], "date": "2027-03-05"},
    )
    receive(gateway, relapse, at=noon(date(2027, 3, 8)))
    assert desk.apply_received(noon(date(2027, 3, 8)), actor=WORKER) == 1
    view = desk.show(pathway_id)
    assert (view.course, view.diagnosis_date) == (2, date(2027, 3, 1))
    assert [(p.samhandlingspunkt, p.state, p.msg_id) for p in view.points] == [
        (1, "done", relapse.msg_id),
        (2, "planned", relapse.msg_id),
        (3, "planned", relapse.msg_id),
    ]
    closed = [h for h in view.history if h.after == "closed"]
    assert [(h.course, h.samhandlingspunkt, h.before) for h in closed] == [
        (1, 2, "overdue"),
        (1, 3, "planned"),
    ]
    assert received_states(gateway) == ["applied", "applied"]


def test_a_diagnosis_date_that_needs_an_operator_is_a_conflict(gateway: Gateway, first: NewMessage) -> None:
    """A later date without relapse leaves the pathway as it was; an event and one alert say so."""
    desk, pathway_id = opened(gateway, first)
    before = desk.show(pathway_id)
    conflicting = hospital_message(gateway, diagnosis={"date": "2026-10-20"})
    receive(gateway, conflicting, at=noon(date(2026, 11, 6)))
    published: list[dict[str, Any]] = []
    assert desk.apply_received(noon(date(2026, 11, 6)), actor=WORKER, on_alert=published.append) == 1
    after = desk.show(pathway_id)
    assert received_states(gateway) == ["applied", "conflict"]
    assert (after.points, after.diagnosis_date, after.course) == (before.points, before.diagnosis_date, 1)
    conflict = [h for h in after.history if h.kind == "conflict"]
    assert len(conflict) == 1 and conflicting.msg_id in conflict[0].reason
    assert [(a["kind"], a["pathway_id"], a["samhandlingspunkt"], a["msg_id"]) for a in published] == [
        ("pathway.conflict", pathway_id, 1, conflicting.msg_id)
    ]
    assert PERSON not in json.dumps(published) and "2026-10-20" not in json.dumps(published)
    assert [(r["kind"], r["number"]) for r in rows(gateway, pathway_alerts)] == [("conflict", 1)]


@pytest.mark.parametrize("case", ["other-text", "unreadable", "other-virksomhet", "no-notat-facts"])
def test_what_the_worklist_cannot_read_is_ignored(gateway: Gateway, case: str) -> None:
    """Not a behovskartlegging, unreadable bytes, another addressee or unreadable facts: ignored, no pathway."""
    message = hospital_message(gateway)
    body = {
        "other-text": message.signed_xml.replace(b"behovskartlegging (samhandlingspunkt", b"notat (punkt"),
        "unreadable": b"<MsgHead",
        "other-virksomhet": None,
        "no-notat-facts": message.signed_xml.replace(b"Diagnosedato:", b"Dato:"),
    }[case]
    receive(gateway, message, at=noon(date(2026, 11, 4)), body=body)
    our_her_id = 8100005 if case == "other-virksomhet" else message.receiver_org_her_id
    desk = PathwayDesk(gateway.store, shipped_model("telemark"), gateway.registers, our_her_id=our_her_id)
    assert desk.apply_received(noon(date(2026, 11, 4)), actor=WORKER) == 1
    assert received_states(gateway) == ["ignored"]
    assert desk.worklist() == []


def test_a_message_for_a_point_the_model_lacks_is_ignored(gateway: Gateway) -> None:
    """A behovskartlegging naming a samhandlingspunkt the model lacks is ignored; no pathway opens."""
    message = hospital_message(gateway)
    body = message.signed_xml.replace(b"(samhandlingspunkt 1)", b"(samhandlingspunkt 9)")
    receive(gateway, message, at=noon(date(2026, 11, 4)), body=body)
    desk = desk_of(gateway, message)
    assert desk.apply_received(noon(date(2026, 11, 4)), actor=WORKER) == 1
    assert received_states(gateway) == ["ignored"]
    assert desk.worklist() == []


def test_a_message_the_desk_cannot_apply_stays_pending_and_holds_up_no_other(
    gateway: Gateway, first: NewMessage
) -> None:
    """A defect on one patient's pathway (a damaged document) leaves that message pending; the next applies."""
    desk, pathway_id = opened(gateway, first)
    with _engine(gateway) as engine, engine.begin() as conn:
        conn.execute(pathways.update().where(pathways.c.id == pathway_id).values(document={"version": 99}))
    receive(gateway, hospital_message(gateway), at=noon(date(2026, 11, 5)))
    receive(gateway, hospital_message(gateway, NEIGHBOUR), at=noon(date(2026, 11, 6)), person=NEIGHBOUR)
    assert desk.apply_received(noon(date(2026, 11, 6)), actor=WORKER) == 1
    assert received_states(gateway) == ["applied", "pending", "applied"]
    soon = desk.sweep(noon(date(2027, 1, 2)), due_soon_days=14)
    assert [a["samhandlingspunkt"] for a in soon] == [2]  # the neighbour's; the damaged one is skipped


def test_the_sweep_moves_points_and_raises_each_alert_once(gateway: Gateway, first: NewMessage) -> None:
    """Due soon once, overdue once, with ids and the window only; the points move by the calendar."""
    desk, pathway_id = opened(gateway, first)
    desk.assign(
        pathway_id, "role:kreftkoordinator", actor=OLA, reason="fordeling", now=noon(date(2026, 11, 5))
    )
    soon = desk.sweep(noon(date(2027, 1, 2)), due_soon_days=14)
    assert [(a["kind"], a["pathway_id"], a["samhandlingspunkt"]) for a in soon] == [
        ("pathway.due_soon", pathway_id, 2)
    ]
    assert soon[0]["due_from"] == "2027-01-12" and soon[0]["due_to"] == "2027-02-12"
    assert soon[0]["assigned_to"] == "role:kreftkoordinator" and soon[0]["type"] == "alert"
    assert desk.sweep(noon(date(2027, 1, 3)), due_soon_days=14) == []
    late = desk.sweep(noon(date(2027, 2, 20)), due_soon_days=14)
    assert [(a["kind"], a["samhandlingspunkt"]) for a in late] == [("pathway.overdue", 2)]
    assert desk.sweep(noon(date(2027, 2, 21)), due_soon_days=14) == []
    assert [p.state for p in desk.show(pathway_id).points] == ["done", "overdue", "planned"]
    assert PERSON not in json.dumps(soon + late)


def test_summary_counts_overdue_due_and_due_soon(gateway: Gateway, first: NewMessage) -> None:
    """The dashboard's counts follow the calendar of the day asked."""
    desk, _ = opened(gateway, first)
    assert (
        desk.summary(noon(date(2027, 1, 2))).due_soon,
        desk.summary(noon(date(2026, 12, 1))).due_soon,
    ) == (1, 0)
    assert desk.summary(noon(date(2027, 1, 20))).due == 1
    summary = desk.summary(noon(date(2027, 2, 20)))
    assert (summary.overdue, summary.due, summary.due_soon) == (1, 0, 0)


def test_done_with_a_note_asks_for_the_fastlege_note_in_the_same_change(
    gateway: Gateway, first: NewMessage
) -> None:
    """done with a note: the point is done, a pending note row names it, the audit log has the move."""
    desk, pathway_id = opened(gateway, first)
    view = desk.mark(
        pathway_id,
        2,
        "done",
        actor=OLA,
        reason="hjemmebesøk",
        now=noon(date(2027, 1, 20)),
        on=date(2027, 1, 18),
        note="Samtale gjennomført.\nPasienten har det bra.",
    )
    assert [p.state for p in view.points] == ["done", "done", "planned"]
    notes = rows(gateway, pathway_notes)
    assert [(n["pathway_id"], n["course"], n["number"], n["state"], n["asked_by"]) for n in notes] == [
        (pathway_id, 1, 2, "pending", "operator:ola")
    ]
    assert notes[0]["text"] == "Samtale gjennomført.\nPasienten har det bra."
    assert [n.text for n in view.notes] == ["Samtale gjennomført.\nPasienten har det bra."]
    entries = [r for r in rows(gateway, audit_log) if r["action"] == "pathway_mark"]
    assert [(e["username"], e["reason"], e["patient_ref"]) for e in entries] == [
        ("ola", "hjemmebesøk", patient_ref_for(gateway.store, PERSON))
    ]
    assert entries[0]["details"]["note"] is True and entries[0]["details"]["on"] == "2027-01-18"
    done = [h for h in view.history if h.samhandlingspunkt == 2 and h.after == "done"]
    assert [(h.actor, h.reason) for h in done] == [("operator:ola", "hjemmebesøk")]


def test_moves_decline_reopen_and_their_refusals(gateway: Gateway, first: NewMessage) -> None:
    """Decline then reopen follows the rules; refused moves, notes and viewers raise with plain messages."""
    desk, pathway_id = opened(gateway, first)
    now = noon(date(2027, 1, 20))
    assert desk.mark(pathway_id, 2, "declined", actor=OLA, reason="vil ikke", now=now).moves[2] == (
        "done",
        "reopen",
    )
    assert desk.mark(pathway_id, 2, "reopen", actor=OLA, reason="ombestemt", now=now).points[1].state == "due"
    with pytest.raises(NoteRefused, match="done only"):
        desk.mark(pathway_id, 2, "declined", actor=OLA, reason="r", now=now, note="hei")
    with pytest.raises(MoveUnknown, match="choose: done, declined, not_reachable, reopen"):
        desk.mark(pathway_id, 2, "closed", actor=OLA, reason="r", now=now)
    with pytest.raises(TransitionRefused, match="done is final"):
        desk.mark(pathway_id, 1, "declined", actor=OLA, reason="r", now=now)
    with pytest.raises(TransitionRefused, match="reason is required"):
        desk.mark(pathway_id, 2, "done", actor=OLA, reason=" ", now=now)
    with pytest.raises(PathwayError, match="no samhandlingspunkt 7"):
        desk.mark(pathway_id, 7, "done", actor=OLA, reason="r", now=now)
    with pytest.raises(PathwayNotFound, match="no pathway with id 999"):
        desk.mark(999, 2, "done", actor=OLA, reason="r", now=now)
    with pytest.raises(AccessDenied):
        desk.mark(pathway_id, 2, "done", actor=VIEWER, reason="r", now=now)
    assert rows(gateway, pathway_notes) == []


def test_assignment_filters_the_worklist(gateway: Gateway, first: NewMessage) -> None:
    """Assigning to a role shows on every point and filters the list; a malformed assignee is refused."""
    desk, pathway_id = opened(gateway, first)
    desk.assign(pathway_id, "operator:ola", actor=OLA, reason="ferie", now=noon(date(2026, 11, 5)))
    assert {p.assigned_to for p in desk.worklist()} == {"operator:ola"}
    assert desk.worklist(assigned_to="role:kreftkoordinator") == []
    assert [p.samhandlingspunkt for p in desk.worklist(state="planned")] == [2, 3]
    with pytest.raises(PathwayError):
        desk.assign(pathway_id, "kari", actor=OLA, reason="r", now=noon(date(2026, 11, 5)))
    with pytest.raises(PathwayError, match="unknown point state"):
        desk.worklist(state="late")


def test_only_a_kommune_gateway_has_a_desk(gateway: Gateway) -> None:
    """desk_for refuses a hospital gateway with a message naming the setting."""
    with pytest.raises(NotKommune, match="EDI_GATEWAY_ROLE=kommune"):
        desk_for(gateway)
