"""Read AppRec v1.0/v1.1 (applikasjonskvittering) into the domain model, and build AppRec v1.1.

Reading happens in two steps. The schema (``validate_apprec``) decides whether the document is an
AppRec at all; :func:`parse_apprec` then reads it and applies the rules of HIS 80415 that no schema
can express. Those semantic refusals raise :class:`AppRecInvalid` with code ``X99`` (kodeverk 8221
"Annen feil"), since the document is well-formed and schema-valid but still cannot be acted on:

* ``MsgType/@V`` is not ``APPREC``;
* ``Status/@V`` is not a kodeverk 8258 code (1 OK, 2 Avvist, 3 OK, feil i delmelding);
* status 2 or 3 without any ``Error``, or status 1 with one (an OK AppRec carries no errors);
* an ``Error`` without a code (``@V``);
* a ``Sender`` or ``Receiver`` naming more than one ``Dept`` or ``HCPerson`` (the gateway reads one of
  each, and must not leave one unread that another reader might take for the party).

Identifiers (``Id`` of the AppRec, of ``OriginalMsgId`` and of every party) are read once, by
:func:`edi_gateway.xml.safe.identifier_text`: the full string value of the element, trimmed, with no
whitespace or control character inside. An id typed ``HER`` must be a HER-id (1 to 9 ASCII digits,
not zero). A value that is not is refused as :class:`edi_gateway.xml.safe.UnreadableIdentifier`
(``T99``), never truncated: the tree comes from the hardened parser, which has already removed
comments and merged CDATA and character references into the text.

A required element that is missing (possible only when the caller skipped schema validation) is
refused with a plain ``XmlRejected`` of code ``T02``, as for any schema violation.

v1.0 and v1.1 differ only in namespace and in where the coded types are declared: the element
structure, the party structure (``Sender``/``Receiver`` → ``HCP`` → ``Inst`` or ``HCProf``) and the
attributes are the same, so one reader serves both. Coded values (``@V``) are XML Schema ``token``s,
so their whitespace is collapsed as a schema-aware reader would (one sample writes ``V=" HER"``).
An ``Error`` without ``@S`` is taken to use kodeverk 8221, the code list HIS 80415 prescribes.

Exception messages name elements and codes only, never element text: ids, names and the free text
of ``@OT`` may be personal data.

Building (:func:`build_apprec`) writes AppRec v1.1 for the receiver side (a kommune or fastlege
answering our MsgHead). The result is unsigned and, for the inputs :class:`AppRecSpec` documents,
valid against the v1.1 schema; the caller validates it before sending, as for every outgoing message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from lxml import etree

from edi_gateway.domain.apprec import (
    KODEVERK_ERROR,
    AppRec,
    AppRecError,
    AppRecParty,
    AppRecStatus,
    PartyId,
)
from edi_gateway.errors import XmlRejected
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.safe import full_text, her_id_value, identifier_text, parse_xml
from edi_gateway.xml.schemas import validate_apprec

MIG_VERSION: Final = "v1.1 2012-02-15"
APPREC_MSG_TYPE: Final = "APPREC"
APPREC_MSG_TYPE_TEXT: Final = "Applikasjonskvittering"
DEFAULT_MAX_BYTES: Final = 1_000_000

STATUS_TEXTS: Final[Mapping[AppRecStatus, str]] = MappingProxyType(
    {
        AppRecStatus.OK: "OK",
        AppRecStatus.AVVIST: "Avvist",
        AppRecStatus.OK_FEIL_I_DELMELDING: "OK, feil i delmelding",
    }
)
"""Kodeverk 8258 (status for mottatt melding): the DN written beside each status code."""

ERROR_TEXTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "T01": "Ikke XML / ikke 'well formed' / uleselig",
        "T02": "XML validerer ikke",
        "T10": "Støtter ikke meldingsformatet",
        "T99": "Annen feil på format",
        "S01": "Feil på signatur",
        "S02": "Ugyldig sertifikat",
        "S03": "Tilbaketrukket sertifikat",
        "S99": "Annen feil på signatur eller sertifikat",
        "E10": "Ugyldig meldingsidentifikator",
        "E20": "Lege finnes ikke",
        "E21": "Mottaker finnes ikke",
        "E30": "Pasientens fødselsnummer mangler",
        "E31": "Pasientens fødselsnummer er feil",
        "E32": "Pasientens navn mangler",
        "E35": "Pasienten finnes ikke i mottakersystemet",
        "E36": "Pasientopplysninger er utilstrekkelige",
        "X99": "Annen feil",
    }
)
"""Kodeverk 8221 (feil i applikasjonskvittering): code → DN, for the codes the gateway uses."""

ID_TYPE_TEXTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "HER": "HER-id",
        "ENH": "Organisasjonsnummeret i Enhetsregister",
        "HPR": "HPR-nummer",
    }
)
"""DN written beside an identifier type (``TypeId/@V``) the builder knows; others get V only."""

_VERSIONS: Final[Mapping[str, str]] = MappingProxyType({ns.APPREC_1_0: "1.0", ns.APPREC_1_1: "1.1"})
_STATUS_BY_CODE: Final[Mapping[str, AppRecStatus]] = MappingProxyType(
    {str(status.value): status for status in AppRecStatus}
)
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class AppRecInvalid(XmlRejected):
    """A schema-valid AppRec that breaks a rule of HIS 80415 and so cannot be acted on.

    Attributes:
        code: kodeverk 8221 code, ``X99`` ("Annen feil") for every semantic refusal.
    """

    def __init__(self, message: str, *, code: str = "X99") -> None:
        super().__init__(message, code=code)


# --- reading ------------------------------------------------------------------------------------


def read_apprec(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> AppRec:
    """Parse, schema-validate and read an UNSIGNED AppRec v1.0 or v1.1 from raw bytes.

    A signed AppRec must be verified first (the AppRec schemas have no slot for ``ds:Signature``);
    the service layer then validates the verified document and calls :func:`parse_apprec`.

    Args:
        data: the document as received.
        max_bytes: largest accepted document size.

    Returns:
        The AppRec.

    Raises:
        XmlRejected: ``T01`` when the bytes are not well-formed, too large or use a DOCTYPE/entities;
            ``T02`` when the document is not an AppRec or not schema-valid;
            :class:`AppRecInvalid` (``X99``) when it breaks a rule of HIS 80415;
            :class:`edi_gateway.xml.safe.UnreadableIdentifier` (``T99``) for an unreadable id.
    """
    root = parse_xml(data, max_bytes=max_bytes)
    validate_apprec(root)
    return parse_apprec(root)


def parse_apprec(root: etree._Element) -> AppRec:
    """Read a schema-validated AppRec v1.0 or v1.1 and check the rules of HIS 80415.

    Args:
        root: the ``AppRec`` element, already validated against its schema by the caller.

    Returns:
        The AppRec; ``version`` is ``"1.0"`` or ``"1.1"`` by the root's namespace.

    Raises:
        XmlRejected: ``T02`` when the root is not an AppRec or a required element is missing.
        AppRecInvalid: ``X99`` for an unknown MsgType or status, an Error without a code, or a
            status that does not agree with the presence of errors, or a party naming more than one
            Dept or HCPerson.
        UnreadableIdentifier: ``T99`` for an id that is not a clean identifier, or one typed HER
            that is not a HER-id.
    """
    qname = etree.QName(root)
    version = _VERSIONS.get(qname.namespace or "") if qname.localname == "AppRec" else None
    if version is None:
        raise XmlRejected("the root element is not an AppRec v1.0 or v1.1", code="T02")
    reader = _Reader(qname.namespace or "")
    if _code(reader.required(root, "MsgType")) != APPREC_MSG_TYPE:
        raise AppRecInvalid("the AppRec's MsgType is not APPREC")
    status = _status(reader.required(root, "Status"))
    errors = tuple(_error(element) for element in reader.all(root, "Error"))
    _check_status(status, len(errors), AppRecInvalid)
    original = reader.required(root, "OriginalMsgId")
    return AppRec(
        version=version,
        id=reader.identifier(root, "Id"),
        gen_date=reader.text(root, "GenDate"),
        status=status,
        sender=reader.party(reader.required(root, "Sender")),
        receiver=reader.party(reader.required(root, "Receiver")),
        original_msg_id=reader.identifier(original, "Id"),
        original_msg_type=_code(reader.required(original, "MsgType")) or "",
        original_issue_date=reader.text(original, "IssueDate"),
        errors=errors,
    )


class _Reader:
    """Finds AppRec children in one namespace (v1.0 or v1.1), naming missing ones without values."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace

    def tag(self, local: str) -> str:
        return ns.ns(self._namespace, local)

    def find(self, parent: etree._Element | None, local: str) -> etree._Element | None:
        return None if parent is None else parent.find(self.tag(local))

    def all(self, parent: etree._Element, local: str) -> list[etree._Element]:
        return parent.findall(self.tag(local))

    def required(self, parent: etree._Element, local: str) -> etree._Element:
        element = self.find(parent, local)
        if element is None:
            name = etree.QName(parent).localname
            owner = "AppRec" if name == "AppRec" else f"AppRec's {name}"
            raise XmlRejected(f"the {owner} has no {local}", code="T02")
        return element

    def text(self, parent: etree._Element, local: str) -> str:
        return full_text(self.required(parent, local))

    def identifier(self, parent: etree._Element, local: str) -> str:
        return identifier_text(self.required(parent, local))

    def optional_text(self, parent: etree._Element | None, local: str) -> str | None:
        element = self.find(parent, local)
        return None if element is None else full_text(element)

    def optional_identifier(self, parent: etree._Element | None, local: str) -> str | None:
        element = self.find(parent, local)
        return None if element is None else identifier_text(element)

    def single(self, parent: etree._Element, local: str) -> etree._Element | None:
        """The one ``local`` child, or None; more than one is refused (see the module docstring)."""
        found = self.all(parent, local)
        if len(found) > 1:
            raise AppRecInvalid(f"an AppRec party names {len(found)} {local} elements; one is read")
        return found[0] if found else None

    def party(self, party: etree._Element) -> AppRecParty:
        """``Sender``/``Receiver``: the institution with its first Dept and first HCPerson, or an HCProf."""
        role = _code(self.find(party, "Role"))
        hcp = self.required(party, "HCP")
        inst = self.find(hcp, "Inst")
        if inst is None:
            # A health professional outside any institution: no institution id to report.
            professional = self.required(hcp, "HCProf")
            return AppRecParty(inst=PartyId("", None), person=self.party_id(professional), role=role)
        return AppRecParty(
            inst=self.party_id(inst) or PartyId("", None),
            inst_name=self.optional_text(inst, "Name") or "",
            dept=self.party_id(self.single(inst, "Dept")),
            person=self.party_id(self.single(inst, "HCPerson")),
            role=role,
            additional=tuple(self.additional_id(a) for a in self.all(inst, "AdditionalId")),
        )

    def additional_id(self, element: etree._Element) -> PartyId:
        """``AdditionalId``: its ``Id`` with ``Type/@V``."""
        return _checked(self.optional_identifier(element, "Id") or "", _code(self.find(element, "Type")))

    def party_id(self, element: etree._Element | None) -> PartyId | None:
        """``Id`` with its ``TypeId/@V``; None when the element or its Id is absent or empty."""
        identifier = self.optional_identifier(element, "Id")
        if not identifier:
            return None
        return _checked(identifier, _code(self.find(element, "TypeId")))


