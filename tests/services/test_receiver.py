"""Tests for edi_gateway.services.receiver: a kommune / legekontor system answering MsgHeads with AppRecs.

Reading and composing run without a broker (the pure assessment has its own module,
``test_receiver_assessment.py``); the receiver itself runs against the real RabbitMQ beside a real
gateway worker, each test on its own queue prefix. All parties are the synthetic fixture registers;
person numbers are in the synthetic month+80 series.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.domain.apprec import AppRec, AppRecStatus, PartyId
from edi_gateway.domain.model import (
    Coded,
    Contact,
    Notat,
    Organisation,
    OutboundMessage,
    Patient,
    Receiver,
    ReceiverKind,
    Sender,
)
from edi_gateway.domain.states import MessageState
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import ConfigurationError
from edi_gateway.services.kommune import DATABASE_NAME, kommune_settings, receiver_home, run_receiver
from edi_gateway.services.receiver import (
    Envelope,
    ReceiverBehaviour,
    compose_apprec,
    read_message,
    rejected,
    with_transport,
)
from edi_gateway.settings import Settings
from edi_gateway.store import Store
from edi_gateway.transport.consumer import Delivery, drain, queue_depth
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import apprec_error, build_apprec, parse_apprec
from edi_gateway.xml.msghead import build_msghead
from edi_gateway.xml.schemas import validate_apprec
from edi_gateway.xml.signing import Signer, verify_signed
from tests.id_spellings import NOT_A_HER_ID, SAME_VALUE, SIGNABLE, Spelling, respelled
from tests.services.conftest import (
    RunningGateway,
    example,
    make_settings,
)

HOSPITAL = 8100001
UNIT = 8100002
PORSGRUNN = 8100005
PORSGRUNN_KREFTKOORDINATOR = 8100006
SKIEN = 8100010
SKIEN_LEGESENTER = 8100087
SKIEN_FASTLEGE = 8100089
PATIENT_ID = "07926217857"  # synthetic (month + 80)
BAD_CHECKSUM = "07926217858"

MH = {"mh": ns.MSGHEAD}
HELSEFAGLIG = Coded("DIALOG_HELSEFAGLIG", "Helsefaglig dialog", "2.16.578.1.12.4.1.1.8279")
HENVENDELSE = Coded("6", "Henvendelse om pasient", "2.16.578.1.12.4.1.1.7322")
FORLOPSKOORDINATOR = Coded("17", "Forløpskoordinator kreft", "2.16.578.1.12.4.1.1.9034")

FIXTURE_REGISTERS = resource_dir("fixtures") / "registers"


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registers(pki_template: Path) -> Registers:
    """The fixture registers with the session test PKI's certificates."""
    return load_fixture_registers(FIXTURE_REGISTERS, cert_dir=pki_template)


def virksomhet(registers: Registers, her_id: int) -> Virksomhet:
    found = registers.address.virksomhet(her_id)
    assert found is not None
    return found


def kommune_receiver(
    registers: Registers, her_id: int = PORSGRUNN, service_her_id: int | None = None
) -> Receiver:
    kommune = virksomhet(registers, her_id)
    service = next(s for s in kommune.services if service_her_id in (None, s.her_id))
    return Receiver(ReceiverKind.KOMMUNE, kommune.organisation, kommune.queue, service=service)


def outbound(
    receiver: Receiver, *, msg_id: str | None = None, patient_id: str = PATIENT_ID
) -> OutboundMessage:
    return OutboundMessage(
        msg_id=msg_id or str(uuid.uuid4()),
        gen_date=datetime(2026, 11, 2, 10, 15, 30),
        msg_type=HELSEFAGLIG,
        sender=Sender(
            Organisation(HOSPITAL, "Sykehuset Telemark HF", "998369002"),
            Organisation(UNIT, "Kreftpoliklinikken Skien"),
        ),
        receiver=receiver,
        patient=Patient(patient_id, "FNR", "Per", "Sørensen"),
        notat=Notat(
            tema_kodet=HENVENDELSE,
            tema="Pakkeforløp hjem for pasienter med kreft – samhandlingspunkt 1",
            text="Behovskartlegging\nDistresstermometer: 6 av 10\n",
            contact=Contact("Nina Kreftsykepleier", "Forløpskoordinator kreft", "+4735003500"),
            contact_role=FORLOPSKOORDINATOR,
        ),
    )


