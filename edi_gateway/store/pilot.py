"""The pilot report's counts: per kommune and period, consent, kommune messages and the kommune's points.

One GROUP BY statement per measure, whatever the number of periods: each row is put in its period by
a ``CASE`` over the period bounds (computed in Python, so calendar months are Norwegian months on
both databases) in a subquery, and the outer query groups by that period's index. The hospital side
fills the consent and message counts, the kommune side (``EDI_GATEWAY_ROLE=kommune``) the pathway
points; an installation simply has zeros for the other side. ``Store`` inherits these methods.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState
from edi_gateway.localtime import LOCAL_ZONE
from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.tables import messages, pathway_points, pathways, requests

MAX_PERIODS = 600
"""The most periods one report may ask for (50 years of months): each adds a branch to the CASE."""

ACKNOWLEDGED_STATES = (MessageState.ACKED.value, MessageState.ACKED_WITH_ERRORS.value)
"""A message answered by an AppRec with status 1 (OK) or 3 (OK, feil i delmelding)."""

SETTLED_POINT_STATES = ("done", "declined", "not_reachable")
"""Pathway point states counted when the point reached them in the period (``pathway_points.state``)."""

OVERDUE_POINT_STATE = "overdue"


@dataclass(frozen=True, slots=True)
class PilotCount:
    """One kommune's counts for one period ``[period_start, period_end)``.

    Attributes:
        kommunenummer: the patient's kommune; None where the request or pathway named none.
        ja: requests received in the period with consent true.
        nei: requests received in the period with consent false.
        sent: messages to the kommune (not to a fastlege) first sent in the period.
        sent_requests: the distinct requests those messages were built from.
        acknowledged: of those messages, the ones now ``acked`` or ``acked_with_errors``.
        points_done: pathway points that became ``done`` in the period (by ``changed_at``).
        points_declined: pathway points that became ``declined`` in the period.
        points_not_reachable: pathway points that became ``not_reachable`` in the period.
        points_overdue: pathway points ``overdue`` now whose window ended before ``period_end``.
    """

    kommunenummer: str | None
    period_start: datetime
    period_end: datetime
    ja: int = 0
    nei: int = 0
    sent: int = 0
    sent_requests: int = 0
    acknowledged: int = 0
    points_done: int = 0
    points_declined: int = 0
    points_not_reachable: int = 0
    points_overdue: int = 0


Key = tuple[int, str | None]
"""(period index, kommunenummer)."""


def period_bounds(since: datetime, until: datetime, *, by_month: bool = False) -> list[datetime]:
    """Return the bounds of the periods of ``[since, until)``: ``[since, …, until]``, in UTC.

    Args:
        since: the start, included (timezone-aware).
        until: the end, excluded (timezone-aware).
        by_month: cut at every start of a calendar month in Norway (Europe/Oslo) in between, so
            the first and last periods may be part months.

    Raises:
        ValueError: a naive datetime, ``until`` before ``since``, or more than ``MAX_PERIODS`` periods.
    """
    start, end = rows.aware(since, "since"), rows.aware(until, "until")
    if end < start:
        raise ValueError("until must not be before since")
    bounds = [start]
    local = start.astimezone(LOCAL_ZONE)
    year, month = local.year, local.month
    while by_month:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        cut = datetime(year, month, 1, tzinfo=LOCAL_ZONE).astimezone(UTC)
        if cut >= end:
            break
        bounds.append(cut)
        if len(bounds) > MAX_PERIODS:
            raise ValueError(f"a report has at most {MAX_PERIODS} periods")
    bounds.append(end)
    return bounds


class PilotStore(StoreBase):
    """The pilot report's queries (hospital side and kommune side)."""

    def pilot_counts(self, *, since: datetime, until: datetime, by_month: bool = False) -> list[PilotCount]:
        """Count JA/NEI, sent and acknowledged messages and settled and overdue points per kommune and period.

        Only the (kommune, period) pairs with something to count are returned, ordered by period and
        kommunenummer (None last). ``points_overdue`` is a count of *now*: points overdue today whose
        window's last day is before the period's end (in Norway), so with ``by_month`` a point overdue
        since March counts in March and in every later month.

        Args:
            since: the start, included (timezone-aware).
            until: the end, excluded (timezone-aware).
            by_month: one period per calendar month in Norway instead of one for the whole span.

        Raises:
            ValueError: as ``period_bounds``.
            StoreUnavailable: the database cannot be reached.
        """
        bounds = period_bounds(since, until, by_month=by_month)
        found: dict[Key, dict[str, int]] = defaultdict(dict)
        with self._read() as conn:
            _count_consent(conn, bounds, found)
            _count_sent(conn, bounds, found)
            _count_settled_points(conn, bounds, found)
            _count_overdue_points(conn, bounds, found)
        return [
            PilotCount(kommunenummer, bounds[period], bounds[period + 1], **counts)
            for (period, kommunenummer), counts in sorted(found.items(), key=_order)
            if any(counts.values())
        ]


