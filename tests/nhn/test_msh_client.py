"""The EDI 2.0 message-service client against the stand-in over real HTTP: operations, faults, error kinds.

The stand-in checks every request against NHN's published OpenAPI description; the fixture fails a test
whose client sent a request the description refuses (or got an answer it does not describe, faults
aside). A few parsing edge cases use httpx.MockTransport. HER-ids are synthetic.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from edi_gateway.dev.nhn_standin.app import create_app
from edi_gateway.dev.nhn_standin.msh import Fault, MessageServiceStandIn
from edi_gateway.dev.nhn_standin.openapi import OpenApiValidator
from edi_gateway.errors import TransportRefused, TransportUnavailable
from edi_gateway.nhn.msh import (
    AppRecErrorItem,
    InboxMessage,
    MshClient,
    MshConfig,
    is_unknown_receiver,
    parse_retry_after,
)
from edi_gateway.xml.apprec import read_apprec
from tests.dev.test_nhn_standin_msh import (
    OTHER_HER_ID,
    RECEIVER_ORG,
    RECEIVER_SERVICE,
    SENDER_ORG,
    SENDER_UNIT,
    msghead,
    stub_authorize,
)

KNOWN = {SENDER_ORG, SENDER_UNIT, RECEIVER_ORG, RECEIVER_SERVICE}


@dataclass
class Env:
    """A served stand-in and what the clients made for it did."""

    standin: MessageServiceStandIn
    validator: OpenApiValidator
    base_url: str
    auth_calls: list[tuple[str, str]] = field(default_factory=list)
    unauthorized: list[bool] = field(default_factory=list)
    observed: list[tuple[str, float, str | None]] = field(default_factory=list)
    clients: list[MshClient] = field(default_factory=list)

    def auth(self, method: str, url: str) -> dict[str, str]:
        self.auth_calls.append((method, url))
        return {"Authorization": f"DPoP token-{len(self.auth_calls)}", "DPoP": "proof"}

    def client(self, **config: Any) -> MshClient:
        settings = {"base_url": self.base_url, "source_system": "edi_gateway 0.1.0 (tests)", **config}
        client = MshClient(
            MshConfig(**settings),
            self.auth,
            on_unauthorized=lambda: self.unauthorized.append(True),
            observe=lambda op, s, kind: self.observed.append((op, s, kind)),
        )
        self.clients.append(client)
        return client


@pytest.fixture
def env(serve_app: Callable[[ASGIApp], str]) -> Iterator[Env]:
    validator = OpenApiValidator.msh()
    standin = MessageServiceStandIn(validator=validator, authorize=stub_authorize, known_her_ids=KNOWN)
    env = Env(standin, validator, serve_app(create_app(msh=standin)))
    yield env
    for client in env.clients:
        client.close()
    assert validator.violations == [], "the client sent a request the OpenAPI description refuses"
    assert validator.response_violations == [], "the stand-in answered outside the OpenAPI description"


@pytest.fixture
def client(env: Env) -> MshClient:
    return env.client()


def _send(client: MshClient, msg_id: str | None = None) -> str:
    return client.post_message(msghead(msg_id=msg_id))


# --- the operations -------------------------------------------------------------------------------


def test_send_list_fetch_mark_read_and_status(client: MshClient, env: Env) -> None:
    """A sent document is listed, fetched, marked read, and its status goes Unconfirmed → Acknowledged."""
    msg_id = str(uuid.uuid4())
    document = msghead(msg_id=msg_id)
    message_id = client.post_message(document)
    assert [(s.receiver_her_id, s.transport_delivery_state) for s in client.get_status(message_id)] == [
        (RECEIVER_SERVICE, "Unconfirmed")
    ]
    assert client.list_messages(RECEIVER_SERVICE) == [
        InboxMessage(message_id, RECEIVER_SERVICE, SENDER_UNIT, msg_id, False, "application/xml")
    ]
    fetched = client.get_business_document(message_id)
    assert (fetched.content, fetched.content_type) == (document, "application/xml")
    client.mark_read(message_id, RECEIVER_SERVICE)
    assert client.list_messages(RECEIVER_SERVICE) == []
    [status] = client.get_status(message_id)
    assert (status.transport_delivery_state, status.apprec_status) == ("Acknowledged", None)
    assert env.standin.read_marks() == [(message_id, RECEIVER_SERVICE)]


def test_get_message_reads_the_metadata(client: MshClient) -> None:
    """get_message returns the message's receiver, sender and MsgId."""
    msg_id = str(uuid.uuid4())
    message_id = _send(client, msg_id)
    message = client.get_message(message_id)
    assert (message.id, message.receiver_her_id, message.sender_her_id) == (
        message_id,
        RECEIVER_SERVICE,
        SENDER_UNIT,
    )
    assert (message.business_document_id, message.is_apprec) == (msg_id, False)


