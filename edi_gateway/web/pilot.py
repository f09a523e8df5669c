"""The pilot report on the report page: its section's context, and its charts as plain geometry.

Per kommune, one thin bar per figure, side by side. Like ``chart.py`` (the outcome chart), the
template (``_pilot_report.html``) draws the geometry as inline SVG: no JavaScript, no chart library,
and the layout is tested without a browser. The figures are not parts of a whole (acknowledged is a
part of sent, sent of JA), so they are grouped bars, not stacked ones. Two charts: the hospital's
figures (JA, NEI, sent, acknowledged) and the kommune's points. The CSV comes from the API
(``GET /api/report/pilot?format=csv``), which takes the page's session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import Response

from edi_gateway.localtime import LOCAL_ZONE
from edi_gateway.registers.base import Registers
from edi_gateway.services.queries.pilot import (
    BY_MONTH,
    PilotReport,
    PilotRow,
    per_kommune,
    pilot_report,
    to_csv,
)
from edi_gateway.store import Store
from edi_gateway.web.chart import LABEL_WIDTH, PLOT_WIDTH

BAR_HEIGHT = 11
BAR_GAP = 3
GROUP_GAP = 12
VALUE_ROOM = 60  # right of the longest bar, for its number

# (field of PilotRow, label, css class of the existing chart colours)
HOSPITAL_SERIES = (
    ("ja", "JA", "other"),
    ("nei", "NEI", "muted"),
    ("sent", "Sendt kommunen", "wait"),
    ("acknowledged", "Kvittert", "ok"),
)
KOMMUNE_SERIES = (
    ("points_done", "Gjennomført", "ok"),
    ("points_declined", "Takket nei", "muted"),
    ("points_not_reachable", "Ikke nådd", "warn"),
    ("points_overdue", "Forfalt", "late"),
)


@dataclass(frozen=True, slots=True)
class PilotBar:
    """One figure of one kommune: a bar from the label column, ``width`` long."""

    label: str
    value: int
    y: float
    width: float
    css: str


@dataclass(frozen=True, slots=True)
class PilotGroup:
    """One kommune: its name at ``label_y`` and its bars."""

    label: str
    label_y: float
    bars: tuple[PilotBar, ...]


@dataclass(frozen=True, slots=True)
class PilotChart:
    """A grouped bar chart: the groups, the legend (label, css class), the SVG's size and a bar's height."""

    groups: tuple[PilotGroup, ...]
    series: tuple[tuple[str, str], ...]
    width: int
    height: int
    label_width: int
    bar_height: int = BAR_HEIGHT


def pilot_section(store: Store, registers: Registers, *, since: datetime, until: datetime) -> dict[str, Any]:
    """The report page's pilot context: the report, a row per kommune, the two charts, the CSV links.

    Raises:
        ValueError: ``until`` before ``since``.
        StoreUnavailable: the database cannot be reached.
    """
    report = pilot_report(store, registers, since=since, until=until)
    rows = per_kommune(report)
    return {
        "pilot": report,
        "pilot_rows": rows,
        "pilot_charts": pilot_charts(rows),
        "pilot_csv": csv_links(since, until),
    }


def csv_response(report: PilotReport) -> Response:
    """The report as a CSV download named after its period (Norwegian dates), ``text/csv``."""
    first, last = (t.astimezone(LOCAL_ZONE) for t in (report.since, report.until))
    name = f"pilot-report-{first:%Y-%m-%d}-{last:%Y-%m-%d}" + (f"-by-{report.by}" if report.by else "")
    return Response(
        to_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def csv_links(since: datetime, until: datetime) -> dict[str, str]:
    """The API's CSV of the period, whole (``period``) and by month (``month``); times as UTC ISO 8601."""
    query = {"since": since.astimezone(UTC).isoformat(), "until": until.astimezone(UTC).isoformat()}
    return {
        "period": "/api/report/pilot?" + urlencode({**query, "format": "csv"}),
        "month": "/api/report/pilot?" + urlencode({**query, "by": BY_MONTH, "format": "csv"}),
    }


def pilot_charts(rows: Sequence[PilotRow]) -> tuple[PilotChart, PilotChart]:
    """Lay out the hospital's chart and the kommune's chart from one row per kommune.

    Args:
        rows: one row per kommune (``per_kommune`` of the report).

    Returns:
        (hospital figures, kommune points); a kommune shows in a chart when it has a figure there.
    """
    return grouped_chart(rows, HOSPITAL_SERIES), grouped_chart(rows, KOMMUNE_SERIES)


def grouped_chart(rows: Sequence[PilotRow], series: Sequence[tuple[str, str, str]]) -> PilotChart:
    """One group of bars per kommune with any of ``series`` above zero; the largest value is full width."""
    shown = [r for r in rows if any(getattr(r, field) for field, _, _ in series)]
    biggest = max((getattr(r, field) for r in shown for field, _, _ in series), default=0)
    group_height = len(series) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP
    groups = []
    for index, row in enumerate(shown):
        top = GROUP_GAP + index * (group_height + GROUP_GAP)
        bars = tuple(
            PilotBar(
                label=label,
                value=getattr(row, field),
                y=top + n * (BAR_HEIGHT + BAR_GAP),
                width=PLOT_WIDTH * getattr(row, field) / biggest,
                css=css,
            )
            for n, (field, label, css) in enumerate(series)
        )
        groups.append(PilotGroup(_label(row), top + group_height / 2 + 4, bars))
    return PilotChart(
        groups=tuple(groups),
        series=tuple((label, css) for _, label, css in series),
        width=LABEL_WIDTH + PLOT_WIDTH + VALUE_ROOM,
        height=GROUP_GAP + len(groups) * (group_height + GROUP_GAP),
        label_width=LABEL_WIDTH,
    )


def _label(row: PilotRow) -> str:
    if row.kommune_name and row.kommunenummer:
        return f"{row.kommune_name} ({row.kommunenummer})"
    return row.kommune_name or row.kommunenummer or "Ukjent kommune"
