"""Operator replay: send a message again, or make a new one, without ever editing history.

Three kinds (DESIGN §5):

* ``resend`` — publish the stored signed bytes again, same MsgId (a receiver that already has it
  drops the copy); a new attempt in the message's history. Only while no receiver answer has come:
  after an AppRec the same MsgId would be dropped as a duplicate, so that needs a rebuild.
* ``rebuild`` — route the original request again with today's registers and build, sign and send a
  *new* message (new MsgId, ``ConversationRef`` to the old one) to the receiver of the same kind.
* ``edit`` — the same from a corrected request the operator supplies, validated like a new one.

The old message keeps its state and history (an event points at its successor); the new message's
first event says whose replay of which MsgId it is. Every replay needs the operator role and a reason,
and writes an audit entry (refusals too).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from edi_gateway.domain.assessment_text import render_assessment
from edi_gateway.domain.events import StatusEvent
from edi_gateway.domain.model import Receiver, ReceiverKind
from edi_gateway.domain.note_text import NOTE_CONTENT_TYPE
from edi_gateway.domain.request import RequestV1, parse_request
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import (
    EdiGatewayError,
    PermanentError,
    Problem,
    RequestRejected,
    TransientError,
    UnknownError,
)
from edi_gateway.logging import get_logger
from edi_gateway.messaging.amqp import AmqpTransport
from edi_gateway.messaging.base import Deferred, EdiTransport, Refused, SendResult
from edi_gateway.messaging.delivering import delivery_transition, envelope_of
from edi_gateway.messaging.factory import open_transport
from edi_gateway.services import queries
from edi_gateway.services.access import (
    Operator,
    audit,
    check_reason,
)
from edi_gateway.services.announce import status_outgoing
from edi_gateway.services.building import MessageBuilder
from edi_gateway.services.context import Gateway
from edi_gateway.services.msghead_intake import is_xml
from edi_gateway.services.receivers import Resolution, resolve_receivers
from edi_gateway.store import MessageNotFound, MessageRecord
from edi_gateway.store.operators import NewReplay
from edi_gateway.store.records import NewMessage
from edi_gateway.transport.publisher import ConfirmingPublisher

log = get_logger(__name__)

XML = "application/xml"
JSON = "application/json"

RESENDABLE = frozenset({MessageState.QUEUED, MessageState.SENT, MessageState.OVERDUE, MessageState.FAILED})
NOTE_NOT_REBUILT = (
    "this message is the kommune's note to the fastlege, not built from an EPR request, so it cannot be "
    "rebuilt or edited: resend it, or record a new note on the pathway"
)


class ReplayKind(StrEnum):
    """How a message is replayed."""

    RESEND = "resend"  # same MsgId, the stored bytes again
    REBUILD = "rebuild"  # new MsgId from the original request and today's registers
    EDIT = "edit"  # new MsgId from a corrected request


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did.

    Attributes:
        kind: the kind of replay.
        old_msg_id: the message replayed.
        new_msg_ids: for a resend ``(old_msg_id,)``; for a rebuild or edit the new MsgId; empty when
            a replay by filter refused this message.
        state: the state the (new) message is in now.
        detail: what happened, in plain language (no personal data).
    """

    kind: ReplayKind
    old_msg_id: str
    new_msg_ids: tuple[str, ...]
    state: str
    detail: str


class ReplayRefused(PermanentError):
    """This replay cannot be done (wrong state, wrong kind of request, missing edited request)."""


class DeliveryRefused(UnknownError):
    """The transport refused a replayed message for good (no queue, or NHN refused the document)."""


class DeliveryDeferred(TransientError):
    """The transport could not take a replayed message now; try the replay again later."""


