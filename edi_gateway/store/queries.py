"""Operator read queries: message lists with filters and paging, related messages, reports, dashboard counts.

Everything an operator screen asks is one or two statements here, filters and paging pushed into SQL
so a page costs the same with ten messages stored or ten million. The store returns what the
database holds; ``services.queries`` turns it into operator views (masking the patient, naming the
kommune). ``Store`` inherits these methods.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.lookups import chunks
from edi_gateway.store.tables import apprecs, messages, receiver_health, replays, requests

EDITED_REQUEST_TYPE = "application/json"
"""The content type of an edited request kept with a replay (edits are made to the JSON request)."""

RELATED_MAX_HOPS = 20
"""How far ``related_msg_ids`` follows ConversationRef links (replays of replays) before it stops."""


@dataclass(frozen=True, slots=True)
class MessageCriteria:
    """Which messages an operator asks for; every field left None matches everything.

    Attributes:
        state: the message state.
        kommunenummer: the patient's kommune the message was routed for.
        receiver_her_id: the addressed HER-id or the receiving virksomhet's HER-id.
        samhandlingspunkt: the request's samhandlingspunkt (1, 2 or 3).
        since: messages created at or after this instant (timezone-aware).
        until: messages created before this instant (timezone-aware).
        request_id: the EPR's request_id.
    """

    state: MessageState | None = None
    kommunenummer: str | None = None
    receiver_her_id: int | None = None
    samhandlingspunkt: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageListing:
    """One message as an operator list shows it: the message, its request's keys, its last AppRec status.

    Attributes:
        request_id: the EPR's request_id; None for a request that arrived without a usable one.
        samhandlingspunkt: the request's samhandlingspunkt.
        apprec_status: kodeverk 8258 status of the last AppRec received, if any.
    """

    msg_id: str
    request_ref: str
    request_id: str | None
    state: MessageState
    receiver_kind: str
    receiver_name: str
    receiver_her_id: int
    receiver_org_her_id: int
    kommunenummer: str | None
    samhandlingspunkt: int | None
    created_at: datetime
    updated_at: datetime
    apprec_status: int | None


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    """One group of a report: how many messages or requests of a kommune and samhandlingspunkt ended so.

    Attributes:
        outcome: a message state (for routed requests' messages) or a request state (the others).
    """

    kommunenummer: str | None
    samhandlingspunkt: int | None
    outcome: str
    count: int


@dataclass(frozen=True, slots=True)
class RequestBody:
    """A stored request body with its content type (the system of record for the patient's id)."""

    content_type: str
    body: bytes

    def __repr__(self) -> str:
        # The body holds personal data; a repr in a traceback or log must not show it.
        return f"RequestBody(content_type={self.content_type!r}, body=<{len(self.body)} bytes>)"


class QueryStore(StoreBase):
    """Read-side queries for operators (CLI, web UI, REST API)."""

    # -- message lists ---------------------------------------------------------------------------

    def message_page(
        self, criteria: MessageCriteria, *, limit: int, offset: int = 0, oldest_first: bool = False
    ) -> tuple[list[MessageListing], int]:
        """Return one page of the messages that match, and how many match in all.

        Args:
            criteria: the filters.
            limit: at most this many on the page (0 gives only the total).
            offset: skip this many first.
            oldest_first: order by creation ascending instead of newest first.

        Raises:
            ValueError: ``limit`` or ``offset`` is negative, or a datetime is naive.
            StoreUnavailable: the database cannot be reached.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where = _criteria_where(criteria)
        direction = sa.asc if oldest_first else sa.desc
        page = (
            _listing_select()
            .where(*where)
            .order_by(direction(messages.c.created_at), direction(messages.c.msg_id))
            .limit(limit)
            .offset(offset)
        )
        # The count joins the requests only when a filter is on them: most lists filter messages only.
        counted = _messages_with_request() if _needs_request(criteria) else messages
        count = sa.select(sa.func.count()).select_from(counted).where(*where)
        with self._read() as conn:
            total = int(conn.execute(count).scalar_one())
            found = [_listing(r) for r in conn.execute(page)] if limit else []
        return found, total

    def message_listings(self, msg_ids: Collection[str]) -> list[MessageListing]:
        """Return the listing of each stored message among ``msg_ids``, oldest first; one query per 500 ids."""
        found: list[MessageListing] = []
        with self._read() as conn:
            for chunk in chunks(sorted(set(msg_ids))):
                query = _listing_select().where(messages.c.msg_id.in_(chunk))
                found.extend(_listing(r) for r in conn.execute(query))
        return sorted(found, key=lambda m: (m.created_at, m.msg_id))

    def related_msg_ids(self, msg_id: str) -> list[str]:
        """Return the other messages of a message's request and its replays, linked by ConversationRef.

        ConversationRef links are followed both ways (the message this one continues, the messages
        that continue it), and from each of those their requests' messages, up to
        ``RELATED_MAX_HOPS`` rounds. The message itself is not listed; an unknown msg_id has none.
        """
        seen: set[str] = {msg_id}
        frontier: set[str] = {msg_id}
        with self._read() as conn:
            for _ in range(RELATED_MAX_HOPS):
                found = _linked(conn, frontier) - seen
                if not found:
                    break
                seen |= found
                frontier = found
        return sorted(seen - {msg_id})

    def signed_xml_of(self, msg_id: str) -> bytes | None:
        """Return the signed MsgHead bytes stored for a message, or None when it is unknown."""
        query = sa.select(messages.c.signed_xml).where(messages.c.msg_id == msg_id)
        with self._read() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return bytes(value) if value is not None else None

    def patient_sources(self, msg_ids: Collection[str]) -> dict[str, RequestBody]:
        """Return, per stored message among ``msg_ids``, the request body its patient was taken from.

        That is the request's body, or for a message an operator made by editing the request, the
        edited body kept with the replay. One query per 500 ids; the caller reads the patient from it.
        """
        edited = replays.c.request_body
        query = sa.select(messages.c.msg_id, requests.c.content_type, requests.c.body, edited).select_from(
            _messages_with_request().outerjoin(replays, replays.c.new_msg_id == messages.c.msg_id)
        )
        found: dict[str, RequestBody] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(msg_ids))):
                for r in conn.execute(query.where(messages.c.msg_id.in_(chunk))):
                    source = (
                        RequestBody(EDITED_REQUEST_TYPE, bytes(r.request_body))
                        if r.request_body is not None
                        else RequestBody(r.content_type, bytes(r.body))
                    )
                    found[r.msg_id] = source
        return found

    # -- reports ---------------------------------------------------------------------------------

    def outcome_counts(self, *, since: datetime, until: datetime) -> list[OutcomeCount]:
        """Count what became of the requests and messages of a period, grouped in SQL.

        Messages created in ``[since, until)`` count once each under their state, grouped by their
        kommune and their request's samhandlingspunkt. Requests received in the period that built no
        message (``rejected``, ``no_consent``, ``failed``, or still ``received``) count once each under
        the request state, grouped by the request's kommune (None when it never got that far).
        """
        start, end = _period(since, until)
        by_message = (
            sa.select(
                messages.c.kommunenummer,
                requests.c.samhandlingspunkt,
                messages.c.state,
                sa.func.count().label("n"),
            )
            .select_from(_messages_with_request())
            .where(messages.c.created_at >= start, messages.c.created_at < end)
            .group_by(messages.c.kommunenummer, requests.c.samhandlingspunkt, messages.c.state)
        )
        by_request = (
            sa.select(
                requests.c.kommunenummer,
                requests.c.samhandlingspunkt,
                requests.c.state,
                sa.func.count().label("n"),
            )
            .where(
                requests.c.received_at >= start,
                requests.c.received_at < end,
                requests.c.state != RequestState.ROUTED.value,
            )
            .group_by(requests.c.kommunenummer, requests.c.samhandlingspunkt, requests.c.state)
        )
        with self._read() as conn:
            found = [
                OutcomeCount(r[0], r[1], r[2], int(r.n))
                for q in (by_message, by_request)
                for r in conn.execute(q)
            ]
        return found

    def consent_counts(self, *, since: datetime, until: datetime) -> dict[bool | None, int]:
        """Return how many requests received in ``[since, until)`` had consent true, false, or unreadable (None)."""
        start, end = _period(since, until)
        query = (
            sa.select(requests.c.consent, sa.func.count().label("n"))
            .where(requests.c.received_at >= start, requests.c.received_at < end)
            .group_by(requests.c.consent)
        )
        with self._read() as conn:
            return {r.consent: int(r.n) for r in conn.execute(query)}

    def period_totals(self, *, since: datetime, until: datetime) -> tuple[int, int]:
        """Return (requests received, messages created) in ``[since, until)``."""
        start, end = _period(since, until)
        count_requests = sa.select(sa.func.count()).where(
            requests.c.received_at >= start, requests.c.received_at < end
        )
        count_messages = sa.select(sa.func.count()).where(
            messages.c.created_at >= start, messages.c.created_at < end
        )
        with self._read() as conn:
            return int(conn.execute(count_requests).scalar_one()), int(
                conn.execute(count_messages).scalar_one()
            )

    def apprec_delays(self, *, since: datetime, until: datetime) -> list[float]:
        """Return, for each message created in ``[since, until)`` that was sent and answered, the seconds
        from its first send to its first AppRec (one compact row per message; the median is the caller's).
        """
        start, end = _period(since, until)
        first_apprec = sa.func.min(apprecs.c.received_at).label("first_apprec")
        query = (
            sa.select(messages.c.first_sent_at, first_apprec)
            .select_from(messages.join(apprecs, apprecs.c.msg_id == messages.c.msg_id))
            .where(
                messages.c.created_at >= start,
                messages.c.created_at < end,
                messages.c.first_sent_at.is_not(None),
            )
            .group_by(messages.c.msg_id, messages.c.first_sent_at)
        )
        with self._read() as conn:
            return [(r.first_apprec - r.first_sent_at).total_seconds() for r in conn.execute(query)]

    # -- dashboard -------------------------------------------------------------------------------

    def message_state_counts(self) -> dict[str, int]:
        """Return how many messages are in each state (states without messages are absent)."""
        query = sa.select(messages.c.state, sa.func.count().label("n")).group_by(messages.c.state)
        with self._read() as conn:
            return {r.state: int(r.n) for r in conn.execute(query)}

    def quiet_receiver_health(self) -> list[tuple[int, int]]:
        """Return (HER-id, overdue messages in a row) of every receiver marked quiet, longest run first."""
        query = (
            sa.select(receiver_health.c.her_id, receiver_health.c.consecutive_overdue)
            .where(receiver_health.c.quiet.is_(True))
            .order_by(receiver_health.c.consecutive_overdue.desc(), receiver_health.c.her_id)
        )
        with self._read() as conn:
            return [(int(r.her_id), int(r.consecutive_overdue)) for r in conn.execute(query)]

    def activity_since(self, since: datetime) -> dict[str, int]:
        """Return how many requests arrived, messages were built and messages were acked at or after ``since``.

        A message counts as acked when it is in ``acked`` now and its last change (the AppRec) is
        in the period; the (state, updated_at) index answers it.
        """
        start = rows.aware(since, "since")
        queries = {
            "requests": sa.select(sa.func.count()).where(requests.c.received_at >= start),
            "messages": sa.select(sa.func.count()).where(messages.c.created_at >= start),
            "acked": sa.select(sa.func.count()).where(
                messages.c.state == MessageState.ACKED.value, messages.c.updated_at >= start
            ),
        }
        with self._read() as conn:
            return {name: int(conn.execute(q).scalar_one()) for name, q in queries.items()}


def _messages_with_request() -> sa.Join:
    return messages.join(requests, requests.c.ref == messages.c.request_ref)


def _last_apprec_status() -> sa.ScalarSelect[Any]:
    """The status of a message's most recent AppRec, as a correlated subquery (evaluated per page row)."""
    return (
        sa.select(apprecs.c.status)
        .where(apprecs.c.msg_id == messages.c.msg_id)
        .order_by(apprecs.c.received_at.desc(), apprecs.c.id.desc())
        .limit(1)
        .correlate(messages)
        .scalar_subquery()
    )


def _listing_select() -> sa.Select[Any]:
    return sa.select(
        messages.c.msg_id,
        messages.c.request_ref,
        requests.c.request_id,
        messages.c.state,
        messages.c.receiver_kind,
        messages.c.receiver_name,
        messages.c.receiver_her_id,
        messages.c.receiver_org_her_id,
        messages.c.kommunenummer,
        requests.c.samhandlingspunkt,
        messages.c.created_at,
        messages.c.updated_at,
        _last_apprec_status().label("apprec_status"),
    ).select_from(_messages_with_request())


def _listing(row: sa.Row[Any]) -> MessageListing:
    return MessageListing(
        msg_id=row.msg_id,
        request_ref=row.request_ref,
        request_id=row.request_id,
        state=MessageState(row.state),
        receiver_kind=row.receiver_kind,
        receiver_name=row.receiver_name,
        receiver_her_id=int(row.receiver_her_id),
        receiver_org_her_id=int(row.receiver_org_her_id),
        kommunenummer=row.kommunenummer,
        samhandlingspunkt=row.samhandlingspunkt,
        created_at=row.created_at,
        updated_at=row.updated_at,
        apprec_status=int(row.apprec_status) if row.apprec_status is not None else None,
    )


def _criteria_where(c: MessageCriteria) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if c.state is not None:
        where.append(messages.c.state == MessageState(c.state).value)
    if c.kommunenummer is not None:
        where.append(messages.c.kommunenummer == c.kommunenummer)
    if c.receiver_her_id is not None:
        # An operator knows a kommune by its own HER-id or by the service's; either finds its messages.
        where.append(
            sa.or_(
                messages.c.receiver_her_id == c.receiver_her_id,
                messages.c.receiver_org_her_id == c.receiver_her_id,
            )
        )
    if c.samhandlingspunkt is not None:
        where.append(requests.c.samhandlingspunkt == c.samhandlingspunkt)
    if c.since is not None:
        where.append(messages.c.created_at >= rows.aware(c.since, "since"))
    if c.until is not None:
        where.append(messages.c.created_at < rows.aware(c.until, "until"))
    if c.request_id is not None:
        where.append(requests.c.request_id == c.request_id)
    return where


def _needs_request(c: MessageCriteria) -> bool:
    return c.samhandlingspunkt is not None or c.request_id is not None


def _linked(conn: sa.Connection, msg_ids: Collection[str]) -> set[str]:
    """Return the messages one step away from ``msg_ids``: same request, or a ConversationRef either way."""
    found: set[str] = set()
    for chunk in chunks(sorted(msg_ids)):
        these = sa.select(messages.c.request_ref, messages.c.conversation_ref).where(
            messages.c.msg_id.in_(chunk)
        )
        refs: list[Sequence[Any]] = list(conn.execute(these))
        request_refs = {r[0] for r in refs}
        parents = {r[1] for r in refs if r[1] is not None}
        query = sa.select(messages.c.msg_id).where(
            sa.or_(
                messages.c.request_ref.in_(request_refs),
                messages.c.conversation_ref.in_(chunk),
                messages.c.msg_id.in_(parents),
            )
        )
        found.update(conn.execute(query).scalars())
    return found


def _period(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    start, end = rows.aware(since, "since"), rows.aware(until, "until")
    if end < start:
        raise ValueError("until must not be before since")
    return start, end
