"""The kommune's note to the fastlege: "Oppfølging - Pakkeforløp hjem for pasienter med kreft".

When a kommune nurse records a samhandlingspunkt done with a note, the pathway store leaves a
``pathway_notes`` row ``pending``. Every kommune worker runs a ``NoteSender`` that, each
``interval_s``, claims pending notes (one guarded UPDATE each: one worker per note) and for each:

1. reads the pathway's source message (the signed MsgHead as received: it names the patient) and the
   service of ours it was addressed to;
2. asks the Fastlegeregister for the patient's fastlege and legekontor;
3. builds a MsgHead v1.2 + Dialogmelding v1.1 (``services.note_building``): Type and TemaKodet from
   the routing rules, ``Tema`` :data:`~edi_gateway.domain.note_text.NOTE_TEMA`, the text from
   ``domain.note_text``; sender our virksomhet with the service nested, receiver the legekontor with
   the GP as ``HealthcareProfessional``; validates it against the XSDs and signs it;
4. stores it as every hospital message is stored (``save_outcomes``: one ``requests`` row of content
   type :data:`~edi_gateway.domain.note_text.NOTE_CONTENT_TYPE` holding the note as JSON, one
   ``messages`` row, their events), under a request_id derived from the note id, so a retry finds
   the stored message and re-sends the same bytes instead of minting a second one;
5. delivers it on the worker's transport (``sent`` on the transport's acceptance) and announces the
   states on ``edi.events``. The fastlege's AppRec, the overdue sweep and operator resends then treat
   it as any other message;
6. finishes the note ``sent`` with its msg_id, or ``failed`` with a plain outcome and an alert
   ``alert.pathway.note_failed`` (no fastlege in the register, no source message, a refusal ...).

A transient fault (database, broker, register) gives the note back for the next round. A claim older
than ``stale_after_s`` (its worker stopped) is finished ``failed``, naming any message stored for it,
and is never sent again automatically.

Wiring (the kommune worker; ``services/worker.py`` is not changed here)::

    notes = NoteSender(gateway, publisher, messaging.transport, actor,
                       interval_s=settings.pathway_note_interval_s, stale_after_s=NOTE_STALE_AFTER_S)
    loops.append(("pathway_notes", lambda: notes.run(stop)))
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from edi_gateway.domain.events import StatusEvent, alert_json
from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import EdiGatewayError, TransientError
from edi_gateway.logging import get_logger
from edi_gateway.messaging.amqp import AmqpTransport
from edi_gateway.messaging.base import EdiTransport
from edi_gateway.messaging.delivering import delivery_transition, envelope_of
from edi_gateway.services.announce import alert_outgoing, status_outgoing
from edi_gateway.services.context import Gateway
from edi_gateway.services.note_building import NoteBuilder, NoteFailed
from edi_gateway.store import DuplicateRequest, MessageRecord, NewMessage
from edi_gateway.store.notes import NoteRecord, NoteState
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing

log = get_logger(__name__)

CLAIM_LIMIT: Final = 10
NOTE_STALE_AFTER_S: Final = 300.0
"""A claim held this long belongs to a worker that stopped: the note is failed, never sent again."""
NOTE_FAILED_ALERT: Final = "pathway.note_failed"
_REQUEST_ID_NAMESPACE: Final = uuid.UUID("5d0c6a52-7f0e-4c1b-9a59-2b4f3b8e6c11")


def note_request_id(our_her_id: int, note_id: int) -> str:
    """The request_id of a note's request: the same on every attempt, so a retry finds what it stored."""
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{our_her_id}/pathway-note/{note_id}"))


class NoteDeferred(TransientError):
    """The transport could not take a note's message now; the note waits for the next round."""


@dataclass(frozen=True, slots=True)
class _Settled:
    """How one note ends."""

    state: NoteState
    outcome: str
    request_ref: str | None = None
    msg_id: str | None = None


