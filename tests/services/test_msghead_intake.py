"""EPR-built MsgHeads: checked, signed by the gateway, or refused with a clear code."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

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
    Service,
)
from edi_gateway.errors import RequestRejected
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.msghead_intake import is_xml, read_msghead_request
from edi_gateway.transport.names import Names
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.msghead import build_msghead, to_bytes
from edi_gateway.xml.signing import Signer, verify_signed

HOSPITAL = Organisation(8100001, "Sykehuset Telemark HF")
SKIEN = Organisation(8100010, "Skien kommune")
KX06 = Service(8100011, "Kreftkoordinator", "KX06")


def unsigned_msghead(
    *,
    sender: Organisation = HOSPITAL,
    receiver_org: Organisation = SKIEN,
    service: Service = KX06,
    patient_id: str = "23915700969",
) -> bytes:
    message = OutboundMessage(
        msg_id="0b7e7c3e-5d55-4a5c-9a57-3d7e6f1b2c11",
        gen_date=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
        msg_type=Coded("DIALOG_HELSEFAGLIG", "Helsefaglig dialog", ""),
        sender=Sender(sender),
        receiver=Receiver(ReceiverKind.KOMMUNE, receiver_org, "8100010_async", service=service),
        patient=Patient(patient_id, "FNR", "Knut", "Hansen"),
        notat=Notat(
            Coded("6", "Henvendelse om pasient", "2.16.578.1.12.4.1.1.7322"),
            "Tema",
            "Tekst",
            Contact("Nina Kreftsykepleier", "Forløpskoordinator kreft", "+4735003500"),
            Coded("17", "Forløpskoordinator kreft", "2.16.578.1.12.4.1.1.9034"),
        ),
    )
    return to_bytes(build_msghead(message))


@pytest.fixture(scope="module")
def context(pki_template: Path):  # type: ignore[no-untyped-def]
    registers = load_fixture_registers(resource_dir("fixtures") / "registers", cert_dir=pki_template)
    signer = Signer.from_files(pki_template / "8100001.key.pem", pki_template / "8100001.cert.pem")
    return registers, signer


def _read(context, body: bytes, *, test_mode: bool = True):  # type: ignore[no-untyped-def]
    registers, signer = context
    return read_msghead_request(
        body,
        max_bytes=1_000_000,
        test_mode=test_mode,
        our_her_id=8100001,
        registers=registers,
        signer=signer,
        names=Names("p."),
    )


def test_valid_msghead_is_signed_and_addressed_from_the_register(context) -> None:  # type: ignore[no-untyped-def]
    """A valid unsigned MsgHead comes back signed with our key, for the register's queue, keyed by its MsgId."""
    intake = _read(context, unsigned_msghead())
    assert intake.request_id == "0b7e7c3e-5d55-4a5c-9a57-3d7e6f1b2c11"
    message = intake.message
    assert (message.receiver_org_her_id, message.receiver_her_id, message.queue) == (
        8100010,
        8100011,
        "p.8100010_async",
    )
    registers, _ = context
    verify_signed(message.signed_xml, cert_pem=registers.address.certificate_pem(8100001))


def _codes(context, body: bytes, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(RequestRejected) as info:
        _read(context, body, **kwargs)
    return info.value.codes


def test_refusals(context) -> None:  # type: ignore[no-untyped-def]
    """Malformed, invalid, signed, foreign-sender, unknown-receiver and bad-patient MsgHeads are refused."""
    valid = unsigned_msghead()
    _, signer = context
    root = etree.fromstring(valid)
    assert _codes(context, b"<MsgHead") == ["msghead.not_well_formed"]
    assert _codes(context, b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>') == ["msghead.not_well_formed"]
    missing = etree.fromstring(valid)
    info = missing.find(ns.ns(ns.MSGHEAD, "MsgInfo"))
    info.remove(info.find(ns.ns(ns.MSGHEAD, "MsgId")))
    assert _codes(context, etree.tostring(missing)) == ["msghead.invalid"]
    assert _codes(context, signer.sign(root)) == ["msghead.signed"]
    assert _codes(context, unsigned_msghead(sender=Organisation(8100005, "Porsgrunn kommune"))) == [
        "msghead.sender"
    ]
    assert _codes(context, unsigned_msghead(receiver_org=Organisation(999999, "Ukjent"))) == [
        "routing.receiver_unknown"
    ]
    porsgrunn_service = Service(8100006, "Kreftkoordinator", "KX06")
    assert _codes(context, unsigned_msghead(service=porsgrunn_service)) == ["routing.receiver_unknown"]
    assert _codes(context, unsigned_msghead(patient_id="23915700968")) == ["person_id.checksum"]
    assert _codes(context, unsigned_msghead(), test_mode=False) == ["person_id.synthetic_not_allowed"]


def test_content_type_recognition() -> None:
    """application/xml and text/xml (with parameters) are XML; JSON and missing types are not."""
    assert is_xml("application/xml") and is_xml("text/xml; charset=utf-8")
    assert not is_xml("application/json") and not is_xml(None)
