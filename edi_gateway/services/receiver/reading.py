"""Reading a received MsgHead and composing the AppRec that answers it.

:func:`read_message` performs steps 1-3 of the receiver's checks: the hardened parser reads the bytes
(``T01``), the signature verifies against the certificate the Adresseregister holds for the *claimed*
sender (``S01``), and the verified document is a valid MsgHead + Dialogmelding (``T02``). Whatever
can be read of the addressing is kept in an :class:`Envelope`, so that even a message that cannot be
trusted is answered; :func:`with_transport` completes it from the AMQP envelope.

Every HER-id is read one way, by :func:`edi_gateway.xml.msghead.party_her_id` on the tree the hardened
parser gave (comments and processing instructions dropped, CDATA and character references merged):
an ``Ident`` typed HER whose ``Id`` is not 1 to 9 ASCII digits, or a party carrying two different
HER-ids, is unreadable (``T99``), never read as some other number. The certificate is chosen by that
reading of the sender; the verified document must name the same sender, and a sending unit or person
the register lists under another virksomhet is refused (``S01``): the signer vouches for its own
virksomhet only.

:func:`compose_apprec` then says who answers whom about which message. Both are free of I/O beyond
the register lookup of the sender's certificate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from lxml import etree

from edi_gateway.domain.apprec import AppRecError, AppRecParty, PartyId
from edi_gateway.errors import SignatureInvalid, UnknownError, XmlRejected
from edi_gateway.registers.base import AddressRegister, Virksomhet
from edi_gateway.services.receiver.assessment import Verdict, own_persons, own_units
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import ERROR_TEXTS, AppRecSpec, apprec_error
from edi_gateway.xml.msghead import MsgHeadSummary, parse_msghead_summary, party_her_id
from edi_gateway.xml.safe import UnreadableIdentifier, parse_xml
from edi_gateway.xml.schemas import validate_msghead
from edi_gateway.xml.signing import verify_signed

MAX_DETAIL: Final = 200

_XS_DATETIME: Final = re.compile(r"-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
_MH: Final = {"mh": ns.MSGHEAD}
_HER: Final = "HER"


# --- reading the message ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who sent what, as far as it can be read: used to address the AppRec, never as business data.

    Attributes:
        sender_her_id: the sending virksomhet's HER-id.
        sender_unit_her_id: the sending unit (nested ``Organisation``), if any.
        sender_person_her_id: the sending person (``HealthcareProfessional``), if any.
        receiver_her_id: the addressed virksomhet.
        receiver_service_her_id: the addressed service (nested ``Organisation``), if any.
        receiver_person_her_id: the addressed person (``HealthcareProfessional``), if any.
        msg_id: ``MsgInfo/MsgId`` as written.
        msg_type: ``MsgInfo/Type/@V``.
        msg_type_text: ``MsgInfo/Type/@DN``.
        gen_date: ``MsgInfo/GenDate`` as written.
    """

    sender_her_id: int | None = None
    sender_unit_her_id: int | None = None
    sender_person_her_id: int | None = None
    receiver_her_id: int | None = None
    receiver_service_her_id: int | None = None
    receiver_person_her_id: int | None = None
    msg_id: str | None = None
    msg_type: str | None = None
    msg_type_text: str | None = None
    gen_date: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """What reading one delivery found.

    Attributes:
        envelope: addressing facts; from the verified document once ``verified`` is True.
        verified: the signature verified against the claimed sender's registered certificate.
        summary: the verified, schema-valid MsgHead's facts; None when reading failed.
        failure: the ``T01``/``S01``/``T02``/``T99`` error that stopped reading, if any.
    """

    envelope: Envelope
    verified: bool = False
    summary: MsgHeadSummary | None = None
    failure: AppRecError | None = None


