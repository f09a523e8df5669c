"""The receiving path: every business document on our inbox is stored first, then answered once.

:class:`ReceivingSystem` takes a batch of deliveries (MsgHead documents; AppRecs go to the
acknowledgement service, see :mod:`edi_gateway.services.inbox`) and, for each:

1. reads it (:mod:`.reading`): hardened parse, signature against the register's certificate for the
   *claimed* sender, official XSDs;
2. a document this sender sent before (same MsgId, verified) is a duplicate: its stored AppRec goes
   out if it had not yet, otherwise nothing does — one AppRec per message, ever;
3. assesses it (:mod:`.assessment`: addressed to a HER-id we serve, a valid patient id …) and signs
   the AppRec (HITS 1168: OK, OK with errors, Avvist with kodeverk 8221 codes);
4. stores the verified document *with* its AppRec in one transaction (``received_messages``);
   a document that cannot be trusted or read is parked for an operator instead, never stored as
   business data, and still answered (Avvist) to whoever it claims to come from;
5. sends the AppRecs, records which went out, and acks; an AppRec the transport could not take
   requeues its document, whose redelivery sends the *stored* AppRec;
6. hands every accepted document to local systems on ``edi.inbound`` (:mod:`.events`) and raises an
   alert for every refused one.

What a crash or a failed publish leaves undone (an AppRec not yet out, an event not yet confirmed)
:meth:`ReceivingSystem.follow_up` finishes later; one worker runs it (a lease).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from edi_gateway.domain.events import alert_json
from edi_gateway.domain.identifiers import mask_person_id
from edi_gateway.errors import XmlRejected
from edi_gateway.logging import get_logger
from edi_gateway.messaging.base import Accepted, AppRecAnswer, Deferred, EdiTransport, Refused, SendResult
from edi_gateway.messaging.base import Envelope as Document
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.services.announce import alert_outgoing
from edi_gateway.services.receiver.assessment import (
    ReceiverBehaviour,
    Verdict,
    assess_message,
    is_uuid_like,
    rejected,
)
from edi_gateway.services.receiver.events import inbound_outgoing
from edi_gateway.services.receiver.reading import (
    Envelope,
    Reading,
    compose_apprec,
    read_message,
    with_transport,
)
from edi_gateway.store import Store
from edi_gateway.store.received import NewReceived, ReceivedRecord
from edi_gateway.store.records import NewParked, ParkedKind
from edi_gateway.transport.consumer import Delivery, Disposition
from edi_gateway.transport.names import Names
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from edi_gateway.xml.apprec import AppRecSpec, apprec_error, build_apprec
from edi_gateway.xml.msghead import MsgHeadSummary
from edi_gateway.xml.schemas import validate_apprec
from edi_gateway.xml.signing import Signer

log = get_logger(__name__)

FOLLOW_UP_GRACE_S: Final = 60.0
"""An AppRec or event still not out this long after its document was stored is sent by the follow-up
(the batch that stored it has failed or died; sooner, it may still be on its way)."""
BEHOVSKARTLEGGING_TEMA: Final = "Pakkeforløp hjem"
"""How a behovskartlegging's Tema begins: such a document opens or continues a pathway."""


@dataclass(frozen=True, slots=True)
class ReceivingParty:
    """The virksomhet that receives, the registers it checks against and the key it signs AppRecs with."""

    virksomhet: Virksomhet
    registers: Registers
    signer: Signer


@dataclass(frozen=True, slots=True)
class _Incoming:
    """One delivery read: its facts, and the key it is stored under when verified."""

    delivery: Delivery
    reading: Reading
    envelope: Envelope

    @property
    def key(self) -> tuple[int, str] | None:
        # Only verified documents have a key: a forged copy must never pre-empt the genuine one.
        e = self.envelope
        if not self.reading.verified or e.sender_her_id is None or not e.msg_id:
            return None
        return e.sender_her_id, e.msg_id


