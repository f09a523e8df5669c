"""Client for NHN's EDI 2.0 message service (Meldingstjener REST API, "MSH API v2").

The operations are those of the published description (``schemas/nhn/msh-api-v2.json``): send a
business document, poll the inbox, fetch a message and its document, mark it read, read the delivery
status and the AppRec information of a sent message, and post an AppRec for a received one. Every
request carries ``api-version`` and ``nhn-source-system``, the authentication headers the ``auth``
callable gives for that one request (``Authorization`` and, with DPoP, ``DPoP``), and explicit
timeouts.

httpx's exceptions stop here. What callers see is the tree of :mod:`edi_gateway.errors`:

==========================================  =========================================================
what happened                               raised
==========================================  =========================================================
connecting failed or timed out, or the      ``TransportUnavailable(kind="connect")``
connection broke during the exchange
no (complete) answer within the timeout     ``TransportUnavailable(kind="timeout")`` (also HTTP 408)
HTTP 429                                    ``TransportUnavailable(kind="rate_limited")`` with
                                            ``retry_after_s`` from ``Retry-After``
HTTP 5xx                                    ``TransportUnavailable(kind="server_error")`` (with
                                            ``retry_after_s`` when a 503 says)
HTTP 401 twice, HTTP 403                    ``TransportUnavailable(kind="auth")``: our client's token
                                            or rights, never the message's fault
HTTP 400                                    ``TransportRefused(kind="validation")``, or
                                            ``kind="unknown_receiver"`` (see below)
HTTP 404 / 413 / other 4xx                  ``TransportRefused(kind="not_found" / "too_large" /
                                            "refused")``
an answer that is not the documented shape  ``TransportUnavailable(kind="malformed")``
(not JSON, wrong types, a required field
missing, bad base64, no uuid where one is
promised, an unexpected status) or larger
than ``max_response_bytes``
==========================================  =========================================================

A 401 is answered once by calling ``on_unauthorized`` (which drops the cached token) and repeating
the request with fresh headers from ``auth``; only a second 401 is an error.

**Unknown receiver** and **error details**: the rule that tells an unknown receiver from any other
400, and the readable, bounded parts of NHN's ``ErrorMessage`` a refusal carries (never its
``stackTrace``), are in :mod:`edi_gateway.nhn.msh_errors`. Logs name the operation, the HTTP status,
the kind and NHN's ``requestId``, never a body or a document.

**Size.** Every answer is read as a stream and reading stops at ``max_response_bytes`` (a declared
``Content-Length`` over the limit is refused before reading): the service cannot make us hold more.

**Business documents** are returned with the content type the service states; the client does not
judge it (the caller refuses anything that is not XML, with its own clear error).

A client is safe to share between threads (it keeps no state besides httpx's connection pool).

The results and the reading of the answers' JSON are in :mod:`edi_gateway.nhn.msh_answers`.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, TypeVar

import httpx

from edi_gateway.errors import TokenUnavailable, TransportRefused, TransportUnavailable
from edi_gateway.logging import get_logger
from edi_gateway.nhn.msh_answers import (
    MAX_HER_ID,
    UUID_PATTERN,
    AppRecErrorItem,
    AppRecInfo,
    BusinessDocument,
    DeliveryStatus,
    InboxMessage,
    Malformed,
    apprec_info_answer,
    document_answer,
    message_answer,
    messages_answer,
    no_answer,
    status_answer,
    text_or_none,
    uuid_answer,
)
from edi_gateway.nhn.msh_errors import (
    MAX_ERROR_BODY_BYTES,
    MAX_RETRY_AFTER_S,
    HttpAnswer,
    error_details,
    error_for,
    is_unknown_receiver,
    parse_retry_after,
    read_capped,
)

__all__ = [
    "APPREC_STATUSES",
    "MAX_MESSAGES_TO_FETCH",
    "MAX_RETRY_AFTER_S",
    "AppRecErrorItem",
    "AppRecInfo",
    "Auth",
    "BusinessDocument",
    "DeliveryStatus",
    "InboxMessage",
    "MshClient",
    "MshConfig",
    "Observe",
    "error_details",
    "is_unknown_receiver",
    "parse_retry_after",
]

log = get_logger(__name__)

Auth = Callable[[str, str], Mapping[str, str]]
"""``(method, url) -> headers``: the authentication headers (``Authorization``, ``DPoP``) for one request.

``url`` is the absolute request URL without its query (the ``htu`` of a DPoP proof).
"""

Observe = Callable[[str, float, str | None], None]
"""``(operation_id, seconds, error_kind_or_None)``: called once after every API call (metrics)."""

APPREC_STATUSES: Final = frozenset({"Ok", "Rejected", "OkErrorInMessagePart"})
"""The ``AppRecStatus`` values of the API (kodeverk 8258 codes 1, 2 and 3)."""

MAX_MESSAGES_TO_FETCH: Final = 100
"""The API's upper bound on ``MessagesToFetch``."""

