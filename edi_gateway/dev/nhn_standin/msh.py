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

Beside this module: :mod:`~edi_gateway.dev.nhn_standin.faults` (``Fault``, ``Faults``),
:mod:`~edi_gateway.dev.nhn_standin.documents` (reading and routing documents, the AppRecs built) and
:mod:`~edi_gateway.dev.nhn_standin.records` (what is kept of each message, what tests see of it).
"""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from fastapi import APIRouter
from openapi_core.unmarshalling.request.datatypes import RequestUnmarshalResult
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.localtime import as_utc
from edi_gateway.xml.apprec import build_apprec
from edi_gateway.xml.msghead import to_bytes

from .documents import CONTENT_TYPE, MAX_REQUEST_BYTES, Refusal, apprec_spec, decoded_document, read_document
from .faults import OPERATIONS, Fault, Faults
from .openapi import OpenApiValidator, mark_unchecked, unmarshalled
from .records import Facts, InboxEntry, Party, PostedAppRec, Receipt, SentDocument, Stored

__all__ = [
    "MAX_REQUEST_BYTES",
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

Authorize = Callable[[Request, str], str]
"""``(request, scope) -> client_id``; raises ``HTTPException(401)`` when the request is not authorized."""

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
        self._messages: dict[str, Stored] = {}
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
            facts = read_document(document)
            receivers = self._receivers(facts, receiver_her_ids)
            with self._lock:
                return self._store(client_id, document, facts, receivers)
        except Refusal as refusal:
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
        facts = Facts(
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
            except Refusal as refusal:
                return refusal.response()

        endpoint.__name__ = operation
        return endpoint

    # -- operations --

    async def _post_message(
        self, request: Request, client_id: str, parsed: RequestUnmarshalResult
    ) -> Response:
        if len(await request.body()) > MAX_REQUEST_BYTES:
            mark_unchecked(request)  # the limit is in the description's text; 413 is not among its answers
            raise Refusal(413, "The request is larger than 35 MB")
        body = parsed.body
        if not isinstance(body, dict):
            raise Refusal(
                400, "Model validation error occurred", validation_errors=["The request body is missing"]
            )
        document = decoded_document(body)
        facts = read_document(document)
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
                    "contentType": CONTENT_TYPE,
                    "contentTransferEncoding": "base64",
                }
            )

    async def _mark_read(self, request: Request, client_id: str, parsed: RequestUnmarshalResult) -> Response:
        her_id = int(parsed.parameters.path["herId"])
        with self._lock:
            stored = self._find(parsed)
            receipt = stored.receipts.get(her_id)
            if receipt is None:
                raise Refusal(404, "Could not find database document")
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
            raise Refusal(
                400, "Model validation error occurred", validation_errors=["The request body is missing"]
            )
        status_name = str(body["appRecStatus"])
        errors = tuple(dict(error) for error in body.get("appRecErrorList") or ())
        with self._lock:
            original = self._find(parsed)
            if original.facts.is_apprec:
                raise Refusal(400, "An application receipt cannot be answered with another")
            receipt = next(
                (r for r in original.receipts.values() if answering in (r.party.her_id, r.party.org_her_id)),
                None,
            )
            if receipt is None:
                raise Refusal(400, f"HER-id {answering} is not a receiver of the message")
            self._require(client_id, {answering})
            if receipt.apprec_status is not None:
                raise Refusal(400, "The message has already been answered with an application receipt")
            spec = apprec_spec(original, receipt.party, _STATUS_BY_NAME[status_name], errors, self._clock())
            try:
                document = to_bytes(build_apprec(spec))
            except ValueError as exc:
                raise Refusal(400, "Model validation error occurred", validation_errors=[str(exc)]) from None
            facts = Facts(
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

    def _find(self, parsed: RequestUnmarshalResult) -> Stored:
        stored = self._messages.get(str(parsed.parameters.path["id"]).lower())
        if stored is None:
            raise Refusal(404, "Could not find database document")
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
            raise Refusal(403, f"Not authorized for HerId(s): {', '.join(map(str, refused))}")

    def _require_sender(self, client_id: str, stored: Stored) -> None:
        if stored.client_id != client_id:
            self._require(client_id, {stored.facts.sender.her_id, stored.facts.sender.org_her_id})

    def _readable_receiver(self, client_id: str, stored: Stored) -> int:
        """The receiver HER-id through which the client sees the message (403 when none)."""
        allowed = self._allowed(client_id)
        for her_id in stored.receipts:
            if allowed is None or her_id in allowed:
                return her_id
        if stored.client_id == client_id:
            return next(iter(stored.receipts))
        raise Refusal(403, f"Not authorized for HerId(s): {', '.join(map(str, stored.receipts))}")

    def _receivers(self, facts: Facts, subset: Sequence[object] | None) -> tuple[Party, ...]:
        receivers = facts.receivers
        if subset:
            wanted = {int(h) for h in subset if isinstance(h, int)}
            strangers = sorted(wanted - {p.her_id for p in receivers} - {p.org_her_id for p in receivers})
            if strangers:
                raise Refusal(
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
                raise Refusal(
                    400,
                    "Model validation error occurred",
                    validation_errors=[
                        f"Receiver with HER-id {h} not found in Adresseregisteret" for h in unknown
                    ],
                )
        return receivers

    def _store(
        self, client_id: str, document: bytes, facts: Facts, receivers: Sequence[Party], *, link: bool = True
    ) -> str:
        message_id = str(uuid.uuid4())
        receipts = {party.her_id: Receipt(party) for party in receivers}
        self._messages[message_id] = Stored(message_id, client_id, document, facts, receipts)
        if link and facts.is_apprec and facts.apprec_status is not None:
            self._link_apprec(facts)
        return message_id

    def _link_apprec(self, facts: Facts) -> None:
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


# --- writing answers ----------------------------------------------------------------------------


def _message_json(stored: Stored, her_id: int, metadata: bool) -> dict[str, object]:
    out: dict[str, object] = {"id": stored.id, "receiverHerId": her_id}
    if metadata:
        out.update(
            {
                "contentType": CONTENT_TYPE,
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