def _order(item: tuple[Key, dict[str, int]]) -> tuple[int, bool, str]:
    (period, kommunenummer), _ = item
    return period, kommunenummer is None, kommunenummer or ""


def _bucket(column: sa.ColumnElement[Any], ends: Sequence[object]) -> sa.Case[Any]:
    """The index of the first of ``ends`` the column is below (ends ascending): the row's period."""
    return sa.case(*((column < end, sa.literal(index, sa.Integer())) for index, end in enumerate(ends)))


def _in_periods(column: sa.ColumnElement[Any], bounds: Sequence[datetime]) -> sa.ColumnElement[bool]:
    return sa.and_(column >= bounds[0], column < bounds[-1])


def _count_consent(conn: sa.Connection, bounds: Sequence[datetime], found: dict[Key, dict[str, int]]) -> None:
    inner = (
        sa.select(
            _bucket(requests.c.received_at, bounds[1:]).label("period"),
            requests.c.kommunenummer,
            requests.c.consent,
        )
        .where(_in_periods(requests.c.received_at, bounds), requests.c.consent.is_not(None))
        .subquery()
    )
    query = sa.select(inner.c.period, inner.c.kommunenummer, inner.c.consent, sa.func.count().label("n"))
    query = query.group_by(inner.c.period, inner.c.kommunenummer, inner.c.consent)
    for r in conn.execute(query):
        found[(int(r.period), r.kommunenummer)]["ja" if r.consent else "nei"] = int(r.n)


def _count_sent(conn: sa.Connection, bounds: Sequence[datetime], found: dict[Key, dict[str, int]]) -> None:
    acknowledged = sa.case((messages.c.state.in_(ACKNOWLEDGED_STATES), 1), else_=0)
    inner = (
        sa.select(
            _bucket(messages.c.first_sent_at, bounds[1:]).label("period"),
            messages.c.kommunenummer,
            messages.c.request_ref,
            acknowledged.label("acknowledged"),
        )
        .where(
            _in_periods(messages.c.first_sent_at, bounds),
            messages.c.receiver_kind == ReceiverKind.KOMMUNE.value,
        )
        .subquery()
    )
    query = sa.select(
        inner.c.period,
        inner.c.kommunenummer,
        sa.func.count().label("sent"),
        sa.func.count(sa.distinct(inner.c.request_ref)).label("sent_requests"),
        sa.func.sum(inner.c.acknowledged).label("acknowledged"),
    ).group_by(inner.c.period, inner.c.kommunenummer)
    for r in conn.execute(query):
        counts = found[(int(r.period), r.kommunenummer)]
        counts.update(sent=int(r.sent), sent_requests=int(r.sent_requests), acknowledged=int(r.acknowledged))


def _count_settled_points(
    conn: sa.Connection, bounds: Sequence[datetime], found: dict[Key, dict[str, int]]
) -> None:
    inner = (
        sa.select(
            _bucket(pathway_points.c.changed_at, bounds[1:]).label("period"),
            pathways.c.kommunenummer,
            pathway_points.c.state,
        )
        .select_from(pathway_points.join(pathways, pathways.c.id == pathway_points.c.pathway_id))
        .where(
            _in_periods(pathway_points.c.changed_at, bounds),
            pathway_points.c.state.in_(SETTLED_POINT_STATES),
        )
        .subquery()
    )
    query = sa.select(inner.c.period, inner.c.kommunenummer, inner.c.state, sa.func.count().label("n"))
    query = query.group_by(inner.c.period, inner.c.kommunenummer, inner.c.state)
    for r in conn.execute(query):
        found[(int(r.period), r.kommunenummer)][f"points_{r.state}"] = int(r.n)


def _count_overdue_points(
    conn: sa.Connection, bounds: Sequence[datetime], found: dict[Key, dict[str, int]]
) -> None:
    """Overdue points by the period their window ended in, then summed up to each period's end.

    A window ended before a period's end when its last day is before the Norwegian day that end
    falls on (``due_to`` is a date, both ends of the window included). Points whose window ended
    before ``since`` land in the first period, and so count in every period.
    """
    days = [b.astimezone(LOCAL_ZONE).date() for b in bounds[1:]]
    inner = (
        sa.select(_bucket(pathway_points.c.due_to, days).label("period"), pathways.c.kommunenummer)
        .select_from(pathway_points.join(pathways, pathways.c.id == pathway_points.c.pathway_id))
        .where(pathway_points.c.state == OVERDUE_POINT_STATE, pathway_points.c.due_to < days[-1])
        .subquery()
    )
    query = sa.select(inner.c.period, inner.c.kommunenummer, sa.func.count().label("n"))
    query = query.group_by(inner.c.period, inner.c.kommunenummer)
    ended: dict[str | None, dict[int, int]] = defaultdict(dict)
    for r in conn.execute(query):
        ended[r.kommunenummer][int(r.period)] = int(r.n)
    for kommunenummer, by_period in ended.items():
        running = 0
        for period in range(len(days)):
            running += by_period.get(period, 0)
            if running:
                found[(period, kommunenummer)]["points_overdue"] = running