@dataclass
class _Plan:
    """What a batch does: AppRecs to send (with the stored row each belongs to), rows, parked, alerts."""

    answers: list[tuple[int, AppRecAnswer, int | None]] = field(default_factory=list)
    new: list[tuple[int, NewReceived, AppRecAnswer]] = field(default_factory=list)
    parked: list[NewParked] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReceivingSystem:
    """Receives documents for one virksomhet, stores each, answers each once, announces the accepted.

    Attributes:
        party: who receives (the virksomhet, the registers, the signing key).
        store: where documents and their AppRecs are kept.
        transport: how AppRecs go back (AMQP queues or NHN's message service).
        publisher: for ``edi.inbound`` events and alerts (``edi.events``).
        names: queue and exchange names.
        test_mode: accept synthetic person numbers.
        opens_pathways: a kommune: a received behovskartlegging is marked for the pathway worklist.
        behaviour: simulated misbehaviour, for demos and tests only (the default answers honestly).
        confirm_timeout_s: longest wait for the broker's confirms.
        on_stored: called after a batch stored documents marked for the worklist (applies them).
    """

    party: ReceivingParty
    store: Store
    transport: EdiTransport
    publisher: ConfirmingPublisher
    names: Names
    test_mode: bool
    opens_pathways: bool = False
    behaviour: ReceiverBehaviour = field(default_factory=ReceiverBehaviour)
    confirm_timeout_s: float = 30.0
    on_stored: Callable[[], None] | None = None
    _sequence: int = field(default=0, init=False)

    def handle_batch(self, batch: Sequence[Delivery]) -> list[Disposition]:
        """Store, answer and announce every delivery of the batch; one disposition each, in order."""
        now = datetime.now(UTC)
        incoming = [self._read(d) for d in batch]
        known = self.store.received_by_keys([i.key for i in incoming if i.key is not None])
        plan = _Plan()
        seen: set[tuple[int, str]] = set()
        for index, item in enumerate(incoming):
            self._plan_one(index, item, known, seen, now, plan)
        self.store.park_documents(plan.parked)
        stored = self.store.add_received([n for _, n, _ in plan.new])
        records: list[ReceivedRecord] = []
        for (index, _new, answer), record in zip(plan.new, stored, strict=True):
            if record is None:
                log.info("receiver.duplicate_raced", **_fields(incoming[index].envelope))
                continue
            records.append(record)
            if not self._delayed:
                plan.answers.append((index, answer, record.id))
        dispositions = self._send(plan.answers, len(batch))
        self._announce(records, plan.alerts)
        if self.on_stored is not None and any(r.pathway_state == "pending" for r in records):
            self.on_stored()
        return dispositions

    def follow_up(self, now: datetime) -> int:
        """Send the AppRecs and events a batch left undone (or held back by ``delay_s``); return how many.

        Run by one worker at a time (a lease): documents stored more than ``FOLLOW_UP_GRACE_S`` ago
        whose AppRec has not gone out, and accepted documents whose ``edi.inbound`` event the
        broker has not confirmed.
        """
        wait = self.behaviour.delay_s if self._delayed else FOLLOW_UP_GRACE_S
        unsent = self.store.unsent_apprecs(now - timedelta(seconds=wait))
        answers = [(i, self._stored_answer(r), r.id) for i, r in enumerate(unsent)]
        self._send(answers, len(unsent))
        unannounced = self.store.unannounced(now - timedelta(seconds=FOLLOW_UP_GRACE_S))
        self._announce(unannounced, [])
        return len(unsent) + len(unannounced)

    # -- one delivery ----------------------------------------------------------------------------

    def _read(self, delivery: Delivery) -> _Incoming:
        reading = read_message(delivery.body, self.party.registers.address)
        return _Incoming(
            delivery, reading, with_transport(reading.envelope, delivery.message_id, delivery.headers)
        )

    def _plan_one(
        self,
        index: int,
        item: _Incoming,
        known: dict[tuple[int, str], ReceivedRecord],
        seen: set[tuple[int, str]],
        now: datetime,
        plan: _Plan,
    ) -> None:
        key, logged = item.key, _fields(item.envelope)
        if key is not None and (key in seen or key in known):
            record = known.get(key)
            if record is not None and record.apprec_sent_at is None and not self._delayed:
                log.info("receiver.duplicate_answered_again", apprec_id=record.apprec_id, **logged)
                plan.answers.append((index, self._stored_answer(record), record.id))
            else:
                log.info("receiver.duplicate_ignored", **logged)
            return
        if self.behaviour.silent:
            log.info("receiver.withheld", **logged)
            return
        verdict = self._verdict(item.reading)
        signed = self._signed_answer(item, verdict, now)
        if key is None:
            self._refuse_untrusted(index, item, verdict, signed, now, plan)
            return
        seen.add(key)
        if signed is None:
            return
        spec, answer = signed
        plan.new.append((index, self._new_received(item, spec, answer, now), answer))
        if int(spec.status) == 2:
            codes = ",".join(e.code for e in spec.errors)
            reason = f"a message was refused with AppRec Avvist ({codes})"
            plan.alerts.append(alert_json("inbound.rejected", reason, now, **_fields(item.envelope)))

    def _refuse_untrusted(
        self,
        index: int,
        item: _Incoming,
        verdict: Verdict,
        signed: tuple[AppRecSpec, AppRecAnswer] | None,
        now: datetime,
        plan: _Plan,
    ) -> None:
        """Park a document that cannot be trusted or read, alert, and answer Avvist if anyone can be."""
        codes = [e.code for e in verdict.errors]
        reason = f"an inbound message could not be trusted or read ({', '.join(codes)})"
        log.warning("receiver.untrusted", codes=codes, **_fields(item.envelope))
        envelope = item.envelope
        plan.parked.append(
            NewParked(
                kind=ParkedKind.MESSAGE,
                code=f"message.{codes[0] if codes else 'X99'}",
                reason=reason,
                received_at=now,
                raw=item.delivery.body,
                amqp_message_id=item.delivery.message_id,
                msg_id=envelope.msg_id,
                details={"codes": codes, "sender_her_id": envelope.sender_her_id},
            )
        )
        plan.alerts.append(alert_json("inbound.untrusted", reason, now, **_fields(envelope)))
        if signed is not None:
            plan.answers.append((index, signed[1], None))

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

    def _signed_answer(
        self, item: _Incoming, verdict: Verdict, now: datetime
    ) -> tuple[AppRecSpec, AppRecAnswer] | None:
        spec = compose_apprec(
            item.envelope,
            verdict,
            self.party.virksomhet,
            apprec_id=str(uuid.uuid4()),
            now=now,
            recipient_name=self._name_of(item.envelope.sender_her_id),
        )
        if spec is None:
            log.warning("receiver.unanswerable", **_fields(item.envelope))
            return None
        try:
            root = build_apprec(spec)
            validate_apprec(root)  # our own output is checked like everyone else's
            body = self.party.signer.sign(root)
        except (XmlRejected, ValueError) as exc:
            log.error("receiver.apprec_invalid", error=type(exc).__name__, **_fields(item.envelope))
            return None
        answering = item.delivery.inbox_her_id or self.party.virksomhet.her_id
        envelope = _apprec_document(
            answering, spec.id, spec.original_msg_id, spec.receiver.inst.id, body, self.names
        )
        errors = tuple((e.code, e.text) for e in spec.errors)
        return spec, AppRecAnswer(envelope, item.delivery.transport_id, int(spec.status), errors)

    def _new_received(
        self, item: _Incoming, spec: AppRecSpec, answer: AppRecAnswer, now: datetime
    ) -> NewReceived:
        summary = item.reading.summary
        envelope = item.envelope
        assert envelope.sender_her_id is not None and envelope.msg_id is not None  # it has a key
        patient_id = summary.patient_id if summary is not None else None
        accepted = int(spec.status) != 2
        return NewReceived(
            msg_id=envelope.msg_id,
            sender_her_id=envelope.sender_her_id,
            receiver_her_id=self.party.virksomhet.her_id,
            addressed_her_id=envelope.receiver_person_her_id or envelope.receiver_service_her_id,
            msg_type=(envelope.msg_type or "")[:64],
            conversation_ref=summary.conversation_ref if summary is not None else None,
            received_at=now,
            body=item.delivery.body,
            patient_ref=self._patient_ref(patient_id),
            patient_masked=mask_person_id(patient_id) if patient_id else None,
            apprec_id=spec.id,
            apprec_status=int(spec.status),
            apprec_errors=[{"code": e.code, "text": e.text} for e in spec.errors],
            apprec_body=answer.envelope.body,
            pathway_state="pending" if accepted and self.opens_pathways and _is_assessment(summary) else None,
            thread_msg_id=self._our_message(
                summary.conversation_ref if summary is not None else None, envelope.sender_her_id
            ),
            transport_id=item.delivery.transport_id,
        )

    def _patient_ref(self, patient_id: str | None) -> str | None:
        from edi_gateway.services.access import patient_ref_for

        return patient_ref_for(self.store, patient_id) if patient_id else None

    def _our_message(self, conversation_ref: str | None, sender_her_id: int) -> str | None:
        """The message of ours a reply answers (its ConversationRef), if we sent it to this sender.

        A verified sender may only answer what was sent to it: a ConversationRef to a message we
        sent someone else puts the reply on no thread.
        """
        if conversation_ref is None or not is_uuid_like(conversation_ref):
            return None
        ours = self.store.get_message(conversation_ref)
        if ours is None or ours.receiver_org_her_id != sender_her_id:
            return None
        return conversation_ref

    def _name_of(self, her_id: int | None) -> str:
        found = self.party.registers.address.virksomhet(her_id) if her_id is not None else None
        return found.organisation.name if found is not None else ""

    def _stored_answer(self, record: ReceivedRecord) -> AppRecAnswer:
        envelope = _apprec_document(
            record.receiver_her_id,
            record.apprec_id,
            record.msg_id,
            str(record.sender_her_id),
            record.apprec_body,
            self.names,
        )
        errors = tuple((e["code"], e["text"]) for e in record.apprec_errors)
        return AppRecAnswer(envelope, record.transport_id, record.apprec_status, errors)

    @property
    def _delayed(self) -> bool:
        return self.behaviour.delay_s > 0

    # -- sending ---------------------------------------------------------------------------------

    def _send(self, answers: Sequence[tuple[int, AppRecAnswer, int | None]], size: int) -> list[Disposition]:
        """Send the AppRecs; ACK everything but a delivery whose AppRec the transport could not take."""
        dispositions = [Disposition.ACK] * size
        copies = 2 if self.behaviour.duplicate_apprec else 1
        flat = [answer for _, answer, _ in answers for _ in range(copies)]
        results = iter(self.transport.send_apprecs(flat) if flat else [])
        sent: list[int] = []
        for index, answer, received_id in answers:
            outcomes = [next(results) for _ in range(copies)]
            result = next((r for r in outcomes if not isinstance(r, Accepted)), outcomes[0])
            if isinstance(result, Accepted):
                log.info("receiver.apprec_sent", apprec_id=answer.envelope.msg_id, status=answer.status)
                if received_id is not None:
                    sent.append(received_id)
            elif not _settled(result, answer.envelope.msg_id):
                dispositions[index] = Disposition.REQUEUE
        self.store.mark_apprecs_sent(sent)
        return dispositions

    def _announce(self, records: Sequence[ReceivedRecord], alerts: list[dict[str, Any]]) -> None:
        """Publish the ``edi.inbound`` events of accepted documents and the alerts; record the confirmed."""
        accepted = [r for r in records if r.apprec_status != 2]
        outgoing: list[Outgoing] = [inbound_outgoing(self.names, r) for r in accepted]
        outgoing += [alert_outgoing(self.names, a) for a in alerts]
        if not outgoing:
            return
        outcomes = self.publisher.publish_many(outgoing, timeout=self.confirm_timeout_s)
        confirmed = [r.id for r, error in zip(accepted, outcomes, strict=False) if error is None]
        self.store.mark_announced(confirmed)
        if len(confirmed) < len(accepted):
            log.warning("receiver.announce_failed", unconfirmed=len(accepted) - len(confirmed))


