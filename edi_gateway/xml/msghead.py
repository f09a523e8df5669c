"""Build a MsgHead v1.2 carrying a Dialogmelding v1.1 (helsefaglig dialog), and read a MsgHead's key facts.

The builder follows the official examples (Sarepta's *Helsefaglig dialog* samples) and DESIGN §2:

* ``MsgInfo``: Type, MIGversion, GenDate, MsgId, optional ``ConversationRef``, the Sender (our
  virksomhet, nested ``Organisation`` for the sending unit), the Receiver per tjenestebasert
  adressering (virksomhet + nested ``Organisation`` for a kommune service, or + ``HealthcareProfessional``
  for a fastlege) and the Patient.
* ``Document/RefDoc/Content``: one ``Dialogmelding`` with one ``Notat`` — TemaKodet, Tema, the text,
  the responsible contact at the sender, and "Kontakt hos mottaker" (9034 V=24) when one is known.

Every value enters the tree through lxml (never string templating), so ``<&>"'`` are escaped by the
serialiser. Characters XML 1.0 cannot carry at all (C0 controls other than tab/newline/CR, lone
surrogates, U+FFFE/U+FFFF) are dropped from text, since no receiver could parse them. Line breaks
in the note text are kept; a CR is written as ``&#13;`` and so survives a parse as well.

The result is unsigned; signing appends ``ds:Signature`` as MsgHead's last child.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from lxml import etree

from edi_gateway.domain.model import (
    Coded,
    Contact,
    Notat,
    Organisation,
    OutboundMessage,
    Patient,
    Practitioner,
    Receiver,
    ReceiverContact,
    Sender,
)
from edi_gateway.errors import XmlRejected
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.safe import UnreadableIdentifier, identifier_text, read_her_id

MIG_VERSION: Final = "v1.2 2006-05-24"

HER_ID: Final = Coded("HER", "HER-id", "2.16.578.1.12.4.1.1.9051")
ENH: Final = Coded("ENH", "Organisasjonsnummeret i Enhetsregisteret", "2.16.578.1.12.4.1.1.9051")
HPR: Final = Coded("HPR", "HPR-nummer", "2.16.578.1.12.4.1.1.8116")
FASTLEGE: Final = Coded("6", "Fastlege", "2.16.578.1.12.4.1.1.9034")
KONTAKT_HOS_MOTTAKER: Final = Coded("24", "Kontakt hos mottaker", "2.16.578.1.12.4.1.1.9034")
XML_INSTANCE: Final = Coded("XML", "XML-instans", "")

_PERSON_ID_OID: Final = "2.16.578.1.12.4.1.1.8116"
# Kodeverk 8116 (identifier types) -> display name; the keys are Patient.id_type values.
PERSON_ID_TYPES: Final[dict[str, str]] = {
    "FNR": "Fødselsnummer",
    "DNR": "D-nummer",
    "HNR": "H-nummer",
    "FHN": "FH-nummer",
}

# lxml spells the default namespace with the key None; lxml-stubs only allow str keys, hence Any.
_NsMap = dict[Any, str]
_ROOT_NSMAP: Final[_NsMap] = {None: ns.MSGHEAD, "fk1": ns.FK1}
_DIALOG_NSMAP: Final[_NsMap] = {None: ns.DIALOG_1_1}
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --- building -----------------------------------------------------------------------------------


def build_msghead(message: OutboundMessage) -> etree._Element:
    """Build the unsigned MsgHead v1.2 + Dialogmelding v1.1 for one receiver.

    Args:
        message: everything about the message; ``patient.id_type`` must be a kodeverk 8116 code
            in :data:`PERSON_ID_TYPES`.

    Returns:
        The ``MsgHead`` root element (its own document), ready for validation and signing.

    Raises:
        ValueError: when ``patient.id_type`` is not a known kodeverk 8116 code.
    """
    root = etree.Element(_mh("MsgHead"), nsmap=_ROOT_NSMAP)
    _add_msg_info(root, message)
    _add_document(root, message)
    return root


def to_bytes(root: etree._Element) -> bytes:
    """Serialise a MsgHead (or any element) as UTF-8 with an XML declaration, without pretty-printing."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _add_msg_info(root: etree._Element, message: OutboundMessage) -> None:
    info = _sub(root, _mh("MsgInfo"))
    _cs(info, _mh("Type"), message.msg_type)
    _sub(info, _mh("MIGversion"), MIG_VERSION)
    _sub(info, _mh("GenDate"), _timestamp(message))
    _sub(info, _mh("MsgId"), message.msg_id)
    if message.conversation_ref is not None:
        conversation = _sub(info, _mh("ConversationRef"))
        _sub(conversation, _mh("RefToParent"), message.conversation_ref)
        _sub(conversation, _mh("RefToConversation"), message.conversation_ref)
    _add_sender(info, message.sender)
    _add_receiver(info, message.receiver)
    _add_patient(info, message.patient)


