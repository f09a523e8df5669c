"""The kommune's note to the fastlege on the real RabbitMQ and both databases: sent once, signed, tracked."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
import sqlalchemy as sa
from lxml import etree

from edi_gateway.domain.apprec import AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.identifiers import mask_person_id
from edi_gateway.domain.model import (
    Contact,
    Notat,
    Organisation,
    OutboundMessage,
    Patient,
    Receiver,
    ReceiverKind,
    Sender,
    Service,
)
from edi_gateway.domain.note_text import NOTE_CONTENT_TYPE, NOTE_TEMA
from edi_gateway.domain.pathway.aggregate import Pathway, mark, open_pathway
from edi_gateway.domain.pathway.document import point_rows, to_document
from edi_gateway.domain.pathway.months import local_day
from edi_gateway.domain.pathway.points import PointState
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import StoreUnavailable
from edi_gateway.messaging.base import AppRecAnswer, Deferred, Envelope, SendResult
from edi_gateway.services import queries
from edi_gateway.services.access import Role, create_operator
from edi_gateway.services.acknowledgements import AckDeps, AcknowledgementService
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.fastlege_note import NOTE_FAILED_ALERT, NoteSender, note_request_id
from edi_gateway.services.overdue import OverdueSweeper
from edi_gateway.services.pathway_models import shipped_model
from edi_gateway.services.replay import ReplayKind, ReplayRefused, ReplayService
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.store.notes import NoteState
from edi_gateway.store.records import MessageRecord
from edi_gateway.store.tables import pathway_notes, pathway_points, pathways, received_messages
from edi_gateway.transport.consumer import Delivery, Disposition, drain
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import AppRecSpec, build_apprec
from edi_gateway.xml.msghead import build_msghead, parse_msghead_summary, to_bytes
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.schemas import validate_msghead
from edi_gateway.xml.signing import Signer, strip_signature, verify_signed
from tests.services.conftest import RunningGateway, cleanup_gateway, make_settings, stop_gateway

pytestmark = pytest.mark.rabbitmq

HOSPITAL, HOSPITAL_UNIT = 8100001, 8100002
SKIEN, TJENESTEKONTORET = 8100010, 8100012
PATIENT = ("23915700969", "Knut", "Hansen")  # fastlege 8100089 (Kari Haugen) at Skien legesenter 2
LEGEKONTOR, FASTLEGE = 8100087, 8100089
NO_FASTLEGE = ("08818028386", "Liv", "Nordmann")  # not in the Fastlegeregister
NURSE_TEXT = "Hjemmebesøk gjennomført. Distresstermometer 4/10.\nØnsker kontakt om smertelindring."
STALE_S = 60.0
NS = {"mh": ns.MSGHEAD, "dia": ns.DIALOG_1_1}


@pytest.fixture
def kommune(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """Skien kommune's gateway (no worker thread) on its own queues and the parametrised database."""
    settings = make_settings(
        tmp_path,
        pki_template,
        amqp_url=amqp_url,
        database_url=database_url,
        queue_prefix=queue_prefix,
        our_her_id=SKIEN,
        role="kommune",
    )
    gateway = open_gateway(settings, migrate=True)
    declare_gateway_topology(gateway)
    events_queue = f"{queue_prefix}events.capture"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(events_queue, durable=True)
    channel.queue_bind(events_queue, gateway.names.events_exchange, routing_key="#")
    connection.close()
    holder = RunningGateway(gateway, settings, events_queue)
    try:
        yield holder
    finally:
        cleanup_gateway(holder)
        stop_gateway(holder)


@pytest.fixture
def publisher(kommune: RunningGateway) -> Iterator[ConfirmingPublisher]:
    """A confirming publisher of the test's own, as a worker has."""
    with ConfirmingPublisher(kommune.settings.amqp_url, name="test notes") as p:
        yield p


def sender(
    kommune: RunningGateway, publisher: ConfirmingPublisher, actor: str = "worker:a", **kw: Any
) -> NoteSender:
    """A note sender as the kommune worker runs it."""
    return NoteSender(
        kommune.gateway, publisher, kw.pop("transport", None), actor, interval_s=0.05, stale_after_s=STALE_S
    )


# -- the rows a kommune nurse's "done, with a note" leaves behind -----------------------------------


@dataclass(frozen=True)
class Seeded:
    """A pathway opened from a signed hospital message, point 2 done, with pending notes."""

    pathway_id: int
    note_ids: list[int]
    source_msg_id: str
    carried_out_on: Any


