"""Replay end to end on the real RabbitMQ and both databases: resend, rebuild, edit, refusals, audit."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import RequestRejected
from edi_gateway.services.access import (
    AccessDenied,
    Operator,
    ReasonRequired,
    Role,
    create_operator,
    search_audit,
)
from edi_gateway.services.queries import MessageFilter
from edi_gateway.services.replay import ReplayKind, ReplayRefused, ReplayService
from edi_gateway.store.operators import MessageAlreadyReplaced
from edi_gateway.store.records import MessageRecord
from edi_gateway.transport.publisher import ConfirmingPublisher
from edi_gateway.xml.apprec import apprec_error
from edi_gateway.xml.msghead import parse_msghead_summary
from edi_gateway.xml.signing import verify_signed
from tests.services.conftest import RunningGateway
from tests.services.helpers import on_queue, sent_message
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox, wait_state

pytestmark = pytest.mark.rabbitmq

PATIENT = "07926217857"  # the synthetic patient of the kommune-only example
HOSPITAL = 8100001


@pytest.fixture
def service(running: RunningGateway) -> Iterator[ReplayService]:
    """A replay service on the running gateway, with its own confirming publisher."""
    with ConfirmingPublisher(running.settings.amqp_url, name="test replay") as publisher:
        yield ReplayService(running.gateway, publisher)


@pytest.fixture
def kari(running: RunningGateway) -> Operator:
    """An operator account."""
    return create_operator(running.gateway.store, "kari", "correct horse battery", Role.OPERATOR)


def _answered(running: RunningGateway, message: MessageRecord, status: AppRecStatus, *codes: str) -> None:
    apprec = apprec_for(message, status=status, errors=tuple(apprec_error(c) for c in codes))
    to_inbox(running, signed_by(running, message.receiver_org_her_id, apprec))
    state = {
        AppRecStatus.OK: MessageState.ACKED,
        AppRecStatus.AVVIST: MessageState.REJECTED_BY_RECEIVER,
    }[status]
    wait_state(running, message.msg_id, state)


# -- resend --------------------------------------------------------------------------------------


def test_resend_publishes_the_same_msg_id_again_and_records_the_attempt(
    running: RunningGateway, service: ReplayService, kari: Operator
) -> None:
    """A resend puts the stored bytes on the receiver queue again under the same MsgId, as a new attempt."""
    message, request = sent_message(running)
    (first,) = on_queue(running, message.queue, 1)

    result = service.replay(kari, message.msg_id, ReplayKind.RESEND, reason="kommune lost it")

    assert (result.kind, result.new_msg_ids, result.state) == ("resend", (message.msg_id,), "sent")
    (again,) = on_queue(running, message.queue, 1)
    assert again.message_id == first.message_id == message.msg_id
    assert again.body == first.body and again.correlation_id == request["request_id"]
    assert again.headers["replay"] == "resend"
    store = running.gateway.store
    stored = store.get_message(message.msg_id)
    assert stored is not None and (stored.attempts, stored.resends, stored.state) == (2, 1, "sent")
    last = store.events_for_message(message.msg_id)[-1]
    assert (last.from_state, last.to_state, last.actor, last.reason) == (
        "sent",
        "sent",
        "operator:kari",
        "kommune lost it",
    )
    (entry,) = search_audit(store, patient=PATIENT)
    assert (entry.action, entry.username, entry.msg_id) == ("replay", "kari", message.msg_id)
    assert entry.details == {"kind": "resend", "new_msg_ids": [message.msg_id], "state": "sent"}


def test_resend_is_refused_once_the_receiver_answered(
    running: RunningGateway, service: ReplayService, kari: Operator
) -> None:
    """An acked message is not resent (the receiver would drop the same MsgId); the refusal is audited."""
    message, _ = sent_message(running)
    on_queue(running, message.queue, 1)
    _answered(running, message, AppRecStatus.OK)

    with pytest.raises(ReplayRefused, match="use rebuild"):
        service.replay(kari, message.msg_id, ReplayKind.RESEND, reason="try again")

    assert on_queue(running, message.queue, 1) == []
    (entry,) = search_audit(running.gateway.store, msg_id=message.msg_id)
    assert entry.action == "replay_refused" and entry.details is not None
    assert entry.details["refused"] == "ReplayRefused"


# -- rebuild -------------------------------------------------------------------------------------


def test_rebuild_sends_a_new_msg_id_with_a_conversation_ref_to_the_old(
    running: RunningGateway, service: ReplayService, kari: Operator
) -> None:
    """A rejected message rebuilt gives a new signed MsgHead whose ConversationRef names the old MsgId."""
    message, request = sent_message(running)
    on_queue(running, message.queue, 1)
    _answered(running, message, AppRecStatus.AVVIST, "E21")

    result = service.replay(kari, message.msg_id, ReplayKind.REBUILD, reason="register corrected")

    (new_msg_id,) = result.new_msg_ids
    assert new_msg_id != message.msg_id and result.state == "sent"
    (delivered,) = on_queue(running, message.queue, 1)
    assert delivered.message_id == new_msg_id and delivered.correlation_id == request["request_id"]
    cert = (running.settings.pki_dir / f"{HOSPITAL}.cert.pem").read_bytes()
    summary = parse_msghead_summary(verify_signed(delivered.body, cert_pem=cert).root)
    assert (summary.msg_id, summary.conversation_ref, summary.conversation_root) == (
        new_msg_id,
        message.msg_id,
        message.msg_id,
    )
    assert summary.receiver_her_id == message.receiver_org_her_id and summary.patient_id == PATIENT

    store = running.gateway.store
    new = store.get_message(new_msg_id)
    assert new is not None and new.request_ref == message.request_ref
    assert (new.conversation_ref, new.state, new.attempts) == (message.msg_id, "sent", 1)
    old = store.get_message(message.msg_id)
    assert old is not None and old.state == "rejected_by_receiver"
    first_event = store.events_for_message(new_msg_id)[0]
    assert first_event.reason.startswith(f"replay of {message.msg_id} by operator:kari")
    assert store.events_for_message(message.msg_id)[-1].reason.startswith(f"continued by {new_msg_id}")


def test_a_message_is_rebuilt_once(running: RunningGateway, service: ReplayService, kari: Operator) -> None:
    """Rebuilding the same message a second time is refused: the newer message is the one to replay."""
    message, _ = sent_message(running)
    first = service.replay(kari, message.msg_id, ReplayKind.REBUILD, reason="once")
    with pytest.raises(MessageAlreadyReplaced):
        service.replay(kari, message.msg_id, ReplayKind.REBUILD, reason="twice")
    (newer,) = first.new_msg_ids
    assert service.replay(kari, newer, ReplayKind.REBUILD, reason="the newer one").state == "sent"


# -- edit ----------------------------------------------------------------------------------------


def test_edit_sends_the_edited_request_as_a_new_message(
    running: RunningGateway, service: ReplayService, kari: Operator
) -> None:
    """An edited request is validated and sent as a new message that carries the edited text."""
    message, request = sent_message(running)
    on_queue(running, message.queue, 1)
    edited = copy.deepcopy(request)
    edited["assessment"]["notes"] = "Korrigert: pasienten ønsker telefon før besøk."

    result = service.replay(
        kari, message.msg_id, ReplayKind.EDIT, reason="nurse corrected", edited_request=edited
    )

    (new_msg_id,) = result.new_msg_ids
    (delivered,) = on_queue(running, message.queue, 1)
    assert delivered.message_id == new_msg_id
    assert "Korrigert: pasienten ønsker telefon før besøk." in delivered.body.decode()
    assert "Korrigert" not in message.signed_xml.decode()
    store = running.gateway.store
    made = store.replay_that_made(new_msg_id)
    assert made is not None and made.kind == "edit" and made.request_body is not None
    assert b"Korrigert" in made.request_body
    entry = search_audit(store, patient=PATIENT)[0]
    assert entry.details is not None and "Korrigert" not in str(entry.details)
    # a later rebuild of the edited message starts from the edit, not from the original request
    again = service.replay(kari, new_msg_id, ReplayKind.REBUILD, reason="send the edit again")
    newest = store.get_message(again.new_msg_ids[0])
    assert newest is not None and "Korrigert" in newest.signed_xml.decode()


@pytest.mark.parametrize(
    ("change", "codes"),
    [
        (lambda r: r["assessment"].update(distress_score=11), ["schema.value"]),
        (
            lambda r: r.update(request_id="8d5e0f55-1f4b-4b7e-9a59-3c2f5e0d7a11"),
            ["replay.request_id_changed"],
        ),
        (lambda r: r.update(consent=False), ["replay.no_consent"]),
    ],
)
def test_an_invalid_edit_is_refused_with_the_request_codes(
    running: RunningGateway, service: ReplayService, kari: Operator, change: Any, codes: list[str]
) -> None:
    """An edit that would be refused as a request is refused with its codes; no message is made."""
    message, request = sent_message(running)
    edited = copy.deepcopy(request)
    change(edited)
    with pytest.raises(RequestRejected) as refused:
        service.replay(kari, message.msg_id, ReplayKind.EDIT, reason="fix", edited_request=edited)
    assert refused.value.codes == codes
    assert running.gateway.store.count_messages() == 1
    (entry,) = search_audit(running.gateway.store, msg_id=message.msg_id)
    assert entry.action == "replay_refused" and entry.details is not None and entry.details["codes"] == codes


# -- permissions ---------------------------------------------------------------------------------


def test_a_viewer_cannot_replay_and_a_reason_is_required(
    running: RunningGateway, service: ReplayService, kari: Operator
) -> None:
    """A viewer is denied, an operator without a reason refused; nothing is published or audited."""
    message, _ = sent_message(running)
    on_queue(running, message.queue, 1)
    vera = create_operator(running.gateway.store, "vera", "correct horse battery", Role.VIEWER)
    with pytest.raises(AccessDenied):
        service.replay(vera, message.msg_id, ReplayKind.RESEND, reason="I am curious")
    with pytest.raises(ReasonRequired):
        service.replay(kari, message.msg_id, ReplayKind.RESEND, reason=" ")
    with pytest.raises(AccessDenied):
        service.replay_by_filter(vera, MessageFilter(state="sent"), ReplayKind.RESEND, reason="all")
    assert on_queue(running, message.queue, 1) == []
    assert search_audit(running.gateway.store) == []


# -- by filter -----------------------------------------------------------------------------------


def test_plan_and_replay_by_filter(running: RunningGateway, service: ReplayService, kari: Operator) -> None:
    """The dry run says what would happen to each message found and changes nothing; the run then does it."""
    one, _ = sent_message(running)
    two, _ = sent_message(running)
    acked, _ = sent_message(running)
    _answered(running, acked, AppRecStatus.OK)
    assert len(on_queue(running, one.queue, 3)) == 3
    sent = MessageFilter(state="sent")

    plan = dict(service.plan_by_filter(sent, ReplayKind.RESEND))
    assert set(plan) == {one.msg_id, two.msg_id}
    assert all(what.startswith("resend:") for what in plan.values())
    rebuild_plan = dict(service.plan_by_filter(MessageFilter(), ReplayKind.REBUILD))
    assert rebuild_plan[one.msg_id].startswith(f"rebuild: a new message to {one.receiver_name}")
    assert on_queue(running, one.queue, 1) == []
    with pytest.raises(ReplayRefused):
        service.plan_by_filter(sent, ReplayKind.EDIT)

    results = service.replay_by_filter(kari, MessageFilter(), ReplayKind.RESEND, reason="kommune outage")
    by_msg = {r.old_msg_id: r for r in results}
    assert by_msg[one.msg_id].new_msg_ids == (one.msg_id,) and by_msg[two.msg_id].state == "sent"
    assert by_msg[acked.msg_id].new_msg_ids == () and "use rebuild" in by_msg[acked.msg_id].detail
    assert sorted(d.message_id or "" for d in on_queue(running, one.queue, 2)) == sorted(
        [one.msg_id, two.msg_id]
    )
    assert len(search_audit(running.gateway.store, operator="kari")) == 3
