"""Business documents as the message service stand-in reads, routes and answers them.

``POST /Messages`` takes a document only as base64 ``application/xml`` (:func:`decoded_document`);
:func:`read_document` reads just enough of it to route it, with the project's hardened parser (a
MsgHead or an AppRec, UTF-8 declared; the rules are in :mod:`edi_gateway.dev.nhn_standin.msh`);
:func:`apprec_spec` is the AppRec v1.1 the service builds for ``PostAppRec``. A request the service
refuses raises :class:`Refusal`, which is answered with an ``ErrorMessage``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from lxml import etree
from starlette.responses import Response

from edi_gateway.domain.apprec import KODEVERK_ERROR, AppRec, AppRecError, AppRecParty, AppRecStatus, PartyId
from edi_gateway.errors import XmlRejected
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import AppRecSpec, parse_apprec
from edi_gateway.xml.msghead import party_her_id
from edi_gateway.xml.safe import full_text, identifier_text, parse_xml

from .openapi import error_message
from .records import Facts, Party, Stored

__all__ = ["CONTENT_TYPE", "MAX_REQUEST_BYTES", "Refusal", "apprec_spec", "decoded_document", "read_document"]

MAX_REQUEST_BYTES: Final = 35 * 1024 * 1024
"""NHN's limit on a request ("The request has a max limit of 35 MB"): larger ones are answered 413."""

CONTENT_TYPE: Final = "application/xml"
"""The content type of every business document, taken and given."""

_UTF8_DECLARATION: Final = re.compile(
    rb"\A(?:\xef\xbb\xbf)?<\?xml[ \t\r\n][^\n>]*?encoding[ \t\r\n]*=[ \t\r\n]*[\"']utf-8[\"']", re.IGNORECASE
)
_NS: Final = {"mh": ns.MSGHEAD}
_APPREC_NAMESPACES: Final = frozenset({ns.APPREC_1_0, ns.APPREC_1_1})


# --- refusing a request -------------------------------------------------------------------------


class Refusal(Exception):
    """A request the service answers with an ErrorMessage."""

    def __init__(self, status: int, error: str, *, validation_errors: Sequence[str] | None = None) -> None:
        self.status = status
        self.error = error
        self.validation_errors = validation_errors
        super().__init__(error)

    def response(self) -> Response:
        code = 1000 if self.status == 400 and self.validation_errors else 0
        return error_message(
            self.status, self.error, error_code=code, validation_errors=self.validation_errors
        )


# --- reading documents --------------------------------------------------------------------------


def decoded_document(body: Mapping[str, Any]) -> bytes:
    if str(body["contentType"]).strip().lower() != CONTENT_TYPE:
        raise Refusal(
            400, "Model validation error occurred", validation_errors=["contentType must be application/xml"]
        )
    if str(body["contentTransferEncoding"]).strip().lower() != "base64":
        raise Refusal(
            400,
            "Model validation error occurred",
            validation_errors=["contentTransferEncoding must be base64"],
        )
    try:
        return base64.b64decode(str(body["businessDocument"]), validate=True)
    except (binascii.Error, ValueError):
        raise Refusal(
            400, "Model validation error occurred", validation_errors=["businessDocument is not base64"]
        ) from None


def read_document(document: bytes) -> Facts:
    """Route a document: a MsgHead or an AppRec, UTF-8 declared, read by the hardened parser."""
    if _UTF8_DECLARATION.match(document) is None:
        raise Refusal(
            400,
            "Model validation error occurred",
            validation_errors=[
                "The business document must be XML declaring encoding UTF-8 in its first line"
            ],
        )
    try:
        root = parse_xml(document, max_bytes=MAX_REQUEST_BYTES)
        qname = etree.QName(root)
        if qname.namespace == ns.MSGHEAD and qname.localname == "MsgHead":
            return _read_msghead(root)
        if qname.namespace in _APPREC_NAMESPACES and qname.localname == "AppRec":
            return _read_apprec(parse_apprec(root))
    except XmlRejected as exc:
        raise Refusal(
            400, "Model validation error occurred", validation_errors=[f"The business document: {exc}"]
        ) from None
    raise Refusal(
        400,
        "Model validation error occurred",
        validation_errors=["The business document is not a MsgHead or AppRec"],
    )


