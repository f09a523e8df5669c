"""The pilot report: per kommune and period, JA, NEI, sent, acknowledged, and the kommune's follow-up.

For the pilot of "pakkeforløp hjem": how many patients said yes (JA) and no (NEI), how many
behovskartlegginger went to the kommune and how many it acknowledged (AppRec OK or OK with errors),
and, on the kommune side, how many samhandlingspunkter were done, declined or not reachable, and how
many are overdue. Counts only: no patient data is in it. The same report goes out as text (CLI),
CSV and JSON (CLI and API) and as a chart (web page); SQL is in ``store/pilot.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edi_gateway.localtime import LOCAL_ZONE
from edi_gateway.registers.base import Registers
from edi_gateway.store import Store
from edi_gateway.store.pilot import PilotCount

BY_MONTH = "month"
"""The one grouping besides the whole period: a row per kommune per calendar month (Norwegian time)."""

COUNT_FIELDS = (
    "ja",
    "nei",
    "sent",
    "sent_requests",
    "acknowledged",
    "points_done",
    "points_declined",
    "points_not_reachable",
    "points_overdue",
)
"""The counted columns, in the order the CSV and the text table show them."""

CSV_HEADER = ("kommunenummer", "kommune", "period_start", "period_end", *COUNT_FIELDS)


@dataclass(frozen=True)
class PilotTotals:
    """The report's counts summed over every kommune, for the whole period.

    ``points_overdue`` is the number overdue at the period's end (not a sum over months, which
    would count a point once per month it stayed overdue).
    """

    ja: int = 0
    nei: int = 0
    sent: int = 0
    sent_requests: int = 0
    acknowledged: int = 0
    points_done: int = 0
    points_declined: int = 0
    points_not_reachable: int = 0
    points_overdue: int = 0


@dataclass(frozen=True)
class PilotRow:
    """One kommune in one period ``[period_start, period_end)``.

    Attributes:
        kommunenummer: the patient's kommune; None where the request or pathway named none.
        kommune_name: the kommune's name in the Adresseregister, if it is there.
        ja: requests received with consent true (the patient said yes).
        nei: requests received with consent false (recorded; nothing was sent).
        sent: behovskartlegginger first sent to the kommune (fastlege copies not counted).
        sent_requests: the distinct requests those messages came from.
        acknowledged: of those sent, the ones the kommune answered with AppRec OK or OK with errors.
        points_done: samhandlingspunkter done in the period (kommune side).
        points_declined: samhandlingspunkter the patient declined in the period.
        points_not_reachable: samhandlingspunkter where the patient could not be reached.
        points_overdue: samhandlingspunkter overdue now whose window ended before ``period_end``.
    """

    kommunenummer: str | None
    kommune_name: str | None
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


@dataclass(frozen=True)
class PilotReport:
    """The pilot report of ``[since, until)``.

    Attributes:
        by: None (one row per kommune for the whole period) or ``month``.
        rows: ordered by period, then kommunenummer (unknown kommune last); only kommuner with
            something to count.
        totals: every kommune together, for the whole period.
    """

    since: datetime
    until: datetime
    by: str | None
    rows: tuple[PilotRow, ...]
    totals: PilotTotals


def pilot_report(
    store: Store, registers: Registers, *, since: datetime, until: datetime, by: str | None = None
) -> PilotReport:
    """Report the pilot's figures per kommune for ``[since, until)``, or per kommune and month.

    Args:
        store: the store.
        registers: the registers (the Adresseregister names the kommuner).
        since: the start, included (timezone-aware).
        until: the end, excluded (timezone-aware).
        by: None, or ``"month"`` for a row per calendar month in Norway (part months at the ends).

    Raises:
        ValueError: ``by`` is not ``month``, a naive datetime, or ``until`` before ``since``.
        StoreUnavailable: the database cannot be reached.
    """
    if by not in (None, BY_MONTH):
        raise ValueError(f"by: expected {BY_MONTH!r} or nothing, not {by!r}")
    counts = store.pilot_counts(since=since, until=until, by_month=by == BY_MONTH)
    names = _kommune_names(registers, {c.kommunenummer for c in counts})
    rows = tuple(_row(c, names.get(c.kommunenummer)) for c in counts)
    return PilotReport(since=since, until=until, by=by, rows=rows, totals=_totals(rows, until))


def per_kommune(report: PilotReport) -> tuple[PilotRow, ...]:
    """Return one row per kommune for the whole period (months folded together), by kommunenummer.

    Counts are summed; ``points_overdue`` is taken from the last period, as in the totals.
    """
    grouped: dict[str | None, list[PilotRow]] = {}
    for row in report.rows:
        grouped.setdefault(row.kommunenummer, []).append(row)
    folded = [
        PilotRow(
            nr,
            rows[0].kommune_name,
            report.since,
            report.until,
            **dataclasses.asdict(_totals(rows, report.until)),
        )
        for nr, rows in grouped.items()
    ]
    return tuple(sorted(folded, key=lambda r: (r.kommunenummer is None, r.kommunenummer or "")))


def to_csv(report: PilotReport) -> str:
    """Return the report as CSV (RFC 4180: ``,`` between fields, CRLF line ends): a header, a line per row.

    Period bounds are ISO 8601 in Norwegian time with the offset (``2024-11-01T00:00:00+01:00``).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in report.rows:
        writer.writerow(
            [
                row.kommunenummer or "",
                row.kommune_name or "",
                _local_iso(row.period_start),
                _local_iso(row.period_end),
                *(getattr(row, f) for f in COUNT_FIELDS),
            ]
        )
    return out.getvalue()


def to_json(report: PilotReport) -> dict[str, Any]:
    """Return the report as plain JSON types: period, grouping, rows and totals.

    Times are ISO 8601 in Norwegian time with the offset, as in the CSV.
    """
    return {
        "since": _local_iso(report.since),
        "until": _local_iso(report.until),
        "by": report.by,
        "rows": [
            {
                "kommunenummer": r.kommunenummer,
                "kommune_name": r.kommune_name,
                "period_start": _local_iso(r.period_start),
                "period_end": _local_iso(r.period_end),
                **{f: getattr(r, f) for f in COUNT_FIELDS},
            }
            for r in report.rows
        ],
        "totals": dataclasses.asdict(report.totals),
    }


def _kommune_names(registers: Registers, numbers: Iterable[str | None]) -> dict[str | None, str | None]:
    names: dict[str | None, str | None] = {}
    for nr in numbers:
        if nr is not None:
            kommune = registers.address.kommune(nr)
            names[nr] = kommune.organisation.name if kommune is not None else None
    return names


def _row(count: PilotCount, name: str | None) -> PilotRow:
    return PilotRow(
        count.kommunenummer,
        name,
        count.period_start,
        count.period_end,
        **{f: getattr(count, f) for f in COUNT_FIELDS},
    )


def _totals(rows: Sequence[PilotRow], until: datetime) -> PilotTotals:
    """Sum the counts; overdue from the rows of the last period only (it is a count of "by then")."""
    summed = {f: sum(getattr(r, f) for r in rows) for f in COUNT_FIELDS}
    summed["points_overdue"] = sum(r.points_overdue for r in rows if r.period_end == until)
    return PilotTotals(**summed)


def _local_iso(moment: datetime) -> str:
    return moment.astimezone(LOCAL_ZONE).isoformat()