def _add_sender(info: etree._Element, sender: Sender) -> None:
    organisation = _organisation(_sub(info, _mh("Sender")), sender.organisation)
    if sender.unit is not None:
        _organisation(organisation, sender.unit)


def _add_receiver(info: etree._Element, receiver: Receiver) -> None:
    organisation = _organisation(_sub(info, _mh("Receiver")), receiver.organisation)
    if receiver.service is not None:
        service = _sub(organisation, _mh("Organisation"))
        _sub(service, _mh("OrganisationName"), receiver.service.name)
        _mh_ident(service, str(receiver.service.her_id), HER_ID)
    if receiver.practitioner is not None:
        _add_fastlege(organisation, receiver.practitioner)


def _organisation(parent: etree._Element, party: Organisation) -> etree._Element:
    """``Organisation`` with name, HER-id and (when known) organisation number, in schema order."""
    organisation = _sub(parent, _mh("Organisation"))
    _sub(organisation, _mh("OrganisationName"), party.name)
    _mh_ident(organisation, str(party.her_id), HER_ID)
    if party.org_number:
        _mh_ident(organisation, party.org_number, ENH)
    return organisation


def _add_fastlege(organisation: etree._Element, practitioner: Practitioner) -> None:
    person = _sub(organisation, _mh("HealthcareProfessional"))
    _cv(person, _mh("RoleToPatient"), FASTLEGE)
    _sub(person, _mh("FamilyName"), practitioner.family_name)
    _sub(person, _mh("GivenName"), practitioner.given_name)
    _mh_ident(person, str(practitioner.her_id), HER_ID)
    if practitioner.hpr:
        _mh_ident(person, practitioner.hpr, HPR)


def _add_patient(info: etree._Element, patient: Patient) -> None:
    try:
        id_type = Coded(patient.id_type, PERSON_ID_TYPES[patient.id_type], _PERSON_ID_OID)
    except KeyError:
        raise ValueError(f"unknown person identifier type {patient.id_type!r} (kodeverk 8116)") from None
    element = _sub(info, _mh("Patient"))
    _sub(element, _mh("FamilyName"), patient.family_name)
    if patient.middle_name:
        _sub(element, _mh("MiddleName"), patient.middle_name)
    _sub(element, _mh("GivenName"), patient.given_name)
    _mh_ident(element, patient.id, id_type)


def _add_document(root: etree._Element, message: OutboundMessage) -> None:
    ref_doc = _sub(_sub(root, _mh("Document")), _mh("RefDoc"))
    _sub(ref_doc, _mh("IssueDate"), V=_timestamp(message))
    _cs(ref_doc, _mh("MsgType"), XML_INSTANCE)
    content = _sub(ref_doc, _mh("Content"))
    dialogmelding = etree.SubElement(content, _dia("Dialogmelding"), nsmap=_DIALOG_NSMAP)
    _add_notat(dialogmelding, message.notat)


def _add_notat(dialogmelding: etree._Element, notat: Notat) -> None:
    element = _sub(dialogmelding, _dia("Notat"))
    _cv(element, _dia("TemaKodet"), notat.tema_kodet)
    _sub(element, _dia("Tema"), notat.tema)
    _sub(element, _dia("TekstNotatInnhold"), notat.text)
    _add_sender_contact(element, notat.contact, notat.contact_role)
    if notat.receiver_contact is not None:
        _add_receiver_contact(element, notat.receiver_contact)


def _add_sender_contact(notat: etree._Element, contact: Contact, role: Coded) -> None:
    roller = _sub(notat, _dia("RollerRelatertNotat"))
    _cv(roller, _dia("RoleToPatient"), role)
    person = _sub(roller, _dia("HealthcareProfessional"))
    given, family = split_name(contact.name)
    _sub(person, _dia("FamilyName"), family)
    if given:
        _sub(person, _dia("GivenName"), given)
    tel = tel_uri(contact.phone)
    if tel is not None:
        _sub(_sub(person, _dia("TeleCom")), _fk1("TeleAddress"), V=tel)


