"""AppRecs closing the loop on the real RabbitMQ and database: correlation, parking, overdue."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from edi_gateway.domain.acks import SenderIdentity
from edi_gateway.domain.apprec import AppRecError, AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.states import MessageState
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.acknowledgements import SignaturePolicy, Unreadable, read_apprec_delivery
from edi_gateway.store.records import MessageRecord
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from edi_gateway.xml.apprec import AppRecSpec, apprec_error, build_apprec
from edi_gateway.xml.msghead import to_bytes
from edi_gateway.xml.signing import Signer
from tests.conftest import data_files, drop_vhost_connections
from tests.id_spellings import SAME_VALUE, SIGNABLE, Spelling, respelled
from tests.services.conftest import (
    RunningGateway,
    example,
    make_settings,
    start_gateway,
    stop_gateway,
)

HOSPITAL = 8100001
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


def _her(value: int) -> PartyId:
    return PartyId(str(value), "HER")


def apprec_for(
    message: MessageRecord,
    *,
    status: AppRecStatus = AppRecStatus.OK,
    errors: tuple[AppRecError, ...] = (),
    sender_org: int | None = None,
    apprec_id: str | None = None,
    original_msg_id: str | None = None,
) -> bytes:
    """An unsigned AppRec v1.1 answering ``message`` (from its receiver unless ``sender_org`` says else)."""
    org = sender_org or message.receiver_org_her_id
    addressed = message.receiver_her_id if sender_org is None else None
    sender = AppRecParty(
        inst=_her(org),
        dept=_her(addressed) if addressed and message.receiver_kind == "kommune" else None,
        person=_her(addressed) if addressed and message.receiver_kind == "fastlege" else None,
    )
    spec = AppRecSpec(
        id=apprec_id or str(uuid.uuid4()),
        gen_date=datetime.now(UTC),
        status=status,
        errors=errors,
        sender=sender,
        receiver=AppRecParty(inst=_her(HOSPITAL)),
        original_msg_id=original_msg_id or message.msg_id,
        original_msg_type=message.msg_type,
        original_issue_date=message.created_at,
    )
    return to_bytes(build_apprec(spec))


def signed_by(running: RunningGateway, her_id: int, unsigned: bytes) -> bytes:
    """Sign an AppRec with a virksomhet's key from the test PKI."""
    pki = running.settings.pki_dir
    signer = Signer.from_files(pki / f"{her_id}.key.pem", pki / f"{her_id}.cert.pem")
    from edi_gateway.xml.safe import parse_xml

    return signer.sign(parse_xml(unsigned))


def to_inbox(running: RunningGateway, *bodies: bytes) -> None:
    """Publish AppRecs to the gateway's inbox."""
    queue = running.gateway.names.inbox(running.settings.our_her_id)
    with ConfirmingPublisher(running.settings.amqp_url, name="test receiver") as publisher:
        results = publisher.publish_many(
            [
                Outgoing(
                    exchange="",
                    routing_key=queue,
                    body=b,
                    message_id=str(uuid.uuid4()),
                    correlation_id=None,
                    content_type="application/xml",
                )
                for b in bodies
            ],
            timeout=10,
        )
    assert results == [None] * len(bodies)


def sent_message(running: RunningGateway, name: str = "kommune-only") -> MessageRecord:
    """Send an example request and return its (kommune) message once sent."""
    request = example(name)
    running.send(request)
    stored = running.wait_request(request["request_id"])
    return running.gateway.store.messages_for_request(stored.ref)[0]


def wait_state(running: RunningGateway, msg_id: str, state: MessageState) -> MessageRecord:
    store = running.gateway.store
    running.wait_for(lambda: store.get_message(msg_id).state == state)
    return store.get_message(msg_id)


def alerts(running: RunningGateway, expect: int) -> list[dict[str, Any]]:
    return [e for e in running.events(expect=expect) if e.get("type") == "alert"]


pytestmark = pytest.mark.rabbitmq


def test_ok_apprec_acks_the_message(running: RunningGateway) -> None:
    """A signed AppRec status 1 from the receiver moves the message to acked and is stored with it."""
    message = sent_message(running)
    to_inbox(running, signed_by(running, message.receiver_org_her_id, apprec_for(message)))
    acked = wait_state(running, message.msg_id, MessageState.ACKED)
    (stored,) = running.gateway.store.apprecs_for_message(acked.msg_id)
    assert stored.status == AppRecStatus.OK and stored.signature == "verified"
    states = [e["state"] for e in running.events(expect=3) if e.get("msg_id") == message.msg_id]
    assert states == ["sent", "acked"]


