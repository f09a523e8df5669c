"""The nhn transport's own rules, on a scripted message service client (the HTTP side is tested in test_nhn_flow).

Which faults are retried and how long it waits, what is refused or deferred, and which inbox documents
are marked read: pure decisions over a client whose answers each test scripts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from edi_gateway.errors import TransportRefused, TransportUnavailable, UnknownError
from edi_gateway.messaging.base import (
    Accepted,
    AppRecAnswer,
    Deferred,
    Delivery,
    Disposition,
    Envelope,
    Refused,
)
from edi_gateway.messaging.nhn import NhnInbox, NhnSendPolicy, NhnTransport
from edi_gateway.nhn.msh import AppRecErrorItem, BusinessDocument, InboxMessage, MshClient

MSG_ID = "6f1c0a4e-3a51-4a7e-9d0e-0b5c1d2e3f40"


@dataclass
class ScriptedMsh:
    """Answers each call from a script: an exception to raise or a value to return, in order."""

    posts: list[Any] = field(default_factory=list)
    inbox: dict[int, list[InboxMessage]] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)
    marked: list[tuple[str, int]] = field(default_factory=list)
    apprecs: list[tuple[str, int, str, list[AppRecErrorItem]]] = field(default_factory=list)

    def post_message(self, business_document: bytes) -> str:
        answer = self.posts.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    def post_apprec(
        self, message_id: str, sender_her_id: int, status: str, errors: list[AppRecErrorItem]
    ) -> str:
        self.apprecs.append((message_id, sender_her_id, status, list(errors)))
        return "apprec-id"

    def list_messages(self, receiver_her_id: int, *, limit: int) -> list[InboxMessage]:
        return self.inbox.get(receiver_her_id, [])[:limit]

    def get_business_document(self, message_id: str) -> BusinessDocument:
        found = self.documents[message_id]
        if isinstance(found, Exception):
            raise found
        return cast(BusinessDocument, found)

    def mark_read(self, message_id: str, receiver_her_id: int) -> None:
        self.marked.append((message_id, receiver_her_id))


def _envelope() -> Envelope:
    return Envelope(MSG_ID, None, 8100002, 8100062, "8100060_async", "DIALOG_HELSEFAGLIG", b"<MsgHead/>")


def _transport(msh: ScriptedMsh, waits: list[float], **policy: Any) -> NhnTransport:
    return NhnTransport(cast(MshClient, msh), policy=NhnSendPolicy(**policy), sleep=waits.append)


def test_a_transient_fault_is_retried_after_what_retry_after_asks_then_accepted() -> None:
    """A 429 asking for 2 s and a 500 are retried (waiting 2 s, then a backoff); the third try is accepted."""
    msh = ScriptedMsh(
        posts=[
            TransportUnavailable("busy", kind="rate_limited", retry_after_s=2.0),
            TransportUnavailable("down", kind="server_error"),
            "nhn-id-1",
        ]
    )
    waits: list[float] = []
    (result,) = _transport(msh, waits).send_many([_envelope()])
    assert result == Accepted("nhn-id-1")
    assert waits[0] == 2.0 and 0 < waits[1] <= 0.4


def test_a_retry_after_longer_than_the_policy_allows_defers_at_once() -> None:
    """Asked to wait 60 s (past max_wait_s), the send gives the document back as deferred without waiting."""
    msh = ScriptedMsh(posts=[TransportUnavailable("busy", kind="rate_limited", retry_after_s=60.0)])
    waits: list[float] = []
    (result,) = _transport(msh, waits, max_wait_s=5.0).send_many([_envelope()])
    assert result == Deferred("NHN's message service: rate_limited", 60.0)
    assert waits == []


def test_faults_past_the_last_attempt_defer_the_document() -> None:
    """Three timeouts in a row with three attempts allowed: deferred, after two waits."""
    msh = ScriptedMsh(posts=[TransportUnavailable("slow", kind="timeout") for _ in range(3)])
    waits: list[float] = []
    (result,) = _transport(msh, waits, attempts=3).send_many([_envelope()])
    assert isinstance(result, Deferred) and "timeout" in result.reason
    assert len(waits) == 2 and msh.posts == []


def test_a_refusal_is_final_and_carries_nhns_error_body() -> None:
    """A 400 is not retried: the result is Refused with the status, kind and NHN's details."""
    details: dict[str, object] = {"error": "Model validation error occurred", "requestId": "r-1"}
    msh = ScriptedMsh(
        posts=[TransportRefused("bad", status=400, kind="validation", details=details), "never"]
    )
    waits: list[float] = []
    (result,) = _transport(msh, waits).send_many([_envelope()])
    assert isinstance(result, Refused)
    assert "400 validation" in result.reason and result.details == details
    assert waits == [] and msh.posts == ["never"]


