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
    OverdueAction,
    OverdueKind,
    PendingMessage,
    ReceiverHealth,
    on_overdue,
    overdue_actions,
    sweep_cutoff,
)
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import Problem
from edi_gateway.logging import get_logger
from edi_gateway.messaging.delivering import delivery_transition, envelope_of
from edi_gateway.services.acknowledgements import AckDeps, transport_of
from edi_gateway.services.announce import alert_outgoing, status_outgoing
from edi_gateway.services.leasing import ROUNDS_PER_LEASE, run_with_lease
from edi_gateway.settings import Settings
from edi_gateway.store.records import MessageRecord, Transition

log = get_logger(__name__)

LEASE = "overdue_sweep"
OVERDUE_PROBLEM = Problem("apprec.overdue", "No AppRec from the receiver by the deadline.")
PAGE_SIZE = 500
"""Messages judged per page: a page's lean rows and the whole rows of what it acts on are held at once."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did."""

    marked_overdue: tuple[str, ...] = ()
    resent: tuple[str, ...] = ()
    alerts: int = 0


@dataclass(frozen=True, slots=True)
class _Rules:
    """The settings the sweep judges by, read once per sweep."""

    deadline: timedelta
    resend_after: timedelta | None
    max_resends: int

    @classmethod
    def of(cls, settings: Settings) -> _Rules:
        resend_after = timedelta(seconds=settings.resend_after_s) if settings.resend_after_s else None
        return cls(timedelta(seconds=settings.apprec_deadline_s), resend_after, settings.max_resends)

    def cutoff(self, now: datetime) -> datetime:
        return sweep_cutoff(
            now, deadline=self.deadline, resend_after=self.resend_after, max_resends=self.max_resends
        )

    def actions(self, page: list[PendingMessage], now: datetime) -> list[OverdueAction]:
        return overdue_actions(
            page,
            now=now,
            deadline=self.deadline,
            resend_after=self.resend_after,
            max_resends=self.max_resends,
        )


class OverdueSweeper:
    """Finds messages past their AppRec deadline and acts on them."""

    def __init__(
        self,
        deps: AckDeps,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_size: int = PAGE_SIZE,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._d = deps
        self._clock = clock
        self._page_size = page_size
        self._transport = transport_of(deps)

    def sweep(self, *, still_holder: Callable[[], bool] | None = None) -> SweepResult:
        """Run one sweep: resend what is due for a resend, mark overdue what is past its deadline.

        Every ``sent`` message first sent early enough for anything to be due is judged, a page at a
        time; a page's actions are stored and announced before the next page is read. Before each
        further page ``still_holder`` (the lease's renewal) is asked: a sweep over a backlog longer
        than the lease stops when another worker has taken the lease over, so two never sweep at once.
        """
        now = self._clock()
        rules = _Rules.of(self._d.settings)
        cutoff = rules.cutoff(now)
        marked: list[str] = []
        resent: list[str] = []
        alerts = 0
        after: tuple[datetime, str] | None = None
        while True:
            page = self._d.store.pending_for_overdue(first_sent_by=cutoff, after=after, limit=self._page_size)
            done = self._sweep_page(rules.actions(page, now), now)
            marked += done.marked_overdue
            resent += done.resent
            alerts += done.alerts
            if len(page) < self._page_size:
                return SweepResult(tuple(marked), tuple(resent), alerts)
            if still_holder is not None and not still_holder():
                log.warning(
                    "overdue sweep stopped: another worker holds the lease",
                    overdue=len(marked),
                    resent=len(resent),
                )
                return SweepResult(tuple(marked), tuple(resent), alerts)
            # A resent message keeps its first send, so the next page starts after it all the same.
            after = (page[-1].first_sent_at, page[-1].msg_id)

    def _sweep_page(self, actions: list[OverdueAction], now: datetime) -> SweepResult:
        """Resend and mark overdue what one page's actions say, in one transaction; then announce."""
        resend, overdue = self._acted_on(actions)
        transitions = self._resend(resend)
        marks, health, alerts = self._mark_overdue(overdue, now)
        transitions += marks
        if not transitions:
            return SweepResult()
        changed = set(
            self._d.store.save_acknowledgements(
                apprecs=[], parked=[], transitions=transitions, health=health, actor=self._d.actor
            )
        )
        marked = [m for m, _ in overdue if m.msg_id in changed]
        self._announce(marked, alerts, now)
        result = SweepResult(
            tuple(m.msg_id for m in marked),
            tuple(m.msg_id for m in resend if m.msg_id in changed),
            len(alerts),
        )
        if result.marked_overdue or result.resent:
            log.info(
                "overdue sweep",
                overdue=list(result.marked_overdue),
                resent=list(result.resent),
                alerts=len(alerts),
            )
        return result

    def _acted_on(
        self, actions: list[OverdueAction]
    ) -> tuple[list[MessageRecord], list[tuple[MessageRecord, str]]]:
        """The whole rows to resend, and to mark overdue with the reason, of the messages still ``sent``.

        Only these need more than the page's lean rows: the signed bytes for a resend, the receiver
        and request for an overdue event. An AppRec may have answered one since the page was read.
        """
        if not actions:
            return [], []
        loaded = self._d.store.get_messages([a.msg_id for a in actions])
        rows = {msg_id: m for msg_id, m in loaded.items() if m.state is MessageState.SENT}
        resend = [rows[a.msg_id] for a in actions if a.kind is OverdueKind.RESEND and a.msg_id in rows]
        overdue = [
            (rows[a.msg_id], a.reason)
            for a in actions
            if a.kind is OverdueKind.MARK_OVERDUE and a.msg_id in rows
        ]
        return resend, overdue

    def _mark_overdue(
        self, overdue: list[tuple[MessageRecord, str]], now: datetime
    ) -> tuple[list[Transition], list[ReceiverHealth], list[dict[str, object]]]:
        """The sent → overdue transitions, the receivers' new health, and the quiet alerts that raises."""
        if not overdue:
            return [], [], []
        threshold = self._d.settings.quiet_threshold
        health = dict(self._d.store.receiver_health({m.receiver_org_her_id for m, _ in overdue}))
        transitions, alerts = [], []
        for message, reason in overdue:
            transitions.append(
                Transition(message.msg_id, MessageState.OVERDUE, reason, expected_from=MessageState.SENT)
            )
            receiver = message.receiver_org_her_id
            health[receiver], alert = on_overdue(
                health.get(receiver) or ReceiverHealth(receiver), threshold=threshold
            )
            if alert is not None:
                alerts.append(alert_json(alert.kind.value, alert.reason, now, her_id=alert.her_id))
        return transitions, list(health.values()), alerts

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
        request_ids = self._d.store.request_ids_of([m.msg_id for m in marked]) if marked else {}
        outgoing = []
        for m in marked:
            event = StatusEvent(
                MessageState.OVERDUE.value,
                now,
                request_ids.get(m.msg_id),
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
        store, actor, interval_s = self._d.store, self._d.actor, self._d.settings.overdue_sweep_interval_s

        def renew() -> bool:
            return store.acquire_lease(LEASE, actor, interval_s * ROUNDS_PER_LEASE)

        run_with_lease(store, LEASE, actor, interval_s, lambda: self.sweep(still_holder=renew), stop)