def read_message(body: bytes, address: AddressRegister) -> Reading:
    """Parse, verify and validate one received MsgHead (steps 1-3 of the package docstring).

    Args:
        body: the bytes as delivered.
        address: the Adresseregister holding the senders' certificates.

    Returns:
        The reading; ``summary`` is set only for a verified, schema-valid MsgHead.
    """
    try:
        claimed = parse_xml(body)
    except XmlRejected as exc:
        return Reading(Envelope(), failure=_failure("T01", exc))
    envelope = read_envelope(claimed)
    try:
        sender = read_envelope(claimed, strict=True).sender_her_id
    except UnreadableIdentifier as exc:
        return Reading(envelope, failure=_failure("T99", exc))
    if sender is None or (cert_pem := address.certificate_pem(sender)) is None:
        detail = "no certificate is registered for the claimed sender"
        return Reading(envelope, failure=apprec_error("S01", detail=detail))
    try:
        verified = verify_signed(body, cert_pem=cert_pem)
    except (SignatureInvalid, XmlRejected, UnknownError) as exc:
        return Reading(envelope, failure=_failure("S01", exc))
    # From here on only the content the signature covers counts.
    envelope = read_envelope(verified.root)
    try:
        signed_envelope = read_envelope(verified.root, strict=True)
    except UnreadableIdentifier as exc:
        return Reading(envelope, verified=True, failure=_failure("T99", exc))
    refusal = _sender_refusal(signed_envelope, sender, address)
    if refusal is not None:
        return Reading(envelope, failure=apprec_error("S01", detail=refusal))
    try:
        validate_msghead(verified.root)
        summary = parse_msghead_summary(verified.root)
    except XmlRejected as exc:
        return Reading(envelope, verified=True, failure=_failure(exc.code, exc))
    if _her_ids_of(summary) != _her_ids_of(signed_envelope):
        detail = "the MsgHead's HER-ids do not read the same way twice"
        return Reading(envelope, verified=True, failure=apprec_error("T99", detail=detail))
    return Reading(envelope, verified=True, summary=summary)


def _sender_refusal(envelope: Envelope, signer: int, address: AddressRegister) -> str | None:
    """Why the verified document's sender is not exactly the party whose certificate verified it."""
    if envelope.sender_her_id != signer:
        return "the signed document names another sender than the one whose certificate verified it"
    for her_id, what in ((envelope.sender_unit_her_id, "unit"), (envelope.sender_person_her_id, "person")):
        owner = address.parent_of(her_id) if her_id is not None else None
        if owner is not None and owner.her_id != signer:
            return f"the sending {what} is registered under another virksomhet than the signer"
    return None


def _her_ids_of(facts: Envelope | MsgHeadSummary) -> tuple[int | None, ...]:
    return (
        facts.sender_her_id,
        facts.sender_unit_her_id,
        facts.sender_person_her_id,
        facts.receiver_her_id,
        facts.receiver_service_her_id,
        facts.receiver_person_her_id,
    )


def read_envelope(root: etree._Element, *, strict: bool = False) -> Envelope:
    """Read the addressing facts of a MsgHead.

    Leniently by default (whatever is missing or unreadable is None), to have someone to answer even
    for a message that cannot be trusted. ``strict`` reads the same facts but refuses an unreadable
    or conflicting HER-id instead, for the decisions: whose certificate, who sent, who is addressed.

    Raises:
        UnreadableIdentifier: (``strict`` only) a HER-id that is not 1 to 9 ASCII digits, or a party
            with two different HER-ids.
    """
    info = root.find("mh:MsgInfo", _MH) if root.tag == ns.ns(ns.MSGHEAD, "MsgHead") else None
    if info is None:
        return Envelope()
    sender = info.find("mh:Sender/mh:Organisation", _MH)
    receiver = info.find("mh:Receiver/mh:Organisation", _MH)
    msg_type = info.find("mh:Type", _MH)

    def her_id(party: etree._Element | None) -> int | None:
        try:
            return party_her_id(party)
        except UnreadableIdentifier:
            if strict:
                raise
            return None

    return Envelope(
        sender_her_id=her_id(sender),
        sender_unit_her_id=her_id(_child(sender, "mh:Organisation")),
        sender_person_her_id=her_id(_child(sender, "mh:HealthcareProfessional")),
        receiver_her_id=her_id(receiver),
        receiver_service_her_id=her_id(_child(receiver, "mh:Organisation")),
        receiver_person_her_id=her_id(_child(receiver, "mh:HealthcareProfessional")),
        msg_id=_text(info.find("mh:MsgId", _MH)),
        msg_type=msg_type.get("V") if msg_type is not None else None,
        msg_type_text=msg_type.get("DN") if msg_type is not None else None,
        gen_date=_text(info.find("mh:GenDate", _MH)),
    )