def test_rejecting_receiver_ends_rejected_with_errors(running: RunningGateway) -> None:
    """Status 2 ends rejected_by_receiver, the 8221 codes and texts stored and reported."""
    message = sent_message(running)
    apprec = apprec_for(message, status=AppRecStatus.AVVIST, errors=(apprec_error("E35"),))
    to_inbox(running, signed_by(running, message.receiver_org_her_id, apprec))
    wait_state(running, message.msg_id, MessageState.REJECTED_BY_RECEIVER)
    (stored,) = running.gateway.store.apprecs_for_message(message.msg_id)
    assert [p.code for p in stored.errors] == ["apprec.E35"] and stored.errors[0].reason
    event = next(e for e in running.events(expect=3) if e["state"] == "rejected_by_receiver")
    assert event["errors"][0]["code"] == "apprec.E35"
    request = running.gateway.store.get_request_by_ref(message.request_ref)
    assert request is not None and event["request_id"] == request.request_id  # the EPR can match it


def test_ok_with_errors_is_acked_with_errors(running: RunningGateway) -> None:
    """Status 3 ends acked_with_errors."""
    message = sent_message(running)
    apprec = apprec_for(message, status=AppRecStatus.OK_FEIL_I_DELMELDING, errors=(apprec_error("X99"),))
    to_inbox(running, signed_by(running, message.receiver_org_her_id, apprec))
    wait_state(running, message.msg_id, MessageState.ACKED_WITH_ERRORS)


def test_apprec_from_another_her_id_is_parked_and_changes_nothing(running: RunningGateway) -> None:
    """An AppRec whose sender is not the message's receiver is parked as suspicious, with an alert."""
    message = sent_message(running)
    other = 8100015  # Notodden kommune, not the receiver
    to_inbox(running, signed_by(running, other, apprec_for(message, sender_org=other)))
    store = running.gateway.store
    running.wait_for(lambda: store.count_parked() == 1)
    (parked,) = store.list_parked()
    assert parked.code == "apprec.wrong_sender" and parked.msg_id == message.msg_id
    assert store.get_message(message.msg_id).state == MessageState.SENT
    assert [a["kind"] for a in alerts(running, 3)] == ["apprec.wrong_sender"]


def test_forged_signature_is_parked(running: RunningGateway) -> None:
    """An AppRec claiming the receiver but signed with another key is parked; the message stays sent."""
    message = sent_message(running)
    forged = signed_by(running, 8100015, apprec_for(message))  # claims the receiver, signed by Notodden
    to_inbox(running, forged)
    store = running.gateway.store
    running.wait_for(lambda: store.count_parked() == 1)
    assert store.list_parked()[0].code == "apprec.bad_signature"
    assert store.get_message(message.msg_id).state == MessageState.SENT


def test_replayed_apprec_is_a_no_op_and_conflict_is_flagged(running: RunningGateway) -> None:
    """The same AppRec again changes nothing; the same AppRec id with other content is parked as a conflict."""
    message = sent_message(running)
    apprec_id = str(uuid.uuid4())
    first = signed_by(running, message.receiver_org_her_id, apprec_for(message, apprec_id=apprec_id))
    to_inbox(running, first)
    wait_state(running, message.msg_id, MessageState.ACKED)
    changed = apprec_for(
        message, apprec_id=apprec_id, status=AppRecStatus.AVVIST, errors=(apprec_error("E10"),)
    )
    to_inbox(running, first, signed_by(running, message.receiver_org_her_id, changed))
    store = running.gateway.store
    running.wait_for(lambda: store.count_parked() == 1)
    assert store.list_parked()[0].code == "apprec.conflict"
    assert len(store.apprecs_for_message(message.msg_id)) == 1
    assert store.get_message(message.msg_id).state == MessageState.ACKED


def test_apprec_for_unknown_msg_id_and_malformed_ones_are_parked(running: RunningGateway) -> None:
    """An AppRec for a MsgId we never sent, and bytes that are not an AppRec, are parked, not requeued."""
    message = sent_message(running)
    unknown = apprec_for(message, original_msg_id=str(uuid.uuid4()))
    to_inbox(running, signed_by(running, message.receiver_org_her_id, unknown), b"<not-xml", b"<AppRec/>")
    store = running.gateway.store
    running.wait_for(lambda: store.count_parked() == 3)
    assert sorted(p.code for p in store.list_parked()) == [
        "apprec.malformed",
        "apprec.unknown_message",
        "apprec.unsigned",  # the required policy checks for a signature before anything else
    ]
    assert store.get_message(message.msg_id).state == MessageState.SENT