def test_list_messages_honours_the_limit(client: MshClient) -> None:
    """list_messages asks for at most ``limit`` messages."""
    for _ in range(3):
        _send(client)
    assert len(client.list_messages(RECEIVER_SERVICE, limit=2)) == 2


def test_receiver_subset_is_sent(client: MshClient, env: Env) -> None:
    """receiver_her_ids goes out as receiverHerIdsSubset and the service delivers to those."""
    client.post_message(msghead(), receiver_her_ids=[RECEIVER_SERVICE])
    assert [entry.receiver_her_id for entry in env.standin.inbox()] == [RECEIVER_SERVICE]


def test_apprec_round_trip(client: MshClient) -> None:
    """A receiver's AppRec reaches the sender's inbox as an AppRec answering the MsgId, and fills the status."""
    msg_id = str(uuid.uuid4())
    message_id = _send(client, msg_id)
    error = AppRecErrorItem("E21", "the service named is closed", description="Mottaker finnes ikke")
    apprec_message_id = client.post_apprec(message_id, RECEIVER_SERVICE, "Rejected", [error])
    [listed] = client.list_messages(SENDER_UNIT)
    assert (listed.id, listed.is_apprec, listed.sender_her_id) == (apprec_message_id, True, RECEIVER_SERVICE)
    apprec = read_apprec(client.get_business_document(apprec_message_id).content)
    assert (apprec.original_msg_id, apprec.status.value) == (msg_id, 2)
    assert [(e.code, e.original_text) for e in apprec.errors] == [("E21", "the service named is closed")]
    [status] = client.get_status(message_id)
    assert status.apprec_status == "Rejected"
    [info] = client.get_apprec_info(message_id)
    assert (info.receiver_her_id, info.apprec_status) == (RECEIVER_SERVICE, "Rejected")
    assert info.errors[0].error_code == "E21"


def test_ok_apprec_without_errors(client: MshClient, env: Env) -> None:
    """An Ok AppRec is posted without an error list and recorded by the service."""
    message_id = _send(client)
    client.post_apprec(message_id, RECEIVER_SERVICE, "Ok")
    [posted] = env.standin.apprecs()
    assert (posted.message_id, posted.status, posted.errors) == (message_id, "Ok", ())


def test_ping_changes_nothing(client: MshClient, env: Env) -> None:
    """ping is an authenticated inbox look-up that leaves messages unread."""
    _send(client)
    client.ping(RECEIVER_SERVICE)
    assert env.auth_calls[-1] == ("GET", f"{env.base_url}/Messages")
    assert [entry.read for entry in env.standin.inbox()] == [False]


def test_auth_is_asked_per_request_with_the_url_without_query(client: MshClient, env: Env) -> None:
    """The auth callable gets the method and the query-less URL (a DPoP proof's htm and htu)."""
    message_id = _send(client)
    client.list_messages(RECEIVER_SERVICE)
    client.mark_read(message_id, RECEIVER_SERVICE)
    assert env.auth_calls == [
        ("POST", f"{env.base_url}/Messages"),
        ("GET", f"{env.base_url}/Messages"),
        ("PUT", f"{env.base_url}/Messages/{message_id}/read/{RECEIVER_SERVICE}"),
    ]