class ReplayPlanner:
    """What a replay would start from and do, read from the store and registers only (never publishes).

    The web process uses it for the dry run; ``ReplayService`` uses it to find a message's request.
    """

    def __init__(self, gateway: Gateway) -> None:
        """Read through ``gateway``'s store, settings, registers and rules."""
        self._g = gateway

    def original_request(self, message: MessageRecord) -> RequestV1:
        """Return the request a message was built from: an earlier edit's body, else the stored request."""
        made_by = self._g.store.replay_that_made(message.msg_id)
        if made_by is not None and made_by.request_body is not None:
            return self.parse(made_by.request_body, JSON)
        request = self._g.store.get_request_by_ref(message.request_ref)
        if request is None:
            raise MessageNotFound(message.msg_id)
        if request.content_type == NOTE_CONTENT_TYPE:
            raise ReplayRefused(NOTE_NOT_REBUILT)
        if is_xml(request.content_type):
            raise ReplayRefused(
                "the EPR built this MsgHead itself, so the gateway cannot rebuild it: resend it, or ask "
                "the EPR for a corrected message"
            )
        return self.parse(request.body, request.content_type)

    def check_rebuildable(self, message: MessageRecord) -> None:
        """Refuse a rebuild or edit of a message no EPR request made (a kommune's note to the fastlege).

        Raises:
            ReplayRefused: the message is a note to the fastlege (``services.fastlege_note``).
        """
        request = self._g.store.get_request_by_ref(message.request_ref)
        if request is not None and request.content_type == NOTE_CONTENT_TYPE:
            raise ReplayRefused(NOTE_NOT_REBUILT)

    def parse(self, body: bytes, content_type: str) -> RequestV1:
        """Parse a stored or edited request as intake would (size limit, test-mode rules)."""
        settings = self._g.settings
        return parse_request(
            body,
            content_type=content_type,
            max_bytes=settings.max_request_bytes,
            test_mode=settings.test_mode,
        )

    def plan_by_filter(self, f: queries.MessageFilter, kind: ReplayKind) -> list[tuple[str, str]]:
        """Say what ``replay_by_filter`` would do to each message the filter finds; change nothing.

        Raises:
            ReplayRefused: kind ``edit`` (an edit is made for one message at a time).
        """
        kind = filter_kind(kind)
        page = queries.list_messages(self._g.store, f)
        plans = []
        for row in page.rows:
            message = self._g.store.get_message(row.msg_id)
            if message is not None:
                plans.append((row.msg_id, self._plan_one(message, kind)))
        return plans

    def _plan_one(self, message: MessageRecord, kind: ReplayKind) -> str:
        try:
            if kind is ReplayKind.RESEND:
                _check_resendable(message)
                return f"resend: publish the stored message again with the same MsgId to {message.queue}"
            new = self._plan_receiver(message)
        except EdiGatewayError as exc:
            return f"refused: {exc}"
        return f"rebuild: a new message to {new} with ConversationRef {message.msg_id}"

    def receiver_today(self, request: RequestV1, kind: str) -> tuple[Resolution, Receiver | None]:
        """Route ``request`` with today's registers; return the resolution and its receiver of ``kind``."""
        resolution = resolve_receivers(
            person_id=request.patient.id,
            kommunenummer=request.patient.kommunenummer,
            send_to_fastlege=request.send_to_fastlege,
            registers=self._g.registers,
            rules=self._g.rules,
        )
        return resolution, next((r for r in resolution.receivers if r.kind == kind), None)

    def _plan_receiver(self, message: MessageRecord) -> str:
        _, receiver = self.receiver_today(self.original_request(message), message.receiver_kind)
        if receiver is None:
            raise ReplayRefused(f"today's registers name no {message.receiver_kind} receiver")
        return f"{receiver.display_name} (HER-id {receiver.addressed_her_id})"