def test_overdue_once_then_a_late_apprec_still_lands(start: Callable[..., RunningGateway]) -> None:
    """With a tiny deadline the message goes overdue exactly once; a late AppRec then acks it."""
    running = start(apprec_deadline_s=0.5, overdue_sweep_interval_s=0.2)
    message = sent_message(running)
    wait_state(running, message.msg_id, MessageState.OVERDUE)
    events = running.events(expect=4, timeout=3)
    assert [e["state"] for e in events if e.get("msg_id") == message.msg_id].count("overdue") == 1
    to_inbox(running, signed_by(running, message.receiver_org_her_id, apprec_for(message)))
    wait_state(running, message.msg_id, MessageState.ACKED)


def test_quiet_receiver_alerts_once_and_recovers_once(start: Callable[..., RunningGateway]) -> None:
    """Three overdue messages in a row raise one quiet alert; the next AppRec raises one recovered alert."""
    running = start(apprec_deadline_s=0.3, overdue_sweep_interval_s=0.2, quiet_threshold=2)
    messages = [sent_message(running) for _ in range(3)]  # all to Kviteseid
    for m in messages:
        wait_state(running, m.msg_id, MessageState.OVERDUE)
    to_inbox(running, signed_by(running, messages[0].receiver_org_her_id, apprec_for(messages[0])))
    wait_state(running, messages[0].msg_id, MessageState.ACKED)
    kinds = [a["kind"] for a in alerts(running, 20)]
    assert kinds == ["receiver_quiet", "receiver_recovered"]


def test_automatic_resend_uses_the_same_msg_id(start: Callable[..., RunningGateway]) -> None:
    """Configured resends publish the stored bytes again with the same MsgId, then the message goes overdue."""
    running = start(apprec_deadline_s=1.5, resend_after_s=0.3, max_resends=2, overdue_sweep_interval_s=0.1)
    message = sent_message(running)
    overdue = wait_state(running, message.msg_id, MessageState.OVERDUE)
    assert overdue.resends == 2
    deliveries = running.receiver_deliveries(f"{message.receiver_org_her_id}_async", expect=4, timeout=2)
    assert [d.message_id for d in deliveries] == [message.msg_id] * 3
    assert {d.body for d in deliveries} == {message.signed_xml}


REGISTERS = load_fixture_registers(resource_dir("fixtures") / "registers")


APPREC_SAMPLES = [str(p.relative_to(SAMPLES)) for p in data_files(SAMPLES / "apprec", "**/*.xml")]


def test_there_are_apprec_samples() -> None:
    """The sample set is present (a missing folder must not silently run no sample test)."""
    assert len(APPREC_SAMPLES) >= 10


@pytest.mark.parametrize("sample", APPREC_SAMPLES)
def test_unsigned_samples_read_under_optional_policy(sample: str) -> None:
    """Every valid AppRec sample reads under the optional policy; under required it is parked as unsigned."""
    data = (SAMPLES / sample).read_bytes()
    optional = read_apprec_delivery(data, policy=SignaturePolicy.OPTIONAL, registers=REGISTERS)
    required = read_apprec_delivery(data, policy=SignaturePolicy.REQUIRED, registers=REGISTERS)
    if "unknown-status" in sample:
        assert isinstance(optional, Unreadable) and optional.code == "apprec.invalid"
    else:
        assert not isinstance(optional, Unreadable), optional
        assert optional.signature == "absent"
    assert isinstance(required, Unreadable) and required.code == "apprec.unsigned"