def test_observe_reports_every_call_with_its_kind(client: MshClient, env: Env) -> None:
    """observe gets the operation id, a duration and the error kind (None on success)."""
    env.standin.faults.queue("GetMessages", Fault.server_error())
    _send(client)
    with pytest.raises(TransportUnavailable):
        client.list_messages(RECEIVER_SERVICE)
    assert [(op, kind) for op, _, kind in env.observed] == [
        ("PostMessage", None),
        ("GetMessages", "server_error"),
    ]
    assert all(seconds >= 0 for _, seconds, _ in env.observed)


# --- faults and their kinds -------------------------------------------------------------------------


def test_rate_limited_with_retry_after_seconds(client: MshClient, env: Env) -> None:
    """429 with Retry-After: 1 is rate_limited with retry_after_s 1.0."""
    env.standin.faults.queue("PostMessage", Fault.rate_limited("1"))
    with pytest.raises(TransportUnavailable) as caught:
        _send(client)
    assert (caught.value.kind, caught.value.retry_after_s) == ("rate_limited", 1.0)


def test_rate_limited_with_retry_after_http_date(client: MshClient, env: Env) -> None:
    """A Retry-After HTTP-date is turned into the seconds left until then."""
    env.standin.faults.queue(
        "GetMessages",
        Fault.rate_limited(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)),
    )
    with pytest.raises(TransportUnavailable) as caught:
        client.list_messages(RECEIVER_SERVICE)
    assert caught.value.retry_after_s is not None
    assert 25 <= caught.value.retry_after_s <= 30


def test_rate_limited_without_retry_after(client: MshClient, env: Env) -> None:
    """429 without Retry-After is rate_limited with no advice."""
    env.standin.faults.queue("GetMessages", Fault.rate_limited(None))
    with pytest.raises(TransportUnavailable) as caught:
        client.list_messages(RECEIVER_SERVICE)
    assert (caught.value.kind, caught.value.retry_after_s) == ("rate_limited", None)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(client: MshClient, env: Env, status: int) -> None:
    """Any 5xx is a transient server_error."""
    env.standin.faults.queue("GetStatus", Fault.server_error(status))
    with pytest.raises(TransportUnavailable) as caught:
        client.get_status(str(uuid.uuid4()))
    assert caught.value.kind == "server_error"


def test_server_error_with_a_huge_body_is_still_a_server_error(client: MshClient, env: Env) -> None:
    """An error answer is read only up to a small cap; its status still decides the kind."""
    env.standin.faults.queue("GetMessages", Fault.oversized(2_000_000, status=500))
    with pytest.raises(TransportUnavailable) as caught:
        client.list_messages(RECEIVER_SERVICE)
    assert caught.value.kind == "server_error"


def test_timeout(env: Env) -> None:
    """An answer slower than the timeout is kind timeout, raised when the timeout passes."""
    client = env.client(timeout_s=0.3)
    env.standin.faults.queue("GetMessages", Fault.timeout(1.5))
    started = time.monotonic()
    with pytest.raises(TransportUnavailable) as caught:
        client.list_messages(RECEIVER_SERVICE)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 1.2


def test_a_timed_out_send_may_still_have_been_taken(env: Env) -> None:
    """After a timeout on PostMessage the service may hold the document all the same (the caller must allow for it)."""
    client = env.client(timeout_s=0.2)
    env.standin.faults.queue("PostMessage", Fault.timeout(0.6))
    with pytest.raises(TransportUnavailable, match="no answer"):
        _send(client)
    deadline = time.monotonic() + 5
    while not env.standin.sent() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(env.standin.sent()) == 1