def _checked(identifier: str, id_type: str | None) -> PartyId:
    """A party id; one typed HER must be a HER-id (an AdditionalId may carry it as well as Inst/Id)."""
    if id_type == "HER":
        her_id_value(identifier, where="an AppRec party")
    return PartyId(identifier, id_type)


def _code(element: etree._Element | None) -> str | None:
    """``@V`` of a coded element with whitespace collapsed (it is an ``xs:token``); None if absent."""
    if element is None:
        return None
    value = element.get("V")
    return None if value is None else " ".join(value.split())


def _status(element: etree._Element) -> AppRecStatus:
    status = _STATUS_BY_CODE.get(_code(element) or "")
    if status is None:
        raise AppRecInvalid("the AppRec's Status is not in kodeverk 8258")
    return status


def _error(element: etree._Element) -> AppRecError:
    code = _code(element)
    if not code:
        raise AppRecInvalid("an Error in the AppRec has no code (V)")
    return AppRecError(
        code=code,
        text=element.get("DN", ""),
        kodeverk=" ".join(element.get("S", "").split()) or KODEVERK_ERROR,
        original_text=element.get("OT"),
    )


def _check_status(status: AppRecStatus, error_count: int, fail: type[Exception]) -> None:
    """HIS 80415: Avvist and "OK, feil i delmelding" carry at least one Error; OK carries none."""
    if status is AppRecStatus.OK and error_count:
        raise fail("an AppRec with status 1 (OK) carries Error elements")
    if status is not AppRecStatus.OK and not error_count:
        raise fail(f"an AppRec with status {status.value} carries no Error")