def with_transport(envelope: Envelope, message_id: str | None, headers: Mapping[str, object]) -> Envelope:
    """Fill what the document did not say from the AMQP envelope (``message_id``, ``sender_her_id``...)."""
    header_sender = headers.get("sender_her_id")
    if isinstance(header_sender, bytes):
        header_sender = header_sender.decode("ascii", "replace")
    if isinstance(header_sender, str) and header_sender.isdigit():
        header_sender = int(header_sender)
    header_type = headers.get("msg_type")
    return replace(
        envelope,
        sender_her_id=envelope.sender_her_id
        or (header_sender if isinstance(header_sender, int) and header_sender > 0 else None),
        msg_id=envelope.msg_id or message_id or None,
        msg_type=envelope.msg_type or (header_type if isinstance(header_type, str) else None),
    )


def _failure(code: str, exc: Exception) -> AppRecError:
    # Our exception messages name elements, codes and positions only, never document content.
    return apprec_error(code if code in ERROR_TEXTS else "T99", detail=str(exc)[:MAX_DETAIL])


def _child(parent: etree._Element | None, path: str) -> etree._Element | None:
    return parent.find(path, _MH) if parent is not None else None


def _text(element: etree._Element | None) -> str | None:
    return (element.text or "").strip() if element is not None else None


# --- composing the AppRec (pure) ----------------------------------------------------------------


def compose_apprec(
    envelope: Envelope,
    verdict: Verdict,
    virksomhet: Virksomhet,
    *,
    apprec_id: str,
    now: datetime,
    recipient_name: str = "",
) -> AppRecSpec | None:
    """Say who answers whom about which message; None when there is nobody (or nothing) to answer.

    Sender = this virksomhet, with the addressed service as ``Dept`` or the addressed GP as
    ``HCPerson`` when the register lists them under it; Receiver = the original sender with its
    sending unit as ``Dept``; OriginalMsgId = (Type, GenDate, MsgId) of the message.

    Args:
        envelope: the message's addressing facts (completed from the transport).
        verdict: status and errors.
        virksomhet: the answering virksomhet.
        apprec_id: the AppRec's own id.
        now: the AppRec's GenDate, and the IssueDate when the message's own is unreadable.
        recipient_name: the original sender's name, when known.
    """
    if envelope.sender_her_id is None or not envelope.msg_id:
        return None
    service, person = envelope.receiver_service_her_id, envelope.receiver_person_her_id
    sender = AppRecParty(
        inst=_party_id(virksomhet.her_id),
        inst_name=virksomhet.organisation.name,
        dept=_party_id(service) if service in own_units(virksomhet) else None,
        person=_party_id(person) if person in own_persons(virksomhet) else None,
    )
    unit = envelope.sender_unit_her_id
    receiver = AppRecParty(
        inst=_party_id(envelope.sender_her_id),
        inst_name=recipient_name,
        dept=_party_id(unit) if unit is not None else None,
    )
    issue_date = envelope.gen_date
    return AppRecSpec(
        id=apprec_id,
        gen_date=now,
        status=verdict.status,
        errors=verdict.errors,
        sender=sender,
        receiver=receiver,
        original_msg_id=envelope.msg_id,
        original_msg_type=envelope.msg_type or "",
        original_msg_type_text=envelope.msg_type_text or None,
        original_issue_date=issue_date if issue_date is not None and _is_xs_datetime(issue_date) else now,
    )


def _is_xs_datetime(value: str) -> bool:
    """Whether ``value`` can stand as an ``xs:dateTime`` (else the AppRec would not validate)."""
    if _XS_DATETIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _party_id(her_id: int) -> PartyId:
    return PartyId(str(her_id), _HER)
