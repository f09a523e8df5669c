"""What operators ask: find messages, inspect one, report on a period, look a party up in the registers.

The answers are frozen views shared by the CLI, the web UI and the REST API. A list never carries a
full person number or a name: the patient shows as ``mask_person_id`` of the id in the stored request
(the date digits only). The full id is ``patient_id_of``, and its callers audit every use.

SQL lives in ``store/queries.py``; here the rows become views (masked patient, kommune names, AppRec
texts, one time-ordered history) and the register look-up answers in plain JSON.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.identifiers import is_valid_her_id, mask_person_id
from edi_gateway.domain.routing import RoutingRules, choose_service
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import EdiGatewayError, Problem
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.store import AppRecRecord, EventRecord, Store
from edi_gateway.store.queries import MessageCriteria, MessageListing, OutcomeCount, RequestBody
from edi_gateway.xml.apprec import STATUS_TEXTS
from edi_gateway.xml.msghead import parse_msghead_summary
from edi_gateway.xml.safe import parse_xml

MAX_PAGE = 500
"""The largest page ``list_messages`` returns; a bigger ``limit`` is cut to this."""

UNKNOWN_PATIENT = "*" * 11
"""What a list shows when the stored request names no readable patient id."""

_APPREC_CODE_PREFIX = "apprec."
_XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})


# -- views -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageFilter:
    """Which messages to list; every field left None matches everything.

    Attributes:
        state: a message state (``queued``, ``sent``, ``acked`` ...).
        kommunenummer: the patient's kommune the message was routed for.
        receiver_her_id: the addressed HER-id (service or fastlege) or the receiving virksomhet's.
        samhandlingspunkt: 1, 2 or 3.
        since: messages created at or after this instant (timezone-aware).
        until: messages created before this instant (timezone-aware).
        request_id: the EPR's request_id.
        limit: page size (at most ``MAX_PAGE``).
        offset: how many matching messages to skip (newest first).
    """

    state: str | None = None
    kommunenummer: str | None = None
    receiver_her_id: int | None = None
    samhandlingspunkt: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class MessageRow:
    """One line of a message list. No full person number and no names.

    Attributes:
        request_ref: the gateway's own id of the request (also for requests without a request_id).
        receiver_kind: ``kommune`` or ``fastlege``.
        receiver_name: the receiver as the register names it (a service or a legekontor, never the patient).
        receiver_her_id: the addressed HER-id (service or fastlege).
        receiver_org_her_id: the receiving virksomhet's HER-id.
        patient_masked: the patient's birth-date digits, e.g. ``230157*****``.
        apprec_status: kodeverk 8258 status of the last AppRec, if one came.
    """

    msg_id: str
    request_id: str | None
    request_ref: str
    state: str
    receiver_kind: str
    receiver_name: str
    receiver_her_id: int
    receiver_org_her_id: int
    kommunenummer: str | None
    samhandlingspunkt: int | None
    created_at: datetime
    updated_at: datetime
    patient_masked: str
    apprec_status: int | None


@dataclass(frozen=True)
class Page:
    """A page of a message list and how many messages match in all."""

    rows: tuple[MessageRow, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class TimelineEntry:
    """One step of a message's history.

    Attributes:
        kind: ``request`` (the request's own events), ``message`` (state changes and publish
            attempts of the message) or ``apprec`` (an AppRec received for it).
        from_state: the state left; None for a first event, an event without a change, or an AppRec.
        to_state: the state reached; None for an AppRec (its effect is the message event beside it).
        actor: who did it (``worker:<host>``, an operator, or ``receiver:<HER-id>`` for an AppRec).
        reason: plain language, no personal data.
    """

    at: datetime
    kind: str
    msg_id: str | None
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str


@dataclass(frozen=True)
class AppRecView:
    """An AppRec as an operator reads it.

    Attributes:
        status: kodeverk 8258 (1 OK, 2 Avvist, 3 OK, feil i delmelding).
        status_text: the status in words.
        errors: (kodeverk 8221 code, its text) per error; another kodeverk's code shows as ``<S>.<V>``.
        signature: ``verified``, ``absent`` or ``skipped``.
    """

    apprec_id: str
    status: int
    status_text: str
    received_at: datetime
    errors: tuple[tuple[str, str], ...]
    signature: str


@dataclass(frozen=True)
class MessageDetail:
    """Everything about one message an operator needs to answer "did they get it?".

    Attributes:
        conversation_ref: MsgId of the message this one replays (a rebuild), if any.
        attempts: publish attempts recorded.
        resends: transport resends recorded (same MsgId).
        sent_at: when the broker last confirmed a publish, if it has.
        request_state: the state of the request the message was built from.
        request_problems: the request's problems (e.g. a fastlege that could not be found).
        timeline: the request's events, this message's events and its AppRecs, in time order.
        apprecs: the AppRecs received for it, in order.
        related: the request's other messages and the replays linked by ConversationRef.
    """

    row: MessageRow
    conversation_ref: str | None
    attempts: int
    resends: int
    sent_at: datetime | None
    request_state: str
    request_problems: tuple[Problem, ...]
    timeline: tuple[TimelineEntry, ...]
    apprecs: tuple[AppRecView, ...]
    related: tuple[MessageRow, ...]


@dataclass(frozen=True)
class ReportRow:
    """One group of a report.

    Attributes:
        kommune_name: the kommune's name in the Adresseregister, if it is there.
        outcome: a message state (messages of routed requests) or ``rejected`` / ``no_consent`` /
            ``failed`` / ``received`` (requests that built no message).
        count: messages (for message states) or requests (for the request outcomes).
    """

    kommunenummer: str | None
    kommune_name: str | None
    samhandlingspunkt: int | None
    outcome: str
    count: int


@dataclass(frozen=True)
class Report:
    """What happened in ``[since, until)``.

    Attributes:
        rows: counts per kommune, samhandlingspunkt and outcome.
        consent_yes: requests with consent true.
        consent_no: requests with consent false.
        median_seconds_to_apprec: median over answered messages of (first AppRec − first send).
        messages: messages created in the period.
        requests: requests received in the period.
    """

    since: datetime
    until: datetime
    rows: tuple[ReportRow, ...]
    consent_yes: int
    consent_no: int
    median_seconds_to_apprec: float | None
    messages: int
    requests: int


# -- message lists and details ---------------------------------------------------------------------


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
    return Page(_rows(store, listings), total, limit, f.offset)


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
    (row,) = _rows(store, listed)
    apprecs = store.apprecs_for_message(msg_id)
    events = [e for e in store.events_for_request(record.request_ref) if e.msg_id in (None, msg_id)]
    return MessageDetail(
        row=row,
        conversation_ref=record.conversation_ref,
        attempts=record.attempts,
        resends=record.resends,
        sent_at=record.sent_at,
        request_state=request.state.value,
        request_problems=request.problems,
        timeline=_timeline(events, apprecs),
        apprecs=tuple(_apprec_view(a) for a in apprecs),
        related=_rows(store, store.message_listings(store.related_msg_ids(msg_id))),
    )


def signed_xml(store: Store, msg_id: str) -> bytes | None:
    """Return the signed MsgHead bytes as stored (and as sent), or None for an unknown msg_id.

    The document names the patient: callers show it only after an audited reason.
    """
    return store.signed_xml_of(msg_id)


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


# -- reports and the dashboard ---------------------------------------------------------------------


def report(store: Store, registers: Registers, *, since: datetime, until: datetime) -> Report:
    """Report on ``[since, until)``: outcomes per kommune and samhandlingspunkt, consent, time to AppRec.

    Messages count by when they were created, requests by when they arrived.

    Raises:
        ValueError: a naive datetime, or ``until`` before ``since``.
        StoreUnavailable: the database cannot be reached.
    """
    counts = store.outcome_counts(since=since, until=until)
    consent = store.consent_counts(since=since, until=until)
    requests, messages = store.period_totals(since=since, until=until)
    delays = store.apprec_delays(since=since, until=until)
    return Report(
        since=since,
        until=until,
        rows=_report_rows(counts, registers),
        consent_yes=consent.get(True, 0),
        consent_no=consent.get(False, 0),
        median_seconds_to_apprec=statistics.median(delays) if delays else None,
        messages=messages,
        requests=requests,
    )


def counts_by_state(store: Store) -> dict[str, int]:
    """Return how many messages are in each state; every state is a key, 0 when it has none."""
    found = store.message_state_counts()
    return {s.value: found.get(s.value, 0) for s in MessageState}


def overdue_messages(store: Store, limit: int = 20) -> list[MessageRow]:
    """Return overdue messages, the longest waiting first."""
    criteria = MessageCriteria(state=MessageState.OVERDUE)
    listings, _total = store.message_page(criteria, limit=max(limit, 0), oldest_first=True)
    return list(_rows(store, listings))


def quiet_receivers(store: Store) -> list[tuple[int, int]]:
    """Return (HER-id, overdue messages in a row) of each receiver currently marked quiet."""
    return store.quiet_receiver_health()


def throughput_last_hour(store: Store, now: datetime) -> dict[str, int]:
    """Return ``{'requests', 'messages', 'acked'}`` counts for the hour before ``now`` (timezone-aware)."""
    return store.activity_since(now - timedelta(hours=1))


# -- registry look-up ------------------------------------------------------------------------------


def registry_lookup(registers: Registers, rules: RoutingRules, query: str) -> dict[str, Any]:
    """Look a person number, kommunenummer or HER-id up in the registers, as routing would see it.

    * 11 digits, a person: the bosted kommune, the service routing would choose there, the fastlege.
    * 4 digits, a kommune: its services and the one chosen (a 4-digit HER-id is tried next).
    * other digits, a HER-id: the party and the virksomhet it belongs to.

    The answer is JSON-able, ``{"query_kind": ..., "found": bool, ...}``; a person shows masked.
    The look-up of a person is personal data processing: callers audit it.

    Raises:
        ValueError: the query is none of the three forms.
        RegisterUnavailable: a register cannot answer.
    """
    text = "".join(query.split())
    if not text.isdigit():
        raise ValueError("give a person number (11 digits), a kommunenummer (4 digits) or a HER-id")
    if len(text) == 11:
        return _person_lookup(registers, rules, text)
    if len(text) == 4:
        kommune = registers.address.kommune(text)
        if kommune is not None:
            return {"query_kind": "kommune", "found": True, **_kommune_view(kommune, rules)}
        if registers.address.parent_of(int(text)) is None:
            return {"query_kind": "kommune", "found": False, "kommunenummer": text}
    if not is_valid_her_id(text):
        raise ValueError("a HER-id is a number of at most 9 digits without a leading zero")
    return _her_id_lookup(registers, rules, int(text))


# -- JSON ------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Return a view (dataclasses, tuples, datetimes, enums) as plain JSON types.

    Datetimes become ISO 8601 strings; a ``Problem`` its JSON form; tuples lists.
    """
    if isinstance(value, Problem):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# -- helpers ---------------------------------------------------------------------------------------


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


