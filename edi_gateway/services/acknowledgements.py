"""The acknowledgement use case: AppRecs from our inbox in, message states and status events out.

For each batch from ``<ourHerId>_async``:

1. *read* every AppRec once with the hardened parser (one reading of every id: comments and
   processing instructions dropped, CDATA and character references merged, ids checked strictly);
   resolve its sender to exactly one registered virksomhet (``domain.acks.resolve_sender``: ids
   naming two parties are refused); check the signature against the certificate registered for that
   virksomhet (per the signature policy); schema-validate and parse the *verified* document, and
   require it to name the very sender whose certificate verified it. Anything unreadable, unknown or
   conflicting is parked with an alert, never requeued forever, and changes no message.
2. look up, in one query each, the original messages and AppRecs already stored under the same ids;
   let the pure rules (``domain.acks.decide``) judge each AppRec.
3. store everything of the batch in one transaction: AppRecs, parked documents, transitions
   (``acked``, ``acked_with_errors``, ``rejected_by_receiver``), receiver health.
4. publish status events for the transitions and alert events for parked AppRecs and for receivers
   that recover; then ack the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lxml import etree

from edi_gateway.domain.acks import (
    AckDecision,
    AckOutcome,
    KnownAppRec,
    SenderIdentity,
    SentMessage,
    apprec_fingerprint,
    decide,
    resolve_sender,
)
from edi_gateway.domain.apprec import AppRec
from edi_gateway.domain.events import StatusEvent, alert_json
from edi_gateway.domain.overdue import ReceiverHealth, on_apprec
from edi_gateway.domain.retry import RetryPolicy
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import SignatureInvalid, TransientError, XmlRejected
from edi_gateway.logging import get_logger
from edi_gateway.messaging.amqp import AmqpTransport
from edi_gateway.messaging.base import EdiTransport
from edi_gateway.registers.base import Registers
from edi_gateway.services.announce import alert_outgoing, status_outgoing
from edi_gateway.services.retrying import with_retry
from edi_gateway.settings import Settings
from edi_gateway.store import Store
from edi_gateway.store.records import (
    MessageRecord,
    NewAppRec,
    NewParked,
    ParkedKind,
    SignatureCheck,
    Transition,
)
from edi_gateway.transport.consumer import Delivery, Disposition
from edi_gateway.transport.names import Names
from edi_gateway.transport.publisher import ConfirmingPublisher
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import parse_apprec
from edi_gateway.xml.safe import UnreadableIdentifier, parse_xml
from edi_gateway.xml.schemas import validate_apprec
from edi_gateway.xml.signing import strip_signature, verify_signed

log = get_logger(__name__)

MAX_APPREC_BYTES = 1_000_000


class SignaturePolicy(StrEnum):
    """How AppRec signatures are treated (``EDI_GATEWAY_APPREC_SIGNATURE``)."""

    REQUIRED = "required"  # unsigned or badly signed AppRecs are parked
    OPTIONAL = "optional"  # verified when present (NHN channels protect AppRecs by CMS instead)
    OFF = "off"  # never checked; a present signature is removed before validation


@dataclass(frozen=True, slots=True)
class ReadAppRec:
    """An AppRec read from a delivery: the parsed business data, how its signature fared, its sender.

    ``sender`` is resolved from ``apprec`` (the verified document when there was a signature); for a
    signed AppRec it is always a virksomhet, the one whose registered certificate verified it.
    """

    apprec: AppRec
    signature: SignatureCheck
    sender: SenderIdentity


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A delivery that could not be read as an AppRec; it is parked with this code and reason."""

    code: str
    reason: str
    apprec_id: str | None = None


def read_apprec_delivery(
    data: bytes, *, policy: SignaturePolicy, registers: Registers, attested_sender: int | None = None
) -> ReadAppRec | Unreadable:
    """Read one AppRec under the signature policy; business data comes only from the verified document.

    A signed AppRec is read twice from the same parsed tree: first (signature removed, unverified)
    only to resolve the sender whose certificate must verify it, then from what the signature
    covers. Both readings go through the same code, and the verified one must name the same sender,
    whose registered certificate is the one that verified it; otherwise the AppRec is refused.

    ``attested_sender`` is the sender's HER-id as an authenticating transport (NHN's message service)
    vouches for it. Such a transport delivers AppRecs unsigned (CMS protects them in transit), so an
    unsigned one is accepted even under ``required``; signed or not, the AppRec must then name the
    virksomhet the transport authenticated.
    """
    if attested_sender is not None:
        return _attested(data, policy=policy, registers=registers, attested_sender=attested_sender)
    return _read(data, policy=policy, registers=registers)