def _read_msghead(root: etree._Element) -> Facts:
    info = _required(root, "mh:MsgInfo")
    msg_type = _required(info, "mh:Type")
    receivers = tuple(
        _msghead_party(r.find("mh:Organisation", _NS), "receiver") for r in info.findall("mh:Receiver", _NS)
    )
    if not receivers:
        raise XmlRejected("the MsgHead names no receiver", code="T02")
    return Facts(
        sender=_msghead_party(info.find("mh:Sender/mh:Organisation", _NS), "sender"),
        receivers=receivers,
        msg_id=identifier_text(_required(info, "mh:MsgId")),
        gen_date=full_text(_required(info, "mh:GenDate")),
        msg_type=" ".join(msg_type.get("V", "").split()),
        msg_type_text=msg_type.get("DN"),
        is_apprec=False,
    )


def _required(parent: etree._Element, path: str) -> etree._Element:
    element = parent.find(path, _NS)
    if element is None:
        raise XmlRejected(f"the MsgHead has no {path.replace('mh:', '')}", code="T02")
    return element


def _msghead_party(organisation: etree._Element | None, role: str) -> Party:
    """The virksomhet's HER-id and the lowest level below it that carries one."""
    if organisation is None:
        raise XmlRejected(f"the MsgHead's {role} has no Organisation", code="T02")
    org_her_id = party_her_id(organisation)
    if org_her_id is None:
        raise XmlRejected(f"the MsgHead's {role} has no HER-id", code="T99")
    her_id, level, current = org_her_id, "org", organisation
    while True:
        child = current.find("mh:Organisation", _NS)
        child_her_id = party_her_id(child)
        if child is None or child_her_id is None:
            break
        her_id, level, current = child_her_id, "dept", child
    person_her_id = party_her_id(current.find("mh:HealthcareProfessional", _NS))
    if person_her_id is not None:
        her_id, level = person_her_id, "person"
    return Party(org_her_id, her_id, level)


def _read_apprec(apprec: AppRec) -> Facts:
    return Facts(
        sender=_apprec_party(apprec.sender, "sender"),
        receivers=(_apprec_party(apprec.receiver, "receiver"),),
        msg_id=apprec.id,
        gen_date=apprec.gen_date,
        msg_type="APPREC",
        msg_type_text="Applikasjonskvittering",
        is_apprec=True,
        original_msg_id=apprec.original_msg_id,
        apprec_status=apprec.status,
        apprec_errors=apprec.errors,
    )


def _apprec_party(party: AppRecParty, role: str) -> Party:
    org_her_id = party.inst.her_id or min(party.institution_her_ids, default=None)
    person = party.person.her_id if party.person is not None else None
    dept = party.dept.her_id if party.dept is not None else None
    lowest = person or dept or org_her_id
    if lowest is None:
        raise XmlRejected(f"the AppRec's {role} has no HER-id", code="T99")
    level = "person" if person else "dept" if dept else "org"
    return Party(org_her_id or lowest, lowest, level)


# --- building AppRecs ---------------------------------------------------------------------------


def apprec_spec(
    original: Stored,
    answering: Party,
    status: AppRecStatus,
    errors: Sequence[Mapping[str, object]],
    now: datetime,
) -> AppRecSpec:
    return AppRecSpec(
        id=str(uuid.uuid4()),
        gen_date=now,
        status=status,
        errors=tuple(_apprec_error(error) for error in errors),
        sender=_apprec_party_of(answering),
        receiver=_apprec_party_of(original.facts.sender),
        original_msg_id=original.facts.msg_id,
        original_msg_type=original.facts.msg_type,
        original_msg_type_text=original.facts.msg_type_text,
        original_issue_date=original.facts.gen_date,
    )


def _apprec_party_of(party: Party) -> AppRecParty:
    lower = PartyId(str(party.her_id), "HER") if party.her_id != party.org_her_id else None
    return AppRecParty(
        inst=PartyId(str(party.org_her_id), "HER"),
        dept=lower if party.level == "dept" else None,
        person=lower if party.level == "person" else None,
    )


def _apprec_error(error: Mapping[str, object]) -> AppRecError:
    def text(key: str) -> str | None:
        value = error.get(key)
        return value if isinstance(value, str) else None

    return AppRecError(
        code=text("errorCode") or "",
        text=text("description") or "",
        kodeverk=text("oid") or KODEVERK_ERROR,
        original_text=text("details") or None,
    )