def _rows(store: Store, listings: Iterable[MessageListing]) -> tuple[MessageRow, ...]:
    """Turn listings into rows, reading the patient from each request body once (the page only)."""
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


def _timeline(events: Iterable[EventRecord], apprecs: Iterable[AppRecRecord]) -> tuple[TimelineEntry, ...]:
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


def _report_rows(counts: Sequence[OutcomeCount], registers: Registers) -> tuple[ReportRow, ...]:
    names: dict[str, str | None] = {}
    for nr in {c.kommunenummer for c in counts if c.kommunenummer is not None}:
        kommune = registers.address.kommune(nr)
        names[nr] = kommune.organisation.name if kommune is not None else None
    found = [
        ReportRow(c.kommunenummer, names.get(c.kommunenummer or ""), c.samhandlingspunkt, c.outcome, c.count)
        for c in counts
    ]
    return tuple(sorted(found, key=lambda r: (r.kommunenummer or "~", r.samhandlingspunkt or 0, r.outcome)))


def _person_lookup(registers: Registers, rules: RoutingRules, person_id: str) -> dict[str, Any]:
    kommunenummer = registers.population.bosted_kommune(person_id)
    kommune = registers.address.kommune(kommunenummer) if kommunenummer is not None else None
    gp = registers.fastlege.fastlege_for(person_id)
    return {
        "query_kind": "person",
        "found": kommunenummer is not None or gp is not None,
        "patient_masked": mask_person_id(person_id),
        "bosted_kommunenummer": kommunenummer,
        "kommune": _kommune_view(kommune, rules) if kommune is not None else None,
        "fastlege": None
        if gp is None
        else {
            "her_id": gp.practitioner.her_id,
            "name": f"{gp.practitioner.given_name} {gp.practitioner.family_name}",
            "hpr": gp.practitioner.hpr,
            "legekontor": _party(gp.legekontor),
        },
    }