def signed(
    pki: Path,
    message: OutboundMessage,
    *,
    key_her_id: int = HOSPITAL,
    mutate: Callable[[etree._Element], None] | None = None,
) -> bytes:
    """Build the MsgHead, change it if asked (before signing) and sign it with ``key_her_id``'s key."""
    root = build_msghead(message)
    if mutate is not None:
        mutate(root)
    signer = Signer.from_files(pki / f"{key_her_id}.key.pem", pki / f"{key_her_id}.cert.pem")
    return signer.sign(root)


def drop_mig_version(root: etree._Element) -> None:
    element = root.find("mh:MsgInfo/mh:MIGversion", MH)
    assert element is not None
    element.getparent().remove(element)  # type: ignore[union-attr]


# --- read_message and compose_apprec (no broker) ------------------------------------------------


def test_read_message_accepts_a_verified_valid_msghead(registers: Registers, pki_template: Path) -> None:
    """A MsgHead signed by its sender verifies, validates without its signature and yields a summary."""
    message = outbound(kommune_receiver(registers))
    reading = read_message(signed(pki_template, message), registers.address)
    assert reading.failure is None and reading.verified
    assert reading.summary is not None and reading.summary.msg_id == message.msg_id
    assert reading.envelope.sender_unit_her_id == UNIT
    assert reading.envelope.receiver_service_her_id == PORSGRUNN_KREFTKOORDINATOR


READ_FAILURES: list[tuple[str, str, bool]] = [
    ("malformed", "T01", False),
    ("forged", "S01", False),
    ("unsigned", "S01", False),
    ("unknown sender", "S01", False),
    ("schema-invalid", "T02", True),
]


def _failing_body(kind: str, registers: Registers, pki: Path) -> bytes:
    message = outbound(kommune_receiver(registers))
    if kind == "malformed":
        return b"<MsgHead><MsgInfo></MsgHead>"
    if kind == "forged":
        return signed(pki, message, key_her_id=SKIEN)
    if kind == "unsigned":
        return etree.tostring(build_msghead(message))
    if kind == "unknown sender":
        stranger = dataclasses.replace(message, sender=Sender(Organisation(8199999, "Ukjent")))
        return signed(pki, stranger)
    return signed(pki, message, mutate=drop_mig_version)


@pytest.mark.parametrize(("kind", "code", "verified"), READ_FAILURES, ids=[c[0] for c in READ_FAILURES])
def test_read_message_names_the_failure(
    registers: Registers, pki_template: Path, kind: str, code: str, verified: bool
) -> None:
    """Unreadable, untrusted and invalid documents each stop reading with their 8221 code."""
    reading = read_message(_failing_body(kind, registers, pki_template), registers.address)
    assert reading.summary is None
    assert reading.failure is not None and reading.failure.code == code
    assert reading.verified is verified


# --- read_message: one reading of every HER-id -------------------------------------------------

MSGHEAD_HER_IDS = {  # each written once in the built MsgHead
    "sender": HOSPITAL,
    "sending unit": UNIT,
    "receiver": PORSGRUNN,
    "receiving service": PORSGRUNN_KREFTKOORDINATOR,
}
SKIEN_KREFTKOORDINATOR = 8100011


def signed_written(
    pki: Path, message: OutboundMessage, value: int, spelling: Spelling, key: int = HOSPITAL
) -> bytes:
    """The MsgHead with ``<Id>value</Id>`` written as ``spelling`` says, then signed (by ``key``)."""
    written = respelled(etree.tostring(build_msghead(message)), value, spelling)
    signer = Signer.from_files(pki / f"{key}.key.pem", pki / f"{key}.cert.pem")
    return signer.sign(etree.fromstring(written))  # lxml's default parser keeps the comments


