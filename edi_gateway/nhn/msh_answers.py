"""The EDI 2.0 message service's answers: the results the client returns and the reading of their JSON.

The results of :class:`edi_gateway.nhn.msh.MshClient` (``InboxMessage``, ``BusinessDocument``,
``DeliveryStatus``, ``AppRecInfo`` with its ``AppRecErrorItem`` list) and one parser per kind of answer
(``uuid_answer``, ``messages_answer``, ``document_answer``, ``status_answer``, ...). A parser takes
a success's body and reads the documented shape strictly: a body that is not JSON, a wrong type, a
required field missing, bad base64 or no uuid where one is promised raises :class:`Malformed`,
which the client reports as ``TransportUnavailable(kind="malformed")``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

__all__ = [
    "MAX_HER_ID",
    "UUID_PATTERN",
    "AppRecErrorItem",
    "AppRecInfo",
    "BusinessDocument",
    "DeliveryStatus",
    "InboxMessage",
    "Malformed",
    "apprec_info_answer",
    "document_answer",
    "loads",
    "message_answer",
    "messages_answer",
    "no_answer",
    "status_answer",
    "text_or_none",
    "uuid_answer",
]

MAX_HER_ID: Final = 2**31 - 1
"""The largest HER-id (HER-ids are positive 32-bit integers)."""

UUID_PATTERN: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
"""A uuid as text: 8-4-4-4-12 hexadecimal digits."""

_B64_WHITESPACE: Final = re.compile(rb"[ \t\r\n]+")

_T = TypeVar("_T")


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxMessage:
    """A message in an inbox (the API's ``Message``, read with metadata).

    Attributes:
        id: the service's id of the message (a uuid), for the ``/Messages/{id}`` operations.
        receiver_her_id: the HER-id whose inbox holds it.
        sender_her_id: the sender's HER-id, when the service said.
        business_document_id: the document's ``MsgId`` (an AppRec's ``Id``), when the service said.
        is_apprec: whether the document is an AppRec (false when the service did not say).
        content_type: the document's content type, when the service said.
    """

    id: str
    receiver_her_id: int
    sender_her_id: int | None
    business_document_id: str | None
    is_apprec: bool
    content_type: str | None


@dataclass(frozen=True)
class BusinessDocument:
    """A received business document, decoded from base64.

    Attributes:
        content: the document's bytes, exactly as sent.
        content_type: the content type the service states (``application/xml`` for EDI documents).
    """

    content: bytes
    content_type: str


@dataclass(frozen=True)
class DeliveryStatus:
    """Delivery of a sent message to one receiver or copy receiver (the API's ``StatusInfo``).

    Attributes:
        receiver_her_id: the receiver.
        transport_delivery_state: ``Unconfirmed``, ``Acknowledged`` or ``Rejected``.
        apprec_status: ``Ok``, ``Rejected`` or ``OkErrorInMessagePart`` once the receiver's AppRec
            has arrived, else None.
    """

    receiver_her_id: int
    transport_delivery_state: str
    apprec_status: str | None


@dataclass(frozen=True)
class AppRecErrorItem:
    """One error of an AppRec, as the API carries it (``AppRecError``).

    Attributes:
        error_code: the kodeverk code, e.g. ``E21``.
        details: free text about the error (never personal data).
        description: the code's text, if given.
        oid: the kodeverk's OID, if given (kodeverk 8221 when absent).
    """

    error_code: str
    details: str
    description: str | None = None
    oid: str | None = None


@dataclass(frozen=True)
class AppRecInfo:
    """The AppRec a receiver gave a sent message (the API's ``ApprecInfo``).

    Attributes:
        receiver_her_id: the receiver that answered (or has yet to).
        apprec_status: ``Ok``, ``Rejected`` or ``OkErrorInMessagePart``; None before the AppRec.
        errors: the AppRec's errors.
    """

    receiver_her_id: int
    apprec_status: str | None
    errors: tuple[AppRecErrorItem, ...] = ()


# --- reading answers ----------------------------------------------------------------------------


class Malformed(Exception):
    """An answer that is not the documented shape; the text names fields, never values."""


def loads(body: bytes) -> object:
    def refuse_constant(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError):
        raise Malformed("a body that is not JSON") from None


def uuid_answer(body: bytes) -> str:
    return _uuid_text(loads(body), "the id")


def no_answer(body: bytes) -> None:
    return None


def messages_answer(body: bytes) -> list[InboxMessage]:
    return [
        _inbox_message(item, f"message {index}") for index, item in enumerate(_list(loads(body), "the list"))
    ]


def message_answer(body: bytes) -> InboxMessage:
    return _inbox_message(loads(body), "the message")


def _inbox_message(value: object, where: str) -> InboxMessage:
    item = _object(value, where)
    return InboxMessage(
        id=_uuid_text(item.get("id"), f"{where}'s id"),
        receiver_her_id=_her_id(item.get("receiverHerId"), f"{where}'s receiverHerId"),
        sender_her_id=_optional(item, "senderHerId", _her_id, where),
        business_document_id=_optional(item, "businessDocumentId", _text, where),
        is_apprec=bool(_optional(item, "isAppRec", _boolean, where)),
        content_type=_optional(item, "contentType", _text, where),
    )


def document_answer(body: bytes) -> BusinessDocument:
    item = _object(loads(body), "the business document answer")
    encoding = _text(item.get("contentTransferEncoding"), "contentTransferEncoding")
    if encoding.strip().lower() != "base64":
        raise Malformed("a contentTransferEncoding other than base64")
    encoded = _text(item.get("businessDocument"), "businessDocument").encode("ascii", errors="replace")
    try:
        content = base64.b64decode(_B64_WHITESPACE.sub(b"", encoded), validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("a businessDocument that is not base64") from None
    if not content:
        raise Malformed("an empty businessDocument")
    content_type = _text(item.get("contentType"), "contentType")
    if not content_type.strip():
        raise Malformed("an empty contentType")
    return BusinessDocument(content=content, content_type=content_type)


def status_answer(body: bytes) -> list[DeliveryStatus]:
    statuses = []
    for index, value in enumerate(_list(loads(body), "the status list")):
        where = f"status {index}"
        item = _object(value, where)
        state = _text(item.get("transportDeliveryState"), f"{where}'s transportDeliveryState")
        if not state:
            raise Malformed(f"an empty transportDeliveryState in {where}")
        statuses.append(
            DeliveryStatus(
                receiver_her_id=_her_id(item.get("receiverHerId"), f"{where}'s receiverHerId"),
                transport_delivery_state=state,
                apprec_status=_optional(item, "appRecStatus", _text, where),
            )
        )
    return statuses


def apprec_info_answer(body: bytes) -> list[AppRecInfo]:
    infos = []
    for index, value in enumerate(_list(loads(body), "the AppRec list")):
        where = f"AppRec info {index}"
        item = _object(value, where)
        errors = _optional(item, "appRecErrorList", _list, where) or []
        infos.append(
            AppRecInfo(
                receiver_her_id=_her_id(item.get("receiverHerId"), f"{where}'s receiverHerId"),
                apprec_status=_optional(item, "appRecStatus", _text, where),
                errors=tuple(_apprec_error(error, f"{where}'s error {n}") for n, error in enumerate(errors)),
            )
        )
    return infos


def _apprec_error(value: object, where: str) -> AppRecErrorItem:
    item = _object(value, where)
    return AppRecErrorItem(
        # Both are required by the schema but nullable; an absent text is read as empty.
        error_code=_optional(item, "errorCode", _text, where) or "",
        details=_optional(item, "details", _text, where) or "",
        description=_optional(item, "description", _text, where),
        oid=_optional(item, "oid", _text, where),
    )


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise Malformed(f"{where} not a JSON object")
    return value


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise Malformed(f"{where} not a JSON array")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise Malformed(f"{where} missing or not a string")
    return value


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise Malformed(f"{where} not a boolean")
    return value


def _her_id(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{where} missing or not an integer")
    if not 1 <= value <= MAX_HER_ID:
        raise Malformed(f"{where} out of range")
    return value


def _uuid_text(value: object, where: str) -> str:
    if not isinstance(value, str) or UUID_PATTERN.fullmatch(value) is None:
        raise Malformed(f"{where} missing or not a uuid")
    return value


def _optional(
    item: Mapping[str, object], key: str, read: Callable[[object, str], _T], where: str
) -> _T | None:
    value = item.get(key)
    return None if value is None else read(value, f"{where}'s {key}")


def text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