def _attested(
    data: bytes, *, policy: SignaturePolicy, registers: Registers, attested_sender: int
) -> ReadAppRec | Unreadable:
    relaxed = SignaturePolicy.OPTIONAL if policy is SignaturePolicy.REQUIRED else policy
    result = _read(data, policy=relaxed, registers=registers)
    if isinstance(result, Unreadable):
        return result
    owner = registers.address.parent_of(attested_sender)
    if owner is None or result.sender.her_id != owner.her_id:
        reason = (
            f"the AppRec names another sender than the one the message service authenticated "
            f"(HER-id {attested_sender})"
        )
        return Unreadable("apprec.wrong_sender", reason, result.apprec.id)
    return result


def _read(data: bytes, *, policy: SignaturePolicy, registers: Registers) -> ReadAppRec | Unreadable:
    try:
        root = parse_xml(data, max_bytes=MAX_APPREC_BYTES)
    except XmlRejected as exc:
        return Unreadable("apprec.malformed", f"not well-formed or refused XML ({exc.code}): {exc}")
    signature = root.find(ns.ns(ns.XMLDSIG, "Signature"))
    try:
        if signature is None:
            if policy is SignaturePolicy.REQUIRED:
                return Unreadable(
                    "apprec.unsigned", "the AppRec carries no signature and the policy requires one"
                )
            return _unverified(root, SignatureCheck.ABSENT, registers)
        if policy is SignaturePolicy.OFF:
            return _unverified(strip_signature(root), SignatureCheck.SKIPPED, registers)
        return _verified(data, root, registers)
    except SignatureInvalid as exc:
        return Unreadable("apprec.bad_signature", f"signature check failed: {exc}")
    except UnreadableIdentifier as exc:
        return Unreadable("apprec.unreadable_id", f"an identifier of the AppRec cannot be read: {exc}")
    except XmlRejected as exc:
        return Unreadable("apprec.invalid", f"not a valid AppRec ({exc.code}): {exc}")


def _unverified(root: etree._Element, check: SignatureCheck, registers: Registers) -> ReadAppRec:
    apprec = _validated(root)
    return ReadAppRec(apprec, check, identify_sender(apprec, registers))


def _verified(data: bytes, root: etree._Element, registers: Registers) -> ReadAppRec | Unreadable:
    claimed = _validated(strip_signature(root))
    identity = identify_sender(claimed, registers)
    if identity.her_id is None:
        return Unreadable(identity.code or "apprec.unknown_sender", identity.reason or "", claimed.id)
    cert = registers.address.certificate_pem(identity.her_id)
    if cert is None:
        reason = f"no certificate is registered for the AppRec's sender, virksomhet HER-id {identity.her_id}"
        return Unreadable("apprec.bad_signature", reason, claimed.id)
    verified = verify_signed(data, cert_pem=cert)
    apprec = _validated(verified.root)
    signer = identify_sender(apprec, registers)
    if (
        signer != identity
        or signer.her_id is None
        or registers.address.certificate_pem(signer.her_id) != cert
    ):
        reason = "the signed AppRec does not name the sender whose registered certificate verified it"
        return Unreadable("apprec.bad_signature", reason, apprec.id)
    return ReadAppRec(apprec, SignatureCheck.VERIFIED, signer)


def _validated(root: etree._Element) -> AppRec:
    validate_apprec(root)
    return parse_apprec(root)


def identify_sender(apprec: AppRec, registers: Registers) -> SenderIdentity:
    """The one virksomhet the AppRec's sender names, by the register (see ``domain.acks.resolve_sender``)."""
    owners = {
        her_id: owner.her_id
        for her_id in apprec.sender.her_ids
        if (owner := registers.address.parent_of(her_id)) is not None
    }
    return resolve_sender(apprec.sender, owners)


@dataclass(frozen=True, slots=True)
class AckDeps:
    """What the acknowledgement service needs (built once per process)."""

    settings: Settings
    registers: Registers
    store: Store
    publisher: ConfirmingPublisher
    names: Names
    actor: str = "worker"
    transport: EdiTransport | None = None  # None: the receivers' queues on the publisher's broker


def transport_of(deps: AckDeps) -> EdiTransport:
    """The transport resends go by: the one configured, or the receivers' queues on our broker."""
    return deps.transport or AmqpTransport(deps.publisher, confirm_timeout_s=deps.settings.confirm_timeout_s)


@dataclass(slots=True)
class _Batch:
    """Everything one batch will write and publish."""

    apprecs: list[NewAppRec] = field(default_factory=list)
    parked: list[NewParked] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    health: dict[int, ReceiverHealth] = field(default_factory=dict)
    events: list[StatusEvent] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


