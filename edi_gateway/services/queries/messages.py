"""Message lists and details: the stored rows as views, the patient masked, one time-ordered history.

The full person number is only ever read by ``patient_id_of``, and its callers audit every use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import Enum

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.identifiers import mask_person_id
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import EdiGatewayError, Problem, XmlRejected
from edi_gateway.services.queries.views import (
    AppRecView,
    MessageDetail,
    MessageFilter,
    MessageRow,
    Page,
    ReplyView,
    RoutingView,
    TimelineEntry,
)
from edi_gateway.store import AppRecRecord, EventRecord, Store
from edi_gateway.store.queries import MessageCriteria, MessageListing, RequestBody
from edi_gateway.store.received import ReceivedRecord
from edi_gateway.xml.apprec import STATUS_TEXTS
from edi_gateway.xml.dialogmelding import read_notat
from edi_gateway.xml.msghead import parse_msghead_summary
from edi_gateway.xml.safe import parse_xml

MAX_PAGE = 500
"""The largest page ``list_messages`` returns; a bigger ``limit`` is cut to this."""

UNKNOWN_PATIENT = "*" * 11
"""What a list shows when the stored request names no readable patient id."""

_APPREC_CODE_PREFIX = "apprec."
_XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})


def list_messages(store: Store, f: MessageFilter) -> Page:
    """Return the page of messages that ``f`` asks for, newest first, with the total that match.

    Raises:
        ValueError: an unknown state, a negative offset, a limit below 1, or a naive datetime.
        StoreUnavailable: the database cannot be reached.
    """
    if f.limit < 1 or f.offset < 0:
        raise ValueError("limit must be at least 1 and offset not negative")
    limit = min(f.limit, MAX_PAGE)
    listings, total = store.message_page(_criteria(f), limit=limit, offset=f.offset)
    return Page(message_rows(store, listings), total, limit, f.offset)


def message_detail(store: Store, msg_id: str) -> MessageDetail | None:
    """Return everything about one message, or None when no message has this msg_id.

    Raises:
        StoreUnavailable: the database cannot be reached.
    """
    record = store.get_message(msg_id)
    listed = store.message_listings([msg_id])
    if record is None or not listed:
        return None
    request = store.get_request_by_ref(record.request_ref)
    if request is None:  # the foreign key makes this impossible; a view must not crash on it
        return None
    (row,) = message_rows(store, listed)
    apprecs = store.apprecs_for_message(msg_id)
    replies = store.replies_to(msg_id)
    events = [e for e in store.events_for_request(record.request_ref) if e.msg_id in (None, msg_id)]
    return MessageDetail(
        row=row,
        conversation_ref=record.conversation_ref,
        attempts=record.attempts,
        resends=record.resends,
        sent_at=record.sent_at,
        request_state=request.state.value,
        request_problems=request.problems,
        timeline=_timeline(events, apprecs, replies),
        apprecs=tuple(_apprec_view(a) for a in apprecs),
        related=message_rows(store, store.message_listings(store.related_msg_ids(msg_id))),
        routing=_routing(events, msg_id),
        transport=record.transport,
        transport_id=record.transport_id,
        transport_state=record.transport_state,
        refusal=_refusal(events, msg_id),
        replies=tuple(_reply_view(r) for r in replies),
    )


def _refusal(events: Iterable[EventRecord], msg_id: str) -> Mapping[str, object] | None:
    """What the transport said in its latest final refusal of the message, if it refused it."""
    found: Mapping[str, object] | None = None
    for e in events:
        refusal = (e.details or {}).get("refusal") if e.msg_id == msg_id else None
        if isinstance(refusal, dict):
            found = refusal
    return found


def _routing(events: Iterable[EventRecord], msg_id: str) -> RoutingView | None:
    """The service choice recorded in the details of the message's first event, if one is there."""
    for e in events:
        found = (e.details or {}).get("routing") if e.msg_id == msg_id else None
        if isinstance(found, dict):
            return RoutingView(
                service_code=str(found.get("service_code", "")),
                service_name=str(found.get("service_name", "")),
                reason=str(found.get("reason", "")),
                fallback=bool(found.get("fallback", False)),
                preference=tuple(str(c) for c in found.get("preference", ())),
                rule=str(found.get("rule", "default")),
            )
    return None


def signed_xml(store: Store, msg_id: str) -> bytes | None:
    """Return the signed MsgHead bytes as stored (and as sent), or None for an unknown msg_id.

    The document names the patient: callers show it only after an audited reason.
    """
    return store.signed_xml_of(msg_id)


def request_body_of(store: Store, msg_id: str) -> bytes | None:
    """Return the request body a message was built from (an edit replay's edited body), or None.

    Personal data: callers must audit every call and never log the result.
    """
    found = store.patient_sources([msg_id]).get(msg_id)
    return found.body if found is not None else None


def patient_id_of(store: Store, msg_id: str) -> str | None:
    """Return the full person number of a message's patient, or None when it is unknown.

    Read from the stored request (JSON ``patient.id``, or the MsgHead an EPR sent itself; for a
    message made by an edit replay, the edited request); the signed message is the fallback. Personal data: callers must audit every call and never log the result.
    """
    body = store.patient_sources([msg_id]).get(msg_id)
    if body is None:
        return None
    found = _patient_id(body)
    if found is None:
        xml = store.signed_xml_of(msg_id)
        found = _patient_id(RequestBody("application/xml", xml)) if xml is not None else None
    return found


