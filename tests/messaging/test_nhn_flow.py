"""The whole flow over the ``nhn`` transport: a real worker and receivers against the NHN stand-in.

Requests still arrive on the real RabbitMQ and outcomes land in the real store; business documents
and AppRecs travel through the stand-in's message service over HTTP, authorised by its HelseID with
private_key_jwt and DPoP. Every request the gateway sends is checked against the published OpenAPI
description: each test ends by asserting that none was refused as invalid.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from prometheus_client import REGISTRY

from edi_gateway.cli_ops import format_detail
from edi_gateway.dev.nhn_standin.msh import Fault
from edi_gateway.dev.nhn_standin.world import Party, StandIn, party_of, run_standin
from edi_gateway.domain.apprec import AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.states import MessageState
from edi_gateway.registers.base import Virksomhet
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.services import queries
from edi_gateway.services.access import Role, create_operator, create_token
from edi_gateway.services.receiver import ReceiverBehaviour
from edi_gateway.services.replay import ReplayKind, replay_session
from edi_gateway.settings import Settings
from edi_gateway.store.records import MessageRecord
from edi_gateway.web.app import create_app
from edi_gateway.xml.apprec import AppRecSpec, build_apprec
from tests.services.conftest import (
    RunningGateway,
    cleanup_gateway,
    example,
    make_settings,
    start_gateway,
    stop_gateway,
)
from tests.services.test_receiver import receiver

pytestmark = pytest.mark.rabbitmq

OUR_HER_ID = 8100001
KOMMUNE = 8100060  # Kviteseid kommune: where the example patient lives
TJENESTEKONTOR = 8100062  # its Tjenestekontoret, the receiver of the behovskartlegging
SKIEN = 8100010
SENDING_UNIT = 8100002  # the hospital unit that signs as sender: AppRecs come back to its inbox


@dataclass
class NhnWorld:
    """A gateway worker on the ``nhn`` transport, the stand-in, and a way to start receivers."""

    running: RunningGateway
    standin: StandIn
    parties: dict[int, Party]
    base: Settings

    def receiver_settings(self, her_id: int) -> Settings:
        """The settings a receiving system for ``her_id`` runs with: on the stand-in, or on AMQP."""
        if self.running.settings.transport == "amqp":
            return self.base
        return self.standin.settings_for(self.base, self.parties[her_id])

    def receiver(
        self, her_id: int, behaviour: ReceiverBehaviour | None = None
    ) -> AbstractContextManager[None]:
        """Run the receiving system of ``her_id`` (over the stand-in on nhn) for the duration of the block."""
        return receiver(self.receiver_settings(her_id), her_id, behaviour)

    def sent_message(self, timeout: float = 30) -> MessageRecord:
        """Send the kommune-only example and wait until its one message is ``sent``."""
        request = example("kommune-only")
        self.running.send(request)
        return self.wait_state(
            self.message_for(request["request_id"], timeout).msg_id, MessageState.SENT, timeout
        )

    def message_for(self, request_id: str, timeout: float = 30) -> MessageRecord:
        """The one message of a request, once it has left ``queued``."""
        request = self.running.wait_request(request_id, timeout)
        (message,) = self.running.gateway.store.messages_for_request(request.ref)
        return message

    def wait_state(self, msg_id: str, state: MessageState, timeout: float = 30) -> MessageRecord:
        """Wait until the message reaches ``state``; return it."""
        store = self.running.gateway.store
        self.running.wait_for(lambda: _state(store.get_message(msg_id)) == state, timeout)
        found = store.get_message(msg_id)
        assert found is not None
        return found

    def violations(self) -> list[str]:
        """Requests the stand-in refused as breaking the published OpenAPI description."""
        return self.standin.violations()


def _state(message: MessageRecord | None) -> MessageState | None:
    return message.state if message is not None else None


@pytest.fixture
def nhn(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[Callable[..., NhnWorld]]:
    """Start the stand-in and a worker on the ``nhn`` transport (setting overrides allowed)."""
    started: list[tuple[RunningGateway, Any]] = []

    def _start(*, registers: str | None = None, transport: str = "nhn", **overrides: Any) -> NhnWorld:
        base = make_settings(
            tmp_path,
            pki_template,
            amqp_url=amqp_url,
            database_url=database_url,
            queue_prefix=queue_prefix,
            apprec_signature="required",
            **overrides,
        )
        fixtures = load_fixture_registers(base.effective_registers_dir)
        virksomheter: dict[int, Virksomhet] = {v.her_id: v for v in fixtures.address.all_virksomheter()}
        parties = {h: party_of(v, base.pki_dir / f"{h}.key.pem") for h, v in virksomheter.items()}
        context = run_standin(list(parties.values()), fixtures, certificates_dir=base.pki_dir)
        standin = context.__enter__()
        fast = base.nhn.model_copy(update={"nhn_poll_interval_s": 0.1, "nhn_status_poll_interval_s": 0.2})
        settings = standin.settings_for(
            base.model_copy(update={"nhn": fast}),
            parties[OUR_HER_ID],
            registers="nhn" if registers == "nhn" else None,
        ).model_copy(update={"transport": transport})
        running = start_gateway(settings)
        started.append((running, context))
        return NhnWorld(running, standin, parties, base.model_copy(update={"nhn": fast}))

    yield _start
    for running, context in started:
        stop_gateway(running)
        cleanup_gateway(running)
        context.__exit__(None, None, None)


def test_a_request_goes_out_over_nhn_and_its_apprec_comes_back(nhn: Callable[..., NhnWorld]) -> None:
    """The message is posted once with NHN's id recorded, the kommune's AppRec acks it, and NHN shows it delivered."""
    world = nhn()
    request = example("kommune-only")
    with world.receiver(KOMMUNE):
        world.running.send(request)
        message = world.message_for(request["request_id"])
        acked = world.wait_state(message.msg_id, MessageState.ACKED)
    (sent,) = [d for d in world.standin.msh.sent() if not d.is_apprec]
    assert (sent.business_document_id, sent.document) == (message.msg_id, message.signed_xml)
    assert (acked.transport, acked.transport_id) == ("nhn", sent.message_id)
    assert sent.receiver_her_ids == (TJENESTEKONTOR,)
    # The AppRec went to the sending unit's inbox (one of the HER-ids we poll); read once stored.
    (apprec_entry,) = [e for e in world.standin.msh.inbox() if e.is_apprec]
    assert apprec_entry.receiver_her_id == SENDING_UNIT and apprec_entry.read
    (apprec,) = world.running.gateway.store.apprecs_for_message(message.msg_id)
    assert apprec.status == 1
    world.running.wait_for(lambda: _state_of_transport(world, message.msg_id) == "Acknowledged", timeout=10)
    reasons = [e.reason for e in world.running.gateway.store.events_for_message(message.msg_id)]
    assert any("NHN delivered the message" in r for r in reasons)
    detail = queries.message_detail(world.running.gateway.store, message.msg_id)
    assert detail is not None
    assert (detail.transport, detail.transport_id, detail.transport_state) == (
        "nhn",
        sent.message_id,
        "Acknowledged",
    )
    assert f"nhn, NHN id {sent.message_id}, delivery Acknowledged" in format_detail(detail)
    assert world.violations() == []


def _state_of_transport(world: NhnWorld, msg_id: str) -> str | None:
    found = world.running.gateway.store.get_message(msg_id)
    return found.transport_state if found is not None else None


def test_a_rejecting_kommune_gives_rejected_by_receiver_with_its_code(nhn: Callable[..., NhnWorld]) -> None:
    """A kommune that answers Avvist (E35) through the API's AppRec operation rejects the message."""
    world = nhn()
    request = example("kommune-only")
    with world.receiver(KOMMUNE, ReceiverBehaviour(reject="E35")):
        world.running.send(request)
        message = world.message_for(request["request_id"])
        world.wait_state(message.msg_id, MessageState.REJECTED_BY_RECEIVER)
    (posted,) = world.standin.msh.apprecs()
    assert (posted.status, [e["errorCode"] for e in posted.errors]) == ("Rejected", ["E35"])
    (apprec,) = world.running.gateway.store.apprecs_for_message(message.msg_id)
    assert [p.code for p in apprec.errors] == ["apprec.E35"]
    assert world.violations() == []