class AcknowledgementService:
    """Turns batches of AppRec deliveries into stored answers, state changes and events."""

    def __init__(
        self,
        deps: AckDeps,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry: RetryPolicy | None = None,
    ) -> None:
        self._d = deps
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._policy = SignaturePolicy(deps.settings.apprec_signature)

    def handle_batch(self, deliveries: Sequence[Delivery]) -> list[Disposition]:
        """Process one batch of inbox deliveries; every delivery is acked once its outcome is stored.

        A transient fault requeues the batch. An unclassified fault is narrowed down to the delivery
        that causes it, which is parked for an operator, so one bad AppRec cannot block the inbox.
        """
        try:
            batch = with_retry(lambda: self._judge(deliveries), self._retry)
            with_retry(
                lambda: self._d.store.save_acknowledgements(
                    apprecs=batch.apprecs,
                    parked=batch.parked,
                    transitions=batch.transitions,
                    health=list(batch.health.values()),
                    actor=self._d.actor,
                ),
                self._retry,
            )
        except TransientError as exc:
            log.warning(
                "store unavailable, AppRec batch requeued", error=type(exc).__name__, batch=len(deliveries)
            )
            return [Disposition.REQUEUE for _ in deliveries]
        except Exception as exc:  # unclassified: isolate it rather than loop on the batch
            if len(deliveries) > 1:
                return [self.handle_batch([d])[0] for d in deliveries]
            return [self._park_unknown(deliveries[0], exc)]
        if not self._publish(batch):
            # The outcome is stored; a redelivery is a duplicate (no-op) and would not re-announce it,
            # so the events are not retried through the queue. The store remains the record.
            log.warning("status events for an AppRec batch were not all confirmed", batch=len(deliveries))
        return [Disposition.ACK for _ in deliveries]

    def _park_unknown(self, delivery: Delivery, exc: Exception) -> Disposition:
        """Park a delivery whose processing failed for an unclassified reason; requeue if even that fails."""
        log.error(
            "unexpected fault on an AppRec, parked",
            error=type(exc).__name__,
            amqp_message_id=delivery.message_id,
            exc_info=exc,
        )
        batch = _Batch()
        reason = f"unexpected {type(exc).__name__} while processing the AppRec; parked for an operator"
        self._park(batch, delivery, self._clock(), "apprec.internal_error", reason)
        try:
            self._d.store.save_acknowledgements(
                apprecs=[], parked=batch.parked, transitions=[], health=[], actor=self._d.actor
            )
        except Exception as again:  # the store itself fails: leave it on the queue
            log.error("could not park the AppRec, requeued", error=type(again).__name__)
            return Disposition.REQUEUE
        self._publish(batch)
        return Disposition.ACK

    # -- judging -------------------------------------------------------------------------------

    def _judge(self, deliveries: Sequence[Delivery]) -> _Batch:
        now = self._clock()
        batch = _Batch()
        read = [
            (
                d,
                read_apprec_delivery(
                    d.body,
                    policy=self._policy,
                    registers=self._d.registers,
                    attested_sender=d.attested_sender_her_id,
                ),
            )
            for d in deliveries
        ]
        good = [r for _, r in read if isinstance(r, ReadAppRec)]
        originals = self._d.store.get_messages({r.apprec.original_msg_id for r in good})
        known = self._known(r.apprec.id for r in good)
        health = self._d.store.receiver_health({m.receiver_org_her_id for m in originals.values()})
        for delivery, result in read:
            if isinstance(result, Unreadable):
                self._park(batch, delivery, now, result.code, result.reason, apprec_id=result.apprec_id)
                continue
            self._apply(batch, delivery, result, now, originals, known, health)
        return batch

    def _known(self, apprec_ids: Any) -> dict[str, KnownAppRec]:
        return dict(self._d.store.known_apprecs(set(apprec_ids)))

    def _apply(
        self,
        batch: _Batch,
        delivery: Delivery,
        read: ReadAppRec,
        now: datetime,
        originals: dict[str, MessageRecord],
        known: dict[str, KnownAppRec],
        health: dict[int, ReceiverHealth],
    ) -> None:
        apprec = read.apprec
        if read.sender.her_id is None:  # unsigned, naming no registered party or two of them
            self._park(
                batch,
                delivery,
                now,
                read.sender.code or "apprec.unknown_sender",
                read.sender.reason or "the AppRec's sender cannot be told",
                apprec_id=apprec.id,
                msg_id=apprec.original_msg_id,
            )
            return
        record = originals.get(apprec.original_msg_id)
        original = (
            None
            if record is None
            else SentMessage(
                record.msg_id, MessageState(record.state), record.receiver_org_her_id, record.receiver_her_id
            )
        )
        decision = decide(
            apprec,
            original=original,
            previous=known.get(apprec.id),
            sender_org_her_id=read.sender.her_id,
        )
        fingerprint = apprec_fingerprint(apprec)
        self._log(apprec, decision, read.signature)
        if decision.kind is AckOutcome.DUPLICATE:
            return
        if decision.park:
            self._park(
                batch,
                delivery,
                now,
                f"apprec.{decision.kind.value}",
                decision.reason,
                apprec_id=apprec.id,
                msg_id=apprec.original_msg_id,
            )
            return
        assert record is not None  # record/answer decisions always have an original
        known[apprec.id] = KnownAppRec(apprec.id, fingerprint)  # a repeat later in this batch is a duplicate
        batch.apprecs.append(
            NewAppRec(
                apprec_id=apprec.id,
                msg_id=record.msg_id,
                version=apprec.version,
                status=apprec.status,
                errors=decision.errors,
                fingerprint=fingerprint,
                sender_her_id=read.sender.her_id,
                outcome=decision.kind,
                reason=decision.reason,
                signature=read.signature,
                received_at=now,
                raw=delivery.body,
            )
        )
        self._answered(batch, record, decision, health, now)

    def _answered(
        self,
        batch: _Batch,
        record: MessageRecord,
        decision: AckDecision,
        health: dict[int, ReceiverHealth],
        now: datetime,
    ) -> None:
        receiver = record.receiver_org_her_id
        current = batch.health.get(receiver) or health.get(receiver) or ReceiverHealth(receiver)
        batch.health[receiver], alert = on_apprec(current)
        if alert is not None:
            batch.alerts.append(alert_json(alert.kind.value, alert.reason, now, her_id=alert.her_id))
        if decision.kind is not AckOutcome.TRANSITION:
            return
        previous = MessageState(record.state)
        for step in decision.steps:
            batch.transitions.append(
                Transition(
                    record.msg_id,
                    step,
                    decision.reason,
                    expected_from=previous,
                    details={"errors": [p.as_dict() for p in decision.errors]},
                )
            )
            previous = step
        batch.events.append(
            StatusEvent(
                decision.to_state.value if decision.to_state else "",
                now,
                None,
                record.msg_id,
                record.receiver_her_id,
                record.receiver_kind,
                decision.errors,
            )
        )

    def _park(
        self,
        batch: _Batch,
        delivery: Delivery,
        now: datetime,
        code: str,
        reason: str,
        *,
        apprec_id: str | None = None,
        msg_id: str | None = None,
    ) -> None:
        batch.parked.append(
            NewParked(
                kind=ParkedKind.APPREC,
                code=code,
                reason=reason,
                received_at=now,
                raw=delivery.body,
                amqp_message_id=delivery.message_id,
                apprec_id=apprec_id,
                msg_id=msg_id,
                details=None,
            )
        )
        batch.alerts.append(alert_json(code, reason, now, apprec_id=apprec_id, msg_id=msg_id))
        log.warning(
            "AppRec parked",
            code=code,
            apprec_id=apprec_id,
            msg_id=msg_id,
            amqp_message_id=delivery.message_id,
        )

    def _log(self, apprec: AppRec, decision: AckDecision, signature: str) -> None:
        log.info(
            "AppRec judged",
            apprec_id=apprec.id,
            msg_id=apprec.original_msg_id,
            status=int(apprec.status),
            outcome=decision.kind.value,
            signature=signature,
            sender_her_ids=sorted(apprec.sender.her_ids),
            codes=[p.code for p in decision.errors],
        )

    # -- events --------------------------------------------------------------------------------

    def _publish(self, batch: _Batch) -> bool:
        request_ids = self._request_ids({e.msg_id for e in batch.events if e.msg_id})
        outgoing = [
            status_outgoing(
                self._d.names,
                StatusEvent(
                    e.state,
                    e.at,
                    request_ids.get(e.msg_id or ""),
                    e.msg_id,
                    e.receiver_her_id,
                    e.receiver_kind,
                    e.errors,
                ),
            )
            for e in batch.events
        ]
        outgoing += [alert_outgoing(self._d.names, a) for a in batch.alerts]
        if not outgoing:
            return True
        results = self._d.publisher.publish_many(outgoing, timeout=self._d.settings.confirm_timeout_s)
        return all(r is None for r in results)

    def _request_ids(self, msg_ids: set[str]) -> dict[str, str]:
        # Events carry the msg_id as stored (it comes from the message record), so keys match.
        return self._d.store.request_ids_of(msg_ids)