def test_an_unclassified_fault_defers_rather_than_failing_the_message() -> None:
    """An error nobody classified is not the document's fault: deferred, so nothing is failed for it."""
    msh = ScriptedMsh(posts=[UnknownError("surprise")])
    (result,) = _transport(msh, []).send_many([_envelope()])
    assert result == Deferred("unexpected UnknownError")


@pytest.mark.parametrize(("status", "name"), [(1, "Ok"), (2, "Rejected"), (3, "OkErrorInMessagePart")])
def test_an_apprec_answer_maps_kodeverk_8258_onto_the_apis_status(status: int, name: str) -> None:
    """Our AppRec goes through the API's AppRec operation with the status name and the 8221 errors."""
    msh = ScriptedMsh()
    answer = AppRecAnswer(_envelope(), "nhn-message-1", status, (("E35", "Pasienten finnes ikke"),))
    (result,) = _transport(msh, []).send_apprecs([answer])
    assert result == Accepted("apprec-id")
    assert msh.apprecs == [
        ("nhn-message-1", 8100002, name, [AppRecErrorItem("E35", "Pasienten finnes ikke")])
    ]


def test_an_apprec_for_a_document_that_did_not_come_through_nhn_is_refused() -> None:
    """Without the message service's id of the answered document there is nothing to answer: refused."""
    (result,) = _transport(ScriptedMsh(), []).send_apprecs([AppRecAnswer(_envelope(), None, 1)])
    assert isinstance(result, Refused) and "did not come through NHN" in result.reason


# -- the inbox --------------------------------------------------------------------------------------


def _entry(message_id: str, receiver: int = 8100002) -> InboxMessage:
    return InboxMessage(message_id, receiver, 8100062, f"msg-{message_id}", True, "application/xml")


def _inbox_with(*documents: tuple[str, Any]) -> ScriptedMsh:
    msh = ScriptedMsh(inbox={8100002: [_entry(i) for i, _ in documents]})
    msh.documents = dict(documents)
    return msh


def _document(body: bytes = b"<AppRec/>") -> BusinessDocument:
    return BusinessDocument(body, "application/xml")


def test_documents_are_marked_read_only_when_the_handler_settled_them() -> None:
    """ACK and DEAD_LETTER are marked read; REQUEUE stays unread and comes again."""
    msh = _inbox_with(("a", _document()), ("b", _document()), ("c", _document()))
    dispositions = [Disposition.ACK, Disposition.REQUEUE, Disposition.DEAD_LETTER]
    NhnInbox(cast(MshClient, msh), [8100002], batch_size=10, poll_interval_s=1).poll_once(
        lambda batch: dispositions
    )
    assert msh.marked == [("a", 8100002), ("c", 8100002)]


def test_the_handler_sees_the_sender_the_service_authenticated_and_the_inbox() -> None:
    """Each delivery carries NHN's id, the attested sender HER-id and the inbox HER-id; no AMQP header does."""
    msh = _inbox_with(("a", _document(b"<x/>")))
    seen: list[Delivery] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        seen.extend(batch)
        return [Disposition.ACK]

    NhnInbox(cast(MshClient, msh), [8100002], batch_size=10, poll_interval_s=1).poll_once(handler)
    (delivery,) = seen
    assert (delivery.transport_id, delivery.attested_sender_her_id, delivery.inbox_her_id) == (
        "a",
        8100062,
        8100002,
    )
    assert (delivery.body, delivery.message_id, delivery.headers) == (b"<x/>", "msg-a", {})


def test_a_document_that_cannot_be_fetched_is_left_unread_and_the_others_go_on() -> None:
    """A fetch that fails is skipped (not handed over, not marked); the rest of the batch is handled."""
    msh = _inbox_with(("a", TransportUnavailable("garbage", kind="malformed")), ("b", _document()))
    handled: list[str | None] = []

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        handled.extend(d.transport_id for d in batch)
        return [Disposition.ACK] * len(batch)

    NhnInbox(cast(MshClient, msh), [8100002], batch_size=10, poll_interval_s=1).poll_once(handler)
    assert handled == ["b"] and msh.marked == [("b", 8100002)]


def test_a_failing_handler_leaves_the_whole_batch_unread_and_the_inbox_keeps_running() -> None:
    """An exception from the handler marks nothing read; the poll loop survives it and stops when told."""
    msh = _inbox_with(("a", _document()))
    calls: list[int] = []
    stop = threading.Event()

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        calls.append(len(batch))
        if len(calls) == 2:
            stop.set()
        raise RuntimeError("boom")

    NhnInbox(cast(MshClient, msh), [8100002], batch_size=10, poll_interval_s=0.01).run(handler, stop)
    assert calls == [1, 1] and msh.marked == []