def _add_receiver_contact(notat: etree._Element, contact: ReceiverContact) -> None:
    if contact.profession is None and not (contact.family_name or contact.given_name):
        return  # nothing that would tell the receiver whom to involve
    roller = _sub(notat, _dia("RollerRelatertNotat"))
    _cv(roller, _dia("RoleToPatient"), KONTAKT_HOS_MOTTAKER)
    person = _sub(roller, _dia("HealthcareProfessional"))
    if contact.profession is not None:
        _cs(person, _dia("TypeHealthcareProfessional"), contact.profession)
    if contact.family_name:
        _sub(person, _dia("FamilyName"), contact.family_name)
    if contact.given_name:
        _sub(person, _dia("GivenName"), contact.given_name)


def split_name(full_name: str) -> tuple[str | None, str]:
    """Split a person's name into (given names, family name) as Norwegian names are written.

    ``"Family, Given"`` is read as written; otherwise the last word is the family name and the words
    before it the given names. A single word is taken as the family name.

    Returns:
        ``(given_name or None, family_name)``.
    """
    if "," in full_name:
        family, _, given = full_name.partition(",")
        return (given.strip() or None), family.strip()
    words = full_name.split()
    if len(words) <= 1:
        return None, full_name.strip()
    return " ".join(words[:-1]), words[-1]


def tel_uri(phone: str) -> str | None:
    """A ``tel:`` URI from a phone number as people write it: digits only, a leading ``+`` kept.

    Returns:
        e.g. ``tel:+4735003500`` for ``"+47 35 00 35 00"``, or None when there are no digits.
    """
    digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
    if not digits:
        return None
    plus = "+" if phone.strip().startswith("+") else ""
    return f"tel:{plus}{digits}"


def _timestamp(message: OutboundMessage) -> str:
    return message.gen_date.isoformat(timespec="seconds")


def _mh(local: str) -> str:
    return ns.ns(ns.MSGHEAD, local)


def _dia(local: str) -> str:
    return ns.ns(ns.DIALOG_1_1, local)


def _fk1(local: str) -> str:
    return ns.ns(ns.FK1, local)


def _xml_text(value: str) -> str:
    return _NOT_XML_CHAR.sub("", value)


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrib.items()})
    if text is not None:
        element.text = _xml_text(text)
    return element


def _cs(parent: etree._Element, tag: str, code: Coded) -> etree._Element:
    """A coded simple value (kith CS): V and DN only — CS has no S attribute."""
    return _sub(parent, tag, V=code.v, DN=code.dn)


def _cv(parent: etree._Element, tag: str, code: Coded) -> etree._Element:
    """A coded value (kith CV): V, DN and the kodeverk OID in S."""
    return _sub(parent, tag, V=code.v, DN=code.dn, S=code.s)


def _mh_ident(parent: etree._Element, identifier: str, type_id: Coded) -> None:
    ident = _sub(parent, _mh("Ident"))
    _sub(ident, _mh("Id"), identifier)
    _cv(ident, _mh("TypeId"), type_id)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MsgHeadSummary:
    """The facts of a received MsgHead that routing, correlation and checks need.

    Attributes:
        msg_id: ``MsgInfo/MsgId``.
        msg_type: ``MsgInfo/Type/@V`` (e.g. DIALOG_HELSEFAGLIG).
        gen_date: ``MsgInfo/GenDate`` as written.
        sender_her_id: HER-id of the sending virksomhet.
        receiver_her_id: HER-id of the receiving virksomhet.
        sender_unit_her_id: HER-id of the sender's nested ``Organisation`` (unit), if any.
        sender_person_her_id: HER-id of the sender's ``HealthcareProfessional``, if any.
        receiver_service_her_id: HER-id of the receiver's nested ``Organisation`` (service), if any.
        receiver_person_her_id: HER-id of the receiver's ``HealthcareProfessional`` (fastlege), if any.
        conversation_ref: ``ConversationRef/RefToParent``, if any.
        conversation_root: ``ConversationRef/RefToConversation``, if any.
        patient_id: the patient's first ``Ident/Id`` (personal data: never log it; hidden from repr).
        patient_id_type: its kodeverk 8116 type (FNR, DNR ...).
        payload_namespace: namespace of the first document's ``Content`` element (the payload).
    """

    msg_id: str
    msg_type: str
    gen_date: str
    sender_her_id: int
    receiver_her_id: int
    sender_unit_her_id: int | None = None
    sender_person_her_id: int | None = None
    receiver_service_her_id: int | None = None
    receiver_person_her_id: int | None = None
    conversation_ref: str | None = None
    conversation_root: str | None = None
    patient_id: str | None = field(default=None, repr=False)
    patient_id_type: str | None = None
    payload_namespace: str | None = None


_NS: Final = {"mh": ns.MSGHEAD}