# --- building -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRecSpec:
    """Everything an AppRec v1.1 answering one received message says.

    Attributes:
        id: the AppRec's own id (a UUID as text).
        gen_date: when the AppRec was generated (written to the second, with its offset if aware).
        status: kodeverk 8258; 2 and 3 need at least one error, 1 none.
        errors: the ``Error`` elements. An empty ``text`` of a kodeverk 8221 code is filled from
            :data:`ERROR_TEXTS`; ``original_text`` becomes ``@OT`` (never personal data).
        sender: the answering receiver: ``inst`` = its virksomhet's HER-id, optional ``dept`` = the
            service's HER-id or ``person`` = the fastlege's HER-id.
        receiver: the original sender: our virksomhet's HER-id, optional ``dept`` = the sending unit.
        original_msg_id: ``MsgId`` of the message answered.
        original_msg_type: its ``MsgInfo/Type/@V``, e.g. ``DIALOG_HELSEFAGLIG``.
        original_msg_type_text: its ``MsgInfo/Type/@DN``, when known.
        original_issue_date: its issue date (``GenDate``): a datetime, or an ``xs:dateTime`` as written.
    """

    id: str
    gen_date: datetime
    status: AppRecStatus
    errors: tuple[AppRecError, ...] = ()
    sender: AppRecParty
    receiver: AppRecParty
    original_msg_id: str
    original_msg_type: str
    original_msg_type_text: str | None = None
    original_issue_date: datetime | str