def test_connect_error() -> None:
    """A port nobody listens on is kind connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = MshConfig(base_url=f"http://127.0.0.1:{port}", source_system="edi_gateway tests", timeout_s=2)
    with MshClient(config, lambda method, url: {}) as client, pytest.raises(TransportUnavailable) as caught:
        client.ping(RECEIVER_SERVICE)
    assert caught.value.kind == "connect"


def test_malformed_json(client: MshClient, env: Env) -> None:
    """A 200 whose body is not JSON is kind malformed."""
    env.standin.faults.queue("GetMessages", Fault.malformed_json())
    with pytest.raises(TransportUnavailable) as caught:
        client.list_messages(RECEIVER_SERVICE)
    assert caught.value.kind == "malformed"


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
def test_oversized_answer_is_malformed(env: Env, declare_length: bool) -> None:
    """A well-formed answer over max_response_bytes is malformed: the client does not read past its cap."""
    client = env.client(max_response_bytes=64 * 1024)
    message_id = client.post_message(msghead())
    env.standin.faults.queue(
        "GetBusinessDocument", Fault.oversized(20_000_000, declare_length=declare_length)
    )
    with pytest.raises(TransportUnavailable) as caught:
        client.get_business_document(message_id)
    assert caught.value.kind == "malformed"


def test_oversized_fault_is_otherwise_a_readable_document(env: Env) -> None:
    """Control for the test above: with a large enough cap the same answer is read as a document."""
    client = env.client(max_response_bytes=2_000_000)
    message_id = client.post_message(msghead())
    env.standin.faults.queue("GetBusinessDocument", Fault.oversized(1_000_000))
    assert len(client.get_business_document(message_id).content) > 700_000


def test_unknown_receiver_from_the_service(client: MshClient, env: Env) -> None:
    """A receiver the service does not know is refused for good as unknown_receiver, with NHN's details."""
    with pytest.raises(TransportRefused) as caught:
        client.post_message(msghead(receiver=(OTHER_HER_ID, None)))
    assert (caught.value.status, caught.value.kind) == (400, "unknown_receiver")
    assert str(OTHER_HER_ID) in " ".join(caught.value.details["validationErrors"])  # type: ignore[arg-type]
    assert isinstance(caught.value.details["requestId"], str)
    assert env.standin.sent() == []


def test_unknown_receiver_fault(client: MshClient, env: Env) -> None:
    """The stand-in's unknown-receiver fault maps to unknown_receiver too."""
    env.standin.faults.queue("PostMessage", Fault.unknown_receiver(RECEIVER_SERVICE))
    with pytest.raises(TransportRefused) as caught:
        _send(client)
    assert caught.value.kind == "unknown_receiver"


def test_validation_error_keeps_details_but_never_the_stack_trace(client: MshClient, env: Env) -> None:
    """A 400 is a validation refusal carrying error, errorCode, validationErrors and requestId, not stackTrace."""
    fault = Fault.error(
        400, "Model validation error occurred", error_code=1000, validation_errors=["MsgHead is not valid"]
    )
    env.standin.faults.queue("PostMessage", fault)
    with pytest.raises(TransportRefused) as caught:
        _send(client)
    error = caught.value
    assert (error.status, error.kind) == (400, "validation")
    assert set(error.details) == {"error", "errorCode", "validationErrors", "requestId"}
    assert error.details["validationErrors"] == ["MsgHead is not valid"]
    assert "SyntheticFrame" not in str(error)
    assert str(error.details["requestId"]) in str(error)


@pytest.mark.parametrize(
    ("status", "kind"), [(404, "not_found"), (413, "too_large"), (409, "refused"), (422, "refused")]
)
def test_other_client_errors_are_refusals(client: MshClient, env: Env, status: int, kind: str) -> None:
    """404, 413 and other 4xx are permanent refusals of their own kinds."""
    env.standin.faults.queue("PostMessage", Fault.error(status, "refused"))
    with pytest.raises(TransportRefused) as caught:
        _send(client)
    assert (caught.value.status, caught.value.kind) == (status, kind)


def test_unknown_message_is_not_found(client: MshClient) -> None:
    """An id the service does not have is not_found."""
    with pytest.raises(TransportRefused) as caught:
        client.get_message(str(uuid.uuid4()))
    assert (caught.value.status, caught.value.kind) == (404, "not_found")


def test_forbidden_is_an_auth_fault_not_the_messages(client: MshClient, env: Env) -> None:
    """403 means our client lacks rights: transient kind auth, no retry with a new token."""
    env.standin.faults.queue("GetMessages", Fault.error(403, "Not authorized for HerId(s): 8200002"))
    with pytest.raises(TransportUnavailable) as caught:
        client.list_messages(RECEIVER_SERVICE)
    assert caught.value.kind == "auth"
    assert env.unauthorized == []