def parse_msghead_summary(root: etree._Element) -> MsgHeadSummary:
    """Read the key facts of a (schema-valid) MsgHead v1.2.

    Args:
        root: the ``MsgHead`` element, e.g. from :func:`edi_gateway.xml.safe.parse_xml`.

    Returns:
        The summary; HER-ids are those whose ``TypeId/@V`` is ``HER``.

    Raises:
        XmlRejected: code ``T02`` when the root is not a MsgHead or a required element is missing,
            ``T99`` when the sender or receiver virksomhet carries no numeric HER-id.
    """
    if root.tag != _mh("MsgHead"):
        raise XmlRejected("the root element is not a MsgHead v1.2", code="T02")
    info = _required(root, "mh:MsgInfo")
    sender = _required(info, "mh:Sender/mh:Organisation")
    receiver = _required(info, "mh:Receiver/mh:Organisation")
    patient_ident = info.find("mh:Patient/mh:Ident", _NS)
    return MsgHeadSummary(
        msg_id=identifier_text(_required(info, "mh:MsgId")),
        msg_type=_required(info, "mh:Type").get("V", ""),
        gen_date=_required_text(info, "mh:GenDate"),
        sender_her_id=_required_her_id(sender, "sender"),
        receiver_her_id=_required_her_id(receiver, "receiver"),
        sender_unit_her_id=_child_her_id(sender, "mh:Organisation"),
        sender_person_her_id=_child_her_id(sender, "mh:HealthcareProfessional"),
        receiver_service_her_id=_child_her_id(receiver, "mh:Organisation"),
        receiver_person_her_id=_child_her_id(receiver, "mh:HealthcareProfessional"),
        conversation_ref=_optional_id(info, "mh:ConversationRef/mh:RefToParent"),
        conversation_root=_optional_id(info, "mh:ConversationRef/mh:RefToConversation"),
        patient_id=_optional_text(patient_ident, "mh:Id") if patient_ident is not None else None,
        patient_id_type=_type_code(patient_ident),
        payload_namespace=_payload_namespace(root),
    )


def _required(parent: etree._Element, path: str) -> etree._Element:
    element = parent.find(path, _NS)
    if element is None:
        raise XmlRejected(f"the MsgHead has no {path.replace('mh:', '')}", code="T02")
    return element


def _required_text(parent: etree._Element, path: str) -> str:
    return (_required(parent, path).text or "").strip()


def _optional_text(parent: etree._Element, path: str) -> str | None:
    element = parent.find(path, _NS)
    if element is None or element.text is None:
        return None
    return element.text.strip()


def _optional_id(parent: etree._Element, path: str) -> str | None:
    element = parent.find(path, _NS)
    return None if element is None else identifier_text(element) or None


def _type_code(ident: etree._Element | None) -> str | None:
    if ident is None:
        return None
    type_id = ident.find("mh:TypeId", _NS)
    return type_id.get("V") if type_id is not None else None


def party_her_id(party: etree._Element | None) -> int | None:
    """A MsgHead party's HER-id: its ``Ident`` typed HER, read by the hardened id reader, or None.

    The one reading of a party's HER-id, for the summary here and for every other reader of
    MsgHead addressing (the receiving side's envelope): all of a party's HER idents must agree.

    Raises:
        UnreadableIdentifier: (``T99``) a HER-typed ``Id`` that is missing or not a HER-id, or two
            different HER-ids on one party.
    """
    if party is None:
        return None
    name = etree.QName(party).localname
    found: set[int] = set()
    for ident in party.iterfind("mh:Ident", _NS):
        if " ".join((_type_code(ident) or "").split()) == HER_ID.v:
            id_element = ident.find("mh:Id", _NS)
            if id_element is None:
                raise UnreadableIdentifier(f"a HER-typed Ident of {name} has no Id")
            found.add(read_her_id(id_element))
    if len(found) > 1:
        raise UnreadableIdentifier(f"{name} carries {len(found)} different HER-ids")
    return found.pop() if found else None


def _required_her_id(organisation: etree._Element, role: str) -> int:
    her_id = party_her_id(organisation)
    if her_id is None:
        raise XmlRejected(f"the {role} virksomhet in the MsgHead has no HER-id", code="T99")
    return her_id


def _child_her_id(organisation: etree._Element, path: str) -> int | None:
    child = organisation.find(path, _NS)
    return party_her_id(child)


def _payload_namespace(root: etree._Element) -> str | None:
    content = root.find("mh:Document/mh:RefDoc/mh:Content", _NS)
    if content is None:
        return None
    payload = next((child for child in content if isinstance(child.tag, str)), None)
    return etree.QName(payload).namespace if payload is not None else None