class ReplayService:
    """Replays messages for operators; built from a Gateway and a started ConfirmingPublisher."""

    def __init__(
        self,
        gateway: Gateway,
        publisher: ConfirmingPublisher,
        *,
        transport: EdiTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Prepare the message builder; messages go by ``transport`` (default: the publisher's broker)."""
        self._g = gateway
        self._publisher = publisher
        self._transport = transport or AmqpTransport(
            publisher, confirm_timeout_s=gateway.settings.confirm_timeout_s
        )
        self._clock = clock
        self._plan = ReplayPlanner(gateway)
        self._builder = MessageBuilder(
            gateway.settings, gateway.registers, gateway.rules, gateway.signer, gateway.names, clock=clock
        )

    # -- one message -----------------------------------------------------------------------------

    def replay(
        self,
        operator: Operator | None,
        msg_id: str,
        kind: ReplayKind,
        *,
        reason: str,
        edited_request: Mapping[str, Any] | None = None,
    ) -> ReplayResult:
        """Replay one message and audit it.

        Args:
            operator: who asks; needs the operator role.
            msg_id: the message to replay.
            kind: resend, rebuild or edit.
            reason: why (required; goes to the history and the audit log).
            edited_request: the corrected request JSON, for ``edit`` only; its request_id must be the
                original's.

        Raises:
            AccessDenied: the operator lacks the operator role.
            ReasonRequired: no reason was given.
            MessageNotFound: no message has this msg_id.
            ReplayRefused: the message's state or request does not allow this kind.
            RequestRejected: the (edited) request is invalid or cannot be routed today; with codes.
            MessageAlreadyReplaced: this message was rebuilt for this receiver already.
            Unroutable: the broker has no queue for the receiver.
            BrokerUnavailable: the broker did not confirm (a new message stays ``queued``).
        """
        who, reason = check_reason(operator, reason)
        kind = ReplayKind(kind)
        message = self._g.store.get_message(msg_id)
        if message is None:
            raise MessageNotFound(msg_id)
        patient = queries.patient_id_of(self._g.store, msg_id)
        try:
            result = self._replay(who, message, kind, reason, edited_request)
        except EdiGatewayError as exc:
            details = {"kind": kind.value, "refused": type(exc).__name__, "codes": _codes(exc)}
            audit(
                self._g.store,
                who,
                # refused: the operator's request cannot be done; failed: the broker or database let us down
                action="replay_refused" if isinstance(exc, PermanentError) else "replay_failed",
                reason=reason,
                msg_id=msg_id,
                patient_ref=patient,
                details=details,
            )
            raise
        details = {"kind": kind.value, "new_msg_ids": list(result.new_msg_ids), "state": result.state}
        audit(
            self._g.store,
            who,
            action="replay",
            reason=reason,
            msg_id=msg_id,
            patient_ref=patient,
            details=details,
        )
        log.info(
            "replay",
            kind=kind.value,
            msg_id=msg_id,
            new_msg_ids=list(result.new_msg_ids),
            state=result.state,
            operator=who.username,
        )
        return result

    def _replay(
        self,
        who: Operator,
        message: MessageRecord,
        kind: ReplayKind,
        reason: str,
        edited: Mapping[str, Any] | None,
    ) -> ReplayResult:
        if (kind is ReplayKind.EDIT) != (edited is not None):
            raise ReplayRefused("an edited request goes with kind edit, and kind edit needs one")
        if kind is ReplayKind.RESEND:
            return self._resend(who, message, reason)
        self._plan.check_rebuildable(message)
        if edited is not None:
            body = json.dumps(dict(edited), ensure_ascii=False).encode()
            request = self._plan.parse(body, JSON)
            self._check_same_request(message, request)
            return self._send_new(who, message, request, kind, reason, body)
        return self._send_new(who, message, self._plan.original_request(message), kind, reason, None)

    # -- resend ----------------------------------------------------------------------------------

    def _resend(self, who: Operator, message: MessageRecord, reason: str) -> ReplayResult:
        _check_resendable(message)
        request_id = self._request_id(message)
        result = self._send(message, request_id, ReplayKind.RESEND)
        if isinstance(result, Refused):
            self._g.store.record_message_event(
                message.msg_id, actor=who.actor, reason=f"resend failed: {result.reason}"
            )
            raise DeliveryRefused(f"{self._transport.name} refused the resend: {result.reason}")
        if isinstance(result, Deferred):
            raise DeliveryDeferred(f"{self._transport.name} did not take the resend now: {result.reason}")
        change = delivery_transition(
            message.msg_id,
            result,
            self._transport.name,
            expected_from=message.state,
            reason=reason,
            resend=True,
        )
        assert change is not None  # accepted
        change = dataclasses.replace(
            change, details={**(change.details or {}), "replay": ReplayKind.RESEND.value}
        )
        changed = self._g.store.transition_messages([change], actor=who.actor)
        now = self._state_of(message.msg_id)
        if not changed:  # an AppRec (or another replay) moved it between our read and our write
            detail = f"sent again with the same MsgId; meanwhile the message became {now}"
        else:
            detail = f"sent the stored message again with the same MsgId to {self._where(message)}"
            self._announce(message, request_id, now)
        return ReplayResult(ReplayKind.RESEND, message.msg_id, (message.msg_id,), now, detail)

    # -- rebuild and edit ------------------------------------------------------------------------

    def _check_same_request(self, message: MessageRecord, edited: RequestV1) -> None:
        if str(edited.request_id) != self._request_id(message):
            raise RequestRejected(
                [
                    Problem(
                        "replay.request_id_changed",
                        "An edited request keeps the original request's request_id.",
                        "request_id",
                    )
                ]
            )

    def _send_new(
        self,
        who: Operator,
        old: MessageRecord,
        request: RequestV1,
        kind: ReplayKind,
        reason: str,
        edited_body: bytes | None,
    ) -> ReplayResult:
        new = self._build(old, request)
        replay = NewReplay(old.msg_id, new, who.username, kind.value, reason, edited_body)
        self._g.store.add_replay_message(replay, actor=who.actor)
        request_id = self._request_id(old)
        result = self._send(new, request_id, kind)
        change = delivery_transition(new.msg_id, result, self._transport.name)
        if change is None:
            state = MessageState.QUEUED.value
            detail = f"new message {new.msg_id} stored, but the transport did not take it now: resend it"
            return ReplayResult(kind, old.msg_id, (new.msg_id,), state, detail)
        self._g.store.transition_messages([change], actor=who.actor)
        state = self._state_of(new.msg_id)
        self._announce(new, request_id, state)
        detail = f"new message {new.msg_id} to {new.receiver_name} (ConversationRef {old.msg_id}): {state}"
        return ReplayResult(kind, old.msg_id, (new.msg_id,), state, detail)

    def _build(self, old: MessageRecord, request: RequestV1) -> NewMessage:
        """Route ``request`` with today's registers and build the message for ``old``'s kind of receiver."""
        if not request.consent:
            raise RequestRejected(
                [Problem("replay.no_consent", "The request has no consent: nothing may be sent.", "consent")]
            )
        self._builder.check_sender(request)
        resolution, receiver = self._plan.receiver_today(request, old.receiver_kind)
        if receiver is None:
            missing = Problem(
                "replay.no_receiver",
                f"Today's registers and the request name no {ReceiverKind(old.receiver_kind).value} receiver.",
            )
            raise RequestRejected([*resolution.problems, missing])
        text = render_assessment(request, kommune_name=resolution.receivers[0].organisation.name)
        return self._builder.build(
            request, receiver, resolution.kommunenummer, text, conversation_ref=old.msg_id
        )

    # -- many messages ---------------------------------------------------------------------------

    def plan_by_filter(self, f: queries.MessageFilter, kind: ReplayKind) -> list[tuple[str, str]]:
        """Say what ``replay_by_filter`` would do to each message the filter finds; change nothing."""
        return self._plan.plan_by_filter(f, kind)

    def replay_by_filter(
        self, operator: Operator | None, f: queries.MessageFilter, kind: ReplayKind, *, reason: str
    ) -> list[ReplayResult]:
        """Replay every message the filter finds (one page: ``f.limit``), each audited on its own.

        A message that cannot be replayed gets a result with no new MsgId and the reason in
        ``detail``; the others go on.

        Raises:
            AccessDenied: the operator lacks the operator role.
            ReasonRequired: no reason was given.
            ReplayRefused: kind ``edit``.
        """
        who, reason = check_reason(operator, reason)
        kind = filter_kind(kind)
        results = []
        for row in queries.list_messages(self._g.store, f).rows:
            try:
                results.append(self.replay(who, row.msg_id, kind, reason=reason))
            except EdiGatewayError as exc:
                state = self._state_of(row.msg_id)
                results.append(ReplayResult(kind, row.msg_id, (), state, f"not replayed: {exc}"))
        return results

    # -- publishing ------------------------------------------------------------------------------

    def _send(
        self, message: MessageRecord | NewMessage, request_id: str | None, kind: ReplayKind
    ) -> SendResult:
        our = self._builder.our.her_id
        (result,) = self._transport.send_many([envelope_of(message, our, request_id, {"replay": kind.value})])
        return result

    def _where(self, message: MessageRecord) -> str:
        if self._transport.name == "amqp":
            return message.queue
        return f"HER-id {message.receiver_her_id} over {self._transport.name}"

    def _announce(self, message: MessageRecord | NewMessage, request_id: str | None, state: str) -> None:
        """Tell the EPR on ``edi.events``, as the worker does for the messages it sends."""
        kind = str(message.receiver_kind)
        event = StatusEvent(state, self._clock(), request_id, message.msg_id, message.receiver_her_id, kind)
        outgoing = status_outgoing(self._g.names, event)
        self._publisher.publish_many([outgoing], timeout=self._g.settings.confirm_timeout_s)

    # -- helpers ---------------------------------------------------------------------------------

    def _request_id(self, message: MessageRecord) -> str | None:
        request = self._g.store.get_request_by_ref(message.request_ref)
        return request.request_id if request is not None else None

    def _state_of(self, msg_id: str) -> str:
        message = self._g.store.get_message(msg_id)
        return message.state.value if message is not None else "unknown"


def _check_resendable(message: MessageRecord) -> None:
    if message.state not in RESENDABLE:
        raise ReplayRefused(
            f"message {message.msg_id} is {message.state.value}: the receiver has answered, and it would "
            "drop the same MsgId as a duplicate; use rebuild to send a new message"
        )


def filter_kind(kind: ReplayKind) -> ReplayKind:
    """Return ``kind`` for a replay by filter.

    Raises:
        ReplayRefused: kind ``edit`` (an edit is made for one message at a time).
    """
    kind = ReplayKind(kind)
    if kind is ReplayKind.EDIT:
        raise ReplayRefused("an edit is made for one message at a time, not by filter")
    return kind


def _codes(exc: Exception) -> list[str]:
    return list(exc.codes) if isinstance(exc, RequestRejected) else []


@contextmanager
def replay_session(gateway: Gateway, *, name: str) -> Iterator[ReplayService]:
    """A replay service on its own publisher and the transport the settings choose; closed on exit.

    Nothing connects before the first publish: a dry run never touches the broker.
    """
    with (
        ConfirmingPublisher(gateway.settings.amqp_url, name=name) as publisher,
        open_transport(gateway.settings, publisher) as transport,
    ):
        yield ReplayService(gateway, publisher, transport=transport)
