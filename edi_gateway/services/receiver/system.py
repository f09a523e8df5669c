"""The receiving system itself: reads the virksomhet's inbox, answers each MsgHead, sends the AppRecs.

:class:`ReceivingSystem` reads and assesses every delivery of a batch (:mod:`.reading`,
:mod:`.assessment`), signs the AppRec with the virksomhet's own key and sends it through the transport
(on ``amqp`` to the original sender's inbox queue; on ``nhn`` with the message service's AppRec
operation for the delivered message), or journals it to be sent late (``amqp`` only);
:func:`run_receiver` wires it to the transport the settings choose and runs the dispatcher thread for
late answers. Acknowledgement and late answers follow the rules in the
package docstring.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from edi_gateway.errors import TransientError, XmlRejected
from edi_gateway.logging import get_logger
from edi_gateway.messaging.base import (
    Accepted,
    AppRecAnswer,
    Deferred,
    EdiTransport,
    Refused,
    SendResult,
)
from edi_gateway.messaging.base import Envelope as Document
from edi_gateway.messaging.factory import open_messaging
from edi_gateway.private_files import private_dir
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.services.context import ConfigurationError, ensure_gateway_pki
from edi_gateway.services.receiver.assessment import (
    ReceiverBehaviour,
    Verdict,
    assess_message,
    is_uuid_like,
    rejected,
)
from edi_gateway.services.receiver.reading import (
    Envelope,
    Reading,
    compose_apprec,
    read_message,
    with_transport,
)
from edi_gateway.settings import Settings
from edi_gateway.store.receiver_journal import PendingAppRec, ReceiverJournal
from edi_gateway.transport.consumer import Delivery, Disposition
from edi_gateway.transport.names import Names
from edi_gateway.xml.apprec import AppRecSpec, apprec_error, build_apprec
from edi_gateway.xml.schemas import validate_apprec, warm_up
from edi_gateway.xml.signing import Signer

log = get_logger(__name__)

JOURNAL_NAME: Final = "journal.sqlite3"
XML: Final = "application/xml"
DISPATCH_POLL_S: Final = 0.2


# --- the receiving system -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivingParty:
    """The virksomhet the receiver plays, the registers it checks against and its own signing key."""

    virksomhet: Virksomhet
    registers: Registers
    signer: Signer


@dataclass(frozen=True, slots=True)
class _Answer:
    """A signed AppRec for one delivery, and the MsgId it records as answered (verified ones only)."""

    spec: AppRecSpec
    body: bytes
    queue: str
    answered_key: tuple[int, str] | None
    answering_her_id: int
    in_reply_to: str | None = None

    def answer(self) -> AppRecAnswer:
        envelope = _apprec_envelope(
            self.answering_her_id,
            self.spec.id,
            self.spec.original_msg_id,
            self.spec.receiver.inst.id,
            self.queue,
            self.body,
        )
        errors = tuple((e.code, e.text) for e in self.spec.errors)
        return AppRecAnswer(envelope, self.in_reply_to, int(self.spec.status), errors)


@dataclass
class ReceivingSystem:
    """Handles batches from the virksomhet's queue and sends the AppRecs; one per ``run_receiver``."""

    party: ReceivingParty
    behaviour: ReceiverBehaviour
    journal: ReceiverJournal
    transport: EdiTransport
    names: Names
    test_mode: bool
    confirm_timeout_s: float
    _sequence: int = field(default=0, init=False)

    def handle_batch(self, batch: Sequence[Delivery]) -> list[Disposition]:
        """Answer every delivery of the batch; return one disposition per delivery, in order."""
        seen: set[tuple[int, str]] = set()
        answers = [self._answer(delivery, seen) for delivery in batch]
        if self.behaviour.delay_s > 0:
            to_schedule = [a for a in answers if a is not None]
            if to_schedule:
                self._schedule(to_schedule)
            return [Disposition.ACK] * len(batch)
        return self._send_now(answers)

    def dispatch_due(self, stop: threading.Event) -> None:
        """Publish journaled AppRecs as they fall due, until ``stop`` is set (the dispatcher thread)."""
        while not stop.wait(DISPATCH_POLL_S):
            try:
                self.send_due(time.time())
            except TransientError as exc:
                log.warning("receiver.dispatch_failed", error=type(exc).__name__)

    def send_due(self, now: float) -> int:
        """Publish the AppRecs due at ``now``; return how many went out (or were dropped as unroutable)."""
        due = self.journal.due(now)
        if not due:
            return 0
        our = self.party.virksomhet.her_id
        outcomes = self._publish([(_answer_of(p, our), p.copies) for p in due])
        done = [p.apprec_id for p, error in zip(due, outcomes, strict=True) if _settled(error, p.apprec_id)]
        self.journal.remove(done)
        return len(done)

    # -- one delivery ----------------------------------------------------------------------------

    def _answer(self, delivery: Delivery, seen: set[tuple[int, str]]) -> _Answer | None:
        reading = read_message(delivery.body, self.party.registers.address)
        envelope = with_transport(reading.envelope, delivery.message_id, delivery.headers)
        key = _answered_key(reading, envelope)
        logged = _log_fields(envelope)
        if key is not None and (key in seen or self.journal.is_answered(*key)):
            log.info("receiver.duplicate_ignored", **logged)
            return None
        verdict = self._verdict(reading)
        codes = [e.code for e in verdict.errors]
        if self.behaviour.silent:
            log.info("receiver.withheld", status=int(verdict.status), codes=codes, **logged)
            return None
        spec = compose_apprec(
            envelope,
            verdict,
            self.party.virksomhet,
            apprec_id=str(uuid.uuid4()),
            now=datetime.now().astimezone(),
            recipient_name=self._name_of(envelope.sender_her_id),
        )
        if spec is None:
            log.warning("receiver.unanswerable", codes=codes, **logged)
            return None
        try:
            body = self._signed(spec)
        except (XmlRejected, ValueError) as exc:
            # A fault of ours; requeueing would only repeat it, so the message stays unanswered.
            log.error("receiver.apprec_invalid", error=type(exc).__name__, **logged)
            return None
        if key is not None:
            seen.add(key)
        answering = delivery.inbox_her_id or self.party.virksomhet.her_id
        queue = self.names.inbox(int(spec.receiver.inst.id))
        return _Answer(spec, body, queue, key, answering, delivery.transport_id)

    def _verdict(self, reading: Reading) -> Verdict:
        if reading.failure is not None or reading.summary is None:
            return rejected(reading.failure or apprec_error("X99"))
        self._sequence += 1
        return assess_message(
            reading.summary,
            self.party.virksomhet,
            test_mode=self.test_mode,
            behaviour=self.behaviour,
            sequence=self._sequence,
        )

    def _signed(self, spec: AppRecSpec) -> bytes:
        root = build_apprec(spec)
        # Our own output is checked like everyone else's: a receiver that sends invalid AppRecs is
        # no test of the gateway.
        validate_apprec(root)
        return self.party.signer.sign(root)

    def _name_of(self, her_id: int | None) -> str:
        found = self.party.registers.address.virksomhet(her_id) if her_id is not None else None
        return found.organisation.name if found is not None else ""

    # -- sending ---------------------------------------------------------------------------------

    def _send_now(self, answers: list[_Answer | None]) -> list[Disposition]:
        to_send = [a for a in answers if a is not None]
        outcomes = iter(self._publish([(a.answer(), self._copies) for a in to_send]))
        dispositions: list[Disposition] = []
        answered: list[tuple[int, str, str]] = []
        for answer in answers:
            if answer is None:
                dispositions.append(Disposition.ACK)
                continue
            result = next(outcomes)
            if isinstance(result, Accepted):
                log.info("receiver.apprec_sent", **_spec_fields(answer.spec))
                if answer.answered_key is not None:
                    answered.append((*answer.answered_key, answer.spec.id))
            settled = _settled(result, answer.spec.id)
            dispositions.append(Disposition.ACK if settled else Disposition.REQUEUE)
        self.journal.record_answered(answered)
        return dispositions

    def _schedule(self, answers: list[_Answer]) -> None:
        due_at = time.time() + self.behaviour.delay_s
        pending = [
            PendingAppRec(
                a.spec.id,
                due_at,
                a.queue,
                a.spec.original_msg_id,
                int(a.spec.receiver.inst.id),
                a.body,
                self._copies,
            )
            for a in answers
        ]
        answered = [(*a.answered_key, a.spec.id) for a in answers if a.answered_key is not None]
        self.journal.schedule(pending, answered)
        for answer in answers:
            log.info("receiver.apprec_scheduled", delay_s=self.behaviour.delay_s, **_spec_fields(answer.spec))

    @property
    def _copies(self) -> int:
        return 2 if self.behaviour.duplicate_apprec else 1

    def _publish(self, answers: Sequence[tuple[AppRecAnswer, int]]) -> list[SendResult]:
        """Send each AppRec ``copies`` times; one outcome per AppRec: its first failure, or accepted."""
        flat = [answer for answer, copies in answers for _ in range(copies)]
        if not flat:
            return []
        results = iter(self.transport.send_apprecs(flat))
        outcomes: list[SendResult] = []
        for _answer, copies in answers:
            mine = [next(results) for _ in range(copies)]
            failures = [r for r in mine if not isinstance(r, Accepted)]
            outcomes.append(failures[0] if failures else mine[0])
        return outcomes


