"""The frozen views operator queries answer with, shared by the CLI, the web UI and the REST API.

A view never carries a full person number or a name: the patient shows masked (``patient_masked``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from edi_gateway.errors import Problem


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
class ReplyView:
    """A document the receiver sent back on this message's thread (ConversationRef to it).

    Its content holds patient data and goes to the EPR on ``edi.inbound``; the page shows what it is.

    Attributes:
        msg_id: the reply's own MsgId.
        sender_her_id: who sent it (verified against the register's certificate).
        msg_type: its ``MsgInfo/Type``.
        received_at: when we received it.
        apprec_status: our AppRec's status (kodeverk 8258), sent once.
        tema: the first Notat's Tema, when it has one.
    """

    msg_id: str
    sender_her_id: int
    msg_type: str
    received_at: datetime
    apprec_status: int
    tema: str | None


@dataclass(frozen=True)
class RoutingView:
    """How routing chose a kommune message's service, as recorded when the message was built.

    Attributes:
        service_code: the kodeverk 8663 code of the service chosen (``KD0501`` for a tjenestekontor).
        service_name: the service as the register named it.
        reason: why, in plain language (e.g. ``no tjenestekontor (KD0501) registered; ...``).
        fallback: whether a less preferred service was chosen.
        preference: the preference in force, most preferred first.
        rule: ``default`` or ``kommune <kommunenummer>`` (an override).
    """

    service_code: str
    service_name: str
    reason: str
    fallback: bool
    preference: tuple[str, ...]
    rule: str


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
        routing: the recorded service choice and its reason; None for a fastlege, an EPR-built
            MsgHead, or a message stored before choices were recorded.
        transport: the transport that accepted it (``amqp``, ``nhn``), once one has.
        transport_id: the transport's own id of it (NHN's message id), if it gave one.
        transport_state: NHN's delivery state as last polled, if any.
        refusal: what the transport said when it refused the message for good (NHN's ``error``,
            ``errorCode``, ``validationErrors``, ``requestId``), if it did.
        replies: documents received on its thread (the kommune's or fastlege's answers).
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
    routing: RoutingView | None = None
    transport: str | None = None
    transport_id: str | None = None
    transport_state: str | None = None
    refusal: Mapping[str, object] | None = None
    replies: tuple[ReplyView, ...] = ()


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