def _extra_her_ident(path: str, her_id: int) -> Callable[[etree._Element], None]:
    """A mutation adding a second HER-typed Ident with ``her_id`` to the Organisation at ``path``."""

    def mutate(root: etree._Element) -> None:
        party = root.find(path, MH)
        assert party is not None
        ident = party.find("mh:Ident", MH)
        assert ident is not None
        second = etree.fromstring(etree.tostring(ident))
        second.find("mh:Id", MH).text = str(her_id)  # type: ignore[union-attr]
        ident.addnext(second)

    return mutate


@pytest.mark.parametrize("spelling", sorted(SIGNABLE))
@pytest.mark.parametrize("where", sorted(MSGHEAD_HER_IDS))
def test_msghead_her_ids_have_one_reading_however_they_are_written(
    registers: Registers, pki_template: Path, where: str, spelling: str
) -> None:
    """Comments, CDATA, character references and whitespace in a HER-id: verified, read as the plain id."""
    message = outbound(kommune_receiver(registers, service_her_id=PORSGRUNN_KREFTKOORDINATOR))
    body = signed_written(pki_template, message, MSGHEAD_HER_IDS[where], SIGNABLE[spelling])
    reading = read_message(body, registers.address)
    assert reading.failure is None and reading.verified and reading.summary is not None
    summary, envelope = reading.summary, reading.envelope
    assert (summary.sender_her_id, summary.sender_unit_her_id) == (HOSPITAL, UNIT)
    assert (summary.receiver_her_id, summary.receiver_service_her_id) == (
        PORSGRUNN,
        PORSGRUNN_KREFTKOORDINATOR,
    )
    assert (envelope.sender_her_id, envelope.sender_unit_her_id) == (HOSPITAL, UNIT)
    assert (envelope.receiver_her_id, envelope.receiver_service_her_id) == (
        PORSGRUNN,
        PORSGRUNN_KREFTKOORDINATOR,
    )


# Comments, PIs, CDATA and character references are no part of the signed text; whitespace is.
NOT_SIGNED_TEXT = {k: v for k, v in SAME_VALUE.items() if k != "surrounding whitespace"}


@pytest.mark.parametrize("spelling", sorted(NOT_SIGNED_TEXT))
def test_markup_added_after_signing_changes_nothing(
    registers: Registers, pki_template: Path, spelling: str
) -> None:
    """The sender's id re-spelled with comments, PIs, CDATA or references after signing still verifies as sent."""
    message = outbound(kommune_receiver(registers))
    body = respelled(signed(pki_template, message), HOSPITAL, NOT_SIGNED_TEXT[spelling])
    reading = read_message(body, registers.address)
    assert reading.failure is None and reading.verified
    assert reading.summary is not None and reading.summary.sender_her_id == HOSPITAL


def test_whitespace_added_after_signing_breaks_the_signature(
    registers: Registers, pki_template: Path
) -> None:
    """Whitespace around an id is signed text: added after signing, the digest fails (S01)."""
    message = outbound(kommune_receiver(registers))
    body = respelled(signed(pki_template, message), HOSPITAL, SAME_VALUE["surrounding whitespace"])
    reading = read_message(body, registers.address)
    assert reading.failure is not None and reading.failure.code == "S01" and not reading.verified


@pytest.mark.parametrize("spelling", sorted(NOT_A_HER_ID))
@pytest.mark.parametrize("where", sorted(MSGHEAD_HER_IDS))
def test_an_unreadable_msghead_her_id_is_refused_not_shortened(
    registers: Registers, pki_template: Path, where: str, spelling: str
) -> None:
    """A HER-id that is not 1 to 9 ASCII digits stops reading with T99; nothing is taken from the message."""
    message = outbound(kommune_receiver(registers, service_her_id=PORSGRUNN_KREFTKOORDINATOR))
    body = signed_written(pki_template, message, MSGHEAD_HER_IDS[where], NOT_A_HER_ID[spelling])
    reading = read_message(body, registers.address)
    assert reading.summary is None
    assert reading.failure is not None and reading.failure.code == "T99"


CONFLICTS = {
    "sender with a second HER-id": "mh:MsgInfo/mh:Sender/mh:Organisation",
    "sending unit with a second HER-id": "mh:MsgInfo/mh:Sender/mh:Organisation/mh:Organisation",
    "receiver with a second HER-id": "mh:MsgInfo/mh:Receiver/mh:Organisation",
    "receiving service with a second HER-id": "mh:MsgInfo/mh:Receiver/mh:Organisation/mh:Organisation",
}