def test_401_is_retried_once_with_fresh_auth(client: MshClient, env: Env) -> None:
    """A first 401 drops the token (on_unauthorized) and repeats the request with new headers, which succeeds."""
    env.standin.faults.queue("GetMessages", Fault.unauthorized())
    assert client.list_messages(RECEIVER_SERVICE) == []
    assert env.unauthorized == [True]
    assert len(env.auth_calls) == 2
    assert [(op, kind) for op, _, kind in env.observed] == [("GetMessages", None)]


def test_401_twice_is_an_auth_fault(client: MshClient, env: Env) -> None:
    """A second 401 is kind auth; the token is dropped once and the request sent twice only."""
    env.standin.faults.queue("GetMessages", Fault.unauthorized(), Fault.unauthorized())
    with pytest.raises(TransportUnavailable) as caught:
        client.list_messages(RECEIVER_SERVICE)
    assert caught.value.kind == "auth"
    assert (len(env.unauthorized), len(env.auth_calls)) == (1, 2)


# --- parsing edge cases (MockTransport) ----------------------------------------------------------

_ID = "5f5e94d5-d908-476b-a172-a241c52eddb6"


def _mocked(status: int, body: bytes, headers: dict[str, str] | None = None) -> MshClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=body, headers={"content-type": "application/json", **(headers or {})}
        )

    http = httpx.Client(transport=httpx.MockTransport(answer))
    return MshClient(
        MshConfig(base_url="https://msh.invalid", source_system="tests"), lambda m, u: {}, http=http
    )


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _document(**fields: object) -> bytes:
    base = {
        "businessDocument": base64.b64encode(b"<x/>").decode(),
        "contentType": "application/xml",
        "contentTransferEncoding": "base64",
    }
    return _json({**base, **fields})


MALFORMED = [
    ("post-not-uuid", 201, _json("12345"), lambda c: c.post_message(b"<x/>")),
    ("post-number", 201, _json(12345), lambda c: c.post_message(b"<x/>")),
    ("post-braced-uuid", 201, _json("{" + _ID + "}"), lambda c: c.post_message(b"<x/>")),
    ("list-object", 200, _json({"id": _ID, "receiverHerId": 1}), lambda c: c.list_messages(1)),
    (
        "list-her-id-string",
        200,
        _json([{"id": _ID, "receiverHerId": "8200002"}]),
        lambda c: c.list_messages(1),
    ),
    ("list-her-id-bool", 200, _json([{"id": _ID, "receiverHerId": True}]), lambda c: c.list_messages(1)),
    ("list-missing-id", 200, _json([{"receiverHerId": 1}]), lambda c: c.list_messages(1)),
    (
        "list-isapprec-text",
        200,
        _json([{"id": _ID, "receiverHerId": 1, "isAppRec": "yes"}]),
        lambda c: c.list_messages(1),
    ),
    (
        "list-nan",
        200,
        b'[{"id": "' + _ID.encode() + b'", "receiverHerId": NaN}]',
        lambda c: c.list_messages(1),
    ),
    (
        "document-bad-base64",
        200,
        _document(businessDocument="PD94b!!!"),
        lambda c: c.get_business_document(_ID),
    ),
    (
        "document-no-content-type",
        200,
        _json({"businessDocument": "PD94", "contentTransferEncoding": "base64"}),
        lambda c: c.get_business_document(_ID),
    ),
    (
        "document-other-encoding",
        200,
        _document(contentTransferEncoding="quoted-printable"),
        lambda c: c.get_business_document(_ID),
    ),
    ("status-missing-state", 200, _json([{"receiverHerId": 1}]), lambda c: c.get_status(_ID)),
    ("status-not-json", 200, b"<html>maintenance</html>", lambda c: c.get_status(_ID)),
    ("redirect", 302, b"", lambda c: c.get_status(_ID)),
]