def _answered_key(reading: Reading, envelope: Envelope) -> tuple[int, str] | None:
    """Only verified messages are recorded: a forged copy must not stop the genuine one being answered."""
    if not reading.verified or envelope.sender_her_id is None or not envelope.msg_id:
        return None
    return envelope.sender_her_id, envelope.msg_id


def _settled(result: SendResult, apprec_id: str) -> bool:
    """Whether a send outcome is final: accepted, or refused (retrying cannot help)."""
    if isinstance(result, Refused):
        log.error("receiver.apprec_refused", apprec_id=apprec_id)
        return True
    if isinstance(result, Deferred):
        log.warning("receiver.apprec_not_confirmed", apprec_id=apprec_id)
    return isinstance(result, Accepted)


def _answer_of(pending: PendingAppRec, sender_her_id: int) -> AppRecAnswer:
    """A journaled AppRec (AMQP only: late answers are refused on other transports) as an answer."""
    envelope = _apprec_envelope(
        sender_her_id,
        pending.apprec_id,
        pending.original_msg_id,
        str(pending.recipient_her_id),
        pending.queue,
        pending.body,
    )
    return AppRecAnswer(envelope, None, 0)


def _apprec_envelope(
    sender_her_id: int, apprec_id: str, original_msg_id: str, recipient_her_id: str, queue: str, body: bytes
) -> Document:
    return Document(
        msg_id=apprec_id,
        correlation_id=original_msg_id or None,
        sender_her_id=sender_her_id,
        receiver_her_id=int(recipient_her_id) if recipient_her_id.isdigit() else 0,
        queue=queue,
        msg_type="APPREC",
        body=body,
        labels=_headers(apprec_id, original_msg_id, recipient_her_id),
    )