@pytest.mark.parametrize("conflict", sorted(CONFLICTS))
def test_a_party_with_two_different_her_ids_is_refused(
    registers: Registers, pki_template: Path, conflict: str
) -> None:
    """An Organisation naming two HER-ids (here Skien's besides its own) is unreadable, T99, whichever comes first."""
    message = outbound(kommune_receiver(registers))
    body = signed(pki_template, message, mutate=_extra_her_ident(CONFLICTS[conflict], SKIEN))
    reading = read_message(body, registers.address)
    assert reading.summary is None
    assert reading.failure is not None and reading.failure.code == "T99"


def test_a_repeated_identical_her_id_is_one_reading(registers: Registers, pki_template: Path) -> None:
    """The same HER-id written in two Idents of the sender names one party and reads as it."""
    message = outbound(kommune_receiver(registers))
    body = signed(
        pki_template, message, mutate=_extra_her_ident("mh:MsgInfo/mh:Sender/mh:Organisation", HOSPITAL)
    )
    reading = read_message(body, registers.address)
    assert (
        reading.failure is None and reading.summary is not None and reading.summary.sender_her_id == HOSPITAL
    )


def test_a_sending_unit_of_another_virksomhet_is_refused(registers: Registers, pki_template: Path) -> None:
    """The hospital's key vouches for the hospital only: a sending unit registered under Skien is S01, unverified."""

    def skien_unit(root: etree._Element) -> None:
        unit = root.find("mh:MsgInfo/mh:Sender/mh:Organisation/mh:Organisation/mh:Ident/mh:Id", MH)
        assert unit is not None
        unit.text = str(SKIEN_KREFTKOORDINATOR)

    reading = read_message(
        signed(pki_template, outbound(kommune_receiver(registers)), mutate=skien_unit), registers.address
    )
    assert reading.summary is None and not reading.verified
    assert reading.failure is not None and reading.failure.code == "S01"


@pytest.mark.parametrize("spelling", sorted(SAME_VALUE))
def test_a_msghead_signed_by_another_kommune_never_reads_as_the_claimed_sender(
    registers: Registers, pki_template: Path, spelling: str
) -> None:
    """Signed with Skien's key, a MsgHead claiming the hospital in any spelling fails the signature check (S01)."""
    message = outbound(kommune_receiver(registers))
    body = signed_written(pki_template, message, HOSPITAL, SAME_VALUE[spelling], key=SKIEN)
    reading = read_message(body, registers.address)
    assert reading.summary is None and not reading.verified
    assert reading.failure is not None and reading.failure.code == "S01"


def test_compose_answers_an_unreadable_message_from_the_transport_envelope(registers: Registers) -> None:
    """With nothing readable, the AMQP envelope says whom to answer; the AppRec is still schema-valid."""
    msg_id = str(uuid.uuid4())
    envelope = with_transport(
        Envelope(), msg_id, {"sender_her_id": HOSPITAL, "msg_type": "DIALOG_HELSEFAGLIG"}
    )
    verdict = rejected(apprec_error("T01", detail="not well-formed"))
    spec = compose_apprec(
        envelope, verdict, virksomhet(registers, PORSGRUNN), apprec_id=str(uuid.uuid4()), now=datetime.now()
    )
    assert spec is not None
    root = build_apprec(spec)
    validate_apprec(root)
    apprec = parse_apprec(root)
    assert apprec.original_msg_id == msg_id
    assert apprec.receiver.inst == PartyId(str(HOSPITAL), "HER")
    assert apprec.sender.dept is None and apprec.sender.person is None


def test_compose_gives_up_without_a_sender_or_msg_id(registers: Registers) -> None:
    """A message whose sender or MsgId nobody can tell cannot be answered."""
    porsgrunn = virksomhet(registers, PORSGRUNN)
    verdict = rejected(apprec_error("T01"))
    for envelope in (Envelope(msg_id=str(uuid.uuid4())), Envelope(sender_her_id=HOSPITAL)):
        assert compose_apprec(envelope, verdict, porsgrunn, apprec_id="x", now=datetime.now()) is None


