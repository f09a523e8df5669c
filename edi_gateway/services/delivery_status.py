"""The delivery-status poll: NHN's word on whether each sent message reached the receiver's system.

Runs in the worker on the ``nhn`` transport every ``NHN_STATUS_POLL_INTERVAL_S``. For each sent message
not yet reported delivered or rejected it asks ``GET /Messages/{id}/status`` and writes a state it has
not seen before on the message's timeline (``Store.record_transport_states``: once, whichever worker
asks first). ``Rejected`` fails a message still waiting for its AppRec, and the EPR hears of it on
``edi.events`` (``status.failed``) like any other failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from edi_gateway.domain.events import StatusEvent
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import Problem, TransientError, TransportRefused
from edi_gateway.logging import get_logger
from edi_gateway.nhn.msh import DeliveryStatus, MshClient
from edi_gateway.services.leasing import run_with_lease
from edi_gateway.store import Store
from edi_gateway.store.delivery import TransportStateChange
from edi_gateway.store.records import MessageRecord

log = get_logger(__name__)

LEASE = "nhn_delivery_status"

_WORDS = {
    "Unconfirmed": "NHN has the message; the receiver's system has not confirmed it yet",
    "Acknowledged": "NHN delivered the message: the receiver's system confirmed it",
    "Rejected": "NHN could not deliver the message to the receiver's system",
}


@dataclass(frozen=True)
class DeliveryStatusPoller:
    """Asks the message service about sent messages and records what changed."""

    store: Store
    msh: MshClient
    actor: str
    interval_s: float
    announce: Callable[[list[StatusEvent]], None]
    batch: int = 100
    on_error: Callable[[str], None] = lambda kind: None

    def poll(self) -> list[str]:
        """Ask about up to ``batch`` messages once; return the msg_ids whose state changed."""
        changes = []
        for message in self.store.messages_awaiting_delivery(transport="nhn", limit=self.batch):
            change = self._ask(message)
            if change is not None:
                changes.append(change)
        recorded = self.store.record_transport_states(changes, actor=self.actor)
        for change in changes:
            if change.msg_id in recorded:
                log.info("nhn.delivery_state", msg_id=change.msg_id, transport_state=change.state)
        self.announce([e for e in (self._failed_event(c) for c in changes if c.msg_id in recorded) if e])
        return recorded

    def _failed_event(self, change: TransportStateChange) -> StatusEvent | None:
        message = self.store.get_message(change.msg_id)
        if message is None or message.state != MessageState.FAILED or change.state != "Rejected":
            return None
        request = self.store.get_request_by_ref(message.request_ref)
        problem = Problem("transport.rejected", change.reason)
        return StatusEvent(
            MessageState.FAILED.value,
            datetime.now(UTC),
            request.request_id if request else None,
            message.msg_id,
            message.receiver_her_id,
            message.receiver_kind,
            (problem,),
        )

    def _ask(self, message: MessageRecord) -> TransportStateChange | None:
        assert message.transport_id is not None  # messages_awaiting_delivery selects these only
        try:
            statuses = self.msh.get_status(message.transport_id)
        except TransportRefused as exc:
            self.on_error(exc.kind)
            log.warning("nhn.status_refused", msg_id=message.msg_id, kind=exc.kind)
            return None
        state = _state_for(statuses, message.receiver_her_id)
        if state is None or state == message.transport_state:
            return None
        reason = _WORDS.get(state, f"NHN reports delivery state {state}")
        return TransportStateChange(message.msg_id, message.transport_state, state, reason)

    def run(self, stop: threading.Event) -> None:
        """Poll every ``interval_s`` until ``stop`` is set, in the one worker holding the lease.

        A transient fault waits one round.
        """
        run_with_lease(self.store, LEASE, self.actor, self.interval_s, self._poll_counted, stop)

    def _poll_counted(self) -> None:
        try:
            self.poll()
        except TransientError as exc:
            self.on_error(getattr(exc, "kind", type(exc).__name__))
            raise


def _state_for(statuses: list[DeliveryStatus], receiver_her_id: int) -> str | None:
    """The state for our receiver; with one receiver only, that one whatever HER-id NHN names."""
    for status in statuses:
        if status.receiver_her_id == receiver_her_id:
            return status.transport_delivery_state
    return statuses[0].transport_delivery_state if len(statuses) == 1 else None