def _hospital_message(gw: Gateway, patient: tuple[str, str, str], now: datetime) -> tuple[str, bytes]:
    """A behovskartlegging from the hospital to Skien's tjenestekontor, signed with the hospital's key."""
    rules = gw.rules.message
    message = OutboundMessage(
        msg_id=str(uuid.uuid4()),
        gen_date=now,
        msg_type=rules.type.to_coded(),
        sender=Sender(
            Organisation(HOSPITAL, "Sykehuset Telemark HF"), Organisation(HOSPITAL_UNIT, "Kreftpoliklinikken")
        ),
        receiver=Receiver(
            ReceiverKind.KOMMUNE,
            Organisation(SKIEN, "Skien kommune"),
            f"{SKIEN}_async",
            service=Service(TJENESTEKONTORET, "Tjenestekontoret", "KD0501"),
        ),
        patient=Patient(patient[0], "FNR", patient[1], patient[2]),
        notat=Notat(
            tema_kodet=rules.tema_kodet.to_coded(),
            tema=gw.rules.tema(1),
            text="Behovskartlegging på sykehuset.",
            contact=Contact("Sara Sykepleier", "Kreftsykepleier", "+47 35 00 35 00"),
            contact_role=rules.contact_role.to_coded(),
        ),
    )
    pki = gw.settings.pki_dir
    signer = Signer.from_files(pki / f"{HOSPITAL}.key.pem", pki / f"{HOSPITAL}.cert.pem")
    return message.msg_id, signer.sign(build_msghead(message))


def seed(
    gw: Gateway, patient: tuple[str, str, str] = PATIENT, *, notes: int = 1, now: datetime | None = None
) -> Seeded:
    """Insert the received message, its pathway (point 2 done two days ago) and ``notes`` pending notes."""
    now = now or datetime.now(UTC)
    msg_id, body = _hospital_message(gw, patient, now)
    done_on = local_day(now) - timedelta(days=2)
    pathway = open_pathway(
        shipped_model(),
        patient_ref=f"ref-{uuid.uuid4().hex}",
        diagnosis_date=done_on - timedelta(days=95),
        at=now,
        actor="test",
    )
    pathway = mark(pathway, 2, PointState.DONE, at=now, actor="operator:kari", reason="samtale", on=done_on)
    engine = sa.create_engine(gw.settings.effective_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                received_messages.insert().values(_received_row(msg_id, body, pathway.patient_ref, now))
            )
            inserted = conn.execute(pathways.insert().values(_pathway_row(msg_id, pathway, now)))
            pathway_id = int(inserted.inserted_primary_key[0])
            points = [
                {**dataclasses.asdict(r), "pathway_id": pathway_id, "changed_at": now}
                for r in point_rows(pathway)
            ]
            conn.execute(pathway_points.insert(), points)
            note = {"pathway_id": pathway_id, "course": 1, "number": 2, "text": NURSE_TEXT, "asked_at": now}
            note |= {"asked_by": "operator:kari", "state": "pending"}
            note_ids = [
                int(conn.execute(pathway_notes.insert().values(note)).inserted_primary_key[0])
                for _ in range(notes)
            ]
    finally:
        engine.dispose()
    return Seeded(pathway_id, note_ids, msg_id, done_on)


def _received_row(msg_id: str, body: bytes, patient_ref: str, now: datetime) -> dict[str, Any]:
    """The row the receiving side keeps of a verified, acknowledged behovskartlegging."""
    return {
        "msg_id": msg_id,
        "sender_her_id": HOSPITAL,
        "receiver_her_id": SKIEN,
        "addressed_her_id": TJENESTEKONTORET,
        "msg_type": "DIALOG_HELSEFAGLIG",
        "received_at": now,
        "body": body,
        "patient_ref": patient_ref,
        "patient_masked": "239157*****",
        "apprec_id": str(uuid.uuid4()),
        "apprec_status": 1,
        "apprec_errors": [],
        "apprec_body": b"<AppRec/>",
        "pathway_state": "applied",
    }


def _pathway_row(msg_id: str, pathway: Pathway, now: datetime) -> dict[str, Any]:
    return {
        "patient_ref": pathway.patient_ref,
        "patient_masked": "239157*****",
        "receiver_her_id": SKIEN,
        "kommunenummer": "4003",
        "model_name": "telemark",
        "source_msg_id": msg_id,
        "opened_at": now,
        "updated_at": now,
        "version": 1,
        "document": to_document(pathway),
    }