def test_compose_replaces_an_unusable_issue_date(registers: Registers) -> None:
    """An original GenDate that is no xs:dateTime is replaced by the receipt time, so the AppRec validates."""
    envelope = Envelope(sender_her_id=HOSPITAL, msg_id=str(uuid.uuid4()), gen_date="2026-13-45T99:00:00")
    spec = compose_apprec(
        envelope,
        rejected(apprec_error("S01")),
        virksomhet(registers, PORSGRUNN),
        apprec_id=str(uuid.uuid4()),
        now=datetime(2026, 11, 3, 8, 0, 0),
    )
    assert spec is not None
    validate_apprec(build_apprec(spec))
    assert spec.original_issue_date == datetime(2026, 11, 3, 8, 0, 0)


def test_kommune_settings_refuse_the_hospital_itself_and_production(
    tmp_path: Path, pki_template: Path
) -> None:
    """The receiver plays a receiving virksomhet in test mode only, never the hospital gateway itself."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url="amqp://x", database_url="sqlite://", queue_prefix=""
    )
    with pytest.raises(ConfigurationError):
        kommune_settings(settings, HOSPITAL)
    with pytest.raises(ConfigurationError):
        kommune_settings(settings.model_copy(update={"test_mode": False}), PORSGRUNN)
    kommune = kommune_settings(settings, PORSGRUNN)
    assert (kommune.role, kommune.our_her_id) == ("kommune", PORSGRUNN)
    assert kommune.effective_database_url.endswith(f"receivers/{PORSGRUNN}/{DATABASE_NAME}")


def test_an_unknown_her_id_is_refused_before_consuming(tmp_path: Path, pki_template: Path) -> None:
    """run_receiver for a HER-id the Adresseregister does not know stops with a configuration error."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url="amqp://x", database_url="sqlite://", queue_prefix=""
    )
    with pytest.raises(ConfigurationError, match="8199999"):
        run_receiver(settings, 8199999, ReceiverBehaviour(), threading.Event())


def test_the_receivers_folders_and_database_are_owner_only_under_umask_000(tmp_path: Path) -> None:
    """The receiver's folders are 0700 and its database 0600, whatever the umask."""
    settings = Settings(home=tmp_path / "home", test_mode=True)
    old = os.umask(0)
    try:
        folder = receiver_home(settings, PORSGRUNN)
        from edi_gateway.services.context import prepare_home

        prepare_home(kommune_settings(settings, PORSGRUNN))
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / DATABASE_NAME).stat().st_mode) == 0o600


def receiver_store(settings: Settings, her_id: int) -> Store:
    """The receiver's own database (a kommune gateway keeps its own)."""
    return Store.connect(kommune_settings(settings, her_id).effective_database_url)


def unsent_apprecs(settings: Settings, her_id: int) -> int:
    store = receiver_store(settings, her_id)
    try:
        return len(store.unsent_apprecs(datetime.now().astimezone() + timedelta(days=1)))
    finally:
        store.close()


# --- the receiver on the real broker ------------------------------------------------------------


@pytest.fixture
def running(start: Callable[..., RunningGateway]) -> RunningGateway:
    """A started gateway worker on its own queues (the receiver never touches the gateway's store)."""
    return start()


@pytest.fixture
def gateway(running: RunningGateway) -> RunningGateway:
    """The gateway's queues with its worker paused, so the AppRecs stay in the inbox for the test to read."""
    pause_worker(running)
    return running


def pause_worker(running: RunningGateway) -> None:
    """Stop the worker's loops (the worker consumes the inbox too) and keep the store open."""
    running.stop.set()
    if running.thread is not None:
        running.thread.join(30)
        assert not running.thread.is_alive(), "worker did not stop"


