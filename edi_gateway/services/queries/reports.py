"""Reports on a period and the dashboard's figures: outcomes, consent, time to AppRec, what is overdue."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

from edi_gateway.domain.states import MessageState
from edi_gateway.registers.base import Registers
from edi_gateway.services.queries.messages import message_rows
from edi_gateway.services.queries.views import MessageRow, Report, ReportRow
from edi_gateway.store import Store
from edi_gateway.store.queries import MessageCriteria, OutcomeCount


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
    return list(message_rows(store, listings))


def quiet_receivers(store: Store) -> list[tuple[int, int]]:
    """Return (HER-id, overdue messages in a row) of each receiver currently marked quiet."""
    return store.quiet_receiver_health()


def throughput_last_hour(store: Store, now: datetime) -> dict[str, int]:
    """Return ``{'requests', 'messages', 'acked'}`` counts for the hour before ``now`` (timezone-aware)."""
    return store.activity_since(now - timedelta(hours=1))


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
