"""An in-memory stand-in for NHN's EDI 2.0 message service (MSH API v2), for tests and the demo.

The eight operations of the published description, at the published paths, behind the OpenAPI
check of :mod:`edi_gateway.dev.nhn_standin.openapi` (an invalid request never reaches them):

* ``POST /Messages`` reads the business document just enough to route it, with the project's
  hardened parser: the XML must declare UTF-8 in its first line; a MsgHead gives the sender, the
  receiver(s) (``MsgInfo/Receiver``), ``MsgId``, ``GenDate`` and the message type; an AppRec (v1.0 or
  v1.1) gives its parties, ``Id`` and the ``OriginalMsgId`` it answers. A party's HER-id is its
  lowest level that carries one: a nested ``Organisation`` (unit or service) below the virksomhet,
  or a ``HealthcareProfessional`` (fastlege), else the virksomhet itself. One inbox entry is kept per
  receiver HER-id (``receiverHerIdsSubset`` narrows them); a receiver outside ``known_her_ids`` is
  refused with 400 "Receiver ... not found".
* ``GET /Messages`` lists unread entries of the ``ReceiverHerIds`` (at most ``MessagesToFetch``,
  default 10, oldest first unless ``OrderBy=Descending``); with ``IncludeMetadata`` the sender, MsgId,
  GenDate, ``isAppRec`` and content type as well.
* ``PUT /Messages/{id}/read/{herId}`` marks an entry read: it leaves the listing and its delivery
  state (``GET /Messages/{id}/status``) goes from ``Unconfirmed`` to ``Acknowledged``.
* ``POST /Messages/{id}/apprec/{appRecSenderHerId}`` builds an AppRec v1.1 with
  :func:`edi_gateway.xml.apprec.build_apprec` (sender: the answering receiver's party; receiver: the
  original sender's party; ``OriginalMsgId``: the original MsgId), delivers it unsigned to the
  original sender's inbox as an AppRec message, and fills ``appRecStatus`` of the status and
  ``GET /Messages/{id}/apprec``. An AppRec document sent with ``POST /Messages`` fills them too.

Every operation first calls ``authorize(request, "nhn:msh/api")``, which answers the client id or
raises ``HTTPException(401)``. With ``her_ids_by_client`` a client acts only for its HER-ids
(others: 403 "Not authorized for HerId(s)"); without it every client may act for every HER-id.

Faults for tests: ``faults.queue("GetMessages", Fault.rate_limited("1"), Fault.server_error())``
answers the next two ``GetMessages`` calls with those, before authorization; then normal service
resumes. Injected answers are exempt from the response check; a pure delay (:meth:`Fault.timeout`)
is served normally after the wait, so a client that gave up may still have had its request done.

Accessors for tests: :meth:`MessageServiceStandIn.sent`, :meth:`~MessageServiceStandIn.inbox`,
:meth:`~MessageServiceStandIn.read_marks`, :meth:`~MessageServiceStandIn.apprecs`, and
:meth:`~MessageServiceStandIn.deliver` to put a document into an inbox as another system would.

State is in memory and guarded by a lock: the server's thread and the test's may both touch it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from fastapi import APIRouter
from lxml import etree
from openapi_core.unmarshalling.request.datatypes import RequestUnmarshalResult
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from edi_gateway.domain.apprec import KODEVERK_ERROR, AppRec, AppRecError, AppRecParty, AppRecStatus, PartyId
from edi_gateway.errors import XmlRejected
from edi_gateway.localtime import as_utc
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import AppRecSpec, build_apprec, parse_apprec
from edi_gateway.xml.msghead import party_her_id, to_bytes
from edi_gateway.xml.safe import full_text, identifier_text, parse_xml

from .openapi import OpenApiValidator, error_message, mark_unchecked, unmarshalled

__all__ = [
    "OPERATIONS",
    "SCOPE",
    "Authorize",
    "Fault",
    "Faults",
    "InboxEntry",
    "MessageServiceStandIn",
    "Party",
    "PostedAppRec",
    "SentDocument",
]

SCOPE: Final = "nhn:msh/api"
"""The scope every operation asks ``authorize`` for."""

OPERATIONS: Final = frozenset(
    {
        "PostMessage",
        "GetMessages",
        "GetMessage",
        "GetBusinessDocument",
        "MarkMessageAsRead",
        "GetStatus",
        "GetApprecInfo",
        "PostAppRec",
    }
)
"""The operation ids of the published description, as faults are queued by."""

MAX_REQUEST_BYTES: Final = 35 * 1024 * 1024
"""NHN's limit on a request ("The request has a max limit of 35 MB"): larger ones are answered 413."""