@contextmanager
def receiver(settings: Settings, her_id: int, behaviour: ReceiverBehaviour | None = None) -> Iterator[None]:
    """Run the receiver of ``her_id`` in a thread for the duration of the block."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=run_receiver,
        args=(settings, her_id, behaviour or ReceiverBehaviour(), stop, ready),
        daemon=True,
    )
    thread.start()
    try:
        assert ready.wait(30), "receiver did not start"
        yield
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "receiver did not stop"


def publish(
    settings: Settings, queue_her_id: int, *bodies: bytes, headers: dict[str, str | int] | None = None
) -> list[str]:
    """Publish MsgHead bodies straight onto a receiver's queue; return the AMQP message ids used."""
    ids = [str(uuid.uuid4()) for _ in bodies]
    outgoing = [
        Outgoing(
            exchange="",
            routing_key=f"{settings.queue_prefix}{queue_her_id}_async",
            body=body,
            message_id=message_id,
            correlation_id=None,
            content_type="application/xml",
            headers=headers or {},
        )
        for body, message_id in zip(bodies, ids, strict=True)
    ]
    with ConfirmingPublisher(settings.amqp_url, name="test publisher") as publisher:
        assert publisher.publish_many(outgoing, timeout=10) == [None] * len(outgoing)
    return ids


def inbox(running: RunningGateway, *, expect: int, timeout: float = 15) -> list[Delivery]:
    """Take up to ``expect`` AppRecs from the gateway's inbox, waiting at most ``timeout``."""
    queue = running.gateway.names.inbox(HOSPITAL)
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got += drain(running.settings.amqp_url, queue, max_messages=expect - len(got), timeout=0.3)
    return got


def opened(delivery: Delivery, registers: Registers, signer_her_id: int) -> AppRec:
    """Verify an AppRec against the register's certificate of its signer, validate it and read it."""
    cert = registers.address.certificate_pem(signer_her_id)
    assert cert is not None
    verified = verify_signed(delivery.body, cert_pem=cert)
    validate_apprec(verified.root)
    apprec = parse_apprec(verified.root)
    assert apprec.version == "1.1"
    assert delivery.message_id == apprec.id
    assert delivery.correlation_id == apprec.original_msg_id
    assert delivery.content_type == "application/xml"
    return apprec


def settle(running: RunningGateway, her_id: int, timeout: float = 10) -> None:
    """Wait until the receiver has taken everything from its queue."""
    queue = running.gateway.names.prefixed(f"{her_id}_async")
    running.wait_for(lambda: queue_depth(running.settings.amqp_url, queue) == 0, timeout)


@pytest.mark.rabbitmq
def test_a_gateway_message_is_answered_with_a_signed_ok_apprec(
    running: RunningGateway, registers: Registers
) -> None:
    """A request through the gateway reaches the kommune, whose receiver answers a signed, valid AppRec OK."""
    request = example("kommune-only")
    running.send(request)
    stored = running.wait_request(request["request_id"])
    (message,) = running.gateway.store.messages_for_request(stored.ref)
    pause_worker(running)
    with receiver(running.settings, message.receiver_org_her_id):
        (delivery,) = inbox(running, expect=1)
    apprec = opened(delivery, registers, message.receiver_org_her_id)
    assert apprec.status == AppRecStatus.OK and apprec.errors == ()
    assert apprec.original_msg_id == message.msg_id
    assert apprec.original_msg_type == "DIALOG_HELSEFAGLIG"
    assert apprec.sender.inst == PartyId(str(message.receiver_org_her_id), "HER")
    assert apprec.sender.dept == PartyId(str(message.receiver_her_id), "HER")
    assert apprec.receiver.inst == PartyId(str(HOSPITAL), "HER")
    assert apprec.receiver.dept == PartyId(str(UNIT), "HER")


@pytest.mark.rabbitmq
def test_the_gateway_accepts_the_receivers_apprecs(running: RunningGateway) -> None:
    """With the worker consuming its inbox, the receivers' AppRecs take the messages to acked."""
    request = example("kommune-and-fastlege")
    running.send(request)
    stored = running.wait_request(request["request_id"])
    messages = running.gateway.store.messages_for_request(stored.ref)
    with (
        receiver(running.settings, messages[0].receiver_org_her_id),
        receiver(running.settings, messages[1].receiver_org_her_id),
    ):
        running.wait_for(
            lambda: all(
                m.state == MessageState.ACKED for m in running.gateway.store.messages_for_request(stored.ref)
            )
        )