def test_unclassified_fault_parks_only_the_offending_apprec(running: RunningGateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An AppRec that makes the service fail for an unknown reason is parked; its batch-mates still land."""
    import edi_gateway.services.acknowledgements as acks

    first, second = sent_message(running), sent_message(running)
    poison_id = str(uuid.uuid4())
    real_decide = acks.decide

    def flaky_decide(apprec, **kwargs):  # type: ignore[no-untyped-def]
        if apprec.id == poison_id:
            raise RuntimeError("bug")
        return real_decide(apprec, **kwargs)

    monkeypatch.setattr(acks, "decide", flaky_decide)
    org = first.receiver_org_her_id
    to_inbox(
        running,
        signed_by(running, org, apprec_for(first, apprec_id=poison_id)),
        signed_by(running, org, apprec_for(second)),
    )
    wait_state(running, second.msg_id, MessageState.ACKED)
    store = running.gateway.store
    running.wait_for(lambda: store.count_parked() == 1)
    assert store.list_parked()[0].code == "apprec.internal_error"
    assert store.get_message(first.msg_id).state == MessageState.SENT


def test_broker_connections_dropped_with_apprecs_in_flight_lose_none(
    tmp_path: Path, pki_template: Path, sqlite_url: str, queue_prefix: str, own_vhost: tuple[str, str]
) -> None:
    """AppRecs waiting in the inbox survive the broker dropping every connection (as a restart does); the
    worker reconnects by itself and acks them all. Only this test's own vhost is disturbed."""
    vhost, url = own_vhost
    settings = make_settings(
        tmp_path, pki_template, amqp_url=url, database_url=sqlite_url, queue_prefix=queue_prefix
    )
    running = start_gateway(settings)
    try:
        requests = [example("kommune-only") for _ in range(20)]
        running.send(*requests)
        store = running.gateway.store
        messages = [
            store.messages_for_request(running.wait_request(r["request_id"]).ref)[0] for r in requests
        ]
        org = messages[0].receiver_org_her_id
        apprecs = [signed_by(running, org, apprec_for(m)) for m in messages]
        to_inbox(running, *apprecs[:10])  # these are in the inbox or being processed when connections drop
        drop_vhost_connections(vhost)
        to_inbox(running, *apprecs[10:])  # the same worker must have reconnected to take these
        drop_vhost_connections(vhost)
        running.wait_for(lambda: store.count_messages(state=MessageState.ACKED) == 20, timeout=120)
        assert store.count_parked() == 0
    finally:
        stop_gateway(running)


# --- forged sender identities ---------------------------------------------------------------------

PORSGRUNN = 8100005
PORSGRUNN_KREFTKOORDINATOR = 8100006
PORSGRUNN_TJENESTEKONTOR = 8100007
SKIEN = 8100010
SKIEN_KREFTKOORDINATOR = 8100011
SKIEN_FASTLEGE = 8100083  # works at Skien legesenter 1, another virksomhet than either kommune
UNREGISTERED = 8199999
APPREC_NS = "http://www.kith.no/xmlstds/apprec/2012-02-15"


def porsgrunn_apprec(
    *,
    msg_id: str,
    inst: int = PORSGRUNN,
    dept: int | None = PORSGRUNN_TJENESTEKONTOR,
    person: int | None = None,
    additional: tuple[str, ...] = (),
    extra_dept: int | None = None,
) -> Any:
    """An unsigned AppRec v1.1 (as a tree) whose sender claims to answer for Porsgrunn's tjenestekontor."""
    spec = AppRecSpec(
        id=str(uuid.uuid4()),
        gen_date=datetime.now(UTC),
        status=AppRecStatus.OK,
        sender=AppRecParty(
            inst=_her(inst),
            dept=_her(dept) if dept is not None else None,
            person=_her(person) if person is not None else None,
        ),
        receiver=AppRecParty(inst=_her(HOSPITAL)),
        original_msg_id=msg_id,
        original_msg_type="DIALOG_HELSEFAGLIG",
        original_issue_date=datetime.now(UTC),
    )
    root = build_apprec(spec)
    inst_element = root.find(f"{{{APPREC_NS}}}Sender/{{{APPREC_NS}}}HCP/{{{APPREC_NS}}}Inst")
    assert inst_element is not None
    anchor = inst_element.find(f"{{{APPREC_NS}}}Dept")
    if anchor is None:
        anchor = inst_element.find(f"{{{APPREC_NS}}}TypeId")
    assert anchor is not None
    if extra_dept is not None:
        second = etree.fromstring(etree.tostring(anchor))
        second.find(f"{{{APPREC_NS}}}Id").text = str(extra_dept)  # type: ignore[union-attr]
        anchor.addnext(second)
        anchor = second
    for value in additional:  # schema order in Inst: ..., Dept*, AdditionalId*, HCPerson*
        element = etree.Element(f"{{{APPREC_NS}}}AdditionalId")
        etree.SubElement(element, f"{{{APPREC_NS}}}Id").text = value
        etree.SubElement(element, f"{{{APPREC_NS}}}Type", V="HER", DN="HER-id")
        anchor.addnext(element)
        anchor = element
    return root


def sign_as(pki: Path, her_id: int, root: Any) -> bytes:
    """Sign with a virksomhet's key from the test PKI (the forger holds Skien's own key)."""
    return Signer.from_files(pki / f"{her_id}.key.pem", pki / f"{her_id}.cert.pem").sign(root)


def sign_written(pki: Path, her_id: int, root: Any, value: int, spelling: Spelling) -> bytes:
    """Write ``<Id>value</Id>`` as ``spelling`` says, then sign: the signer's own document reads that way."""
    written = respelled(to_bytes(root), value, spelling)
    return sign_as(pki, her_id, etree.fromstring(written))  # lxml's default parser keeps the comments


def reported_forgery(pki: Path, msg_id: str) -> bytes:
    """The AppRec of the report: Skien's key, ``<Id><!---->8100005</Id>`` and AdditionalId ``8100010<!---->999``."""
    signed = sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=msg_id, additional=("8100010999",)))
    signed = respelled(signed, PORSGRUNN, SAME_VALUE["empty comment first"])
    return respelled(signed, "8100010999", lambda v: "8100010<!---->999")