def apprec_error(code: str, *, detail: str | None = None) -> AppRecError:
    """An ``Error`` of kodeverk 8221 with its official text.

    Args:
        code: a code in :data:`ERROR_TEXTS` (e.g. ``T02``, ``S01``, ``E21``).
        detail: free text for ``@OT``: what exactly was wrong. Never put personal data here.

    Raises:
        ValueError: when ``code`` is not in :data:`ERROR_TEXTS`.
    """
    try:
        text = ERROR_TEXTS[code]
    except KeyError:
        raise ValueError(f"{code!r} is not a kodeverk 8221 code this gateway knows") from None
    return AppRecError(code=code, text=text, kodeverk=KODEVERK_ERROR, original_text=detail)


def build_apprec(spec: AppRecSpec) -> etree._Element:
    """Build an unsigned AppRec v1.1.

    Args:
        spec: the answer; see :class:`AppRecSpec`.

    Returns:
        The ``AppRec`` root element (its own document); serialise it with
        :func:`edi_gateway.xml.msghead.to_bytes`.

    Raises:
        ValueError: when the status does not agree with the errors (HIS 80415), an error has no
            code, or the sender or receiver has no institution id.
    """
    _check_status(spec.status, len(spec.errors), ValueError)
    if any(not error.code.strip() for error in spec.errors):
        raise ValueError("every AppRec error needs a kodeverk code")
    root = etree.Element(_ar("AppRec"), nsmap=_NSMAP)
    _sub(root, "MsgType", V=APPREC_MSG_TYPE, DN=APPREC_MSG_TYPE_TEXT)
    _sub(root, "MIGversion", MIG_VERSION)
    _sub(root, "GenDate", _timestamp(spec.gen_date))
    _sub(root, "Id", spec.id)
    _add_party(_sub(root, "Sender"), spec.sender, "sender")
    _add_party(_sub(root, "Receiver"), spec.receiver, "receiver")
    _sub(root, "Status", V=str(spec.status.value), DN=STATUS_TEXTS[spec.status])
    for error in spec.errors:
        _add_error(root, error)
    _add_original(root, spec)
    return root