def _headers(apprec_id: str, original_msg_id: str, recipient_her_id: str) -> dict[str, str | int]:
    headers: dict[str, str | int] = {"msg_type": "APPREC", "apprec_id": apprec_id}
    if is_uuid_like(original_msg_id):
        headers["original_msg_id"] = original_msg_id
    if recipient_her_id.isdigit():
        headers["receiver_her_id"] = int(recipient_her_id)
    return headers


def _loggable_id(value: str | None) -> str | None:
    # A MsgId that is not a UUID is free text from outside and stays out of the logs.
    if value is None or is_uuid_like(value):
        return value
    return "<not a UUID>"


def _log_fields(envelope: Envelope) -> dict[str, object]:
    return {"msg_id": _loggable_id(envelope.msg_id), "sender_her_id": envelope.sender_her_id}


def _spec_fields(spec: AppRecSpec) -> dict[str, object]:
    return {
        "apprec_id": spec.id,
        "msg_id": _loggable_id(spec.original_msg_id),
        "sender_her_id": spec.receiver.inst.id,
        "status": int(spec.status),
        "codes": [e.code for e in spec.errors],
    }


# --- entry point --------------------------------------------------------------------------------


def receiver_state_dir(settings: Settings, her_id: int) -> Path:
    """Return the folder for the receiver's journal, ``HOME/receivers/<her_id>``, created owner-only."""
    return private_dir(private_dir(settings.home / "receivers") / str(her_id))