FORGERIES: dict[str, tuple[Callable[[Path, str], bytes], str]] = {
    "reported: comments hide digits of the ids": (reported_forgery, "apprec.unreadable_id"),
    "AdditionalId names the signer": (
        lambda pki, m: sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=m, additional=(str(SKIEN),))),
        "apprec.conflicting_sender",
    ),
    "Dept is the signer's service": (
        lambda pki, m: sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=m, dept=SKIEN_KREFTKOORDINATOR)),
        "apprec.conflicting_sender",
    ),
    "Inst is the signer, Dept the victim's service": (
        lambda pki, m: sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=m, inst=SKIEN)),
        "apprec.conflicting_sender",
    ),
    "HCPerson of a third virksomhet": (
        lambda pki, m: sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=m, person=SKIEN_FASTLEGE)),
        "apprec.conflicting_sender",
    ),
    "AdditionalId unknown to the register": (
        lambda pki, m: sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=m, additional=(str(UNREGISTERED),))),
        "apprec.unknown_sender",
    ),
    "no-break space inside the Inst id": (
        lambda pki, m: respelled(
            sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=m)), PORSGRUNN, lambda v: f"{v[:3]}\u00a0{v[3:]}"
        ),
        "apprec.unreadable_id",
    ),
    "a second Dept naming the signer's service": (
        lambda pki, m: sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=m, extra_dept=SKIEN_KREFTKOORDINATOR)),
        "apprec.invalid",
    ),
    **{
        f"the victim's ids written with {name}": (
            lambda pki, m, spelling=spelling: sign_written(
                pki, SKIEN, porsgrunn_apprec(msg_id=m), PORSGRUNN, spelling
            ),
            "apprec.bad_signature",
        )
        for name, spelling in SAME_VALUE.items()
    },
}


@pytest.fixture(scope="module")
def signed_registers(pki_template: Path) -> Any:
    """The fixture registers holding the session test PKI's certificates."""
    return load_fixture_registers(resource_dir("fixtures") / "registers", cert_dir=pki_template)


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_an_apprec_signed_by_one_kommune_never_reads_as_another(
    forgery: str, pki_template: Path, signed_registers: Any
) -> None:
    """Skien's key cannot make an AppRec read as Porsgrunn's: every such sender is refused with its code."""
    make, code = FORGERIES[forgery]
    read = read_apprec_delivery(
        make(pki_template, str(uuid.uuid4())), policy=SignaturePolicy.REQUIRED, registers=signed_registers
    )
    assert isinstance(read, Unreadable)
    assert read.code == code


@pytest.mark.parametrize("spelling", sorted(SIGNABLE))
@pytest.mark.parametrize("where", [PORSGRUNN, PORSGRUNN_TJENESTEKONTOR])
def test_the_real_sender_verifies_however_its_ids_are_written(
    where: int, spelling: str, pki_template: Path, signed_registers: Any
) -> None:
    """Porsgrunn's own AppRec verifies with any spelling of its ids and reads as Porsgrunn, ids intact."""
    signed = sign_written(
        pki_template, PORSGRUNN, porsgrunn_apprec(msg_id=str(uuid.uuid4())), where, SAME_VALUE[spelling]
    )
    read = read_apprec_delivery(
        signed,
        policy=SignaturePolicy.REQUIRED,
        registers=signed_registers,
    )
    assert not isinstance(read, Unreadable), read
    assert read.signature == "verified" and read.sender == SenderIdentity(PORSGRUNN)
    assert read.apprec.sender.inst == _her(PORSGRUNN) and read.apprec.sender.dept == _her(
        PORSGRUNN_TJENESTEKONTOR
    )


