"""The receiving path on the real broker and both databases: a kommune gateway and the hospital's replies.

A kommune gateway (ROLE=kommune, its own database) receives signed MsgHeads on its queue, stores each
with its AppRec, answers it once, and hands it to local systems on ``edi.inbound``. The hospital's
worker receives the kommune's reply to one of its messages and puts it on that message's thread.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pytest

from edi_gateway.domain.apprec import AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.assessment_text import render_assessment
from edi_gateway.domain.model import Organisation, OutboundMessage, Receiver, ReceiverKind, Sender
from edi_gateway.domain.request import parse_request
from edi_gateway.messaging.amqp import AmqpTransport
from edi_gateway.messaging.base import Deferred, SendResult
from edi_gateway.registers.base import Registers
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.services.kommune import kommune_settings
from edi_gateway.services.queries.messages import message_detail
from edi_gateway.services.receiver import ReceivingParty, ReceivingSystem
from edi_gateway.services.worker import our_virksomhet
from edi_gateway.settings import Settings
from edi_gateway.transport.consumer import Delivery, Disposition, drain
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from edi_gateway.xml.apprec import AppRecSpec, build_apprec, parse_apprec
from edi_gateway.xml.safe import DEFAULT_MAX_BYTES
from edi_gateway.xml.signing import Signer, verify_signed
from tests.services.conftest import (
    RunningGateway,
    cleanup_gateway,
    example,
    make_settings,
    start_gateway,
    stop_gateway,
)
from tests.services.test_receiver import (
    FIXTURE_REGISTERS,
    HOSPITAL,
    PATIENT_ID,
    PORSGRUNN,
    SKIEN,
    SKIEN_LEGESENTER,
    kommune_receiver,
    outbound,
    signed,
)

pytestmark = pytest.mark.rabbitmq


@pytest.fixture(scope="module")
def registers(pki_template: Path) -> Registers:
    return load_fixture_registers(FIXTURE_REGISTERS, cert_dir=pki_template)


def _capture(settings: Settings, exchange: str, name: str, binding: str) -> str:
    """Declare a queue bound to ``exchange`` so the test sees what the gateway publishes there."""
    queue = f"{settings.queue_prefix}{name}"
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, exchange, routing_key=binding)
    finally:
        connection.close()
    return queue


def _take(settings: Settings, queue: str, *, expect: int, timeout: float = 10) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got += drain(settings.amqp_url, queue, max_messages=expect - len(got), timeout=0.3)
    return got


def _publish(settings: Settings, queue: str, *bodies: bytes, headers: dict[str, Any] | None = None) -> None:
    outgoing = [
        Outgoing(
            exchange="",
            routing_key=queue,
            body=body,
            message_id=str(uuid.uuid4()),
            correlation_id=None,
            content_type="application/xml",
            headers=headers or {},
        )
        for body in bodies
    ]
    with ConfirmingPublisher(settings.amqp_url, name="test publisher") as publisher:
        assert publisher.publish_many(outgoing, timeout=10) == [None] * len(outgoing)


def _behovskartlegging(message: OutboundMessage) -> OutboundMessage:
    """``message`` with the text the hospital writes for the example request about its patient."""
    data = example("kommune-only")
    data["patient"]["id"] = PATIENT_ID
    request = parse_request(
        json.dumps(data).encode(), content_type="application/json", max_bytes=10**6, test_mode=True
    )
    return dataclasses.replace(
        message, notat=dataclasses.replace(message.notat, text=render_assessment(request))
    )


class Unreachable(AmqpTransport):
    """A transport whose AppRecs the broker never confirms (a batch that fails after storing)."""

    def send_apprecs(self, answers: Any) -> list[SendResult]:
        return [Deferred("the broker did not confirm") for _ in answers]


def _stop_worker(running: RunningGateway) -> None:
    running.stop.set()
    assert running.thread is not None
    running.thread.join(30)


@pytest.fixture
def kommune(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """Porsgrunn kommune's gateway (ROLE=kommune) on the parametrised database, consuming its queue."""
    hospital = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=database_url, queue_prefix=queue_prefix
    )
    running = start_gateway(kommune_settings(hospital, PORSGRUNN, database_url=database_url))
    try:
        yield running
    finally:
        stop_gateway(running)
        cleanup_gateway(running)


