"""The report chart as plain geometry: one stacked bar per kommune, one segment per outcome.

The template draws it as inline SVG, so the page needs no JavaScript and no chart library; this
module only does the arithmetic and is tested without a browser.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from edi_gateway.services.queries import ReportRow

BAR_HEIGHT = 22
BAR_GAP = 8
LABEL_WIDTH = 230  # fits "Midt-Telemark kommune (4020)" and the longest names elsewhere
PLOT_WIDTH = 520
# Known outcomes get their own colour (CSS class); anything else shares "other".
OUTCOME_CLASSES = {
    "acked": "ok",
    "acked_with_errors": "warn",
    "rejected_by_receiver": "bad",
    "overdue": "late",
    "failed": "bad",
    "sent": "wait",
    "queued": "wait",
    "rejected": "invalid",  # the request itself was refused: not the receiver's doing
    "no_consent": "muted",
}


@dataclass(frozen=True, slots=True)
class Segment:
    """One outcome's part of a bar."""

    outcome: str
    count: int
    x: float
    width: float
    css: str


@dataclass(frozen=True, slots=True)
class Bar:
    """One kommune's bar."""

    label: str
    total: int
    y: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """A whole chart: bars, the outcomes in legend order, and the SVG's size."""

    bars: tuple[Bar, ...]
    outcomes: tuple[tuple[str, str], ...]  # (outcome, css class)
    width: int
    height: int
    label_width: int


def report_chart(rows: Iterable[ReportRow]) -> Chart:
    """Lay out one bar per kommune (all samhandlingspunkter together), longest bar = full width.

    Args:
        rows: the report's rows.

    Returns:
        The chart; with no rows, a chart without bars.
    """
    per_kommune: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        per_kommune[_label(row)][row.outcome] += row.count
    outcomes = sorted({o for counts in per_kommune.values() for o in counts}, key=_outcome_order)
    biggest = max((sum(c.values()) for c in per_kommune.values()), default=0)
    bars = tuple(
        _bar(label, counts, index, outcomes, biggest)
        for index, (label, counts) in enumerate(sorted(per_kommune.items()))
    )
    height = len(bars) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    return Chart(
        bars=bars,
        outcomes=tuple((o, OUTCOME_CLASSES.get(o, "other")) for o in outcomes),
        width=LABEL_WIDTH + PLOT_WIDTH + 60,
        height=height,
        label_width=LABEL_WIDTH,
    )


def _bar(label: str, counts: dict[str, int], index: int, outcomes: list[str], biggest: int) -> Bar:
    x = float(LABEL_WIDTH)
    segments = []
    for outcome in outcomes:
        count = counts.get(outcome, 0)
        if count == 0:
            continue
        width = PLOT_WIDTH * count / biggest
        segments.append(Segment(outcome, count, x, width, OUTCOME_CLASSES.get(outcome, "other")))
        x += width
    y = BAR_GAP + index * (BAR_HEIGHT + BAR_GAP)
    return Bar(label=label, total=sum(counts.values()), y=y, segments=tuple(segments))


def _label(row: ReportRow) -> str:
    if row.kommune_name and row.kommunenummer:
        return f"{row.kommune_name} ({row.kommunenummer})"
    return row.kommune_name or row.kommunenummer or "Ukjent kommune"


def _outcome_order(outcome: str) -> tuple[int, str]:
    known = list(OUTCOME_CLASSES)
    return (known.index(outcome) if outcome in known else len(known), outcome)