def test_a_signed_processing_instruction_fails_closed(pki_template: Path, signed_registers: Any) -> None:
    """An AppRec signed with a processing instruction inside an id is refused as badly signed, never misread."""
    spelling = SAME_VALUE["processing instruction inside"]
    signed = sign_written(
        pki_template, PORSGRUNN, porsgrunn_apprec(msg_id=str(uuid.uuid4())), PORSGRUNN, spelling
    )
    read = read_apprec_delivery(signed, policy=SignaturePolicy.REQUIRED, registers=signed_registers)
    assert isinstance(read, Unreadable) and read.code == "apprec.bad_signature"


def test_an_unsigned_apprec_with_conflicting_ids_reads_but_names_no_sender(signed_registers: Any) -> None:
    """Under the optional policy an unsigned AppRec naming two kommuner is read with a refused sender identity."""
    data = to_bytes(porsgrunn_apprec(msg_id=str(uuid.uuid4()), additional=(str(SKIEN),)))
    read = read_apprec_delivery(data, policy=SignaturePolicy.OPTIONAL, registers=signed_registers)
    assert not isinstance(read, Unreadable)
    assert read.sender.her_id is None and read.sender.code == "apprec.conflicting_sender"


def alerts_seen(running: RunningGateway, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """The alert events published, read until ``count`` have arrived (status events are skipped)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        seen += [e for e in running.events(expect=1, timeout=0.5) if e.get("type") == "alert"]
    return seen


def porsgrunn_message(running: RunningGateway) -> MessageRecord:
    """Send a request for a patient living in Porsgrunn and return its message once sent."""
    request = example("kommune-only")
    request["patient"] = {**request["patient"], "kommunenummer": "4001"}
    running.send(request)
    message = running.gateway.store.messages_for_request(running.wait_request(request["request_id"]).ref)[0]
    assert (message.receiver_org_her_id, message.receiver_her_id) == (PORSGRUNN, PORSGRUNN_TJENESTEKONTOR)
    assert message.state == MessageState.SENT
    return message


def test_forged_apprecs_are_parked_with_an_alert_and_the_message_stays_sent(running: RunningGateway) -> None:
    """Through the broker and the store, no forged AppRec moves Porsgrunn's message; each is parked and alerted."""
    message = porsgrunn_message(running)
    pki = running.settings.pki_dir
    # The issue's forgery, a conflicting identity, and Porsgrunn's own key naming another of its services.
    other_service = sign_as(
        pki, PORSGRUNN, porsgrunn_apprec(msg_id=message.msg_id, additional=(str(PORSGRUNN_KREFTKOORDINATOR),))
    )
    forged = [
        reported_forgery(pki, message.msg_id),
        sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=message.msg_id, additional=(str(SKIEN),))),
        respelled(
            sign_as(pki, SKIEN, porsgrunn_apprec(msg_id=message.msg_id)), PORSGRUNN, SAME_VALUE["cdata"]
        ),
        other_service,
    ]
    to_inbox(running, *forged)
    store = running.gateway.store
    running.wait_for(lambda: store.count_parked() == len(forged))
    assert sorted(p.code for p in store.list_parked()) == [
        "apprec.bad_signature",
        "apprec.conflicting_sender",
        "apprec.unreadable_id",
        "apprec.wrong_sender",
    ]
    assert sorted(a["kind"] for a in alerts_seen(running, len(forged))) == sorted(
        p.code for p in store.list_parked()
    )
    assert store.get_message(message.msg_id).state == MessageState.SENT
    assert store.apprecs_for_message(message.msg_id) == []
    # Porsgrunn's genuine answer, its ids written with CDATA and a comment, still lands.
    genuine = sign_written(
        pki,
        PORSGRUNN,
        porsgrunn_apprec(msg_id=message.msg_id),
        PORSGRUNN_TJENESTEKONTOR,
        SAME_VALUE["cdata part"],
    )
    genuine = respelled(genuine, PORSGRUNN, SAME_VALUE["empty comment first"])
    to_inbox(running, genuine)
    wait_state(running, message.msg_id, MessageState.ACKED)
