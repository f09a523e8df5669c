"""The outbound pipeline end to end on the real RabbitMQ and the real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.xml.msghead import parse_msghead_summary
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.schemas import validate_msghead
from edi_gateway.xml.signing import verify_signed
from tests.services.conftest import RunningGateway, example

pytestmark = pytest.mark.rabbitmq

REGISTERS = load_fixture_registers(resource_dir("fixtures") / "registers")
HOSPITAL = 8100001


def _expected_receivers(request: dict[str, Any]) -> set[tuple[int, int]]:
    """(virksomhet HER-id, addressed HER-id) pairs the registers say this request must reach."""
    kommune = REGISTERS.address.kommune(REGISTERS.population.bosted_kommune(request["patient"]["id"]))
    assert kommune is not None
    service = next(s for code in ("KD0501", "KX06", "KP02") for s in kommune.services if s.code == code)
    expected = {(kommune.her_id, service.her_id)}
    gp = REGISTERS.fastlege.fastlege_for(request["patient"]["id"]) if request["send_to_fastlege"] else None
    if gp is not None:
        expected.add((gp.legekontor.her_id, gp.practitioner.her_id))
    return expected


@pytest.mark.parametrize("name", ["kommune-only", "kommune-and-fastlege", "fastlege-missing"])
def test_example_request_reaches_exactly_the_registered_receivers(running: RunningGateway, name: str) -> None:
    """Each example yields one valid, signed MsgHead per registered receiver, on that receiver's queue."""
    request = example(name)
    running.send(request)
    stored = running.wait_request(request["request_id"])
    assert stored.state == RequestState.ROUTED
    messages = running.gateway.store.messages_for_request(stored.ref)
    expected = _expected_receivers(request)
    assert {(m.receiver_org_her_id, m.receiver_her_id) for m in messages} == expected
    hospital_cert = running.gateway.registers.address.certificate_pem(HOSPITAL)
    assert hospital_cert is not None
    for message in messages:
        assert message.state == MessageState.SENT
        (delivery,) = running.receiver_deliveries(f"{message.receiver_org_her_id}_async", expect=1)
        assert delivery.message_id == message.msg_id
        assert delivery.correlation_id == request["request_id"]
        assert delivery.content_type == "application/xml"
        assert delivery.body == message.signed_xml
        validate_msghead(parse_xml(delivery.body))
        verified = verify_signed(delivery.body, cert_pem=hospital_cert)
        summary = parse_msghead_summary(verified.root)
        assert summary.msg_id == message.msg_id
        assert summary.receiver_her_id == message.receiver_org_her_id
        addressed = summary.receiver_service_her_id or summary.receiver_person_her_id
        assert addressed == message.receiver_her_id
        assert summary.sender_her_id == HOSPITAL
    if name == "fastlege-missing":
        assert [p.code for p in stored.problems] == ["routing.fastlege_missing"]


def test_no_consent_is_recorded_and_nothing_is_sent(running: RunningGateway) -> None:
    """consent: false is stored (for reports) and reported, and no message is built."""
    request = example("no-consent")
    running.send(request)
    stored = running.wait_request(request["request_id"])
    assert stored.state == RequestState.NO_CONSENT
    assert running.gateway.store.messages_for_request(stored.ref) == []
    events = running.events(expect=1)
    assert events[0]["state"] == "no_consent" and events[0]["request_id"] == request["request_id"]


def test_a_repeated_request_never_yields_a_second_message(running: RunningGateway) -> None:
    """The same request_id sent three times (twice in one batch, once later) gives one message, and
    every repeat is answered with the stored outcome again."""
    request = example("kommune-only")
    running.send(request, request)
    stored = running.wait_request(request["request_id"])
    running.send(request)
    # Each of the three is answered with "routed"; the message's "sent" is reported at least twice
    # (the in-batch repeat may or may not share the first one's batch).
    events = running.events(expect=6, timeout=4)
    assert [e["state"] for e in events].count("routed") == 3
    assert {e["state"] for e in events} == {"routed", "sent"}
    (message,) = running.gateway.store.messages_for_request(stored.ref)
    assert {e["msg_id"] for e in events if e["msg_id"]} == {message.msg_id}
    deliveries = running.receiver_deliveries(f"{message.receiver_org_her_id}_async", expect=2, timeout=2)
    assert [d.message_id for d in deliveries] == [message.msg_id]