Authorize = Callable[[Request, str], str]
"""``(request, scope) -> client_id``; raises ``HTTPException(401)`` when the request is not authorized."""

_UTF8_DECLARATION: Final = re.compile(
    rb"\A(?:\xef\xbb\xbf)?<\?xml[ \t\r\n][^\n>]*?encoding[ \t\r\n]*=[ \t\r\n]*[\"']utf-8[\"']", re.IGNORECASE
)
_NS: Final = {"mh": ns.MSGHEAD}
_APPREC_NAMESPACES: Final = frozenset({ns.APPREC_1_0, ns.APPREC_1_1})
_STATUS_NAMES: Final[Mapping[AppRecStatus, str]] = MappingProxyType(
    {
        AppRecStatus.OK: "Ok",
        AppRecStatus.AVVIST: "Rejected",
        AppRecStatus.OK_FEIL_I_DELMELDING: "OkErrorInMessagePart",
    }
)
_STATUS_BY_NAME: Final[Mapping[str, AppRecStatus]] = MappingProxyType(
    {v: k for k, v in _STATUS_NAMES.items()}
)
_CONTENT_TYPE: Final = "application/xml"


# --- faults -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """An answer a test injects in place of one call's normal service.

    Attributes:
        status: the HTTP status to answer; None to serve the call normally (after ``delay_s``).
        raw: the body to answer.
        headers: extra response headers.
        content_type: the body's content type (None: no Content-Type header).
        delay_s: seconds to wait before answering.
        stream_bytes: when positive, answer a streamed body of this many bytes instead of ``raw``.
        declare_length: with ``stream_bytes``, declare the size in ``Content-Length``.
    """

    status: int | None = None
    raw: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    delay_s: float = 0.0
    stream_bytes: int = 0
    declare_length: bool = False

    @classmethod
    def error(
        cls,
        status: int,
        error: str = "An unknown error occurred",
        *,
        error_code: int = 0,
        validation_errors: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """An ``ErrorMessage`` answer, with a (fake) ``stackTrace`` as NHN's test environments send."""
        body = {
            "error": error,
            "errorCode": error_code,
            "validationErrors": list(validation_errors) if validation_errors is not None else None,
            "stackTrace": "   at Nhn.Msh.Api.SyntheticFrame() in /src/Fault.cs:line 1",
            "requestId": str(uuid.uuid4()),
        }
        return cls(status=status, raw=json.dumps(body).encode(), headers=dict(headers or {}))

    @classmethod
    def rate_limited(cls, retry_after: str | None = "1") -> Fault:
        """429, with ``Retry-After`` when given (seconds or an HTTP-date, as written)."""
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return cls(status=429, raw=b"", headers=headers, content_type=None)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx with an ``ErrorMessage``."""
        return cls.error(status, "An unknown error occurred")

    @classmethod
    def timeout(cls, delay_s: float) -> Fault:
        """Wait ``delay_s`` (longer than the client's timeout), then serve the call normally."""
        return cls(status=None, delay_s=delay_s)

    @classmethod
    def malformed_json(cls, status: int = 200) -> Fault:
        """A body that is not JSON at all, labelled as JSON."""
        return cls(status=status, raw=b'{"id": "5f5e94d5-d908-476b-a172-a241c52eddb6", ')

    @classmethod
    def answer(cls, status: int, raw: bytes, content_type: str | None = "application/json") -> Fault:
        """Any body (JSON of the wrong shape, say) with any status."""
        return cls(status=status, raw=raw, content_type=content_type)

    @classmethod
    def oversized(cls, size: int, *, status: int = 200, declare_length: bool = False) -> Fault:
        """A streamed body of about ``size`` bytes, its length declared or not (chunked).

        The body is a well-formed ``GetBusinessDocumentResponse`` (a document of ``A``s): for that
        operation only a size limit can refuse it.
        """
        return cls(status=status, stream_bytes=size, declare_length=declare_length)

    @classmethod
    def unknown_receiver(cls, her_id: int) -> Fault:
        """The 400 the service gives for a receiver it does not know."""
        return cls.error(
            400,
            "Model validation error occurred",
            error_code=1000,
            validation_errors=[f"Receiver with HER-id {her_id} not found in Adresseregisteret"],
        )

    @classmethod
    def unauthorized(cls) -> Fault:
        """401 as for an expired token."""
        return cls(
            status=401,
            raw=b"",
            headers={"WWW-Authenticate": 'DPoP error="invalid_token"'},
            content_type=None,
        )

    def response(self) -> Response:
        """The answer this fault gives."""
        headers = dict(self.headers)
        if self.stream_bytes > 0:
            if self.declare_length:
                headers["Content-Length"] = str(_filler_length(self.stream_bytes))
            return StreamingResponse(
                _filler(self.stream_bytes),
                status_code=self.status or 200,
                headers=headers,
                media_type=self.content_type,
            )
        return Response(
            self.raw, status_code=self.status or 200, headers=headers, media_type=self.content_type
        )


async def _filler(size: int) -> AsyncIterator[bytes]:
    """A ``GetBusinessDocumentResponse`` of exactly ``size`` bytes (at least its fixed parts), in chunks."""
    head = b'{"contentType":"application/xml","contentTransferEncoding":"base64","businessDocument":"'
    tail = b'"}'
    padding = max(size - len(head) - len(tail), 4)
    padding -= padding % 4  # whole base64 quanta
    yield head
    chunk = b"A" * 65536
    while padding > 0:
        part = chunk[:padding]
        padding -= len(part)
        yield part
    yield tail


def _filler_length(size: int) -> int:
    fixed = len(b'{"contentType":"application/xml","contentTransferEncoding":"base64","businessDocument":""}')
    padding = max(size - fixed, 4)
    return fixed + padding - padding % 4


class Faults:
    """Answers queued per operation id, used one per call, in order; thread-safe."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()

    def queue(self, operation_id: str, *faults: Fault) -> None:
        """Answer the next ``len(faults)`` calls of ``operation_id`` with these, in order.

        Raises:
            ValueError: ``operation_id`` is not one of :data:`OPERATIONS`.
        """
        if operation_id not in OPERATIONS:
            raise ValueError(f"{operation_id!r} is not an operation of the message service")
        with self._lock:
            self._queues.setdefault(operation_id, deque()).extend(faults)

    def take(self, operation_id: str) -> Fault | None:
        """The next fault for this operation, or None."""
        with self._lock:
            queue = self._queues.get(operation_id)
            return queue.popleft() if queue else None

    def pending(self, operation_id: str) -> int:
        """How many faults are still queued for this operation."""
        with self._lock:
            return len(self._queues.get(operation_id, ()))

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._queues.clear()


# --- what the tests see -------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """A sender or receiver as the stand-in routes it.

    Attributes:
        org_her_id: the virksomhet's HER-id.
        her_id: the lowest level's HER-id (the inbox a message to it lands in).
        level: ``org``, ``dept`` (a nested Organisation) or ``person`` (a HealthcareProfessional).
    """

    org_her_id: int
    her_id: int
    level: str = "org"


@dataclass(frozen=True)
class SentDocument:
    """One document the service took: sent with ``POST /Messages`` or built for ``PostAppRec``.

    Attributes:
        message_id: the service's id for it.
        client_id: the client that sent it.
        document: the document's bytes, as decoded from base64.
        sender_her_id: the sender's lowest-level HER-id.
        receiver_her_ids: the receivers it was delivered to.
        business_document_id: its MsgId (an AppRec's Id).
        is_apprec: whether it is an AppRec.
    """

    message_id: str
    client_id: str
    document: bytes
    sender_her_id: int
    receiver_her_ids: tuple[int, ...]
    business_document_id: str
    is_apprec: bool


@dataclass(frozen=True)
class InboxEntry:
    """One message in one receiver's inbox.

    Attributes:
        message_id: the service's id of the message.
        receiver_her_id: whose inbox.
        sender_her_id: the sender's lowest-level HER-id.
        business_document_id: the MsgId.
        is_apprec: whether it is an AppRec.
        read: whether the receiver has marked it read.
        apprec_status: the receiver's AppRec for it, once given.
    """

    message_id: str
    receiver_her_id: int
    sender_her_id: int
    business_document_id: str
    is_apprec: bool
    read: bool
    apprec_status: str | None


@dataclass(frozen=True)
class PostedAppRec:
    """An AppRec a receiver posted with ``PostAppRec``.

    Attributes:
        message_id: the message answered.
        sender_her_id: the ``appRecSenderHerId``.
        status: ``Ok``, ``Rejected`` or ``OkErrorInMessagePart``.
        errors: the ``appRecErrorList`` as posted.
        apprec_message_id: the service's id of the AppRec message delivered to the original sender.
        document: the AppRec built.
    """

    message_id: str
    sender_her_id: int
    status: str
    errors: tuple[Mapping[str, object], ...]
    apprec_message_id: str
    document: bytes


# --- internal state -----------------------------------------------------------------------------


class _Refusal(Exception):
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


@dataclass(frozen=True)
class _Facts:
    """What routing needs from a business document."""

    sender: Party
    receivers: tuple[Party, ...]
    msg_id: str
    gen_date: str
    msg_type: str
    msg_type_text: str | None
    is_apprec: bool
    original_msg_id: str | None = None
    apprec_status: AppRecStatus | None = None
    apprec_errors: tuple[AppRecError, ...] = ()


@dataclass
class _Receipt:
    party: Party
    read: bool = False
    apprec_status: str | None = None
    apprec_errors: tuple[Mapping[str, object], ...] = ()


@dataclass
class _Stored:
    id: str
    client_id: str
    document: bytes
    facts: _Facts
    receipts: dict[int, _Receipt]


_Handler = Callable[[Request, str, RequestUnmarshalResult], Coroutine[Any, Any, Response]]


class MessageServiceStandIn:
    """The message service, in memory; mount :attr:`router` in a FastAPI app (see ``app.create_app``).

    Args:
        validator: checks every request against the OpenAPI document (``OpenApiValidator.msh()``).
        authorize: ``(request, scope) -> client_id``, raising ``HTTPException(401)`` to refuse.
        her_ids_by_client: the HER-ids each client may act for; None lets every client act for all.
        known_her_ids: the receivers that exist; None accepts every receiver.
        clock: the present, for AppRecs the service builds.

    Attributes:
        router: the eight operations, at the published paths.
        faults: answers tests inject (see :class:`Faults`).
        validator: the OpenAPI check, with its recorded violations.
    """

    def __init__(
        self,
        *,
        validator: OpenApiValidator,
        authorize: Authorize,
        her_ids_by_client: Mapping[str, frozenset[int]] | None = None,
        known_her_ids: Collection[int] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.validator = validator
        self.faults = Faults()
        self._authorize = authorize
        self._her_ids_by_client = dict(her_ids_by_client) if her_ids_by_client is not None else None
        self._known = frozenset(known_her_ids) if known_her_ids is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._messages: dict[str, _Stored] = {}
        self._read_marks: list[tuple[str, int]] = []
        self._apprecs: list[PostedAppRec] = []
        self.router = APIRouter(route_class=validator.route_class())
        routes: Sequence[tuple[str, str, str, _Handler]] = (
            ("POST", "/Messages", "PostMessage", self._post_message),
            ("GET", "/Messages", "GetMessages", self._get_messages),
            ("GET", "/Messages/{id}", "GetMessage", self._get_message),
            ("GET", "/Messages/{id}/business-document", "GetBusinessDocument", self._get_business_document),
            ("PUT", "/Messages/{id}/read/{herId}", "MarkMessageAsRead", self._mark_read),
            ("GET", "/Messages/{id}/status", "GetStatus", self._get_status),
            ("GET", "/Messages/{id}/apprec", "GetApprecInfo", self._get_apprec_info),
            ("POST", "/Messages/{id}/apprec/{appRecSenderHerId}", "PostAppRec", self._post_apprec),
        )
        for method, path, operation, handler in routes:
            self.router.add_api_route(
                path,
                self._endpoint(operation, handler),
                methods=[method],
                operation_id=operation,
                response_model=None,
                include_in_schema=False,
            )

    # -- accessors for tests --

    def sent(self) -> list[SentDocument]:
        """Every document taken, in order."""
        with self._lock:
            return [
                SentDocument(
                    message_id=stored.id,
                    client_id=stored.client_id,
                    document=stored.document,
                    sender_her_id=stored.facts.sender.her_id,
                    receiver_her_ids=tuple(stored.receipts),
                    business_document_id=stored.facts.msg_id,
                    is_apprec=stored.facts.is_apprec,
                )
                for stored in self._messages.values()
            ]

    def inbox(self, her_id: int | None = None) -> list[InboxEntry]:
        """The inbox entries of ``her_id`` (of every HER-id when None), read or not, in order."""
        with self._lock:
            return [
                InboxEntry(
                    message_id=stored.id,
                    receiver_her_id=receiver,
                    sender_her_id=stored.facts.sender.her_id,
                    business_document_id=stored.facts.msg_id,
                    is_apprec=stored.facts.is_apprec,
                    read=receipt.read,
                    apprec_status=receipt.apprec_status,
                )
                for stored in self._messages.values()
                for receiver, receipt in stored.receipts.items()
                if her_id is None or receiver == her_id
            ]

    def read_marks(self) -> list[tuple[str, int]]:
        """``(message_id, her_id)`` of every ``MarkMessageAsRead``, in order (repeats included)."""
        with self._lock:
            return list(self._read_marks)

    def apprecs(self) -> list[PostedAppRec]:
        """Every AppRec posted with ``PostAppRec``, in order."""
        with self._lock:
            return list(self._apprecs)

    def deliver(
        self,
        document: bytes,
        *,
        client_id: str = "another-system",
        receiver_her_ids: Sequence[int] | None = None,
    ) -> str:
        """Take a document as if another system had sent it; returns the message id.

        Raises:
            ValueError: the document would be refused by ``POST /Messages`` (the reason says why).
        """
        try:
            facts = _read_document(document)
            receivers = self._receivers(facts, receiver_her_ids)
            with self._lock:
                return self._store(client_id, document, facts, receivers)
        except _Refusal as refusal:
            raise ValueError("; ".join([refusal.error, *(refusal.validation_errors or ())])) from None

    def deliver_raw(
        self,
        document: bytes,
        *,
        sender_her_id: int,
        receiver_her_id: int,
        is_apprec: bool = True,
        client_id: str = "another-system",
    ) -> str:
        """Put any bytes in one inbox, unread, as if the service had taken them; returns the message id.

        For documents ``POST /Messages`` would refuse (not XML, broken, forged): what a receiving
        gateway must survive when the service hands over whatever a sender's system produced.
        """
        sender = Party(sender_her_id, sender_her_id)
        facts = _Facts(
            sender=sender,
            receivers=(Party(receiver_her_id, receiver_her_id),),
            msg_id=str(uuid.uuid4()),
            gen_date=self._clock().isoformat(),
            msg_type="APPREC" if is_apprec else "DIALOG_HELSEFAGLIG",
            msg_type_text=None,
            is_apprec=is_apprec,
        )
        with self._lock:
            return self._store(client_id, document, facts, facts.receivers, link=False)

    # -- the endpoint wrapper --

    def _endpoint(
        self, operation: str, handler: _Handler
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def endpoint(request: Request) -> Response:
            fault = self.faults.take(operation)
            if fault is not None:
                if fault.delay_s > 0:
                    await asyncio.sleep(fault.delay_s)
                if fault.status is not None:
                    mark_unchecked(request)
                    return fault.response()
            client_id = self._authorize(request, SCOPE)
            try:
                return await handler(request, client_id, unmarshalled(request))
            except _Refusal as refusal:
                return refusal.response()

        endpoint.__name__ = operation
        return endpoint

    # -- operations --

    async def _post_message(
        self, request: Request, client_id: str, parsed: RequestUnmarshalResult
    ) -> Response:
        if len(await request.body()) > MAX_REQUEST_BYTES:
            mark_unchecked(request)  # the limit is in the description's text; 413 is not among its answers
            raise _Refusal(413, "The request is larger than 35 MB")
        body = parsed.body
        if not isinstance(body, dict):
            raise _Refusal(
                400, "Model validation error occurred", validation_errors=["The request body is missing"]
            )
        document = _decoded_document(body)
        facts = _read_document(document)
        subset = body.get("receiverHerIdsSubset")
        receivers = self._receivers(facts, subset if isinstance(subset, list) else None)
        self._require(client_id, {facts.sender.her_id, facts.sender.org_her_id})
        with self._lock:
            message_id = self._store(client_id, document, facts, receivers)
        return JSONResponse(message_id, status_code=201, headers={"Location": f"/Messages/{message_id}"})

    async def _get_messages(
        self, request: Request, client_id: str, parsed: RequestUnmarshalResult
    ) -> Response:
        query = parsed.parameters.query
        her_ids = [int(h) for h in query["ReceiverHerIds"]]
        self._require(client_id, set(her_ids), every=True)
        sender = query.get("SenderHerId")
        document_id = query.get("BusinessDocumentId")
        metadata = bool(query.get("IncludeMetadata", False))
        limit = int(query.get("MessagesToFetch", 10))
        with self._lock:
            found = [
                (stored, her_id)
                for stored in self._messages.values()
                for her_id, receipt in stored.receipts.items()
                if her_id in her_ids
                and not receipt.read
                and (sender is None or stored.facts.sender.her_id == sender)
                and (document_id is None or stored.facts.msg_id == document_id)
            ]
            if query.get("OrderBy") == "Descending":
                found.reverse()
            return JSONResponse([_message_json(stored, her_id, metadata) for stored, her_id in found[:limit]])

    async def _get_message(
        self, request: Request, client_id: str, parsed: RequestUnmarshalResult
    ) -> Response:
        with self._lock:
            stored = self._find(parsed)
            return JSONResponse(_message_json(stored, self._readable_receiver(client_id, stored), True))

    async def _get_business_document(
        self, request: Request, client_id: str, parsed: RequestUnmarshalResult
    ) -> Response:
        with self._lock:
            stored = self._find(parsed)
            self._readable_receiver(client_id, stored)
            return JSONResponse(
                {
                    "businessDocument": base64.b64encode(stored.document).decode("ascii"),
                    "contentType": _CONTENT_TYPE,
                    "contentTransferEncoding": "base64",
                }
            )

    async def _mark_read(self, request: Request, client_id: str, parsed: RequestUnmarshalResult) -> Response:
        her_id = int(parsed.parameters.path["herId"])
        with self._lock:
            stored = self._find(parsed)
            receipt = stored.receipts.get(her_id)
            if receipt is None:
                raise _Refusal(404, "Could not find database document")
            self._require(client_id, {her_id})
            receipt.read = True
            self._read_marks.append((stored.id, her_id))
        return Response(status_code=204)

    async def _get_status(self, request: Request, client_id: str, parsed: RequestUnmarshalResult) -> Response:
        with self._lock:
            stored = self._find(parsed)
            self._require_sender(client_id, stored)
            return JSONResponse(
                [
                    _without_null_status(
                        {
                            "receiverHerId": her_id,
                            "transportDeliveryState": "Acknowledged" if receipt.read else "Unconfirmed",
                            "appRecStatus": receipt.apprec_status,
                        }
                    )
                    for her_id, receipt in stored.receipts.items()
                ]
            )

    async def _get_apprec_info(
        self, request: Request, client_id: str, parsed: RequestUnmarshalResult
    ) -> Response:
        with self._lock:
            stored = self._find(parsed)
            self._require_sender(client_id, stored)
            return JSONResponse(
                [
                    _without_null_status(
                        {
                            "receiverHerId": her_id,
                            "appRecStatus": receipt.apprec_status,
                            "appRecErrorList": [dict(error) for error in receipt.apprec_errors] or None,
                        }
                    )
                    for her_id, receipt in stored.receipts.items()
                ]
            )

    async def _post_apprec(
        self, request: Request, client_id: str, parsed: RequestUnmarshalResult
    ) -> Response:
        answering = int(parsed.parameters.path["appRecSenderHerId"])
        body = parsed.body
        if not isinstance(body, dict):
            raise _Refusal(
                400, "Model validation error occurred", validation_errors=["The request body is missing"]
            )
        status_name = str(body["appRecStatus"])
        errors = tuple(dict(error) for error in body.get("appRecErrorList") or ())
        with self._lock:
            original = self._find(parsed)
            if original.facts.is_apprec:
                raise _Refusal(400, "An application receipt cannot be answered with another")
            receipt = next(
                (r for r in original.receipts.values() if answering in (r.party.her_id, r.party.org_her_id)),
                None,
            )
            if receipt is None:
                raise _Refusal(400, f"HER-id {answering} is not a receiver of the message")
            self._require(client_id, {answering})
            if receipt.apprec_status is not None:
                raise _Refusal(400, "The message has already been answered with an application receipt")
            spec = _apprec_spec(original, receipt.party, _STATUS_BY_NAME[status_name], errors, self._clock())
            try:
                document = to_bytes(build_apprec(spec))
            except ValueError as exc:
                raise _Refusal(400, "Model validation error occurred", validation_errors=[str(exc)]) from None
            facts = _Facts(
                sender=receipt.party,
                receivers=(original.facts.sender,),
                msg_id=spec.id,
                gen_date=spec.gen_date.isoformat(timespec="seconds"),
                msg_type="APPREC",
                msg_type_text="Applikasjonskvittering",
                is_apprec=True,
                original_msg_id=original.facts.msg_id,
            )
            apprec_id = self._store(client_id, document, facts, facts.receivers, link=False)
            receipt.apprec_status = status_name
            receipt.apprec_errors = errors
            self._apprecs.append(
                PostedAppRec(original.id, answering, status_name, errors, apprec_id, document)
            )
        return JSONResponse(apprec_id, status_code=201, headers={"Location": f"/Messages/{apprec_id}"})

    # -- helpers (called with the lock held where they touch state) --

    def _find(self, parsed: RequestUnmarshalResult) -> _Stored:
        stored = self._messages.get(str(parsed.parameters.path["id"]).lower())
        if stored is None:
            raise _Refusal(404, "Could not find database document")
        return stored

    def _allowed(self, client_id: str) -> frozenset[int] | None:
        if self._her_ids_by_client is None:
            return None
        return self._her_ids_by_client.get(client_id, frozenset())

    def _require(self, client_id: str, her_ids: Collection[int], *, every: bool = False) -> None:
        """403 unless the client may act for one of ``her_ids`` (for all of them with ``every``)."""
        allowed = self._allowed(client_id)
        if allowed is None:
            return
        refused = sorted(h for h in her_ids if h not in allowed)
        if refused and (every or len(refused) == len(her_ids)):
            raise _Refusal(403, f"Not authorized for HerId(s): {', '.join(map(str, refused))}")

    def _require_sender(self, client_id: str, stored: _Stored) -> None:
        if stored.client_id != client_id:
            self._require(client_id, {stored.facts.sender.her_id, stored.facts.sender.org_her_id})

    def _readable_receiver(self, client_id: str, stored: _Stored) -> int:
        """The receiver HER-id through which the client sees the message (403 when none)."""
        allowed = self._allowed(client_id)
        for her_id in stored.receipts:
            if allowed is None or her_id in allowed:
                return her_id
        if stored.client_id == client_id:
            return next(iter(stored.receipts))
        raise _Refusal(403, f"Not authorized for HerId(s): {', '.join(map(str, stored.receipts))}")

    def _receivers(self, facts: _Facts, subset: Sequence[object] | None) -> tuple[Party, ...]:
        receivers = facts.receivers
        if subset:
            wanted = {int(h) for h in subset if isinstance(h, int)}
            strangers = sorted(wanted - {p.her_id for p in receivers} - {p.org_her_id for p in receivers})
            if strangers:
                raise _Refusal(
                    400,
                    "Model validation error occurred",
                    validation_errors=[
                        f"receiverHerIdsSubset names HER-ids not in the document: {strangers}"
                    ],
                )
            receivers = tuple(p for p in receivers if p.her_id in wanted or p.org_her_id in wanted)
        if self._known is not None:
            unknown = [p.her_id for p in receivers if p.her_id not in self._known]
            if unknown:
                raise _Refusal(
                    400,
                    "Model validation error occurred",
                    validation_errors=[
                        f"Receiver with HER-id {h} not found in Adresseregisteret" for h in unknown
                    ],
                )
        return receivers

    def _store(
        self, client_id: str, document: bytes, facts: _Facts, receivers: Sequence[Party], *, link: bool = True
    ) -> str:
        message_id = str(uuid.uuid4())
        receipts = {party.her_id: _Receipt(party) for party in receivers}
        self._messages[message_id] = _Stored(message_id, client_id, document, facts, receipts)
        if link and facts.is_apprec and facts.apprec_status is not None:
            self._link_apprec(facts)
        return message_id

    def _link_apprec(self, facts: _Facts) -> None:
        """An AppRec sent with POST /Messages answers the original message it names."""
        status = _STATUS_NAMES[facts.apprec_status] if facts.apprec_status is not None else None
        errors = tuple(
            {
                "errorCode": e.code,
                "details": e.original_text or "",
                "description": e.text or None,
                "oid": e.kodeverk,
            }
            for e in facts.apprec_errors
        )
        for stored in self._messages.values():
            if stored.facts.is_apprec or stored.facts.msg_id != facts.original_msg_id:
                continue
            for receipt in stored.receipts.values():
                answering = {facts.sender.her_id, facts.sender.org_her_id}
                if (
                    receipt.apprec_status is None
                    and {receipt.party.her_id, receipt.party.org_her_id} & answering
                ):
                    receipt.apprec_status = status
                    receipt.apprec_errors = errors


# --- reading documents --------------------------------------------------------------------------


def _decoded_document(body: Mapping[str, Any]) -> bytes:
    if str(body["contentType"]).strip().lower() != _CONTENT_TYPE:
        raise _Refusal(
            400, "Model validation error occurred", validation_errors=["contentType must be application/xml"]
        )
    if str(body["contentTransferEncoding"]).strip().lower() != "base64":
        raise _Refusal(
            400,
            "Model validation error occurred",
            validation_errors=["contentTransferEncoding must be base64"],
        )
    try:
        return base64.b64decode(str(body["businessDocument"]), validate=True)
    except (binascii.Error, ValueError):
        raise _Refusal(
            400, "Model validation error occurred", validation_errors=["businessDocument is not base64"]
        ) from None


def _read_document(document: bytes) -> _Facts:
    """Route a document: a MsgHead or an AppRec, UTF-8 declared, read by the hardened parser."""
    if _UTF8_DECLARATION.match(document) is None:
        raise _Refusal(
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
        raise _Refusal(
            400, "Model validation error occurred", validation_errors=[f"The business document: {exc}"]
        ) from None
    raise _Refusal(
        400,
        "Model validation error occurred",
        validation_errors=["The business document is not a MsgHead or AppRec"],
    )


def _read_msghead(root: etree._Element) -> _Facts:
    info = _required(root, "mh:MsgInfo")
    msg_type = _required(info, "mh:Type")
    receivers = tuple(
        _msghead_party(r.find("mh:Organisation", _NS), "receiver") for r in info.findall("mh:Receiver", _NS)
    )
    if not receivers:
        raise XmlRejected("the MsgHead names no receiver", code="T02")
    return _Facts(
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


def _read_apprec(apprec: AppRec) -> _Facts:
    return _Facts(
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


# --- writing answers ----------------------------------------------------------------------------


def _message_json(stored: _Stored, her_id: int, metadata: bool) -> dict[str, object]:
    out: dict[str, object] = {"id": stored.id, "receiverHerId": her_id}
    if metadata:
        out.update(
            {
                "contentType": _CONTENT_TYPE,
                "senderHerId": stored.facts.sender.her_id,
                "businessDocumentId": stored.facts.msg_id,
                "businessDocumentGenDate": _date_time(stored.facts.gen_date),
                "isAppRec": stored.facts.is_apprec,
            }
        )
    return out


def _without_null_status(item: dict[str, object]) -> dict[str, object]:
    """Leave out an ``appRecStatus`` that is null (no AppRec yet).

    The description declares it ``nullable`` beside an ``allOf`` of the ``AppRecStatus`` enum; under
    OpenAPI 3.0 that does not admit null (``nullable`` does not reach into the referenced schema), so
    a strict validator refuses the null NHN documents. The property is optional: leaving it out says
    the same and validates. Clients must read absent and null alike.
    """
    if item.get("appRecStatus") is None:
        item.pop("appRecStatus", None)
    return item


def _date_time(text: str) -> str | None:
    """A GenDate as an RFC 3339 date-time (no offset: Norwegian time), or None when unreadable."""
    try:
        return as_utc(datetime.fromisoformat(text)).isoformat()
    except ValueError:
        return None


def _apprec_spec(
    original: _Stored,
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
