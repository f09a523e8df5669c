"""Intake of a complete, unsigned MsgHead from the EPR (``application/xml`` on ``edi.requests``).

Some EPRs build the MsgHead themselves (DESIGN §3). The gateway then does not route or write the
content: it checks the document (hardened parse, official XSDs, unsigned, sent by us, addressed to a
party the Adresseregister knows, a valid patient id), signs it, and delivers it to the receiver's
queue like any other message. The document's own MsgId is the idempotency key: the same MsgHead sent
again never yields a second message.

Consent is the EPR's responsibility for a MsgHead it built itself: there is no consent field to check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from edi_gateway.domain.identifiers import InvalidIdentifier, classify_person_id
from edi_gateway.domain.model import ReceiverKind
from edi_gateway.errors import Problem, RequestRejected, XmlRejected
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.store.records import NewMessage
from edi_gateway.transport.names import Names
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.msghead import MsgHeadSummary, parse_msghead_summary
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.schemas import validate_msghead
from edi_gateway.xml.signing import Signer

XML_TYPES = frozenset({"application/xml", "text/xml"})


def is_xml(content_type: str | None) -> bool:
    """Whether a delivery's content type announces XML (parameters such as charset ignored)."""
    return (content_type or "").split(";")[0].strip().lower() in XML_TYPES


@dataclass(frozen=True, slots=True)
class MsgHeadIntake:
    """A checked and signed EPR-built MsgHead, ready to store and publish.

    Attributes:
        request_id: the idempotency key: the MsgHead's own MsgId.
        message: the message to store, with the signed bytes.
        kommunenummer: where the receiving virksomhet is (for reports).
    """

    request_id: str
    message: NewMessage
    kommunenummer: str


def _reject(code: str, reason: str, field: str | None = None) -> RequestRejected:
    return RequestRejected([Problem(code, reason, field)])


def read_msghead_request(
    body: bytes,
    *,
    max_bytes: int,
    test_mode: bool,
    our_her_id: int,
    registers: Registers,
    signer: Signer,
    names: Names,
) -> MsgHeadIntake:
    """Check an EPR-built MsgHead and sign it.

    Raises:
        RequestRejected: with codes ``msghead.not_well_formed``, ``msghead.invalid``, ``msghead.signed``,
            ``msghead.msg_id``, ``msghead.sender``, ``routing.receiver_unknown`` or ``person_id.*``.
    """
    try:
        root = parse_xml(body, max_bytes=max_bytes)
    except XmlRejected as exc:
        raise _reject(
            "msghead.not_well_formed", f"The MsgHead is not well-formed or uses refused XML: {exc}"
        ) from exc
    if root.find(ns.ns(ns.XMLDSIG, "Signature")) is not None:
        raise _reject(
            "msghead.signed", "Send the MsgHead unsigned: the gateway signs it with the hospital's key."
        )
    try:
        validate_msghead(root)
        summary = parse_msghead_summary(root)
    except XmlRejected as exc:
        raise _reject(
            "msghead.invalid", f"The MsgHead does not follow MsgHead v1.2 / its payload schema: {exc}"
        ) from exc
    if not _is_uuid(summary.msg_id):
        raise _reject(
            "msghead.msg_id", "The MsgId must be a UUID (36 characters); it identifies the message."
        )
    if summary.sender_her_id != our_her_id:
        raise _reject(
            "msghead.sender", f"The sender must be this gateway's virksomhet (HER-id {our_her_id})."
        )
    virksomhet = _receiver(summary, registers)
    _check_patient(summary, test_mode=test_mode)
    addressed = summary.receiver_service_her_id or summary.receiver_person_her_id or summary.receiver_her_id
    message = NewMessage(
        msg_id=summary.msg_id,
        receiver_kind=_kind(virksomhet),
        receiver_org_her_id=virksomhet.her_id,
        receiver_her_id=addressed,
        receiver_name=virksomhet.organisation.name,
        queue=names.prefixed(virksomhet.queue),
        kommunenummer=virksomhet.kommunenummer,
        signed_xml=signer.sign(root),
        msg_type=summary.msg_type,
        conversation_ref=summary.conversation_ref,
        deadline_at=None,
    )
    return MsgHeadIntake(summary.msg_id, message, virksomhet.kommunenummer)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _receiver(summary: MsgHeadSummary, registers: Registers) -> Virksomhet:
    virksomhet = registers.address.virksomhet(summary.receiver_her_id)
    if virksomhet is None:
        raise _reject(
            "routing.receiver_unknown",
            f"HER-id {summary.receiver_her_id} is not a virksomhet in the Adresseregister.",
        )
    for inner in (summary.receiver_service_her_id, summary.receiver_person_her_id):
        owner = registers.address.parent_of(inner) if inner is not None else virksomhet
        if owner is None or owner.her_id != virksomhet.her_id:
            raise _reject(
                "routing.receiver_unknown",
                f"HER-id {inner} is not registered under {virksomhet.organisation.name}.",
            )
    return virksomhet


def _check_patient(summary: MsgHeadSummary, *, test_mode: bool) -> None:
    if summary.patient_id is None:
        return  # some message types carry no patient; the schema decides whether one is required
    try:
        classify_person_id(summary.patient_id, test_mode=test_mode)
    except InvalidIdentifier as exc:
        raise _reject(exc.code, exc.reason, "MsgHead/MsgInfo/Patient/Ident/Id") from exc


def _kind(virksomhet: Virksomhet) -> ReceiverKind:
    return ReceiverKind.FASTLEGE if virksomhet.kind == "legekontor" else ReceiverKind.KOMMUNE