# -- helpers ---------------------------------------------------------------------------------------


def legekontor_queue(kommune: RunningGateway) -> str:
    return kommune.gateway.names.prefixed(f"{LEGEKONTOR}_async")


def on_queue(kommune: RunningGateway, queue: str, expect: int, timeout: float = 5) -> list[Delivery]:
    got = drain(kommune.settings.amqp_url, queue, max_messages=expect, timeout=timeout)
    # Anything beyond what was expected would be a second copy: look a little longer for it.
    return got + drain(kommune.settings.amqp_url, queue, max_messages=10, timeout=0.5)


def note_message(kommune: RunningGateway, note_id: int) -> MessageRecord:
    note = kommune.gateway.store.get_note(note_id)
    assert note is not None and note.msg_id is not None
    message = kommune.gateway.store.get_message(note.msg_id)
    assert message is not None
    return message


def xml_text(root: etree._Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, path
    return "".join(found.itertext())


class DeferringTransport:
    """A transport whose broker is away: every document is deferred."""

    name = "amqp"

    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        return [Deferred("broker away") for _ in envelopes]

    def send_apprecs(self, answers: Sequence[AppRecAnswer]) -> list[SendResult]:
        return [Deferred("broker away") for _ in answers]


# -- tests -----------------------------------------------------------------------------------------


def test_note_reaches_the_legekontor_signed_valid_and_addressed_to_the_gp(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """The note goes to the legekontor's queue, schema-valid, signed with our key, Tema exact, to the GP."""
    gw = kommune.gateway
    create_operator(gw.store, "kari", "correct horse battery", Role.OPERATOR, "Kari Sykepleier")
    seeded = seed(gw)

    assert sender(kommune, publisher).send_pending(datetime.now(UTC)) == 1

    (delivery,) = on_queue(kommune, legekontor_queue(kommune), 1)
    verified = verify_signed(delivery.body, cert_pem=gw.registers.address.certificate_pem(SKIEN) or b"")
    validate_msghead(strip_signature(parse_xml(delivery.body)))
    root = verified.root
    summary = parse_msghead_summary(root)
    assert (summary.sender_her_id, summary.sender_unit_her_id) == (SKIEN, TJENESTEKONTORET)
    assert (summary.receiver_her_id, summary.receiver_person_her_id) == (LEGEKONTOR, FASTLEGE)
    assert summary.msg_type == "DIALOG_HELSEFAGLIG" and delivery.message_id == summary.msg_id
    patient = [
        xml_text(root, f"mh:MsgInfo/mh:Patient/{p}")
        for p in ("mh:Ident/mh:Id", "mh:GivenName", "mh:FamilyName")
    ]
    assert tuple(patient) == PATIENT
    assert xml_text(root, ".//dia:Notat/dia:Tema") == NOTE_TEMA
    assert root.find(".//dia:Notat/dia:TemaKodet", NS).get("V") == "6"
    assert (
        xml_text(root, ".//dia:RollerRelatertNotat/dia:HealthcareProfessional/dia:FamilyName") == "Sykepleier"
    )
    text = xml_text(root, ".//dia:Notat/dia:TekstNotatInnhold")
    assert "samhandlingspunkt 2 (Behovskartlegging i kommunen" in text
    assert f"Gjennomført: {seeded.carried_out_on:%d.%m.%Y}" in text
    assert "Ønsker kontakt om smertelindring." in text and "Tjenestekontoret, Skien kommune" in text
    assert not any(part in text for part in PATIENT)


def test_a_sent_note_is_recorded_like_every_message_and_announced(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """The note is sent with its msg_id; its request and message rows, list entry and events are the usual."""
    gw = kommune.gateway
    seeded = seed(gw)

    sender(kommune, publisher).send_pending(datetime.now(UTC))

    note = gw.store.get_note(seeded.note_ids[0])
    assert note is not None and note.state is NoteState.SENT and note.outcome
    message = note_message(kommune, note.id)
    assert (message.state, message.receiver_kind, message.receiver_her_id) == (
        MessageState.SENT,
        "fastlege",
        FASTLEGE,
    )
    request = gw.store.get_request_by_ref(message.request_ref)
    assert (
        request is not None and request.content_type == NOTE_CONTENT_TYPE and note.request_ref == request.ref
    )
    assert (request.request_id, request.samhandlingspunkt) == (note_request_id(SKIEN, note.id), 2)
    assert json.loads(request.body)["note_id"] == note.id
    detail = queries.message_detail(gw.store, message.msg_id)
    assert detail is not None and detail.row.patient_masked == mask_person_id(PATIENT[0])
    events = [(e["type"], e["state"], e["request_id"]) for e in kommune.events(expect=2)]
    assert events == [("request", "routed", request.request_id), ("message", "sent", request.request_id)]


def test_apprec_from_the_legekontor_acks_the_note(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """The legekontor's signed AppRec on our inbox moves the note's message to acked."""
    gw = kommune.gateway
    seeded = seed(gw)
    sender(kommune, publisher).send_pending(datetime.now(UTC))
    message = note_message(kommune, seeded.note_ids[0])
    spec = AppRecSpec(
        id=str(uuid.uuid4()),
        gen_date=datetime.now(UTC),
        status=AppRecStatus.OK,
        sender=AppRecParty(inst=PartyId(str(LEGEKONTOR), "HER"), person=PartyId(str(FASTLEGE), "HER")),
        receiver=AppRecParty(inst=PartyId(str(SKIEN), "HER")),
        original_msg_id=message.msg_id,
        original_msg_type=message.msg_type,
        original_issue_date=message.created_at,
    )
    pki = gw.settings.pki_dir
    apprec = Signer.from_files(pki / f"{LEGEKONTOR}.key.pem", pki / f"{LEGEKONTOR}.cert.pem").sign(
        parse_xml(to_bytes(build_apprec(spec)))
    )
    inbox = gw.names.inbox(SKIEN)
    outgoing = Outgoing("", inbox, apprec, str(uuid.uuid4()), None, content_type="application/xml")
    assert publisher.publish_many([outgoing], timeout=10) == [None]
    deliveries = drain(kommune.settings.amqp_url, inbox, max_messages=1, timeout=5)

    acks = AcknowledgementService(
        AckDeps(gw.settings, gw.registers, gw.store, publisher, gw.names, actor="worker:test")
    )
    assert acks.handle_batch(deliveries) == [Disposition.ACK]
    assert gw.store.get_message(message.msg_id).state == MessageState.ACKED


def test_two_senders_racing_send_each_note_once(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """Two workers claiming at once send every note exactly once, each as its own message."""
    seeded = seed(kommune.gateway, notes=6)
    now = datetime.now(UTC)
    start = threading.Barrier(2)
    counts: list[int] = []

    def work(actor: str) -> None:
        with ConfirmingPublisher(kommune.settings.amqp_url, name=actor) as own:
            note_sender = sender(kommune, own, actor)
            start.wait()
            counts.append(note_sender.send_pending(now))

    threads = [threading.Thread(target=work, args=(f"worker:{n}",)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert sum(counts) == 6
    deliveries = on_queue(kommune, legekontor_queue(kommune), 6)
    notes = [kommune.gateway.store.get_note(i) for i in seeded.note_ids]
    assert all(n is not None and n.state is NoteState.SENT for n in notes)
    assert sorted(d.message_id or "" for d in deliveries) == sorted(n.msg_id or "" for n in notes if n)
    assert len({n.msg_id for n in notes if n}) == 6 and kommune.gateway.store.count_messages() == 6


def test_no_fastlege_fails_the_note_with_an_alert(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """A patient without a fastlege in the register: the note fails, plainly, with an alert and no message."""
    seeded = seed(kommune.gateway, NO_FASTLEGE)

    assert sender(kommune, publisher).send_pending(datetime.now(UTC)) == 1

    note = kommune.gateway.store.get_note(seeded.note_ids[0])
    assert note is not None and note.state is NoteState.FAILED and note.msg_id is None
    assert "Fastlegeregister has no fastlege" in (note.outcome or "")
    assert kommune.gateway.store.count_messages() == 0 and kommune.gateway.store.count_requests() == 0
    (alert,) = kommune.events(expect=1)
    assert (alert["type"], alert["kind"], alert["note_id"]) == ("alert", NOTE_FAILED_ALERT, note.id)
    assert NO_FASTLEGE[0] not in json.dumps(alert)


def test_a_claim_left_by_a_stopped_worker_is_failed_never_sent(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """A note claimed by a worker that stopped waits out the stale limit, then fails; nothing is sent."""
    seeded = seed(kommune.gateway)
    t0 = datetime.now(UTC)
    (claimed,) = kommune.gateway.store.claim_notes("worker:dead", now=t0, limit=10)
    live = sender(kommune, publisher)

    assert live.send_pending(t0 + timedelta(seconds=1)) == 0
    assert kommune.gateway.store.get_note(claimed.id).state is NoteState.PENDING
    assert live.send_pending(t0 + timedelta(seconds=STALE_S + 1)) == 1
    assert live.send_pending(t0 + timedelta(seconds=STALE_S + 2)) == 0

    note = kommune.gateway.store.get_note(seeded.note_ids[0])
    assert (
        note is not None
        and note.state is NoteState.FAILED
        and "stopped before it finished" in (note.outcome or "")
    )
    assert on_queue(kommune, legekontor_queue(kommune), 0, timeout=0.5) == []
    assert kommune.gateway.store.count_messages() == 0


def test_a_crash_after_sending_before_finishing_never_sends_twice(
    kommune: RunningGateway, publisher: ConfirmingPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that sent the message but could not record it: the stale claim fails, naming the message."""
    seeded = seed(kommune.gateway)
    store = kommune.gateway.store
    t0 = datetime.now(UTC)

    def database_gone(*args: object, **kwargs: object) -> bool:
        raise StoreUnavailable("database gone")

    with monkeypatch.context() as patched:
        patched.setattr(store, "finish_note", database_gone)
        assert sender(kommune, publisher, "worker:crashing").send_pending(t0) == 0
    (first,) = on_queue(kommune, legekontor_queue(kommune), 1)

    other = sender(kommune, publisher, "worker:b")
    assert other.send_pending(t0 + timedelta(seconds=1)) == 0
    assert other.send_pending(t0 + timedelta(seconds=STALE_S + 1)) == 1

    note = store.get_note(seeded.note_ids[0])
    assert note is not None and note.state is NoteState.FAILED and note.msg_id == first.message_id
    assert f"its message {first.message_id} to the fastlege is sent" in (note.outcome or "")
    assert on_queue(kommune, legekontor_queue(kommune), 0, timeout=0.5) == []
    assert store.count_messages() == 1


def test_a_broker_away_leaves_the_note_pending_and_the_retry_sends_the_same_message(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """A deferred delivery gives the note back; the next round sends the stored message, same MsgId, once."""
    seeded = seed(kommune.gateway)
    store = kommune.gateway.store
    now = datetime.now(UTC)

    assert sender(kommune, publisher, transport=DeferringTransport()).send_pending(now) == 0
    note = store.get_note(seeded.note_ids[0])
    assert note is not None and (note.state, note.claimed_by) == (NoteState.PENDING, None)
    (queued,) = store.messages_in_state([MessageState.QUEUED])

    assert sender(kommune, publisher).send_pending(now) == 1
    (delivery,) = on_queue(kommune, legekontor_queue(kommune), 1)
    assert delivery.message_id == queued.msg_id == store.get_note(note.id).msg_id
    assert store.count_messages() == 1 and store.get_message(queued.msg_id).state == MessageState.SENT


def test_overdue_sweep_and_resend_work_on_a_note_and_rebuild_is_refused(
    kommune: RunningGateway, publisher: ConfirmingPublisher
) -> None:
    """A note's message goes overdue without an AppRec, can be resent, and is never rebuilt or edited."""
    gw = kommune.gateway
    seeded = seed(gw)
    sender(kommune, publisher).send_pending(datetime.now(UTC))
    message = note_message(kommune, seeded.note_ids[0])
    on_queue(kommune, legekontor_queue(kommune), 1)

    later = datetime.now(UTC) + timedelta(seconds=gw.settings.apprec_deadline_s + 3600)
    deps = AckDeps(gw.settings, gw.registers, gw.store, publisher, gw.names, actor="worker:test")
    assert message.msg_id in OverdueSweeper(deps, clock=lambda: later).sweep().marked_overdue

    kari = create_operator(gw.store, "kari", "correct horse battery", Role.OPERATOR)
    replay = ReplayService(gw, publisher)
    for kind, edited in ((ReplayKind.REBUILD, None), (ReplayKind.EDIT, {"request_id": str(uuid.uuid4())})):
        with pytest.raises(ReplayRefused, match="note to the fastlege"):
            replay.replay(kari, message.msg_id, kind, reason="try", edited_request=edited)
    result = replay.replay(kari, message.msg_id, ReplayKind.RESEND, reason="legekontor lost it")
    assert result.state == "sent"
    (again,) = on_queue(kommune, legekontor_queue(kommune), 1)
    assert again.message_id == message.msg_id and gw.store.count_messages() == 1
