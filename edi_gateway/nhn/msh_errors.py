"""The EDI 2.0 message service's failures as the exceptions of :mod:`edi_gateway.errors`.

:func:`error_for` turns an answer that is not a success (or a success too large to read) into
``TransportRefused`` or ``TransportUnavailable``, as the table in :mod:`edi_gateway.nhn.msh` says;
:func:`read_capped` reads a body as a stream and stops at the size limit; :func:`parse_retry_after`
reads ``Retry-After``.

**Unknown receiver.** NHN documents no error code for it, so the rule reads the text of the 400's
``ErrorMessage``: the refusal is ``unknown_receiver`` when ``error`` or one of ``validationErrors``
names, in the same text, the receiver as a word of its own (``receiver``, ``recipient``,
``mottaker``, ``communication party``, ``kommunikasjonspart``) and its absence (``unknown``,
``not found``, ``could not find``, ``does not exist``, ``no such``, ``is not registered``,
``ukjent``, ``finnes ikke``, ``ikke funnet``, ``ikke registrert``). Both in one text, as whole words,
so that neither "unknown property receiverRole" nor "sender not found" is taken for it. Everything
else refused with 400 is ``validation``.

**Error details.** A refusal carries the readable parts of the ``ErrorMessage`` (``error``,
``errorCode``, ``validationErrors``, ``requestId``, each bounded in length) for operators; the
``stackTrace`` is never kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

from edi_gateway.errors import TransportRefused, TransportUnavailable
from edi_gateway.nhn.capped import read_capped
from edi_gateway.nhn.msh_answers import Malformed, loads, text_or_none

__all__ = [
    "MAX_ERROR_BODY_BYTES",
    "MAX_RETRY_AFTER_S",
    "HttpAnswer",
    "error_details",
    "error_for",
    "is_unknown_receiver",
    "parse_retry_after",
    "read_capped",
]

MAX_RETRY_AFTER_S: Final = 300.0
"""The longest wait a ``Retry-After`` is believed for; a longer one is cut to this."""

MAX_ERROR_BODY_BYTES: Final = 256 * 1024
"""The most of an error answer that is read (only its details are kept)."""

_MAX_DETAIL_CHARS: Final = 2000
_MAX_VALIDATION_ERRORS: Final = 50
_RECEIVER_WORDS: Final = re.compile(
    r"\b(?:receivers?|recipients?|mottakere?|mottakeren|communication\s+party|kommunikasjonspart(?:en)?)\b",
    re.IGNORECASE,
)
_ABSENT_WORDS: Final = re.compile(
    r"\b(?:unknown|not\s+found|could\s+not\s+(?:be\s+)?f(?:i|ou)nd|does\s+not\s+exist|no\s+such|"
    r"is\s+not\s+registered|ukjent|finnes\s+ikke|ikke\s+funnet|ikke\s+registrert)\b",
    re.IGNORECASE,
)


# --- reading an answer --------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer as read: its status, headers and (capped) body."""

    status: int
    headers: httpx.Headers
    body: bytes | None  # None: larger than the limit, not read to the end


# --- errors -------------------------------------------------------------------------------------


def error_for(
    operation: str, answer: HttpAnswer, details: dict[str, object]
) -> TransportRefused | TransportUnavailable:
    """The exception for an answer that is not a success (or is a success too large to read).

    Args:
        operation: the operation id, for the message.
        answer: the answer.
        details: the answer's :func:`error_details` (empty for a success).
    """
    status = answer.status
    request_id = text_or_none(details.get("requestId"))
    where = f"NHN message service: {operation} answered HTTP {status}"
    if request_id:
        where += f" (requestId {request_id})"
    if 200 <= status < 300:
        return TransportUnavailable(f"{where} larger than the client's limit", kind="malformed")
    if status == 429:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        return TransportUnavailable(f"{where} (busy)", kind="rate_limited", retry_after_s=retry_after)
    if status >= 500:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        return TransportUnavailable(f"{where} (server error)", kind="server_error", retry_after_s=retry_after)
    if status in (401, 403):
        return TransportUnavailable(f"{where} (our client's token or rights)", kind="auth")
    if status == 408:
        return TransportUnavailable(f"{where} (request timeout)", kind="timeout")
    if not 400 <= status < 500:
        return TransportUnavailable(f"{where}, which the API does not answer", kind="malformed")
    if status == 400:
        kind = "unknown_receiver" if is_unknown_receiver(details) else "validation"
    else:
        kind = {404: "not_found", 413: "too_large"}.get(status, "refused")
    return TransportRefused(f"{where}: {kind}", status=status, kind=kind, details=details)


def error_details(body: bytes | None) -> dict[str, object]:
    """The readable, bounded parts of an ``ErrorMessage`` body; never its ``stackTrace``.

    Args:
        body: the answer's body (None or anything unreadable gives ``{}``).

    Returns:
        ``error`` (str), ``errorCode`` (int), ``validationErrors`` (list of str) and ``requestId``
        (str), each only when present with the documented type; texts are cut to 2000 characters
        and the list to 50 entries.
    """
    if not body:
        return {}
    try:
        document = loads(body)
    except Malformed:
        return {}
    if not isinstance(document, dict):
        return {}
    details: dict[str, object] = {}
    error = document.get("error")
    if isinstance(error, str):
        details["error"] = error[:_MAX_DETAIL_CHARS]
    code = document.get("errorCode")
    if isinstance(code, int) and not isinstance(code, bool):
        details["errorCode"] = code
    validation = document.get("validationErrors")
    if isinstance(validation, list):
        details["validationErrors"] = [
            item[:_MAX_DETAIL_CHARS] for item in validation[:_MAX_VALIDATION_ERRORS] if isinstance(item, str)
        ]
    request_id = document.get("requestId")
    if isinstance(request_id, str):
        details["requestId"] = request_id[:200]
    return details


def is_unknown_receiver(details: Mapping[str, object]) -> bool:
    """Whether a 400's error details say the receiver is unknown (the rule is in the module docstring)."""
    texts: list[str] = []
    error = details.get("error")
    if isinstance(error, str):
        texts.append(error)
    validation = details.get("validationErrors")
    if isinstance(validation, list):
        texts.extend(item for item in validation if isinstance(item, str))
    return any(_RECEIVER_WORDS.search(text) and _ABSENT_WORDS.search(text) for text in texts)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay-seconds or an HTTP-date.

    Args:
        value: the header's value, or None when there was none.
        now: the present, for an HTTP-date (default: the system clock).

    Returns:
        Seconds to wait: never negative, at most :data:`MAX_RETRY_AFTER_S`; None when the header
        is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[0-9]{1,12}(?:\.[0-9]{1,6})?", text):
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