@pytest.mark.rabbitmq
def test_a_legekontor_answers_as_the_addressed_fastlege(
    running: RunningGateway, registers: Registers
) -> None:
    """The legekontor's AppRec names the addressed fastlege as HCPerson."""
    request = example("kommune-and-fastlege")
    running.send(request)
    running.wait_request(request["request_id"])
    pause_worker(running)
    with receiver(running.settings, SKIEN_LEGESENTER):
        (delivery,) = inbox(running, expect=1)
    apprec = opened(delivery, registers, SKIEN_LEGESENTER)
    assert apprec.status == AppRecStatus.OK
    assert apprec.sender.inst == PartyId(str(SKIEN_LEGESENTER), "HER")
    assert apprec.sender.person == PartyId(str(SKIEN_FASTLEGE), "HER")


REJECTIONS: list[tuple[str, str]] = [
    ("forged", "S01"),
    ("malformed", "T01"),
    ("schema-invalid", "T02"),
    ("wrong receiver", "E21"),
    ("bad patient id", "E31"),
    ("msg id not a uuid", "E10"),
]


def _rejection_body(kind: str, registers: Registers, pki: Path) -> tuple[bytes, str | None]:
    """The MsgHead for one rejection case and the MsgId it carries (None when unreadable)."""
    if kind == "malformed":
        return b"\x00<MsgHead", None
    receiver_ = (
        kommune_receiver(registers, SKIEN) if kind == "wrong receiver" else kommune_receiver(registers)
    )
    message = outbound(
        receiver_,
        patient_id=BAD_CHECKSUM if kind == "bad patient id" else PATIENT_ID,
        msg_id="melding-42" if kind == "msg id not a uuid" else None,
    )
    if kind == "forged":
        return signed(pki, message, key_her_id=SKIEN), message.msg_id
    if kind == "schema-invalid":
        return signed(pki, message, mutate=drop_mig_version), message.msg_id
    return signed(pki, message), message.msg_id