def test_a_kommune_stores_answers_once_and_announces_a_behovskartlegging(
    kommune: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """One verified message: one stored row, one signed AppRec OK to the hospital, one edi.inbound event."""
    settings, names = kommune.settings, kommune.gateway.names
    # Bound to the exact routing key: the event arrives only if it is routed by its message type.
    inbound = _capture(settings, names.inbound_exchange, "inbound.capture", "inbound.dialog_helsefaglig")
    message = _behovskartlegging(outbound(kommune_receiver(registers)))
    body = signed(pki_template, message)
    _publish(settings, names.inbox(PORSGRUNN), body, body)
    (apprec_delivery,) = _take(settings, names.inbox(HOSPITAL), expect=2, timeout=5)
    cert = registers.address.certificate_pem(PORSGRUNN)
    assert cert is not None
    apprec = parse_apprec(verify_signed(apprec_delivery.body, cert_pem=cert).root)
    assert (apprec.status, apprec.original_msg_id) == (AppRecStatus.OK, message.msg_id)
    (stored,) = kommune.gateway.store.received_list()
    assert (stored.msg_id, stored.sender_her_id, stored.apprec_id) == (message.msg_id, HOSPITAL, apprec.id)
    assert stored.apprec_sent_at is not None
    assert stored.patient_masked == PATIENT_ID[:6] + "*****"
    # The kommune's worker takes it into the worklist: the patient's pathway is open.
    kommune.wait_for(lambda: kommune.gateway.store.received_list()[0].pathway_state == "applied")
    assert stored.patient_ref is not None
    pathway = kommune.gateway.store.pathway_for_patient(stored.patient_ref)
    assert pathway is not None and pathway.source_msg_id == message.msg_id
    (event_delivery,) = _take(settings, inbound, expect=1)
    assert PATIENT_ID not in json.dumps(event_delivery.headers)
    event = json.loads(event_delivery.body)
    assert event["msg_id"] == message.msg_id and event["patient"]["id"] == PATIENT_ID
    assert event["notat"]["tema"] == message.notat.tema
    kommune.wait_for(lambda: kommune.gateway.store.received_list()[0].announced_at is not None)


def test_a_redelivery_after_a_failed_apprec_sends_the_stored_apprec(
    kommune: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """A document stored whose AppRec did not go out is answered, on redelivery, with that same AppRec."""
    settings, store, names = kommune.settings, kommune.gateway.store, kommune.gateway.names
    _stop_worker(kommune)  # the test drives the receiving path itself
    body = signed(pki_template, outbound(kommune_receiver(registers)))
    delivery = Delivery(0, body, "application/xml", str(uuid.uuid4()), None)

    with ConfirmingPublisher(settings.amqp_url, name="test receiving") as publisher:
        party = ReceivingParty(
            our_virksomhet(kommune.gateway), kommune.gateway.registers, kommune.gateway.signer
        )

        def system(transport: AmqpTransport) -> ReceivingSystem:
            return ReceivingSystem(party, store, transport, publisher, names, test_mode=True)

        failing = system(Unreachable(publisher, confirm_timeout_s=5))
        assert failing.handle_batch([delivery]) == [Disposition.REQUEUE]
        (stored,) = store.received_list()
        assert stored.apprec_sent_at is None
        working = system(AmqpTransport(publisher, confirm_timeout_s=5))
        assert working.handle_batch([delivery]) == [Disposition.ACK]
        assert working.handle_batch([delivery]) == [Disposition.ACK]
    (apprec,) = _take(settings, names.inbox(HOSPITAL), expect=2, timeout=4)
    assert apprec.message_id == stored.apprec_id and apprec.body == stored.apprec_body
    assert store.received_list()[0].apprec_sent_at is not None


def test_a_forged_message_is_parked_answered_avvist_and_alerted_but_never_stored(
    kommune: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """A message signed by another party than the one it claims: parked, S01 Avvist, an alert, no row."""
    settings, names, store = kommune.settings, kommune.gateway.names, kommune.gateway.store
    forged = signed(pki_template, outbound(kommune_receiver(registers)), key_her_id=SKIEN_LEGESENTER)
    _publish(settings, names.inbox(PORSGRUNN), forged)
    (answer,) = _take(settings, names.inbox(HOSPITAL), expect=1)
    cert = registers.address.certificate_pem(PORSGRUNN)
    assert cert is not None
    apprec = parse_apprec(verify_signed(answer.body, cert_pem=cert).root)
    assert apprec.status == AppRecStatus.AVVIST and [e.code for e in apprec.errors] == ["S01"]
    alerts = [e for e in kommune.events(expect=1) if e.get("type") == "alert"]
    assert [a["kind"] for a in alerts] == ["inbound.untrusted"]
    assert store.received_list() == []
    assert [p.code for p in store.list_parked()] == ["message.S01"]


def test_an_apprec_to_a_message_the_kommune_never_sent_is_parked_and_not_answered(
    kommune: RunningGateway, pki_template: Path
) -> None:
    """An AppRec on the kommune's inbox goes to the acknowledgement side: parked, alerted, never answered."""
    settings, names, store = kommune.settings, kommune.gateway.names, kommune.gateway.store
    spec = AppRecSpec(
        id=str(uuid.uuid4()),
        gen_date=datetime.now(UTC),
        status=AppRecStatus.OK,
        errors=(),
        sender=AppRecParty(inst=PartyId(str(SKIEN_LEGESENTER), "HER")),
        receiver=AppRecParty(inst=PartyId(str(PORSGRUNN), "HER")),
        original_msg_id=str(uuid.uuid4()),
        original_msg_type="DIALOG_HELSEFAGLIG",
        original_issue_date=datetime.now(UTC),
    )
    key = pki_template / f"{SKIEN_LEGESENTER}.key.pem"
    body = Signer.from_files(key, pki_template / f"{SKIEN_LEGESENTER}.cert.pem").sign(build_apprec(spec))
    _publish(settings, names.inbox(PORSGRUNN), body)
    kommune.wait_for(lambda: len(store.list_parked()) == 1)
    assert store.list_parked()[0].code == "apprec.unknown_message"
    assert [e["kind"] for e in kommune.events(expect=1)] == ["apprec.unknown_message"]
    assert _take(settings, names.receiver_queue(SKIEN_LEGESENTER), expect=1, timeout=1.5) == []
    assert store.received_list() == []


def _reply(registers: Registers, pki: Path, from_her_id: int, msg_id: str) -> tuple[OutboundMessage, bytes]:
    """A Dialogmelding from a kommune's first service to the hospital, ConversationRef ``msg_id``, signed."""
    hospital, kommune = registers.address.virksomhet(HOSPITAL), registers.address.virksomhet(from_her_id)
    assert hospital is not None and kommune is not None
    service = kommune.services[0]
    reply = dataclasses.replace(
        outbound(kommune_receiver(registers)),
        sender=Sender(kommune.organisation, Organisation(service.her_id, service.name)),
        receiver=Receiver(
            ReceiverKind.KOMMUNE, hospital.organisation, hospital.queue, service=hospital.units[0]
        ),
        conversation_ref=msg_id,
    )
    return reply, signed(pki, reply, key_her_id=from_her_id)


def test_the_hospital_puts_a_kommune_reply_on_its_message_thread(
    running: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """A reply from our message's receiver (ConversationRef to it): verified, answered, threaded, announced."""
    settings, names, store = running.settings, running.gateway.names, running.gateway.store
    inbound = _capture(settings, names.inbound_exchange, "inbound.capture", "inbound.#")
    request = example("kommune-only")
    running.send(request)
    ours = store.messages_for_request(running.wait_request(request["request_id"]).ref)[0]
    kommune = ours.receiver_org_her_id
    reply, body = _reply(registers, pki_template, kommune, ours.msg_id)
    _publish(settings, names.inbox(HOSPITAL), body)
    running.wait_for(lambda: len(store.replies_to(ours.msg_id)) == 1)
    (stored,) = store.replies_to(ours.msg_id)
    assert (stored.sender_her_id, stored.pathway_state) == (kommune, None)
    detail = message_detail(store, ours.msg_id)
    assert detail is not None
    assert [(r.msg_id, r.sender_her_id, r.tema) for r in detail.replies] == [
        (reply.msg_id, kommune, reply.notat.tema)
    ]
    assert [e.kind for e in detail.timeline].count("reply") == 1
    # The kommune's queue also holds our original message; the AppRec is the one marked so.
    deliveries = _take(settings, names.inbox(kommune), expect=2)
    (answer,) = [d for d in deliveries if d.headers.get("msg_type") == "APPREC"]
    assert answer.correlation_id == reply.msg_id
    (event,) = _take(settings, inbound, expect=1)
    assert json.loads(event.body)["thread_msg_id"] == ours.msg_id


def test_a_reply_from_another_party_than_the_receiver_goes_on_no_thread(
    running: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """A verified kommune naming a message we sent to someone else: answered and stored, not threaded."""
    settings, names, store = running.settings, running.gateway.names, running.gateway.store
    request = example("kommune-only")
    running.send(request)
    ours = store.messages_for_request(running.wait_request(request["request_id"]).ref)[0]
    other = next(k for k in (PORSGRUNN, SKIEN) if k != ours.receiver_org_her_id)
    reply, body = _reply(registers, pki_template, other, ours.msg_id)
    _publish(settings, names.inbox(HOSPITAL), body)
    (answer,) = _take(settings, names.inbox(other), expect=1)
    assert answer.correlation_id == reply.msg_id
    (stored,) = [r for r in store.received_list() if r.msg_id == reply.msg_id]
    assert stored.thread_msg_id is None
    assert store.replies_to(ours.msg_id) == []


def test_a_kommune_follow_up_sends_what_a_dead_batch_left(
    kommune: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """An AppRec and event left undone (the batch died) go out from the follow-up, once."""
    settings, store, names = kommune.settings, kommune.gateway.store, kommune.gateway.names
    _stop_worker(kommune)
    body = signed(pki_template, outbound(kommune_receiver(registers)))
    delivery = Delivery(0, body, "application/xml", str(uuid.uuid4()), None)

    with ConfirmingPublisher(settings.amqp_url, name="test follow-up") as publisher:
        party = ReceivingParty(
            our_virksomhet(kommune.gateway), kommune.gateway.registers, kommune.gateway.signer
        )
        failing = ReceivingSystem(
            party, store, Unreachable(publisher, confirm_timeout_s=5), publisher, names, True
        )
        failing.handle_batch([delivery])
        working = ReceivingSystem(
            party, store, AmqpTransport(publisher, confirm_timeout_s=5), publisher, names, True
        )
        assert working.follow_up(datetime.now(UTC)) == 0, "too early: the batch may still be sending"
        later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
        assert working.follow_up(later) == 1
        assert working.follow_up(later) == 0
    assert len(_take(settings, names.inbox(HOSPITAL), expect=2, timeout=3)) == 1


def test_a_message_for_a_her_id_we_do_not_serve_is_refused_with_e21_and_an_alert(
    kommune: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """Addressed to another kommune: AppRec Avvist E21 once, an alert, nothing handed to local systems."""
    settings, names, store = kommune.settings, kommune.gateway.names, kommune.gateway.store
    inbound = _capture(settings, names.inbound_exchange, "inbound.capture", "inbound.#")
    message = outbound(kommune_receiver(registers, SKIEN))
    _publish(settings, names.inbox(PORSGRUNN), signed(pki_template, message))
    (answer,) = _take(settings, names.inbox(HOSPITAL), expect=1)
    cert = registers.address.certificate_pem(PORSGRUNN)
    assert cert is not None
    apprec = parse_apprec(verify_signed(answer.body, cert_pem=cert).root)
    assert (apprec.status, [e.code for e in apprec.errors]) == (AppRecStatus.AVVIST, ["E21"])
    assert [(a["kind"], a["msg_id"]) for a in kommune.events(expect=1)] == [
        ("inbound.rejected", message.msg_id)
    ]
    (stored,) = store.received_list()
    assert (stored.apprec_status, stored.pathway_state) == (2, None)
    assert _take(settings, inbound, expect=1, timeout=1.5) == []


def test_an_oversized_document_is_parked_and_answered_from_its_envelope(kommune: RunningGateway) -> None:
    """A document over the parser's size limit: refused before parsing, parked, Avvist T01 to the sender."""
    settings, names, store = kommune.settings, kommune.gateway.names, kommune.gateway.store
    body = b"<MsgHead>" + b" " * (DEFAULT_MAX_BYTES + 1) + b"</MsgHead>"
    _publish(settings, names.inbox(PORSGRUNN), body, headers={"sender_her_id": HOSPITAL})
    (answer,) = _take(settings, names.inbox(HOSPITAL), expect=1, timeout=15)
    assert b"T01" in answer.body
    (parked,) = store.list_parked()
    assert parked.code == "message.T01"
    assert store.received_list() == []