_T = TypeVar("_T")


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MshConfig:
    """Where the message service is and how the client talks to it.

    Raises:
        ValueError: from construction, when a value cannot work (no http(s) URL, an empty source
            system, a timeout or size limit that is not positive).
    """

    base_url: str
    """The service's root, e.g. ``https://api.tjener.test.melding.nhn.no`` (the paths are appended)."""

    source_system: str
    """Sent as ``nhn-source-system`` on every request: our name and version, e.g. ``edi_gateway 0.1.0``."""

    api_version: str = "2"
    """Sent as ``api-version`` on every request."""

    timeout_s: float = 10.0
    """Timeout of each phase of a request (connect, write, each read, pool), in seconds."""

    max_response_bytes: int = 48 * 1024 * 1024
    """The largest answer read; a larger one is refused as ``malformed`` (a 35 MB document in base64 fits)."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s?#]*)?", self.base_url):
            raise ValueError("MshConfig.base_url must be an absolute http(s) URL without query or fragment")
        for name, value in (("source_system", self.source_system), ("api_version", self.api_version)):
            if not value.strip() or not value.isascii() or not value.isprintable():
                raise ValueError(f"MshConfig.{name} must be printable ASCII and not empty")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError("MshConfig.timeout_s must be a positive number of seconds")
        if self.max_response_bytes <= 0:
            raise ValueError("MshConfig.max_response_bytes must be positive")


# --- the client ---------------------------------------------------------------------------------


class MshClient:
    """The EDI 2.0 message service, one method per operation; errors as the module docstring says.

    Args:
        config: where and how to call.
        auth: gives the authentication headers for each request.
        http: an httpx client to use (its owner closes it); by default the client makes its own.
        on_unauthorized: called when the service answers 401, before the one retry: drop the
            cached token there so that ``auth`` fetches a fresh one.
        observe: called after every API call with the operation id, the seconds it took and the
            error kind (None on success).
    """

    def __init__(
        self,
        config: MshConfig,
        auth: Auth,
        *,
        http: httpx.Client | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        observe: Observe | None = None,
    ) -> None:
        self.config = config
        self._auth = auth
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(follow_redirects=False)
        self._on_unauthorized = on_unauthorized
        self._observe = observe
        self._base = config.base_url.rstrip("/")
        self._timeout = httpx.Timeout(config.timeout_s)

    # -- operations --

    def post_message(self, business_document: bytes, *, receiver_her_ids: Sequence[int] | None = None) -> str:
        """Send a business document (``PostMessage``).

        Args:
            business_document: the signed document, UTF-8 XML declared as such in its first line.
            receiver_her_ids: deliver to only these of the document's receivers (``receiverHerIdsSubset``).

        Returns:
            The service's id of the message (a uuid).

        Raises:
            ValueError: the document is empty, or ``receiver_her_ids`` is empty or holds a non-HER-id.
            TransportRefused: the service refused the document for good.
            TransportUnavailable: the service could not take it now. After ``timeout`` (or a
                connection broken mid-request) the document may have been accepted all the same.
        """
        if not business_document:
            raise ValueError("the business document is empty")
        body: dict[str, object] = {
            "businessDocument": base64.b64encode(business_document).decode("ascii"),
            "contentType": "application/xml",
            "contentTransferEncoding": "base64",
        }
        if receiver_her_ids is not None:
            if not receiver_her_ids:
                raise ValueError("receiver_her_ids, when given, must name at least one receiver")
            body["receiverHerIdsSubset"] = [_her_id_argument(h, "receiver_her_ids") for h in receiver_her_ids]
        return self._call("PostMessage", "POST", "/Messages", json_body=body, parse=uuid_answer)

    def list_messages(
        self, receiver_her_id: int, *, limit: int = MAX_MESSAGES_TO_FETCH
    ) -> list[InboxMessage]:
        """The unread messages in one HER-id's inbox, with metadata (``GetMessages``).

        Args:
            receiver_her_id: whose inbox.
            limit: at most this many (1 to 100).

        Raises:
            ValueError: a HER-id or limit out of range.
            TransportRefused, TransportUnavailable: as the module docstring says.
        """
        her_id = _her_id_argument(receiver_her_id, "receiver_her_id")
        if isinstance(limit, bool) or not 1 <= limit <= MAX_MESSAGES_TO_FETCH:
            raise ValueError(f"limit must be 1 to {MAX_MESSAGES_TO_FETCH}")
        params = [
            ("ReceiverHerIds", str(her_id)),
            ("IncludeMetadata", "true"),
            ("MessagesToFetch", str(limit)),
        ]
        return self._call("GetMessages", "GET", "/Messages", params=params, parse=messages_answer)

    def get_message(self, message_id: str) -> InboxMessage:
        """One message's metadata (``GetMessage``).

        Raises:
            ValueError: ``message_id`` is not a uuid.
            TransportRefused: ``not_found`` for an unknown id; TransportUnavailable as usual.
        """
        path = f"/Messages/{_uuid_argument(message_id)}"
        return self._call("GetMessage", "GET", path, parse=message_answer)

    def get_business_document(self, message_id: str) -> BusinessDocument:
        """A received message's business document, decoded (``GetBusinessDocument``).

        The content type is returned as the service states it; the caller decides what it accepts.

        Raises:
            ValueError: ``message_id`` is not a uuid.
            TransportRefused: ``not_found`` for an unknown id.
            TransportUnavailable: ``malformed`` when the document is not base64 (or another
                transfer encoding is named), besides the usual kinds.
        """
        path = f"/Messages/{_uuid_argument(message_id)}/business-document"
        return self._call("GetBusinessDocument", "GET", path, parse=document_answer)

    def mark_read(self, message_id: str, receiver_her_id: int) -> None:
        """Mark a received message read for one receiver HER-id (``MarkMessageAsRead``).

        Raises:
            ValueError: an argument out of range.
            TransportRefused: ``not_found`` for an unknown id; TransportUnavailable as usual.
        """
        her_id = _her_id_argument(receiver_her_id, "receiver_her_id")
        path = f"/Messages/{_uuid_argument(message_id)}/read/{her_id}"
        self._call("MarkMessageAsRead", "PUT", path, parse=no_answer)

    def get_status(self, message_id: str) -> list[DeliveryStatus]:
        """The delivery status of a sent message, per receiver and copy receiver (``GetStatus``).

        Raises:
            ValueError: ``message_id`` is not a uuid.
            TransportRefused: ``not_found`` for an unknown id; TransportUnavailable as usual.
        """
        path = f"/Messages/{_uuid_argument(message_id)}/status"
        return self._call("GetStatus", "GET", path, parse=status_answer)

    def get_apprec_info(self, message_id: str) -> list[AppRecInfo]:
        """The AppRecs the receivers of a sent message gave, with their errors (``GetApprecInfo``).

        Raises:
            ValueError: ``message_id`` is not a uuid.
            TransportRefused: ``not_found`` for an unknown id; TransportUnavailable as usual.
        """
        path = f"/Messages/{_uuid_argument(message_id)}/apprec"
        return self._call("GetApprecInfo", "GET", path, parse=apprec_info_answer)

    def post_apprec(
        self, message_id: str, sender_her_id: int, status: str, errors: Sequence[AppRecErrorItem] = ()
    ) -> str:
        """Answer a received message with an AppRec (``PostAppRec``); the service builds and sends it.

        Args:
            message_id: the received message answered.
            sender_her_id: the HER-id answering (the receiver of the message).
            status: ``Ok``, ``Rejected`` or ``OkErrorInMessagePart``.
            errors: the AppRec's errors; ``Rejected`` and ``OkErrorInMessagePart`` need at least
                one, ``Ok`` none (HIS 80415).

        Returns:
            The service's id of the AppRec message (a uuid).

        Raises:
            ValueError: an unknown status, a status that does not agree with the errors, an error
                without a code, or an argument out of range.
            TransportRefused, TransportUnavailable: as the module docstring says.
        """
        path = f"/Messages/{_uuid_argument(message_id)}/apprec/{_her_id_argument(sender_her_id, 'sender_her_id')}"
        if status not in APPREC_STATUSES:
            raise ValueError(f"status must be one of {sorted(APPREC_STATUSES)}")
        if (status == "Ok") == bool(errors):
            raise ValueError("an Ok AppRec carries no errors; Rejected and OkErrorInMessagePart need one")
        if any(not error.error_code.strip() for error in errors):
            raise ValueError("every AppRec error needs a code")
        body: dict[str, object] = {"appRecStatus": status}
        if errors:
            body["appRecErrorList"] = [_apprec_error_json(error) for error in errors]
        return self._call("PostAppRec", "POST", path, json_body=body, parse=uuid_answer)

    def ping(self, her_id: int) -> None:
        """A cheap authenticated call for readiness: one inbox look-up of at most one message.

        Nothing is marked read or otherwise changed.

        Raises:
            ValueError: ``her_id`` out of range.
            TransportRefused, TransportUnavailable: the service is not usable for us now.
        """
        params = [("ReceiverHerIds", str(_her_id_argument(her_id, "her_id"))), ("MessagesToFetch", "1")]
        self._call("GetMessages", "GET", "/Messages", params=params, parse=messages_answer)

    def close(self) -> None:
        """Close the HTTP client when this client made it (an injected one is its owner's to close)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> MshClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the exchange --

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        parse: Callable[[bytes], _T],
        params: Sequence[tuple[str, str]] | None = None,
        json_body: Mapping[str, object] | None = None,
    ) -> _T:
        """One API call: the exchange, the error mapping, the parsing, the log line and the metrics hook."""
        started = time.monotonic()
        kind: str | None = None
        status: int | None = None
        request_id: str | None = None
        try:
            answer = self._exchange(method, self._base + path, params, json_body)
            status = answer.status
            if 200 <= answer.status < 300 and answer.body is not None:
                try:
                    return parse(answer.body)
                except Malformed as exc:
                    raise TransportUnavailable(
                        f"NHN message service: {operation} answered HTTP {answer.status} with {exc}",
                        kind="malformed",
                    ) from None
            details = error_details(answer.body) if not 200 <= answer.status < 300 else {}
            request_id = text_or_none(details.get("requestId"))
            raise error_for(operation, answer, details)
        except (TransportRefused, TransportUnavailable) as exc:
            kind = exc.kind
            raise
        except TokenUnavailable:
            kind = "token"
            raise
        except Exception:
            kind = "error"
            raise
        finally:
            elapsed = time.monotonic() - started
            if kind is None:
                log.debug(
                    "nhn.msh.call", operation=operation, status=status, duration_ms=round(elapsed * 1000)
                )
            else:
                log.warning(
                    "nhn.msh.call_failed",
                    operation=operation,
                    status=status,
                    kind=kind,
                    nhn_request_id=request_id,
                    duration_ms=round(elapsed * 1000),
                )
            self._notify(operation, elapsed, kind)

    def _exchange(
        self,
        method: str,
        url: str,
        params: Sequence[tuple[str, str]] | None,
        json_body: Mapping[str, object] | None,
    ) -> HttpAnswer:
        """Send the request; on a first 401 drop the token and send it once more with fresh headers."""
        answer = self._send(method, url, params, json_body)
        if answer.status == 401:
            log.info("nhn.msh.unauthorized_retry", status=401)
            if self._on_unauthorized is not None:
                self._on_unauthorized()
            answer = self._send(method, url, params, json_body)
        return answer

    def _send(
        self,
        method: str,
        url: str,
        params: Sequence[tuple[str, str]] | None,
        json_body: Mapping[str, object] | None,
    ) -> HttpAnswer:
        headers = dict(self._auth(method, url))
        headers.update(
            {
                "api-version": self.config.api_version,
                "nhn-source-system": self.config.source_system,
                "Accept": "application/json",
            }
        )
        content = None if json_body is None else json.dumps(json_body, separators=(",", ":")).encode("utf-8")
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            with self._http.stream(
                method,
                url,
                params=None if params is None else httpx.QueryParams(list(params)),
                content=content,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                limit = self.config.max_response_bytes
                if not 200 <= response.status_code < 300:
                    limit = min(limit, MAX_ERROR_BODY_BYTES)
                return HttpAnswer(response.status_code, response.headers, read_capped(response, limit))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransportUnavailable(
                f"NHN message service: could not connect ({type(exc).__name__})", kind="connect"
            ) from None
        except httpx.TimeoutException as exc:
            raise TransportUnavailable(
                f"NHN message service: no answer within {self.config.timeout_s} s ({type(exc).__name__})",
                kind="timeout",
            ) from None
        except httpx.DecodingError as exc:
            raise TransportUnavailable(
                f"NHN message service: the answer could not be decoded ({type(exc).__name__})",
                kind="malformed",
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportUnavailable(
                f"NHN message service: the connection failed ({type(exc).__name__})", kind="connect"
            ) from None

    def _notify(self, operation: str, seconds: float, kind: str | None) -> None:
        if self._observe is None:
            return
        try:
            self._observe(operation, seconds, kind)
        except Exception as exc:  # a metrics hook must not turn a call into a failure
            log.warning("nhn.msh.observe_failed", operation=operation, error=type(exc).__name__)


# --- writing requests ---------------------------------------------------------------------------


def _apprec_error_json(error: AppRecErrorItem) -> dict[str, object]:
    out: dict[str, object] = {"errorCode": error.error_code, "details": error.details}
    if error.description is not None:
        out["description"] = error.description
    if error.oid is not None:
        out["oid"] = error.oid
    return out


# --- checking arguments -------------------------------------------------------------------------


def _her_id_argument(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HER_ID:
        raise ValueError(f"{name} must be a HER-id (a positive 32-bit integer)")
    return value


def _uuid_argument(value: str) -> str:
    if not isinstance(value, str) or UUID_PATTERN.fullmatch(value) is None:
        raise ValueError("a message id must be a uuid (8-4-4-4-12 hexadecimal digits)")
    return value
