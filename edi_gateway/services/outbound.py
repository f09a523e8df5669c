"""The outbound use case: a batch of EPR requests in, signed MsgHeads on each receiver's queue out.

For each batch the worker hands over:

1. *plan* every request (CPU only): intake validation, idempotency look-up, receiver resolution,
   MsgHead + Dialogmelding build, XSD validation, signing;
2. *store* every new outcome in one transaction (request, messages with signed bytes, events);
3. *publish* every message with pipelined publisher confirms (one wait for the whole batch);
4. *record* the confirmed ones as ``sent`` in one transaction, and publish status events;
5. tell the consumer what to do with each delivery: ack, or requeue when a transient fault left
   work undone (a redelivered request takes the idempotent path and re-sends the stored bytes with the
   same MsgId, so a crash between 2 and 4 neither loses nor duplicates a message).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from edi_gateway.domain.assessment_text import render_assessment
from edi_gateway.domain.events import StatusEvent
from edi_gateway.domain.request import RequestV1, parse_request, request_id_hint
from edi_gateway.domain.retry import RetryPolicy
from edi_gateway.domain.routing import RoutingRules
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import (
    Problem,
    RegisterRefused,
    RequestRejected,
    TransientError,
)
from edi_gateway.logging import get_logger
from edi_gateway.messaging.amqp import AmqpTransport
from edi_gateway.messaging.base import EdiTransport
from edi_gateway.messaging.delivering import delivery_transition, envelope_of
from edi_gateway.registers.base import Registers
from edi_gateway.services.announce import status_outgoing
from edi_gateway.services.building import MessageBuilder
from edi_gateway.services.msghead_intake import is_xml, read_msghead_request
from edi_gateway.services.receivers import resolve_receivers
from edi_gateway.services.retrying import with_retry
from edi_gateway.settings import Settings
from edi_gateway.store import DuplicateRequest, Store
from edi_gateway.store.records import (
    MessageRecord,
    NewMessage,
    NewRequest,
    RequestOutcome,
    RequestRecord,
    Transition,
)
from edi_gateway.transport.consumer import Delivery, Disposition
from edi_gateway.transport.names import Names
from edi_gateway.transport.publisher import ConfirmingPublisher
from edi_gateway.xml.signing import Signer

log = get_logger(__name__)
T = TypeVar("T")

XML = "application/xml"
REGISTER_REFUSED = Problem(
    "routing.register_refused",
    "Adresseregisteret or Fastlegeregisteret refused the look-up for this request as invalid.",
)
JSON = "application/json"


@dataclass(slots=True)
class _Plan:
    """What one delivery turned into before anything is written."""

    delivery: Delivery
    started: float
    outcome: RequestOutcome | None = None  # a new request to store
    existing: RequestRecord | None = None  # an idempotent repeat of a stored request
    republish: list[MessageRecord] = field(default_factory=list)
    message_states: dict[str, tuple[str, int, str]] = field(
        default_factory=dict
    )  # msg_id -> state, her, kind
    request_id: str | None = None
    state: str = ""
    problems: tuple[Problem, ...] = ()
    disposition: Disposition = Disposition.ACK


@dataclass(frozen=True, slots=True)
class OutboundDeps:
    """Everything the outbound service needs, built once per process (see ``services.context``)."""

    settings: Settings
    registers: Registers
    rules: RoutingRules
    signer: Signer
    store: Store
    publisher: ConfirmingPublisher
    names: Names
    actor: str = "worker"
    transport: EdiTransport | None = None  # None: the receivers' queues on the publisher's broker


class OutboundService:
    """Turns batches of request deliveries into stored, signed, published messages."""

    def __init__(
        self,
        deps: OutboundDeps,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry: RetryPolicy | None = None,
    ) -> None:
        self._d = deps
        self._clock = clock
        self._retry = retry or RetryPolicy()
        # Building (sender, message, validation, signing) is shared with operator replays.
        self._builder = MessageBuilder(
            deps.settings, deps.registers, deps.rules, deps.signer, deps.names, clock=clock
        )
        self._our = self._builder.our
        self._transport = deps.transport or AmqpTransport(
            deps.publisher, confirm_timeout_s=deps.settings.confirm_timeout_s
        )
        self._batch_known: dict[str, RequestRecord] = {}
        self._batch_asked: set[str] = set()

    # -- the batch -------------------------------------------------------------------------------

    def handle_batch(self, deliveries: Sequence[Delivery]) -> list[Disposition]:
        """Process one batch of request deliveries; return one disposition per delivery, in order."""
        try:
            plans = self._plan_all(deliveries)
            self._save_batch([p for p in plans if p.outcome is not None])
        except TransientError as exc:
            log.warning("store unavailable, batch requeued", error=type(exc).__name__, batch=len(deliveries))
            return [Disposition.REQUEUE for _ in deliveries]
        self._publish_messages(plans)
        self._publish_events(plans)
        for plan in plans:
            self._log_summary(plan)
        return [p.disposition for p in plans]

    def _plan_all(self, deliveries: Sequence[Delivery]) -> list[_Plan]:
        # One idempotency query for the whole batch, by the request ids the bodies name.
        asked = {hint for d in deliveries if (hint := request_id_hint(d.body)) is not None}
        self._batch_known = self._with_retry(lambda: self._d.store.get_requests(asked)) if asked else {}
        self._batch_asked = asked
        plans: list[_Plan] = []
        seen: dict[str, _Plan] = {}
        for delivery in deliveries:
            plan = self._plan(delivery, seen)
            if plan.outcome is not None and plan.request_id:
                seen[plan.request_id] = plan
            plans.append(plan)
        return plans

    # -- 1. plan ---------------------------------------------------------------------------------

    def _plan(self, delivery: Delivery, seen: dict[str, _Plan]) -> _Plan:
        plan = _Plan(delivery=delivery, started=time.perf_counter())
        try:
            return self._plan_request(plan, seen)
        except TransientError as exc:
            log.warning(
                "transient fault, request requeued",
                error=type(exc).__name__,
                delivery_count=delivery.delivery_count,
            )
            plan.disposition = Disposition.REQUEUE
            return plan
        except Exception as exc:
            return self._unknown_fault(plan, exc)

    def _unknown_fault(self, plan: _Plan, exc: Exception, *, stage: str = "planning") -> _Plan:
        """Requeue an unclassified fault; on the last delivery the broker allows, park it as failed."""
        delivery = plan.delivery
        log.error(
            "unexpected fault while planning a request"
            if stage == "planning"
            else "unexpected fault while storing a request",
            error=type(exc).__name__,
            delivery_count=delivery.delivery_count,
            exc_info=exc,
        )
        if delivery.delivery_count + 1 < self._d.settings.request_delivery_limit:
            plan.disposition = Disposition.REQUEUE
            return plan
        request_id = _valid_uuid(request_id_hint(delivery.body))
        problem = Problem(
            "gateway.internal_error",
            "The gateway could not process the request after several attempts; it is parked for an operator.",
        )
        return self._finish(plan, request_id, None, RequestState.FAILED, (), (problem,))

    def _plan_request(self, plan: _Plan, seen: dict[str, _Plan]) -> _Plan:
        delivery = plan.delivery
        if is_xml(delivery.content_type):
            return self._plan_msghead(plan, seen)
        settings = self._d.settings
        try:
            request = parse_request(
                delivery.body,
                content_type=delivery.content_type,
                max_bytes=settings.max_request_bytes,
                test_mode=settings.test_mode,
            )
        except RequestRejected as exc:
            hint = (
                _valid_uuid(request_id_hint(delivery.body))
                if len(delivery.body) <= settings.max_request_bytes
                else None
            )
            return self._rejected_or_repeat(plan, hint, None, exc.problems, seen)
        request_id = str(request.request_id)
        if request_id in seen or self._find_existing(plan, request_id):
            return self._repeat(plan, request_id, seen)
        if not request.consent:
            return self._finish(plan, request_id, request, RequestState.NO_CONSENT, (), ())
        try:
            self._builder.check_sender(request)
            resolution = resolve_receivers(
                person_id=request.patient.id,
                kommunenummer=request.patient.kommunenummer,
                send_to_fastlege=request.send_to_fastlege,
                registers=self._d.registers,
                rules=self._d.rules,
            )
            # One text for every receiver of the request: rendered once, not per message.
            text = render_assessment(request, kommune_name=resolution.receivers[0].organisation.name)
            messages = tuple(
                self._builder.build(request, r, resolution.kommunenummer, text) for r in resolution.receivers
            )
        except RequestRejected as exc:
            return self._rejected_or_repeat(plan, request_id, request, exc.problems, seen)
        except RegisterRefused:
            # The register's own words may quote the identifier it refused: they stay out of the record.
            return self._rejected_or_repeat(plan, request_id, request, (REGISTER_REFUSED,), seen)
        return self._finish(
            plan,
            request_id,
            request,
            RequestState.ROUTED,
            messages,
            resolution.problems,
            kommunenummer=resolution.kommunenummer,
        )

    def _plan_msghead(self, plan: _Plan, seen: dict[str, _Plan]) -> _Plan:
        """An EPR-built MsgHead: check and sign it; its MsgId is the idempotency key."""
        settings = self._d.settings
        try:
            intake = read_msghead_request(
                plan.delivery.body,
                max_bytes=settings.max_request_bytes,
                test_mode=settings.test_mode,
                our_her_id=settings.our_her_id,
                registers=self._d.registers,
                signer=self._d.signer,
                names=self._d.names,
            )
        except RequestRejected as exc:
            return self._rejected_or_repeat(plan, None, None, exc.problems, seen)
        if intake.request_id in seen or self._find_existing(plan, intake.request_id):
            return self._repeat(plan, intake.request_id, seen)
        return self._finish(
            plan,
            intake.request_id,
            None,
            RequestState.ROUTED,
            (intake.message,),
            (),
            kommunenummer=intake.kommunenummer,
        )

    def _find_existing(self, plan: _Plan, request_id: str) -> bool:
        if request_id in self._batch_asked:
            existing = self._batch_known.get(request_id)
        else:
            existing = self._with_retry(lambda: self._d.store.get_request(request_id))
        if existing is None:
            return False
        plan.existing = existing
        return True

    def _repeat(self, plan: _Plan, request_id: str, seen: dict[str, _Plan]) -> _Plan:
        """An idempotent repeat: report the stored outcome again and re-send what is still queued."""
        plan.request_id = request_id
        first = seen.get(request_id)
        if first is not None:  # the same request twice in one batch: the first one does the work
            plan.state = first.state
            plan.problems = first.problems
            return plan
        assert plan.existing is not None
        plan.state = plan.existing.state
        plan.problems = tuple(plan.existing.problems)
        messages = self._d.store.messages_for_request(plan.existing.ref)
        plan.republish = [m for m in messages if m.state == MessageState.QUEUED]
        return plan

    def _rejected_or_repeat(
        self,
        plan: _Plan,
        request_id: str | None,
        request: RequestV1 | None,
        problems: Sequence[Problem],
        seen: dict[str, _Plan],
    ) -> _Plan:
        if request_id is not None and (request_id in seen or self._find_existing(plan, request_id)):
            return self._repeat(plan, request_id, seen)
        return self._finish(plan, request_id, request, RequestState.REJECTED, (), tuple(problems))

    def _finish(
        self,
        plan: _Plan,
        request_id: str | None,
        request: RequestV1 | None,
        state: RequestState,
        messages: tuple[NewMessage, ...],
        problems: tuple[Problem, ...],
        kommunenummer: str | None = None,
    ) -> _Plan:
        d = plan.delivery
        plan.request_id, plan.state, plan.problems = request_id, state.value, problems
        plan.outcome = RequestOutcome(
            request=NewRequest(
                ref=str(uuid.uuid4()),
                request_id=request_id,
                state=state,
                received_at=self._clock(),
                content_type=d.content_type or "",
                body=d.body[: self._d.settings.max_request_bytes],
                samhandlingspunkt=request.samhandlingspunkt if request else None,
                consent=request.consent if request else None,
                send_to_fastlege=request.send_to_fastlege if request else None,
                kommunenummer=kommunenummer or (request.patient.kommunenummer if request else None),
                sender_unit_her_id=request.sender.unit_her_id if request else None,
                problems=problems,
                amqp_message_id=d.message_id,
                amqp_correlation_id=d.correlation_id,
                reason=_reason(state, problems),
            ),
            messages=messages,
        )
        return plan

    # -- 2. store --------------------------------------------------------------------------------

    def _save_batch(self, plans: list[_Plan]) -> None:
        """Store the batch in one transaction; if the database refuses it, store each request alone.

        One request the database refuses (a value it will not hold) must not take its batch-mates
        down with it: they are stored and sent, and only that request goes the way of an unknown
        fault (requeued, and on its last delivery recorded ``failed`` without its messages).

        Raises:
            TransientError: the database is unavailable (the caller requeues the whole batch).
        """
        try:
            self._with_retry(lambda: self._save(plans))
        except TransientError:
            raise
        except Exception as exc:
            log.error("batch refused by the store, storing its requests one by one", error=type(exc).__name__)
            for plan in plans:
                self._save_alone(plan)

    def _save_alone(self, plan: _Plan) -> None:
        try:
            self._with_retry(lambda: self._save([plan]))
            return
        except TransientError:
            raise
        except Exception as exc:
            plan.outcome = None
            self._unknown_fault(plan, exc, stage="storing")
        if plan.outcome is None:
            return  # requeued
        try:
            self._with_retry(lambda: self._save([plan]))
        except TransientError:
            raise
        except Exception as exc:  # not even the bare failed record: the broker's delivery limit decides
            log.error("request not storable, requeued", error=type(exc).__name__, request_id=plan.request_id)
            plan.outcome, plan.disposition = None, Disposition.REQUEUE

    def _save(self, plans: list[_Plan]) -> None:
        """Store every new outcome in one transaction; a lost race on request_id turns into a repeat."""
        while plans:
            try:
                self._d.store.save_outcomes([p.outcome for p in plans if p.outcome], actor=self._d.actor)
                return
            except DuplicateRequest as exc:
                raced = set(exc.request_ids)
                for plan in plans:
                    if plan.request_id in raced:
                        plan.outcome = None
                        self._batch_asked.discard(plan.request_id or "")  # stored since: ask again
                        if self._find_existing(plan, plan.request_id or ""):
                            self._repeat(plan, plan.request_id or "", {})
                plans = [p for p in plans if p.outcome is not None]

    # -- 3/4. publish and record -----------------------------------------------------------------

    def _publish_messages(self, plans: list[_Plan]) -> None:
        work: list[tuple[_Plan, NewMessage | MessageRecord]] = []
        for plan in plans:
            work += [(plan, m) for m in (plan.outcome.messages if plan.outcome else ())]
            work += [(plan, m) for m in plan.republish]
        if not work:
            return
        envelopes = [envelope_of(m, self._our.her_id, plan.request_id) for plan, m in work]
        results = self._transport.send_many(envelopes)
        transitions: list[Transition] = []
        for (plan, m), result in zip(work, results, strict=True):
            msg_id, her_id, kind = m.msg_id, m.receiver_her_id, m.receiver_kind
            plan.message_states[msg_id] = (MessageState.QUEUED.value, her_id, kind)
            transition = delivery_transition(msg_id, result, self._transport.name)
            if transition is None:
                log.warning(
                    "delivery deferred, request requeued",
                    msg_id=msg_id,
                    request_id=plan.request_id,
                    transport=self._transport.name,
                )
                plan.disposition = Disposition.REQUEUE
                continue
            plan.message_states[msg_id] = (transition.to_state.value, her_id, kind)
            transitions.append(transition)
        if transitions:
            try:
                self._with_retry(lambda: self._d.store.transition_messages(transitions, actor=self._d.actor))
            except TransientError:
                # The messages went out but are still recorded as queued: requeue, and the repeat path
                # re-sends the same bytes with the same MsgId (receivers drop duplicates by MsgId).
                for plan in plans:
                    plan.disposition = Disposition.REQUEUE

    def _publish_events(self, plans: list[_Plan]) -> None:
        events: list[tuple[_Plan, StatusEvent]] = []
        for plan in plans:
            if plan.state:  # a plan requeued before any outcome has nothing to report yet
                events += [(plan, e) for e in self._events_for(plan)]
        if not events:
            return
        outgoing = [status_outgoing(self._d.names, e) for _, e in events]
        results = self._d.publisher.publish_many(outgoing, timeout=self._d.settings.confirm_timeout_s)
        for (plan, _), error in zip(events, results, strict=True):
            if error is not None:
                plan.disposition = Disposition.REQUEUE

    def _events_for(self, plan: _Plan) -> list[StatusEvent]:
        """The request's own event, and one per message in the state it is now in."""
        now = self._clock()
        events = [StatusEvent(plan.state, now, plan.request_id, errors=plan.problems)]
        if plan.existing is not None and plan.state == RequestState.ROUTED:
            # A repeat reports every message of the stored request, whatever state it has reached.
            for m in self._d.store.messages_for_request(plan.existing.ref):
                plan.message_states.setdefault(m.msg_id, (m.state, m.receiver_her_id, m.receiver_kind))
        events += [
            StatusEvent(state, now, plan.request_id, msg_id, her_id, kind)
            for msg_id, (state, her_id, kind) in plan.message_states.items()
        ]
        return events

    # -- helpers ---------------------------------------------------------------------------------

    def _with_retry(self, operation: Callable[[], T]) -> T:
        return with_retry(operation, self._retry)

    def _log_summary(self, plan: _Plan) -> None:
        messages = plan.outcome.messages if plan.outcome else plan.republish
        log.info(
            "request processed",
            request_id=plan.request_id,
            state=plan.state,
            repeat=plan.outcome is None,
            msg_ids=[m.msg_id for m in messages],
            receiver_her_ids=[m.receiver_her_id for m in messages],
            codes=[p.code for p in plan.problems],
            disposition=plan.disposition.value,
            duration_ms=round((time.perf_counter() - plan.started) * 1000, 2),
        )


def _valid_uuid(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _reason(state: RequestState, problems: Sequence[Problem]) -> str:
    if state is RequestState.NO_CONSENT:
        return "consent is false: recorded, nothing sent"
    if state in (RequestState.REJECTED, RequestState.FAILED):
        return "; ".join(p.reason for p in problems) or state.value
    if problems:
        return "routed with receiver problems: " + ", ".join(p.code for p in problems)
    return "routed"
