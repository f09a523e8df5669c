"""``edi-gateway report --pilot``: the pilot report as a terminal table, CSV or JSON.

Per kommune (and per calendar month with ``--by month``): JA, NEI, behovskartlegginger sent to the
kommune and acknowledged, and the kommune's samhandlingspunkter done, declined, not reachable and
overdue. CSV and JSON are the ones ``GET /api/report/pilot`` gives, for spreadsheets and scripts.
"""

from __future__ import annotations

import json
from datetime import datetime, time
from enum import StrEnum

import typer

from edi_gateway.cli_common import gateway_session
from edi_gateway.localtime import LOCAL_ZONE
from edi_gateway.services.queries.pilot import PilotReport, PilotRow, pilot_report, to_csv, to_json


class ReportFormat(StrEnum):
    """How ``report`` prints: a table for a terminal, CSV (``--pilot`` only) or JSON."""

    TEXT = "text"
    CSV = "csv"
    JSON = "json"


class ReportBy(StrEnum):
    """How the pilot report splits the period."""

    MONTH = "month"


_HEADERS = (
    "KOMMUNE",
    "NAME",
    "FROM",
    "UNTIL",
    "JA",
    "NEI",
    "SENT",
    "ACKED",
    "DONE",
    "DECLINED",
    "NOT_REACHABLE",
    "OVERDUE",
)


def pilot_command(since: datetime, until: datetime, *, fmt: ReportFormat, by: ReportBy | None) -> None:
    """Print the pilot report of ``[since, until)`` in ``fmt``, per kommune or per kommune and month."""
    with gateway_session() as gateway:
        found = pilot_report(
            gateway.store, gateway.registers, since=since, until=until, by=by.value if by else None
        )
    if fmt is ReportFormat.CSV:
        typer.echo(to_csv(found), nl=False)
    elif fmt is ReportFormat.JSON:
        typer.echo(json.dumps(to_json(found), ensure_ascii=False, indent=2))
    else:
        typer.echo(format_pilot(found))


def format_pilot(r: PilotReport) -> str:
    """Return the pilot report as text for a terminal: the totals, then a row per kommune (and month)."""
    from edi_gateway.cli_ops import table  # cli_ops imports this module: import it when used

    t = r.totals
    lines = [
        f"period    {_when(r.since)} - {_when(r.until)} (until excluded)",
        f"consent   JA {t.ja}, NEI {t.nei}",
        f"kommune   sent {t.sent} ({t.sent_requests} requests), acknowledged {t.acknowledged}",
        f"points    done {t.points_done}, declined {t.points_declined}, "
        f"not reachable {t.points_not_reachable}, overdue {t.points_overdue}",
        "",
        table(_HEADERS, [_cells(row) for row in r.rows]) if r.rows else "nothing in this period",
    ]
    return "\n".join(lines)


def _cells(row: PilotRow) -> list[object]:
    return [
        row.kommunenummer,
        row.kommune_name,
        _when(row.period_start),
        _when(row.period_end),
        row.ja,
        row.nei,
        row.sent,
        row.acknowledged,
        row.points_done,
        row.points_declined,
        row.points_not_reachable,
        row.points_overdue,
    ]


def _when(moment: datetime) -> str:
    """A bound in Norwegian time: the date alone at midnight (month starts), else to the minute."""
    local = moment.astimezone(LOCAL_ZONE)
    return local.strftime("%Y-%m-%d" if local.time() == time() else "%Y-%m-%d %H:%M")
