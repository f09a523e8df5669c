"""Conversions between records and table rows (plain dicts in, ``Row`` objects out)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edi_gateway.domain.acks import AckOutcome
from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.overdue import ReceiverHealth
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.errors import Problem
from edi_gateway.store.records import (
    AppRecRecord,
    EventKind,
    EventRecord,
    MessageRecord,
    NewAppRec,
    NewMessage,
    NewParked,
    NewRequest,
    ParkedKind,
    ParkedRecord,
    ParkedSummary,
    RequestOutcome,
    RequestRecord,
    SignatureCheck,
)
from edi_gateway.store.tables import APPREC_ID_MAX_LEN, receiver_key


def aware(value: datetime, what: str) -> datetime:
    """Return ``value`` in UTC; a naive datetime is refused, since its zone would be a guess.

    Raises:
        ValueError: when ``value`` has no timezone.
    """
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


def problems_json(problems: tuple[Problem, ...]) -> list[dict[str, str]]:
    """Return the JSON form of ``problems``."""
    return [p.as_dict() for p in problems]


def problems_from_json(data: Any) -> tuple[Problem, ...]:
    """Rebuild ``Problem`` objects from their JSON form."""
    return tuple(Problem(d["code"], d["reason"], d.get("field")) for d in data or ())


def request_row(request: NewRequest, now: datetime) -> dict[str, Any]:
    """Return the ``requests`` row of a new request."""
    return {
        "ref": request.ref,
        "request_id": request.request_id,
        "state": RequestState(request.state).value,
        "received_at": aware(request.received_at, "received_at"),
        "updated_at": now,
        "content_type": request.content_type,
        "body": request.body,
        "samhandlingspunkt": request.samhandlingspunkt,
        "consent": request.consent,
        "send_to_fastlege": request.send_to_fastlege,
        "kommunenummer": request.kommunenummer,
        "sender_unit_her_id": request.sender_unit_her_id,
        "problems": problems_json(request.problems),
        "amqp_message_id": request.amqp_message_id,
        "amqp_correlation_id": request.amqp_correlation_id,
    }


def message_row(message: NewMessage, request_ref: str, now: datetime) -> dict[str, Any]:
    """Return the ``messages`` row of a new message, in state ``queued``."""
    deadline = message.deadline_at
    return {
        "msg_id": message.msg_id,
        "request_ref": request_ref,
        "receiver_kind": ReceiverKind(message.receiver_kind).value,
        "receiver_org_her_id": message.receiver_org_her_id,
        "receiver_her_id": message.receiver_her_id,
        "receiver_key": receiver_key(message.receiver_her_id, message.conversation_ref),
        "receiver_name": message.receiver_name,
        "queue": message.queue,
        "kommunenummer": message.kommunenummer,
        "state": MessageState.QUEUED.value,
        "signed_xml": message.signed_xml,
        "msg_type": message.msg_type,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "attempts": 0,
        "conversation_ref": message.conversation_ref,
        "deadline_at": aware(deadline, "deadline_at") if deadline is not None else None,
        "first_sent_at": None,
        "resends": 0,
    }


def event_row(
    *,
    request_ref: str,
    msg_id: str | None,
    from_state: str | None,
    to_state: str,
    at: datetime,
    actor: str,
    reason: str,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return an ``events`` row; the kind follows from whether a message is named."""
    return {
        "request_ref": request_ref,
        "msg_id": msg_id,
        "kind": (EventKind.MESSAGE if msg_id else EventKind.REQUEST).value,
        "from_state": from_state,
        "to_state": to_state,
        "at": at,
        "actor": actor,
        "reason": reason,
        "details": dict(details) if details is not None else None,
    }