# lxml spells the default namespace with the key None; lxml-stubs only allow str keys, hence Any.
_NSMAP: Final[dict[Any, str]] = {None: ns.APPREC_1_1}


def _add_party(element: etree._Element, party: AppRecParty, role: str) -> None:
    if not party.inst.id:
        raise ValueError(f"the AppRec {role} has no institution id")
    if party.role:
        _sub(element, "Role", V=party.role)
    inst = _sub(_sub(element, "HCP"), "Inst")
    if party.inst_name:
        _sub(inst, "Name", party.inst_name)
    _add_id(inst, party.inst)
    # Schema order inside Inst: Name, Id, TypeId, Dept*, AdditionalId*, HCPerson*.
    if party.dept is not None:
        _add_id(_sub(inst, "Dept"), party.dept)
    if party.person is not None:
        _add_id(_sub(inst, "HCPerson"), party.person)


def _add_id(parent: etree._Element, party_id: PartyId) -> None:
    _sub(parent, "Id", party_id.id)
    if party_id.type is not None:
        text = ID_TYPE_TEXTS.get(party_id.type)
        _sub(parent, "TypeId", V=party_id.type, **({"DN": text} if text else {}))


def _add_error(root: etree._Element, error: AppRecError) -> None:
    text = error.text
    if not text and error.kodeverk == KODEVERK_ERROR:
        text = ERROR_TEXTS.get(error.code, "")
    attributes = {"V": error.code, "S": error.kodeverk}
    if text:
        attributes["DN"] = text
    if error.original_text is not None:
        attributes["OT"] = error.original_text
    _sub(root, "Error", **attributes)


def _add_original(root: etree._Element, spec: AppRecSpec) -> None:
    original = _sub(root, "OriginalMsgId")
    msg_type = {"V": spec.original_msg_type}
    if spec.original_msg_type_text:
        msg_type["DN"] = spec.original_msg_type_text
    _sub(original, "MsgType", **msg_type)
    issue_date = spec.original_issue_date
    _sub(original, "IssueDate", issue_date if isinstance(issue_date, str) else _timestamp(issue_date))
    _sub(original, "Id", spec.original_msg_id)


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _ar(local: str) -> str:
    return ns.ns(ns.APPREC_1_1, local)


def _xml_text(value: str) -> str:
    """Drop characters XML 1.0 cannot carry at all; no receiver could parse them."""
    return _NOT_XML_CHAR.sub("", value)


def _sub(parent: etree._Element, local: str, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.SubElement(parent, _ar(local), {k: _xml_text(v) for k, v in attrib.items()})
    if text is not None:
        element.text = _xml_text(text)
    return element