def _kommune_view(kommune: Virksomhet, rules: RoutingRules) -> dict[str, Any]:
    preference = rules.service_preference(kommune.kommunenummer)
    chosen = choose_service(kommune.services, preference)
    return {
        **_party(kommune),
        "service_preference": list(preference),
        "services": [{"her_id": s.her_id, "name": s.name, "code": s.code} for s in kommune.services],
        "chosen_service": None
        if chosen is None
        else {"her_id": chosen.her_id, "name": chosen.name, "code": chosen.code},
    }


def _party(v: Virksomhet) -> dict[str, Any]:
    return {
        "her_id": v.her_id,
        "name": v.organisation.name,
        "kind": v.kind,
        "org_number": v.organisation.org_number,
        "kommunenummer": v.kommunenummer,
        "queue": v.queue,
    }


def _her_id_lookup(registers: Registers, rules: RoutingRules, her_id: int) -> dict[str, Any]:
    owner = registers.address.parent_of(her_id)
    if owner is None:
        return {"query_kind": "her_id", "found": False, "her_id": her_id}
    owner_view = _kommune_view(owner, rules) if owner.kind == "kommune" else _party(owner)
    answer: dict[str, Any] = {
        "query_kind": "her_id",
        "found": True,
        "her_id": her_id,
        "virksomhet": owner_view,
    }
    if owner.her_id == her_id:
        return {**answer, "role": "virksomhet", "name": owner.organisation.name}
    for service in owner.services:
        if service.her_id == her_id:
            return {**answer, "role": "service", "name": service.name, "code": service.code}
    for unit in owner.units:
        if unit.her_id == her_id:
            return {**answer, "role": "unit", "name": unit.name}
    for person in owner.persons:
        if person.her_id == her_id:
            name = f"{person.given_name} {person.family_name}"
            return {**answer, "role": "person", "name": name, "hpr": person.hpr}
    return {**answer, "role": "unknown", "name": None}