def test_rate_limits_and_server_errors_are_retried_and_nothing_is_lost(nhn: Callable[..., NhnWorld]) -> None:
    """A 429 with Retry-After, then two 500s: the document still goes out once, and is sent."""
    world = nhn()
    world.standin.msh.faults.queue(
        "PostMessage", Fault.rate_limited("1"), Fault.server_error(), Fault.server_error(503)
    )
    message = world.sent_message()
    assert world.standin.msh.faults.pending("PostMessage") == 0
    assert [d.business_document_id for d in world.standin.msh.sent()] == [message.msg_id]
    assert world.violations() == []


def test_an_unknown_receiver_fails_the_message_with_nhns_words(nhn: Callable[..., NhnWorld]) -> None:
    """A 400 naming an unknown receiver is final: the message fails, and NHN's error body is on its timeline."""
    world = nhn()
    world.standin.msh.faults.queue("PostMessage", Fault.unknown_receiver(TJENESTEKONTOR))
    request = example("kommune-only")
    world.running.send(request)
    message = world.wait_state(world.message_for(request["request_id"]).msg_id, MessageState.FAILED)
    (failed,) = [
        e for e in world.running.gateway.store.events_for_message(message.msg_id) if e.to_state == "failed"
    ]
    assert "unknown_receiver" in failed.reason
    refusal = (failed.details or {})["refusal"]
    assert any("not found in Adresseregisteret" in v for v in refusal["validationErrors"])
    assert world.standin.msh.sent() == []
    # What NHN said is what the operator sees, on the page's data and in `messages show`.
    detail = queries.message_detail(world.running.gateway.store, message.msg_id)
    assert detail is not None and detail.refusal == refusal and refusal["requestId"]
    assert f"requestId: {refusal['requestId']}" in format_detail(detail)
    create_operator(world.running.gateway.store, "vakt", "correct horse battery", Role.VIEWER)
    token = create_token(world.running.gateway.store, "vakt", label="test")
    app = create_app(world.running.settings, gateway=world.running.gateway)
    with TestClient(app) as client:
        page = client.get(f"/messages/{message.msg_id}", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200
    assert "Avvist av transporten" in page.text and str(refusal["requestId"]) in page.text


def test_an_expired_token_is_refreshed_once_and_the_send_goes_through(nhn: Callable[..., NhnWorld]) -> None:
    """After every token has expired, the next send gets a 401, fetches one new token and is accepted."""
    world = nhn()
    first = example("kommune-only")
    world.running.send(first)
    world.wait_state(world.message_for(first["request_id"]).msg_id, MessageState.SENT)
    issued = world.standin.helseid.issued
    world.standin.helseid.expire_all_tokens()
    second = example("kommune-only")
    world.running.send(second)
    world.wait_state(world.message_for(second["request_id"]).msg_id, MessageState.SENT)
    assert world.standin.helseid.issued == issued + 1
    assert world.violations() == []


def test_an_apprec_whose_mark_read_fails_is_stored_once_and_marked_on_the_next_poll(
    nhn: Callable[..., NhnWorld],
) -> None:
    """A crash-like fault between store and mark-read leaves the AppRec unread; it comes again and counts once."""
    world = nhn()
    world.standin.msh.faults.queue("MarkMessageAsRead", Fault.server_error(), Fault.server_error())
    request = example("kommune-only")
    with world.receiver(KOMMUNE):
        world.running.send(request)
        message = world.message_for(request["request_id"])
        world.wait_state(message.msg_id, MessageState.ACKED)
        world.running.wait_for(lambda: all(e.read for e in world.standin.msh.inbox(SENDING_UNIT)), timeout=15)
    assert len(world.running.gateway.store.apprecs_for_message(message.msg_id)) == 1
    marks = [m for m in world.standin.msh.read_marks() if m[1] == SENDING_UNIT]
    assert len(marks) == 1  # the two failed marks were answered by the faults, not recorded


def test_a_document_that_is_not_xml_in_our_inbox_is_parked_and_marked_read(
    nhn: Callable[..., NhnWorld],
) -> None:
    """Whatever arrives in our inbox is stored before it is marked read: unreadable ones as parked documents."""
    world = nhn()
    kommune_apprec_like = b"<AppRec xmlns='http://www.kith.no/xmlstds/apprec/2012-02-15'><broken>"
    message_id = _deliver_raw(world, kommune_apprec_like)
    world.running.wait_for(lambda: world.running.gateway.store.count_parked() == 1, timeout=15)
    world.running.wait_for(
        lambda: any(e.message_id == message_id and e.read for e in world.standin.msh.inbox(OUR_HER_ID)),
        timeout=15,
    )
    (parked,) = world.running.gateway.store.list_parked()
    assert parked.code == "apprec.malformed"


def _deliver_raw(world: NhnWorld, document: bytes) -> str:
    """Put a document in our inbox as the kommune's system, bypassing the document checks of POST."""
    return world.standin.msh.deliver_raw(document, sender_her_id=TJENESTEKONTOR, receiver_her_id=OUR_HER_ID)


def test_an_apprec_naming_another_sender_than_nhn_authenticated_is_parked(
    nhn: Callable[..., NhnWorld],
) -> None:
    """An unsigned AppRec that claims to come from Skien while NHN says Kviteseid sent it changes nothing."""
    world = nhn()
    message = world.sent_message()
    forged = _unsigned_apprec(message, claimed_sender=SKIEN)
    _deliver_raw(world, forged)
    world.running.wait_for(lambda: world.running.gateway.store.count_parked() == 1, timeout=15)
    (parked,) = world.running.gateway.store.list_parked()
    assert parked.code == "apprec.wrong_sender"
    assert world.running.gateway.store.get_message(message.msg_id).state == MessageState.SENT  # type: ignore[union-attr]


def _unsigned_apprec(message: MessageRecord, *, claimed_sender: int) -> bytes:
    """An AppRec OK for ``message`` that names ``claimed_sender`` as its sender (no signature)."""
    spec = AppRecSpec(
        id=str(uuid.uuid4()),
        gen_date=datetime.now(UTC),
        status=AppRecStatus.OK,
        sender=AppRecParty(inst=PartyId(str(claimed_sender), "HER")),
        receiver=AppRecParty(inst=PartyId(str(OUR_HER_ID), "HER")),
        original_msg_id=message.msg_id,
        original_msg_type=message.msg_type,
        original_issue_date=message.created_at,
    )
    return etree.tostring(build_apprec(spec), xml_declaration=True, encoding="UTF-8")


def test_adresseregisteret_and_fastlegeregisteret_route_the_request_and_both_receivers_ack(
    nhn: Callable[..., NhnWorld],
) -> None:
    """With REGISTERS=nhn the kommune comes from AR and the fastlege from FLR, and both messages are acked."""
    world = nhn(registers="nhn")
    request = example("kommune-and-fastlege")
    world.running.send(request)
    stored = world.running.wait_request(request["request_id"])
    messages = world.running.gateway.store.messages_for_request(stored.ref)
    assert {m.receiver_kind for m in messages} == {"kommune", "fastlege"}
    with world.receiver(messages[0].receiver_org_her_id), world.receiver(messages[1].receiver_org_her_id):
        for m in messages:
            world.wait_state(m.msg_id, MessageState.ACKED)
    assert world.standin.ar.calls and world.standin.flr.calls
    assert world.violations() == []


def test_a_signed_apprec_on_amqp_is_verified_with_the_certificate_adresseregisteret_holds(
    nhn: Callable[..., NhnWorld],
) -> None:
    """On the amqp transport with REGISTERS=nhn the kommune's signed AppRec verifies against AR's certificate."""
    world = nhn(registers="nhn", transport="amqp")
    assert world.running.gateway.settings.certificates_dir is None
    request = example("kommune-only")
    with world.receiver(KOMMUNE):
        world.running.send(request)
        message = world.message_for(request["request_id"])
        world.wait_state(message.msg_id, MessageState.ACKED)
    (apprec,) = world.running.gateway.store.apprecs_for_message(message.msg_id)
    assert apprec.signature == "verified"
    assert world.violations() == []


def test_a_silent_kommune_makes_the_message_overdue_over_nhn(nhn: Callable[..., NhnWorld]) -> None:
    """With no AppRec by the deadline the message becomes overdue, exactly as on AMQP."""
    world = nhn(apprec_deadline_s=1.0, overdue_sweep_interval_s=0.2)
    request = example("kommune-only")
    with world.receiver(KOMMUNE, ReceiverBehaviour(silent=True)):
        world.running.send(request)
        message = world.message_for(request["request_id"])
        world.wait_state(message.msg_id, MessageState.OVERDUE, timeout=20)
    assert world.standin.msh.apprecs() == []
    # The kommune's system did fetch and mark it read: NHN reports it delivered, only the AppRec is missing.
    world.running.wait_for(lambda: _state_of_transport(world, message.msg_id) == "Acknowledged", timeout=10)


def test_a_second_apprec_for_one_message_is_refused_by_the_service_and_counts_once(
    nhn: Callable[..., NhnWorld],
) -> None:
    """A kommune that answers twice gets its second AppRec refused by the service; the message is acked once."""
    world = nhn()
    request = example("kommune-only")
    with world.receiver(KOMMUNE, ReceiverBehaviour(duplicate_apprec=True)):
        world.running.send(request)
        message = world.message_for(request["request_id"])
        world.wait_state(message.msg_id, MessageState.ACKED)
        world.running.wait_for(
            lambda: all(e.read for e in world.standin.msh.inbox(SENDING_UNIT) if e.is_apprec), timeout=10
        )
    assert len(world.standin.msh.apprecs()) == 1
    assert len(world.running.gateway.store.apprecs_for_message(message.msg_id)) == 1
    assert world.running.gateway.store.count_parked() == 0


def test_an_operators_resend_goes_through_the_message_service_with_the_same_msg_id(
    nhn: Callable[..., NhnWorld],
) -> None:
    """A resend replay on nhn posts the stored bytes again (same MsgId) and records a new attempt."""
    world = nhn()
    message = world.sent_message()
    kari = create_operator(world.running.gateway.store, "kari", "correct horse battery", Role.OPERATOR)
    with replay_session(world.running.gateway, name="test replay") as service:
        result = service.replay(kari, message.msg_id, ReplayKind.RESEND, reason="kommune lost it")
    assert (result.new_msg_ids, result.state) == ((message.msg_id,), "sent")
    assert "over nhn" in result.detail
    sent = [d for d in world.standin.msh.sent() if not d.is_apprec]
    assert [d.business_document_id for d in sent] == [message.msg_id, message.msg_id]
    assert sent[0].document == sent[1].document == message.signed_xml
    after = world.running.gateway.store.get_message(message.msg_id)
    assert after is not None and after.resends == 1
    assert world.violations() == []


def test_a_429_storm_requeues_the_request_and_it_goes_out_once_the_storm_passes(
    nhn: Callable[..., NhnWorld],
) -> None:
    """More 429s than one send retries defer the document; the request comes back and is sent, never twice."""
    world = nhn()
    world.standin.msh.faults.queue("PostMessage", *[Fault.rate_limited("1") for _ in range(5)])
    request = example("kommune-only")
    world.running.send(request)
    message = world.wait_state(world.message_for(request["request_id"]).msg_id, MessageState.SENT, timeout=40)
    assert world.standin.msh.faults.pending("PostMessage") == 0
    assert [d.business_document_id for d in world.standin.msh.sent()] == [message.msg_id]
    assert rate_limited_count() >= 5


def rate_limited_count() -> float:
    """How many 429s the send path has counted in this process."""
    return (
        REGISTRY.get_sample_value("edi_gateway_nhn_errors_total", {"where": "send", "kind": "rate_limited"})
        or 0
    )


def test_a_malformed_or_oversized_inbox_answer_loses_nothing(nhn: Callable[..., NhnWorld]) -> None:
    """Garbage and an oversized answer to the inbox poll are counted and skipped; the AppRec still lands."""
    world = nhn()
    message = world.sent_message()
    world.standin.msh.faults.queue(
        "GetBusinessDocument", Fault.malformed_json(), Fault.oversized(49 * 1024 * 1024, declare_length=True)
    )
    with world.receiver(KOMMUNE):
        world.wait_state(message.msg_id, MessageState.ACKED, timeout=30)
    assert world.standin.msh.faults.pending("GetBusinessDocument") == 0
    assert len(world.running.gateway.store.apprecs_for_message(message.msg_id)) == 1
    assert world.running.gateway.store.count_parked() == 0


def test_a_register_outage_keeps_the_request_received_until_adresseregisteret_answers(
    nhn: Callable[..., NhnWorld],
) -> None:
    """AR answering 503 is transient: the request is requeued, not rejected, and routed once AR is back."""
    world = nhn(registers="nhn")
    world.standin.ar.faults.inject("status", 3, status=503)
    request = example("kommune-only")
    world.running.send(request)
    message = world.wait_state(world.message_for(request["request_id"], timeout=40).msg_id, MessageState.SENT)
    stored = world.running.gateway.store.get_request(request["request_id"])
    assert stored is not None and stored.state == "routed"
    assert message.receiver_her_id == TJENESTEKONTOR