@pytest.mark.rabbitmq
@pytest.mark.parametrize(("kind", "code"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_a_faulty_message_is_answered_avvist_with_its_code(
    gateway: RunningGateway, registers: Registers, pki_template: Path, kind: str, code: str
) -> None:
    """Forged, malformed, invalid, misaddressed or bad-patient MsgHeads get Avvist with their own code."""
    body, msg_id = _rejection_body(kind, registers, pki_template)
    with receiver(gateway.settings, PORSGRUNN):
        # The AMQP envelope names the sender, as the gateway's own publishes do.
        (amqp_id,) = publish(gateway.settings, PORSGRUNN, body, headers={"sender_her_id": HOSPITAL})
        (delivery,) = inbox(gateway, expect=1)
    apprec = opened(delivery, registers, PORSGRUNN)
    assert apprec.status == AppRecStatus.AVVIST
    assert [e.code for e in apprec.errors] == [code]
    assert apprec.original_msg_id == (msg_id or amqp_id)
    assert apprec.receiver.inst == PartyId(str(HOSPITAL), "HER")
    assert apprec.sender.inst == PartyId(str(PORSGRUNN), "HER")


@pytest.mark.rabbitmq
def test_the_same_msghead_twice_gets_one_apprec_even_across_a_restart(
    gateway: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """A MsgHead delivered again (in one batch, later, or after a restart) is not answered a second time."""
    body = signed(pki_template, outbound(kommune_receiver(registers)))
    settings = gateway.settings
    with receiver(settings, PORSGRUNN):
        publish(settings, PORSGRUNN, body, body)
        assert len(inbox(gateway, expect=2, timeout=4)) == 1
        publish(settings, PORSGRUNN, body)
        settle(gateway, PORSGRUNN)
        assert inbox(gateway, expect=1, timeout=1.5) == []
    with receiver(settings, PORSGRUNN):
        publish(settings, PORSGRUNN, body)
        settle(gateway, PORSGRUNN)
        assert inbox(gateway, expect=1, timeout=1.5) == []
    store = receiver_store(settings, PORSGRUNN)
    try:
        assert len(store.received_list()) == 1
    finally:
        store.close()


@pytest.mark.rabbitmq
def test_a_forged_copy_does_not_stop_the_genuine_message_being_answered(
    gateway: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """A forged MsgHead reusing a MsgId is answered S01, and the genuine one with that MsgId still gets OK."""
    message = outbound(kommune_receiver(registers))
    forged = signed(pki_template, message, key_her_id=SKIEN)
    genuine = signed(pki_template, message)
    with receiver(gateway.settings, PORSGRUNN):
        publish(gateway.settings, PORSGRUNN, forged, genuine)
        deliveries = inbox(gateway, expect=2)
    statuses = sorted(opened(d, registers, PORSGRUNN).status for d in deliveries)
    assert statuses == [AppRecStatus.OK, AppRecStatus.AVVIST]


@pytest.mark.rabbitmq
def test_reject_option_answers_avvist_e35(
    gateway: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """With reject="E35" a faultless message is answered Avvist E35 (patient not known at the receiver)."""
    body = signed(pki_template, outbound(kommune_receiver(registers)))
    with receiver(gateway.settings, PORSGRUNN, ReceiverBehaviour(reject="E35")):
        publish(gateway.settings, PORSGRUNN, body)
        (delivery,) = inbox(gateway, expect=1)
    apprec = opened(delivery, registers, PORSGRUNN)
    assert apprec.status == AppRecStatus.AVVIST
    assert [e.code for e in apprec.errors] == ["E35"]


@pytest.mark.rabbitmq
def test_reject_every_second_message(
    gateway: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """With reject_every=2, every second message is answered Avvist E35 and the others OK."""
    bodies = [signed(pki_template, outbound(kommune_receiver(registers))) for _ in range(4)]
    with receiver(gateway.settings, PORSGRUNN, ReceiverBehaviour(reject_every=2)):
        publish(gateway.settings, PORSGRUNN, *bodies)
        deliveries = inbox(gateway, expect=4)
    statuses = [opened(d, registers, PORSGRUNN).status for d in deliveries]
    assert sorted(statuses) == [AppRecStatus.OK, AppRecStatus.OK, AppRecStatus.AVVIST, AppRecStatus.AVVIST]


@pytest.mark.rabbitmq
def test_silent_consumes_and_answers_nothing(
    gateway: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """A silent receiver takes the message off its queue and sends no AppRec."""
    body = signed(pki_template, outbound(kommune_receiver(registers)))
    with receiver(gateway.settings, PORSGRUNN, ReceiverBehaviour(silent=True)):
        publish(gateway.settings, PORSGRUNN, body)
        settle(gateway, PORSGRUNN)
        assert inbox(gateway, expect=1, timeout=1.5) == []


@pytest.mark.rabbitmq
def test_duplicate_apprec_sends_the_same_apprec_twice(
    gateway: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """With duplicate_apprec every AppRec goes out twice: same Id, same bytes."""
    body = signed(pki_template, outbound(kommune_receiver(registers)))
    with receiver(gateway.settings, PORSGRUNN, ReceiverBehaviour(duplicate_apprec=True)):
        publish(gateway.settings, PORSGRUNN, body)
        first, second = inbox(gateway, expect=2)
    assert first.body == second.body and first.message_id == second.message_id
    assert opened(first, registers, PORSGRUNN).status == AppRecStatus.OK


@pytest.mark.rabbitmq
def test_a_delayed_answer_comes_late_and_survives_a_restart(
    gateway: RunningGateway, registers: Registers, pki_template: Path
) -> None:
    """With delay_s the AppRec is not sent before its time, and a restart in between does not lose it."""
    message = outbound(kommune_receiver(registers))
    settings = gateway.settings
    late = ReceiverBehaviour(delay_s=3.0)
    with receiver(settings, PORSGRUNN, late):
        started = time.monotonic()
        publish(settings, PORSGRUNN, signed(pki_template, message))
        gateway.wait_for(lambda: unsent_apprecs(settings, PORSGRUNN) == 1)
        settle(gateway, PORSGRUNN)
    assert inbox(gateway, expect=1, timeout=0.5) == []
    with receiver(settings, PORSGRUNN, late):
        (delivery,) = inbox(gateway, expect=1, timeout=10)
    assert time.monotonic() - started >= 3.0
    assert opened(delivery, registers, PORSGRUNN).original_msg_id == message.msg_id
    assert unsent_apprecs(settings, PORSGRUNN) == 0
