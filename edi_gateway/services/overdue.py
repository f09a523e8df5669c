"""The overdue sweep: messages without an AppRec by their deadline become ``overdue`` (once).

Runs in the worker every ``OVERDUE_SWEEP_INTERVAL_S``. Before the deadline it can re-send the stored
bytes with the same MsgId (``RESEND_AFTER_S``, ``MAX_RESENDS``). Receivers with several overdue
messages in a row raise one ``receiver_quiet`` alert; the acknowledgement service raises the matching
``receiver_recovered`` alert when an AppRec arrives again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from edi_gateway.domain.events import StatusEvent, alert_json
from edi_gateway.domain.overdue import (
    OverdueKind,
    PendingMessage,
    ReceiverHealth,
    on_overdue,
    overdue_actions,
)
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import Problem
from edi_gateway.logging import get_logger
from edi_gateway.messaging.delivering import delivery_transition, envelope_of
from edi_gateway.services.acknowledgements import AckDeps, transport_of
from edi_gateway.services.announce import alert_outgoing, status_outgoing
from edi_gateway.services.leasing import run_with_lease
from edi_gateway.store.records import MessageRecord, Transition

log = get_logger(__name__)

LEASE = "overdue_sweep"
OVERDUE_PROBLEM = Problem("apprec.overdue", "No AppRec from the receiver by the deadline.")


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did."""

    marked_overdue: tuple[str, ...] = ()
    resent: tuple[str, ...] = ()
    alerts: int = 0


class OverdueSweeper:
    """Finds messages past their AppRec deadline and acts on them."""

    def __init__(self, deps: AckDeps, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._d = deps
        self._clock = clock
        self._transport = transport_of(deps)

    def sweep(self) -> SweepResult:
        """Run one sweep: resend what is due for a resend, mark overdue what is past its deadline."""
        settings, store = self._d.settings, self._d.store
        now = self._clock()
        pending = {m.msg_id: m for m in store.messages_for_overdue(limit=1000)}
        actions = overdue_actions(
            [_pending(m) for m in pending.values()],
            now=now,
            deadline=timedelta(seconds=settings.apprec_deadline_s),
            resend_after=timedelta(seconds=settings.resend_after_s) if settings.resend_after_s else None,
            max_resends=settings.max_resends,
        )
        resend = [pending[a.msg_id] for a in actions if a.kind is OverdueKind.RESEND]
        overdue = [(pending[a.msg_id], a.reason) for a in actions if a.kind is OverdueKind.MARK_OVERDUE]
        transitions = self._resend(resend)
        health: dict[int, ReceiverHealth] = dict(
            store.receiver_health({m.receiver_org_her_id for m, _ in overdue})
        )
        alerts = []
        for message, reason in overdue:
            transitions.append(
                Transition(message.msg_id, MessageState.OVERDUE, reason, expected_from=MessageState.SENT)
            )
            receiver = message.receiver_org_her_id
            health[receiver], alert = on_overdue(
                health.get(receiver) or ReceiverHealth(receiver), threshold=settings.quiet_threshold
            )
            if alert is not None:
                alerts.append(alert_json(alert.kind.value, alert.reason, now, her_id=alert.her_id))
        if not transitions:
            return SweepResult()
        changed = set(
            store.save_acknowledgements(
                apprecs=[],
                parked=[],
                transitions=transitions,
                health=list(health.values()),
                actor=self._d.actor,
            )
        )
        marked = tuple(m.msg_id for m, _ in overdue if m.msg_id in changed)
        self._announce([pending[msg_id] for msg_id in marked], alerts, now)
        result = SweepResult(marked, tuple(m.msg_id for m in resend if m.msg_id in changed), len(alerts))
        if marked or result.resent:
            log.info("overdue sweep", overdue=list(marked), resent=list(result.resent), alerts=len(alerts))
        return result

    def _resend(self, messages: list[MessageRecord]) -> list[Transition]:
        """Send the stored bytes again (same MsgId); an accepted resend is a sent → sent transition."""
        if not messages:
            return []
        our_her_id = self._d.settings.our_her_id
        results = self._transport.send_many(
            [envelope_of(m, our_her_id, None, {"resend": 1}) for m in messages]
        )
        changes = (
            delivery_transition(
                m.msg_id,
                result,
                self._transport.name,
                expected_from=MessageState.SENT,
                reason="automatic resend: no AppRec yet",
                resend=True,
            )
            for m, result in zip(messages, results, strict=True)
        )
        return [change for change in changes if change is not None]

    def _announce(self, marked: list[MessageRecord], alerts: list[dict[str, object]], now: datetime) -> None:
        outgoing = []
        for m in marked:
            request = self._d.store.get_request_by_ref(m.request_ref)
            event = StatusEvent(
                MessageState.OVERDUE.value,
                now,
                request.request_id if request else None,
                m.msg_id,
                m.receiver_her_id,
                m.receiver_kind,
                (OVERDUE_PROBLEM,),
            )
            outgoing.append(status_outgoing(self._d.names, event))
        outgoing += [alert_outgoing(self._d.names, a) for a in alerts]
        if outgoing:
            self._d.publisher.publish_many(outgoing, timeout=self._d.settings.confirm_timeout_s)

    def run(self, stop: threading.Event) -> None:
        """Sweep every ``OVERDUE_SWEEP_INTERVAL_S`` until ``stop`` is set; transient faults wait a round.

        However many workers run, one sweeps: the one holding the ``overdue_sweep`` lease (see
        ``run_with_lease``).
        """
        run_with_lease(
            self._d.store,
            LEASE,
            self._d.actor,
            self._d.settings.overdue_sweep_interval_s,
            self.sweep,
            stop,
        )


def _pending(m: MessageRecord) -> PendingMessage:
    sent_at = m.sent_at or m.updated_at
    return PendingMessage(m.msg_id, MessageState(m.state), sent_at, m.first_sent_at or sent_at, m.resends)