def outcome_rows(
    outcomes: Sequence[RequestOutcome], *, now: datetime, actor: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the request, message and event rows of a batch of outcomes."""
    request_rows: list[dict[str, Any]] = []
    message_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    for outcome in outcomes:
        request = outcome.request
        request_rows.append(request_row(request, now))
        event_rows += request_events(outcome, now=now, actor=actor)
        for message in outcome.messages:
            message_rows.append(message_row(message, request.ref, now))
            event_rows.append(
                event_row(
                    request_ref=request.ref,
                    msg_id=message.msg_id,
                    from_state=None,
                    to_state=MessageState.QUEUED.value,
                    at=now,
                    actor=actor,
                    reason="message built, signed and stored",
                    details=creation_details(message),
                )
            )
    return request_rows, message_rows, event_rows


def creation_details(message: NewMessage) -> dict[str, Any] | None:
    """Return the details of a new message's first event: how its receiver was chosen, if routing chose it."""
    return {"routing": dict(message.routing)} if message.routing is not None else None


def request_events(outcome: RequestOutcome, *, now: datetime, actor: str) -> list[dict[str, Any]]:
    """Return a new request's events: ``None → received`` at its arrival, then ``received →`` its state."""
    request = outcome.request
    received_at = min(aware(request.received_at, "received_at"), now)
    out = [
        event_row(
            request_ref=request.ref,
            msg_id=None,
            from_state=None,
            to_state=RequestState.RECEIVED.value,
            at=received_at,
            actor=actor,
            reason="request received",
        )
    ]
    if request.state != RequestState.RECEIVED:
        details = {"problems": problems_json(request.problems)} if request.problems else None
        out.append(
            event_row(
                request_ref=request.ref,
                msg_id=None,
                from_state=RequestState.RECEIVED.value,
                to_state=RequestState(request.state).value,
                at=now,
                actor=actor,
                reason=request.reason,
                details=details,
            )
        )
    return out


def request_record(row: sa.Row[Any]) -> RequestRecord:
    """Rebuild a ``RequestRecord`` from a ``requests`` row."""
    m = row._mapping
    return RequestRecord(
        ref=m["ref"],
        request_id=m["request_id"],
        state=RequestState(m["state"]),
        received_at=m["received_at"],
        updated_at=m["updated_at"],
        content_type=m["content_type"],
        body=bytes(m["body"]),
        samhandlingspunkt=m["samhandlingspunkt"],
        consent=m["consent"],
        send_to_fastlege=m["send_to_fastlege"],
        kommunenummer=m["kommunenummer"],
        sender_unit_her_id=m["sender_unit_her_id"],
        problems=problems_from_json(m["problems"]),
        amqp_message_id=m["amqp_message_id"],
        amqp_correlation_id=m["amqp_correlation_id"],
    )


def message_record(row: sa.Row[Any]) -> MessageRecord:
    """Rebuild a ``MessageRecord`` from a ``messages`` row."""
    m = row._mapping
    return MessageRecord(
        msg_id=m["msg_id"],
        request_ref=m["request_ref"],
        receiver_kind=ReceiverKind(m["receiver_kind"]),
        receiver_org_her_id=m["receiver_org_her_id"],
        receiver_her_id=m["receiver_her_id"],
        receiver_key=m["receiver_key"],
        receiver_name=m["receiver_name"],
        queue=m["queue"],
        kommunenummer=m["kommunenummer"],
        state=MessageState(m["state"]),
        signed_xml=bytes(m["signed_xml"]),
        msg_type=m["msg_type"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        sent_at=m["sent_at"],
        attempts=m["attempts"],
        conversation_ref=m["conversation_ref"],
        deadline_at=m["deadline_at"],
        first_sent_at=m["first_sent_at"],
        resends=m["resends"],
        transport=m["transport"],
        transport_id=m["transport_id"],
        transport_state=m["transport_state"],
    )


def event_record(row: sa.Row[Any]) -> EventRecord:
    """Rebuild an ``EventRecord`` from an ``events`` row, states typed by the event's kind."""
    m = row._mapping
    kind = EventKind(m["kind"])
    state_type: type[RequestState] | type[MessageState] = (
        RequestState if kind is EventKind.REQUEST else MessageState
    )
    return EventRecord(
        id=m["id"],
        request_ref=m["request_ref"],
        msg_id=m["msg_id"],
        kind=kind,
        from_state=state_type(m["from_state"]) if m["from_state"] is not None else None,
        to_state=state_type(m["to_state"]),
        at=m["at"],
        actor=m["actor"],
        reason=m["reason"],
        details=m["details"],
    )


def apprec_row(apprec: NewAppRec) -> dict[str, Any]:
    """Return the ``apprecs`` row of a correlated AppRec.

    Raises:
        ValueError: the AppRec id is empty or longer than the column keeps, or a datetime is naive.
    """
    if not apprec.apprec_id or len(apprec.apprec_id) > APPREC_ID_MAX_LEN:
        raise ValueError(f"an AppRec id must have 1 to {APPREC_ID_MAX_LEN} characters; park it instead")
    return {
        "apprec_id": apprec.apprec_id,
        "msg_id": apprec.msg_id,
        "version": apprec.version,
        "status": int(AppRecStatus(apprec.status)),
        "errors": problems_json(apprec.errors),
        "fingerprint": apprec.fingerprint,
        "sender_her_id": apprec.sender_her_id,
        "outcome": AckOutcome(apprec.outcome).value,
        "reason": apprec.reason,
        "signature": SignatureCheck(apprec.signature).value,
        "received_at": aware(apprec.received_at, "received_at"),
        "raw": apprec.raw,
    }


PARKED_RAW_KEEP_BYTES = 256 * 1024
"""How much of a parked document the store keeps; a longer one is cut, its size and sha256 recorded."""


def parked_row(document: NewParked) -> dict[str, Any]:
    """Return the ``parked`` row of a document set aside, not yet resolved.

    Whatever arrives on the inbox may be parked, so the row is bounded: past ``PARKED_RAW_KEEP_BYTES``
    only the beginning is kept, and ``details`` records ``raw_size`` (the original length),
    ``raw_sha256`` (of the whole document) and ``raw_kept``.
    """
    details = dict(document.details) if document.details is not None else None
    raw = document.raw
    if len(raw) > PARKED_RAW_KEEP_BYTES:
        cut = {
            "raw_size": len(raw),
            "raw_sha256": hashlib.sha256(raw).hexdigest(),
            "raw_kept": PARKED_RAW_KEEP_BYTES,
        }
        details = {**(details or {}), **cut}
        raw = raw[:PARKED_RAW_KEEP_BYTES]
    return {
        "kind": ParkedKind(document.kind).value,
        "code": document.code,
        "reason": document.reason,
        "received_at": aware(document.received_at, "received_at"),
        "raw": raw,
        "amqp_message_id": document.amqp_message_id,
        "apprec_id": document.apprec_id,
        "msg_id": document.msg_id,
        "details": details,
        "resolved_at": None,
        "resolved_by": None,
        "resolution": None,
    }


def health_rows(health: Sequence[ReceiverHealth], now: datetime) -> list[dict[str, Any]]:
    """Return one ``receiver_health`` row per HER-id, the last value given winning, in HER-id order.

    The order is the order the rows get locked in on PostgreSQL: two workers upserting overlapping
    receivers then queue up instead of deadlocking.
    """
    latest = {h.her_id: h for h in health}
    return [
        {
            "her_id": her_id,
            "consecutive_overdue": latest[her_id].consecutive_overdue,
            "quiet": latest[her_id].quiet,
            "updated_at": now,
        }
        for her_id in sorted(latest)
    ]


def apprec_record(row: sa.Row[Any]) -> AppRecRecord:
    """Rebuild an ``AppRecRecord`` from an ``apprecs`` row."""
    m = row._mapping
    return AppRecRecord(
        id=m["id"],
        apprec_id=m["apprec_id"],
        msg_id=m["msg_id"],
        version=m["version"],
        status=AppRecStatus(m["status"]),
        errors=problems_from_json(m["errors"]),
        fingerprint=m["fingerprint"],
        sender_her_id=m["sender_her_id"],
        outcome=AckOutcome(m["outcome"]),
        reason=m["reason"],
        signature=SignatureCheck(m["signature"]),
        received_at=m["received_at"],
        raw=bytes(m["raw"]),
    )


def _parked_columns(m: sa.RowMapping) -> dict[str, Any]:
    """The ``ParkedColumns`` fields of a ``parked`` row mapping (everything but the payload)."""
    return {
        "id": m["id"],
        "kind": ParkedKind(m["kind"]),
        "code": m["code"],
        "reason": m["reason"],
        "received_at": m["received_at"],
        "amqp_message_id": m["amqp_message_id"],
        "apprec_id": m["apprec_id"],
        "msg_id": m["msg_id"],
        "details": m["details"],
        "resolved_at": m["resolved_at"],
        "resolved_by": m["resolved_by"],
        "resolution": m["resolution"],
    }


def parked_record(row: sa.Row[Any]) -> ParkedRecord:
    """Rebuild a ``ParkedRecord`` from a ``parked`` row."""
    m = row._mapping
    return ParkedRecord(**_parked_columns(m), raw=bytes(m["raw"]))


def parked_summary(m: sa.RowMapping) -> ParkedSummary:
    """Rebuild a ``ParkedSummary`` from a ``parked`` row's mapping, selected with ``raw_kept``."""
    return ParkedSummary(**_parked_columns(m), raw_kept=int(m["raw_kept"] or 0))


def health_value(row: sa.Row[Any]) -> ReceiverHealth:
    """Rebuild a receiver's ``ReceiverHealth`` from a ``receiver_health`` row."""
    m = row._mapping
    return ReceiverHealth(m["her_id"], consecutive_overdue=m["consecutive_overdue"], quiet=bool(m["quiet"]))