def _reject_cases() -> list[tuple[str, bytes, str, str]]:
    base = example("kommune-only")

    def variant(mutate: Any) -> bytes:
        data = json.loads(json.dumps(base))
        data["request_id"] = str(uuid.uuid4())
        mutate(data)
        return json.dumps(data).encode()

    return [
        ("unknown field", variant(lambda d: d.update(extra=1)), "application/json", "schema.unknown_field"),
        ("missing field", variant(lambda d: d.pop("consent")), "application/json", "schema.missing"),
        (
            "bad score",
            variant(lambda d: d["assessment"].update(distress_score=11)),
            "application/json",
            "schema.value",
        ),
        (
            "bad checksum",
            variant(lambda d: d["patient"].update(id="07926217858")),
            "application/json",
            "person_id.checksum",
        ),
        (
            "outside Telemark",
            variant(lambda d: d["patient"].update(id="17918331999")),
            "application/json",
            "routing.kommune_unknown",
        ),
        (
            "unknown unit",
            variant(lambda d: d["sender"].update(unit_her_id=999)),
            "application/json",
            "sender.unit_unknown",
        ),
        ("wrong content type", variant(lambda d: None), "text/plain", "request.content_type"),
    ]


@pytest.mark.parametrize(
    ("label", "body", "content_type", "code"), _reject_cases(), ids=[c[0] for c in _reject_cases()]
)
def test_invalid_request_is_rejected_with_code_and_event(
    running: RunningGateway, label: str, body: bytes, content_type: str, code: str
) -> None:
    """An invalid request ends in state rejected, with a machine-readable code, and an event says so."""
    request_id = json.loads(body)["request_id"]
    running.send(body, content_type=content_type)
    stored = running.wait_request(request_id)
    assert stored.state == RequestState.REJECTED
    assert code in [p.code for p in stored.problems]
    assert all(p.reason for p in stored.problems)
    assert running.gateway.store.messages_for_request(stored.ref) == []
    (event,) = running.events(expect=1)
    assert (event["state"], event["request_id"]) == ("rejected", request_id)
    assert code in [e["code"] for e in event["errors"]]


def test_bodies_without_a_request_id_are_recorded_too(running: RunningGateway) -> None:
    """A body that is not JSON, or is too large, is still recorded as rejected and reported."""
    running.send(b"\x00not json at all")
    running.send(b"{" + b" " * (running.settings.max_request_bytes + 1) + b"}")
    events = running.events(expect=2)
    assert sorted(e["errors"][0]["code"] for e in events) == ["request.not_json", "request.too_large"]
    assert all(e["state"] == "rejected" and e["request_id"] is None for e in events)


def test_epr_built_msghead_is_signed_and_delivered_once(running: RunningGateway) -> None:
    """An unsigned MsgHead sent as application/xml goes out signed, keyed by its own MsgId, exactly once."""
    from tests.services.test_msghead_intake import unsigned_msghead

    body = unsigned_msghead()
    running.send(body, content_type="application/xml")
    running.send(body, content_type="application/xml")
    msg_id = "0b7e7c3e-5d55-4a5c-9a57-3d7e6f1b2c11"
    stored = running.wait_request(msg_id)
    assert stored.state == RequestState.ROUTED
    (message,) = running.gateway.store.messages_for_request(stored.ref)
    assert (message.msg_id, message.state, message.receiver_her_id) == (msg_id, MessageState.SENT, 8100011)
    deliveries = running.receiver_deliveries("8100010_async", expect=2, timeout=3)
    assert [d.message_id for d in deliveries] == [msg_id]
    hospital_cert = running.gateway.registers.address.certificate_pem(HOSPITAL)
    verify_signed(deliveries[0].body, cert_pem=hospital_cert)


def test_signed_or_invalid_msghead_is_rejected(running: RunningGateway) -> None:
    """A MsgHead that is not well-formed is recorded as rejected and reported, like any invalid request."""
    running.send(b"<MsgHead>", content_type="application/xml")
    (event,) = running.events(expect=1)
    assert (event["state"], event["errors"][0]["code"]) == ("rejected", "msghead.not_well_formed")
