"""Faults a test injects into the message service stand-in, in place of one call's normal service.

:class:`Faults` queues them per operation id (:data:`OPERATIONS`) and hands them out one per call,
in order. A :class:`Fault` says what to answer: any ``ErrorMessage``, 429 with ``Retry-After``, a
5xx, a body that is not JSON or not the documented shape, an oversized streamed body, the 400 for an
unknown receiver, a 401, or only a delay after which the call is served normally. How the service
uses them (before authorization, exempt from the response check) is in
:mod:`edi_gateway.dev.nhn_standin.msh`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from starlette.responses import Response, StreamingResponse

__all__ = ["OPERATIONS", "Fault", "Faults"]

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
