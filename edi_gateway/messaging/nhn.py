"""The ``nhn`` transport: NHN's EDI 2.0 message service (MSH API v2), through ``nhn.msh.MshClient``.

Sending: one ``POST /Messages`` per document, a few in parallel. A transient fault (timeout, 429,
5xx, a refused token, an unreadable answer) is retried here with backoff, waiting what
``Retry-After`` asks within a bound; if it persists the document is ``Deferred`` and the use case
tries again later (the request is requeued, the message stays ``queued``). A refusal (400 validation,
unknown receiver) is final: ``Refused`` with NHN's error body. As on AMQP a document whose answer was
lost may arrive twice; receivers drop duplicates by MsgId.

Receiving (``NhnInbox``): poll ``GET /Messages`` for every HER-id we serve, fetch each business
document, hand the batch to the handler, and mark a document read only after the handler has
stored its outcome (``ACK``, or ``DEAD_LETTER`` for a parked one). A crash between the two leaves it
unread: it comes again, and the handler treats it as the duplicate it is. A document that cannot be
fetched stays unread and is tried again on the next poll.

Our AppRecs for inbound documents go through ``POST /Messages/{id}/apprec/{herId}``; NHN builds the
AppRec document itself.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from edi_gateway.domain.retry import RetryPolicy
from edi_gateway.errors import EdiGatewayError, TransientError, TransportRefused, TransportUnavailable
from edi_gateway.logging import get_logger
from edi_gateway.messaging.base import (
    Accepted,
    AppRecAnswer,
    Deferred,
    Delivery,
    Disposition,
    Envelope,
    Handler,
    Refused,
    SendResult,
)
from edi_gateway.nhn.msh import AppRecErrorItem, DeliveryStatus, InboxMessage, MshClient

log = get_logger(__name__)

# kodeverk 8258 → the API's AppRecStatus.
APPREC_STATUS: Final = {1: "Ok", 2: "Rejected", 3: "OkErrorInMessagePart"}


@dataclass(frozen=True)
class NhnSendPolicy:
    """How hard a send tries before it gives a document back as deferred.

    Attributes:
        attempts: tries per document within one ``send_many`` (the first included).
        max_wait_s: the longest single wait between tries, whatever ``Retry-After`` asks; a longer
            ask defers the document at once (the use case's own retry takes it from there).
        parallel: documents posted at the same time.
    """

    attempts: int = 3
    max_wait_s: float = 5.0
    parallel: int = 8


class NhnTransport:
    """Sends documents and AppRecs through NHN's message service; thread-safe."""

    name: Final = "nhn"

    def __init__(
        self,
        msh: MshClient,
        *,
        policy: NhnSendPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Send through ``msh`` (owned by the caller).

        Args:
            msh: the message service client.
            policy: retries and parallelism.
            sleep: how to wait between tries (tests pass a fake).
            on_error: told the kind of every fault (``rate_limited``, ``validation``, ...), for metrics.
        """
        self._msh = msh
        self._policy = policy or NhnSendPolicy()
        self._sleep = sleep
        self._on_error = on_error or (lambda kind: None)
        self._retry = RetryPolicy(max_attempts=self._policy.attempts)
        self._pool = ThreadPoolExecutor(max_workers=self._policy.parallel, thread_name_prefix="nhn-send")

    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        """Post every document; one result each, in order."""
        return list(self._pool.map(self._send_one, envelopes))

    def send_apprecs(self, answers: Sequence[AppRecAnswer]) -> list[SendResult]:
        """Answer each delivered document with the API's AppRec operation."""
        return list(self._pool.map(self._answer_one, answers))

    def close(self) -> None:
        """Stop the sending threads (the client is the caller's to close)."""
        self._pool.shutdown(wait=True)

    def _send_one(self, envelope: Envelope) -> SendResult:
        def post() -> str:
            return self._msh.post_message(envelope.body)

        result = self._tried(post, msg_id=envelope.msg_id)
        if isinstance(result, Accepted):
            log.info("nhn.sent", msg_id=envelope.msg_id, nhn_id=result.transport_id)
        return result

    def _answer_one(self, answer: AppRecAnswer) -> SendResult:
        if answer.in_reply_to is None:
            return Refused("no message service id to answer: the document did not come through NHN")
        status = APPREC_STATUS.get(answer.status)
        if status is None:
            return Refused(f"AppRec status {answer.status} has no counterpart in the message service")
        errors = [AppRecErrorItem(error_code=code, details=text) for code, text in answer.errors]
        in_reply_to, her_id = answer.in_reply_to, answer.envelope.sender_her_id

        def post() -> str:
            return self._msh.post_apprec(in_reply_to, her_id, status, errors)

        return self._tried(post, msg_id=answer.envelope.msg_id)

    def _tried(self, call: Callable[[], str], *, msg_id: str) -> SendResult:
        """Run ``call`` until it succeeds, is refused, or the policy's tries are used up."""
        for attempt in range(1, self._policy.attempts + 1):
            try:
                return Accepted(call())
            except TransportRefused as exc:
                self._on_error(exc.kind)
                log.warning("nhn.refused", msg_id=msg_id, status=exc.status, kind=exc.kind)
                return Refused(
                    f"NHN's message service refused it ({exc.status} {exc.kind}): {exc}", exc.details
                )
            except TransientError as exc:
                kind = getattr(exc, "kind", type(exc).__name__)
                self._on_error(kind)
                retry_after = getattr(exc, "retry_after_s", None)
                backoff = self._retry.delay(attempt, random.random())  # noqa: S311 - jitter, not secrets
                wait = retry_after if retry_after is not None else backoff
                last = backoff is None or wait is None or wait > self._policy.max_wait_s
                log.warning("nhn.send_failed", msg_id=msg_id, kind=kind, attempt=attempt, final=last)
                if last or wait is None:
                    return Deferred(f"NHN's message service: {kind}", retry_after)
                self._sleep(wait)
            except EdiGatewayError as exc:  # unclassified: not this document's fault, try later
                self._on_error("unknown")
                return Deferred(f"unexpected {type(exc).__name__}")
        raise AssertionError("unreachable: the last attempt always returns")


class NhnInbox:
    """Polls the message service for every HER-id we serve and hands the documents to a handler."""

    def __init__(
        self,
        msh: MshClient,
        her_ids: Sequence[int],
        *,
        batch_size: int,
        poll_interval_s: float,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Poll ``her_ids`` every ``poll_interval_s`` (at once again after a full batch)."""
        self._msh = msh
        self._her_ids = tuple(her_ids)
        self._batch_size = min(max(batch_size, 1), 100)  # MessagesToFetch is 1..100
        self._interval = poll_interval_s
        self._on_error = on_error or (lambda kind: None)

    def run(self, handler: Handler, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; a transient fault waits one interval and tries again."""
        while not stop.is_set():
            try:
                handled = self.poll_once(handler)
            except TransientError as exc:
                self._on_error(getattr(exc, "kind", type(exc).__name__))
                log.warning("nhn.poll_failed", error=type(exc).__name__, kind=getattr(exc, "kind", None))
                handled = 0
            if handled < self._batch_size:
                stop.wait(self._interval)

    def poll_once(self, handler: Handler) -> int:
        """One round over every HER-id: fetch, handle, mark read. Returns the most found for one HER-id."""
        most = 0
        for her_id in self._her_ids:
            entries = self._msh.list_messages(her_id, limit=self._batch_size)
            most = max(most, len(entries))
            deliveries = [d for d in (self._fetch(e, her_id) for e in entries) if d is not None]
            if deliveries:
                self._settle(deliveries, self._handled(deliveries, handler, her_id), her_id)
        return most

    def _handled(self, deliveries: list[Delivery], handler: Handler, her_id: int) -> Sequence[Disposition]:
        """The handler's dispositions; if it fails, every document stays unread (it comes again)."""
        try:
            dispositions = list(handler(deliveries))
            if len(dispositions) != len(deliveries):
                raise ValueError(f"handler returned {len(dispositions)} dispositions for {len(deliveries)}")
        except Exception as exc:
            # Only the type: an exception's text may quote the payload.
            self._on_error("handler")
            log.error(
                "nhn.handler_failed", her_id=her_id, batch_size=len(deliveries), error=type(exc).__name__
            )
            return [Disposition.REQUEUE] * len(deliveries)
        return dispositions

    def _fetch(self, entry: InboxMessage, her_id: int) -> Delivery | None:
        try:
            document = self._msh.get_business_document(entry.id)
        except TransportRefused as exc:  # gone (404) or refused: nothing to store, nothing to mark
            self._on_error(exc.kind)
            log.warning("nhn.fetch_refused", nhn_id=entry.id, her_id=her_id, kind=exc.kind)
            return None
        except TransportUnavailable as exc:  # stays unread: the next poll tries again
            self._on_error(exc.kind)
            log.warning("nhn.fetch_failed", nhn_id=entry.id, her_id=her_id, kind=exc.kind)
            return None
        return Delivery(
            delivery_tag=0,
            body=document.content,
            content_type=document.content_type,
            message_id=entry.business_document_id,
            correlation_id=None,
            transport_id=entry.id,
            attested_sender_her_id=entry.sender_her_id,
            inbox_her_id=entry.receiver_her_id or her_id,
        )

    def _settle(self, deliveries: list[Delivery], dispositions: Sequence[Disposition], her_id: int) -> None:
        for delivery, disposition in zip(deliveries, dispositions, strict=True):
            if disposition is Disposition.REQUEUE or delivery.transport_id is None:
                continue  # left unread: it comes again on the next poll
            try:
                self._msh.mark_read(delivery.transport_id, her_id)
            except (TransportRefused, TransportUnavailable) as exc:
                # Stored already; when it comes again the handler knows it as a duplicate.
                self._on_error(exc.kind)
                log.warning(
                    "nhn.mark_read_failed", nhn_id=delivery.transport_id, her_id=her_id, kind=exc.kind
                )


def delivery_states(msh: MshClient, transport_id: str) -> list[DeliveryStatus]:
    """NHN's delivery state of one sent message, per receiver (``GET /Messages/{id}/status``)."""
    return msh.get_status(transport_id)