def load_receiving_party(settings: Settings, her_id: int) -> ReceivingParty:
    """Load the registers (with the test PKI's certificates) and the virksomhet's own signing key.

    Raises:
        ConfigurationError: ``her_id`` is not a virksomhet in the Adresseregister, or is our own.
        RegisterUnavailable: the register fixtures cannot be read.
    """
    if her_id == settings.our_her_id:
        raise ConfigurationError(f"HER-id {her_id} is the gateway's own virksomhet, not a receiver")
    plain = load_fixture_registers(settings.effective_registers_dir)
    pki = ensure_gateway_pki(settings, plain)
    registers = load_fixture_registers(settings.effective_registers_dir, cert_dir=pki.directory)
    virksomhet = registers.address.virksomhet(her_id)
    if virksomhet is None:
        raise ConfigurationError(f"HER-id {her_id} is not a virksomhet in the Adresseregister")
    signer = Signer.from_files(pki.key_path(her_id), pki.cert_path(her_id))
    return ReceivingParty(virksomhet, registers, signer)


def run_receiver(
    settings: Settings,
    her_id: int,
    behaviour: ReceiverBehaviour,
    stop: threading.Event,
    ready: threading.Event | None = None,
) -> None:
    """Play the receiving system of the virksomhet ``her_id`` until ``stop`` is set.

    Args:
        settings: the settings in force (AMQP URL, queue prefix, HOME, test mode).
        her_id: the virksomhet's HER-id; its queue is the one the Adresseregister names.
        behaviour: simulated misbehaviour; ``ReceiverBehaviour()`` answers honestly.
        stop: set it (e.g. from a SIGTERM handler) to finish the batch in hand and stop.
        ready: set once the receiver is about to consume (for the demo and tests).

    Raises:
        ConfigurationError: ``her_id`` is not a receiving virksomhet in the registers.
    """
    if behaviour.delay_s > 0 and settings.transport != "amqp":
        raise ConfigurationError("late AppRecs (--delay) are for the amqp transport only")
    party = load_receiving_party(settings, her_id)
    warm_up()
    journal = ReceiverJournal(receiver_state_dir(settings, her_id) / JOURNAL_NAME)
    names = Names(settings.queue_prefix)
    queue = names.prefixed(party.virksomhet.queue)
    with open_messaging(
        settings,
        name=f"edi-gateway receiver {her_id}",
        inbox_queue=queue,
        inbox_her_ids=party.virksomhet.all_her_ids,
    ) as messaging:
        system = ReceivingSystem(
            party,
            behaviour,
            journal,
            messaging.transport,
            names,
            settings.test_mode,
            settings.confirm_timeout_s,
        )
        done = threading.Event()
        dispatcher = threading.Thread(
            target=system.dispatch_due, args=(done,), name=f"receiver-{her_id}-dispatch", daemon=True
        )
        dispatcher.start()
        log.info(
            "receiver.started",
            her_id=her_id,
            transport=messaging.transport.name,
            queue=queue,
            behaviour=dataclasses.asdict(behaviour),
        )
        if ready is not None:
            ready.set()
        try:
            messaging.inbox.run(system.handle_batch, stop)
        finally:
            done.set()
            dispatcher.join()
    log.info("receiver.stopped", her_id=her_id)