def _criteria(f: MessageFilter) -> MessageCriteria:
    return MessageCriteria(
        state=MessageState(f.state) if f.state is not None else None,
        kommunenummer=f.kommunenummer,
        receiver_her_id=f.receiver_her_id,
        samhandlingspunkt=f.samhandlingspunkt,
        since=f.since,
        until=f.until,
        request_id=f.request_id,
    )


def message_rows(store: Store, listings: Iterable[MessageListing]) -> tuple[MessageRow, ...]:
    """Return the listings as rows, reading the patient from each request body once (the page only)."""
    listings = list(listings)
    sources = store.patient_sources([m.msg_id for m in listings])
    return tuple(
        _row(m, _masked(sources[m.msg_id]) if m.msg_id in sources else UNKNOWN_PATIENT) for m in listings
    )


def _row(m: MessageListing, patient_masked: str) -> MessageRow:
    return MessageRow(
        msg_id=m.msg_id,
        request_id=m.request_id,
        request_ref=m.request_ref,
        state=m.state.value,
        receiver_kind=m.receiver_kind,
        receiver_name=m.receiver_name,
        receiver_her_id=m.receiver_her_id,
        receiver_org_her_id=m.receiver_org_her_id,
        kommunenummer=m.kommunenummer,
        samhandlingspunkt=m.samhandlingspunkt,
        created_at=m.created_at,
        updated_at=m.updated_at,
        patient_masked=patient_masked,
        apprec_status=m.apprec_status,
    )


def _masked(body: RequestBody) -> str:
    found = _patient_id(body)
    return mask_person_id(found) if found is not None else UNKNOWN_PATIENT


def _patient_id(body: RequestBody) -> str | None:
    """Read the patient's id from a stored request: JSON ``patient.id``, or an EPR-built MsgHead."""
    media_type = body.content_type.split(";")[0].strip().lower()
    if media_type in _XML_MEDIA_TYPES or body.body.lstrip()[:1] == b"<":
        return _patient_id_from_xml(body.body)
    return _patient_id_from_json(body.body)


def _patient_id_from_json(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:  # includes UnicodeDecodeError: a rejected request may be anything
        return None
    patient = data.get("patient") if isinstance(data, dict) else None
    found = patient.get("id") if isinstance(patient, dict) else None
    return found if isinstance(found, str) else None


def _patient_id_from_xml(body: bytes) -> str | None:
    try:
        return parse_msghead_summary(parse_xml(body)).patient_id
    except EdiGatewayError:
        return None


def _timeline(
    events: Iterable[EventRecord], apprecs: Iterable[AppRecRecord], replies: Iterable[ReceivedRecord] = ()
) -> tuple[TimelineEntry, ...]:
    entries = [
        (
            e.at,
            0,
            e.id,
            TimelineEntry(
                e.at, e.kind.value, e.msg_id, _value(e.from_state), e.to_state.value, e.actor, e.reason
            ),
        )
        for e in events
    ]
    # An AppRec sorts before the state change it caused when both carry the same instant.
    entries += [(a.received_at, -1, a.id, _apprec_entry(a)) for a in apprecs]
    entries += [(r.received_at, 1, r.id, _reply_entry(r)) for r in replies]
    return tuple(entry for *_, entry in sorted(entries, key=lambda t: (t[0], t[1], t[2])))


def _value(state: Enum | None) -> str | None:
    return str(state.value) if state is not None else None


def _apprec_entry(a: AppRecRecord) -> TimelineEntry:
    codes = ", ".join(code for code, _ in _apprec_errors(a.errors))
    reason = f"AppRec {a.apprec_id}: status {int(a.status)} ({_status_text(a.status)})"
    if codes:
        reason += f", errors {codes}"
    actor = f"receiver:{a.sender_her_id}" if a.sender_her_id is not None else "receiver"
    return TimelineEntry(
        a.received_at, "apprec", a.msg_id, None, None, actor, f"{reason}; signature {a.signature.value}"
    )


def _reply_entry(r: ReceivedRecord) -> TimelineEntry:
    reason = f"reply {r.msg_id} ({r.msg_type}) received; our AppRec status {r.apprec_status}"
    return TimelineEntry(
        r.received_at, "reply", r.thread_msg_id, None, None, f"sender:{r.sender_her_id}", reason
    )


def _reply_view(r: ReceivedRecord) -> ReplyView:
    return ReplyView(r.msg_id, r.sender_her_id, r.msg_type, r.received_at, r.apprec_status, _tema(r.body))


def _tema(body: bytes) -> str | None:
    try:
        notat = read_notat(parse_xml(body))
    except XmlRejected:
        return None
    return notat.tema if notat is not None else None


def _apprec_view(a: AppRecRecord) -> AppRecView:
    return AppRecView(
        apprec_id=a.apprec_id,
        status=int(a.status),
        status_text=_status_text(a.status),
        received_at=a.received_at,
        errors=_apprec_errors(a.errors),
        signature=a.signature.value,
    )


def _status_text(status: int) -> str:
    try:
        return STATUS_TEXTS[AppRecStatus(status)]
    except ValueError:
        return "ukjent status"


def _apprec_errors(problems: Iterable[Problem]) -> tuple[tuple[str, str], ...]:
    """Return (code, text) per AppRec error; the store keeps codes as ``apprec.<V>``."""
    return tuple((p.code.removeprefix(_APPREC_CODE_PREFIX), p.reason) for p in problems)