@pytest.mark.parametrize(
    ("status", "body", "call"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_answers_not_of_the_documented_shape_are_malformed(
    status: int, body: bytes, call: Callable[[MshClient], object]
) -> None:
    """Wrong types, missing required fields, bad base64, non-uuids and non-JSON are all kind malformed."""
    with _mocked(status, body) as client, pytest.raises(TransportUnavailable) as caught:
        call(client)
    assert caught.value.kind == "malformed"


def test_non_xml_business_document_is_returned_for_the_caller_to_judge() -> None:
    """A document with another content type is returned as stated; refusing it is the caller's decision."""
    with _mocked(200, _document(contentType="application/pdf")) as client:
        document = client.get_business_document(_ID)
    assert (document.content, document.content_type) == (b"<x/>", "application/pdf")


def test_null_metadata_is_read_as_absent() -> None:
    """Nullable Message fields may be null: isAppRec null reads as False, the rest as None."""
    body = _json(
        [{"id": _ID, "receiverHerId": 8200002, "senderHerId": None, "isAppRec": None, "contentType": None}]
    )
    with _mocked(200, body) as client:
        assert client.list_messages(8200002) == [InboxMessage(_ID, 8200002, None, None, False, None)]


def test_an_injected_http_client_is_left_open() -> None:
    """close() closes only a client the MshClient made itself."""
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(204)))
    client = MshClient(
        MshConfig(base_url="https://msh.invalid", source_system="tests"), lambda m, u: {}, http=http
    )
    client.close()
    assert not http.is_closed
    http.close()


# --- pure rules -------------------------------------------------------------------------------------


def test_retry_after_forms() -> None:
    """Retry-After: seconds, an HTTP-date (past → 0), capped at 300 s; garbage → None."""
    now = datetime(2025, 3, 4, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("1", now=now) == 1.0
    assert parse_retry_after(" 120 ", now=now) == 120.0
    assert parse_retry_after("Tue, 04 Mar 2025 10:00:45 GMT", now=now) == 45.0
    assert parse_retry_after("Tue, 04 Mar 2025 09:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("86400", now=now) == 300.0
    assert parse_retry_after("Wed, 05 Mar 2025 10:00:00 GMT", now=now) == 300.0
    for garbage in (None, "", "soon", "-5", "1e3", "Tue, 99 Foo 2025"):
        assert parse_retry_after(garbage, now=now) is None


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("Receiver with HER-id 8200002 not found in Adresseregisteret", True),
        ("Unknown receiver", True),
        ("Mottaker finnes ikke", True),
        ("The recipient does not exist", True),
        ("Could not find communication party 8200002", True),
        ("Unknown property 'receiverRole'", False),
        ("Sender not found", False),
        ("Receiver is not allowed to receive this message type", False),
        ("Model validation error occurred", False),
    ],
)
def test_unknown_receiver_rule(text: str, unknown: bool) -> None:
    """unknown_receiver needs a receiver word and an absence word as whole words in one text."""
    assert (
        is_unknown_receiver({"error": "Model validation error occurred", "validationErrors": [text]})
        is unknown
    )


def test_arguments_are_checked_before_any_request(client: MshClient, env: Env) -> None:
    """Programming errors (bad ids, limits, statuses) raise ValueError and send nothing."""
    for call in (
        lambda: client.list_messages(RECEIVER_SERVICE, limit=0),
        lambda: client.list_messages(RECEIVER_SERVICE, limit=101),
        lambda: client.get_message("../Messages"),
        lambda: client.mark_read(str(uuid.uuid4()), 0),
        lambda: client.post_apprec(str(uuid.uuid4()), RECEIVER_SERVICE, "Avvist"),
        lambda: client.post_apprec(str(uuid.uuid4()), RECEIVER_SERVICE, "Rejected"),
        lambda: client.post_apprec(str(uuid.uuid4()), RECEIVER_SERVICE, "Ok", [AppRecErrorItem("E10", "x")]),
        lambda: client.post_message(b""),
        lambda: client.post_message(msghead(), receiver_her_ids=[]),
    ):
        with pytest.raises(ValueError):
            call()
    assert env.auth_calls == []


def test_config_refuses_values_that_cannot_work() -> None:
    """MshConfig refuses a non-http URL, an empty source system and non-positive limits."""
    for bad in (
        {"base_url": "ftp://msh.invalid"},
        {"base_url": "https://msh.invalid/?q=1"},
        {"source_system": " "},
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"max_response_bytes": 0},
    ):
        with pytest.raises(ValueError):
            MshConfig(**{"base_url": "https://msh.invalid", "source_system": "tests", **bad})  # type: ignore[arg-type]