def _settled(result: SendResult, apprec_id: str) -> bool:
    """Whether a send outcome is final: refused (retrying cannot help) is; deferred is not."""
    if isinstance(result, Refused):
        log.error("receiver.apprec_refused", apprec_id=apprec_id)
        return True
    if isinstance(result, Deferred):
        log.warning("receiver.apprec_not_confirmed", apprec_id=apprec_id)
    return isinstance(result, Accepted)


def _is_assessment(summary: MsgHeadSummary | None) -> bool:
    """Whether a document may be a behovskartlegging (the pathway worklist reads its text to be sure)."""
    return summary is not None and summary.msg_type == "DIALOG_HELSEFAGLIG"


def _apprec_document(
    sender_her_id: int, apprec_id: str, original_msg_id: str, recipient_her_id: str, body: bytes, names: Names
) -> Document:
    recipient = int(recipient_her_id) if recipient_her_id.isdigit() else 0
    headers: dict[str, str | int] = {"msg_type": "APPREC", "apprec_id": apprec_id}
    if is_uuid_like(original_msg_id):
        headers["original_msg_id"] = original_msg_id
    if recipient:
        headers["receiver_her_id"] = recipient
    return Document(
        msg_id=apprec_id,
        correlation_id=original_msg_id or None,
        sender_her_id=sender_her_id,
        receiver_her_id=recipient,
        queue=names.inbox(recipient),
        msg_type="APPREC",
        body=body,
        labels=headers,
    )


def _loggable_id(value: str | None) -> str | None:
    # A MsgId that is not a UUID is free text from outside and stays out of the logs.
    if value is None or is_uuid_like(value):
        return value
    return "<not a UUID>"


def _fields(envelope: Envelope) -> dict[str, str | int | None]:
    """The ids a log line or an alert may carry about a document: its MsgId (a UUID) and its sender."""
    return {"msg_id": _loggable_id(envelope.msg_id), "sender_her_id": envelope.sender_her_id}