class NoteSender:
    """Claims pending notes to the fastlege and sends each once, with the worker's transport.

    Built once per worker: ``NoteSender(gateway, publisher, transport, actor, interval_s=…,
    stale_after_s=…)``; ``run(stop)`` is the worker's loop, ``send_pending(now)`` one round of it.
    """

    def __init__(
        self,
        gateway: Gateway,
        publisher: ConfirmingPublisher,
        transport: EdiTransport | None = None,
        actor: str = "worker",
        *,
        interval_s: float,
        stale_after_s: float = NOTE_STALE_AFTER_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Send as ``actor`` (also the claim holder) through ``transport`` (default: ``publisher``'s broker).

        ``publisher`` also carries the status events and alerts; ``clock`` gives ``run`` its time.

        Raises:
            EdiGatewayError: our HER-id (``EDI_GATEWAY_OUR_HER_ID``) is not in the Adresseregister.
        """
        self._g = gateway
        self._publisher = publisher
        self._transport = transport or AmqpTransport(
            publisher, confirm_timeout_s=gateway.settings.confirm_timeout_s
        )
        self._actor = actor
        self._interval_s = interval_s
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._builder = NoteBuilder(gateway)
        self._our_her_id = self._builder.our.her_id

    # -- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Send pending notes every interval until ``stop`` is set; a database fault waits a round."""
        while not stop.wait(self._interval_s):
            try:
                while self._round(self._clock()) and not stop.is_set():
                    pass
            except TransientError as exc:
                log.warning("fastlege notes skipped a round", error=type(exc).__name__)

    def send_pending(self, now: datetime) -> int:
        """One round at ``now``: fail stale claims, then claim and send up to a claim's worth of notes.

        Returns:
            How many notes this round finished, ``sent`` or ``failed`` (stale claims included);
            notes given back after a transient fault are not counted.

        Raises:
            StoreUnavailable: the database could not be reached to claim notes.
        """
        stale, _, finished = self._send_round(now)
        return stale + finished

    def _round(self, now: datetime) -> bool:
        """One round; True when it claimed a full claim's worth and finished them all (look again)."""
        _, claimed, finished = self._send_round(now)
        return claimed == CLAIM_LIMIT and finished == claimed

    def _send_round(self, now: datetime) -> tuple[int, int, int]:
        """Return how many stale claims were failed, how many notes were claimed and how many finished."""
        stale = self._fail_stale(now)
        notes = self._g.store.claim_notes(self._actor, now=now, limit=CLAIM_LIMIT)
        return stale, len(notes), sum(self._handle(note, now) for note in notes)

    # -- one note --------------------------------------------------------------------------------

    def _handle(self, note: NoteRecord, now: datetime) -> bool:
        """Send one claimed note and finish it; False when it was given back or could not be finished."""
        started = time.perf_counter()
        try:
            settled = self._send(note, now)
        except TransientError as exc:
            log.warning("fastlege note deferred", note_id=note.id, error=type(exc).__name__)
            self._release(note)
            return False
        except EdiGatewayError as exc:  # permanent (NoteFailed ...) or unknown: an operator must look
            settled = _Settled(NoteState.FAILED, str(exc))
        except Exception as exc:  # a defect must not stop the worker's other loops, nor lose the note
            log.error(
                "fastlege note failed unexpectedly", note_id=note.id, error=type(exc).__name__, exc_info=exc
            )
            settled = _Settled(
                NoteState.FAILED, "internal error while sending the note; see the worker's log"
            )
        finished = self._finish(note, settled, now)
        log.info(
            "fastlege note",
            note_id=note.id,
            pathway_id=note.pathway_id,
            state=settled.state.value if finished else "unfinished",
            msg_id=settled.msg_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return finished

    def _send(self, note: NoteRecord, now: datetime) -> _Settled:
        request_id = note_request_id(self._our_her_id, note.id)
        existing = self._g.store.get_request(request_id)
        if existing is not None:  # an earlier attempt stored it: send the same message, never a second
            return self._resume(existing.ref, request_id, now)
        outcome = self._builder.build(note, request_id, now)
        try:
            self._g.store.save_outcomes([outcome], actor=self._actor)
        except DuplicateRequest:
            stored = self._g.store.get_request(request_id)
            if stored is None:
                raise
            return self._resume(stored.ref, request_id, now)
        (message,) = outcome.messages
        self._announce([StatusEvent(RequestState.ROUTED.value, now, request_id)])
        return self._deliver(message, outcome.request.ref, request_id, now)

    def _resume(self, request_ref: str, request_id: str, now: datetime) -> _Settled:
        messages = self._g.store.messages_for_request(request_ref)
        if not messages:
            raise NoteFailed(f"the note's request {request_id} was stored without a message")
        message = messages[0]
        if message.state is MessageState.QUEUED:
            return self._deliver(message, request_ref, request_id, now)
        return _by_state(message, request_ref)

    def _deliver(
        self, message: MessageRecord | NewMessage, request_ref: str, request_id: str, now: datetime
    ) -> _Settled:
        (result,) = self._transport.send_many([envelope_of(message, self._our_her_id, request_id)])
        change = delivery_transition(message.msg_id, result, self._transport.name)
        if change is None:
            raise NoteDeferred(
                f"the {self._transport.name} transport did not take message {message.msg_id} now"
            )
        self._g.store.transition_messages([change], actor=self._actor)
        kind = ReceiverKind.FASTLEGE.value
        self._announce(
            [
                StatusEvent(
                    change.to_state.value, now, request_id, message.msg_id, message.receiver_her_id, kind
                )
            ]
        )
        if change.to_state is MessageState.SENT:
            where = f"{message.receiver_name} (HER-id {message.receiver_her_id})"
            return _Settled(
                NoteState.SENT, f"sent to {where} as message {message.msg_id}", request_ref, message.msg_id
            )
        return _Settled(
            NoteState.FAILED,
            f"the {self._transport.name} transport refused message {message.msg_id}: {change.reason}",
            request_ref,
            message.msg_id,
        )

    # -- finishing -------------------------------------------------------------------------------

    def _finish(self, note: NoteRecord, settled: _Settled, now: datetime) -> bool:
        """Record how the note ended; False when it could not be (its claim then goes stale)."""
        try:
            finished = self._g.store.finish_note(
                note.id,
                self._actor,
                settled.state,
                settled.outcome,
                request_ref=settled.request_ref,
                msg_id=settled.msg_id,
            )
        except TransientError as exc:  # the claim stays; the stale rule finishes it, never sends it again
            log.warning("fastlege note not finished", note_id=note.id, error=type(exc).__name__)
            return False
        if finished and settled.state is NoteState.FAILED:
            self._alert(note, settled, now)
        return finished

    def _release(self, note: NoteRecord) -> None:
        try:
            self._g.store.release_note(note.id, self._actor)
        except TransientError as exc:  # the claim stays until the stale rule finishes it
            log.warning("fastlege note not given back", note_id=note.id, error=type(exc).__name__)

    def _fail_stale(self, now: datetime) -> int:
        """Finish ``failed`` every note whose claim outlived the stale limit; return how many."""
        cutoff = now - timedelta(seconds=self._stale_after_s)
        count = 0
        for note in self._g.store.stale_notes(now=now, stale_after_s=self._stale_after_s):
            settled = self._stale(note)
            holder = note.claimed_by or ""
            if self._g.store.finish_note(
                note.id,
                holder,
                NoteState.FAILED,
                settled.outcome,
                request_ref=settled.request_ref,
                msg_id=settled.msg_id,
                claimed_before=cutoff,
            ):
                log.warning(
                    "stale fastlege note failed", note_id=note.id, holder=holder, msg_id=settled.msg_id
                )
                self._alert(note, settled, now)
                count += 1
        return count

    def _stale(self, note: NoteRecord) -> _Settled:
        stopped = f"the worker sending this note ({note.claimed_by}) stopped before it finished"
        request = self._g.store.get_request(note_request_id(self._our_her_id, note.id))
        messages = self._g.store.messages_for_request(request.ref) if request is not None else []
        if not messages:
            return _Settled(NoteState.FAILED, f"{stopped}; no message was stored for it; ask again if needed")
        m = messages[0]
        outcome = (
            f"{stopped}; its message {m.msg_id} to the fastlege is {m.state.value}: look at its history "
            "(a queued one can be resent); it is not sent again automatically"
        )
        return _Settled(NoteState.FAILED, outcome, m.request_ref, m.msg_id)

    # -- events ----------------------------------------------------------------------------------

    def _alert(self, note: NoteRecord, settled: _Settled, now: datetime) -> None:
        alert = alert_json(
            NOTE_FAILED_ALERT,
            settled.outcome,
            now,
            note_id=note.id,
            pathway_id=note.pathway_id,
            samhandlingspunkt=note.number,
            msg_id=settled.msg_id,
        )
        self._publish([alert_outgoing(self._g.names, alert)])

    def _announce(self, events: list[StatusEvent]) -> None:
        self._publish([status_outgoing(self._g.names, e) for e in events])

    def _publish(self, outgoing: list[Outgoing]) -> None:
        # The store is the record: an event the broker did not confirm is logged, not retried.
        results = self._publisher.publish_many(outgoing, timeout=self._g.settings.confirm_timeout_s)
        if any(r is not None for r in results):
            log.warning("fastlege note events not all confirmed", events=len(outgoing))


def _by_state(message: MessageRecord, request_ref: str) -> _Settled:
    """How a note ends whose message an earlier attempt already handed to the transport."""
    if message.state is MessageState.FAILED:
        outcome = f"its message {message.msg_id} to the fastlege failed: look at its history"
        return _Settled(NoteState.FAILED, outcome, request_ref, message.msg_id)
    outcome = (
        f"sent to {message.receiver_name} (HER-id {message.receiver_her_id}) as message {message.msg_id}"
    )
    return _Settled(NoteState.SENT, f"{outcome} ({message.state.value})", request_ref, message.msg_id)
