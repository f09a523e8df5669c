"""The web layer's pure parts: form filters, the report chart's geometry, the session secret."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.services.queries import ReportRow
from edi_gateway.web.auth import SECRET_FILE, session_secret
from edi_gateway.web.chart import LABEL_WIDTH, PLOT_WIDTH, report_chart
from edi_gateway.web.filters import BadFilter, form_filter
from edi_gateway.web.pages import safe_next


def test_empty_form_fields_mean_no_filter() -> None:
    """A form submitted with every field empty filters nothing and pages from the start."""
    f = form_filter({"state": "", "kommunenummer": " ", "receiver_her_id": "", "since": "", "limit": ""})
    assert (f.state, f.kommunenummer, f.receiver_her_id, f.since, f.limit, f.offset) == (
        None,
        None,
        None,
        None,
        50,
        0,
    )


def test_form_times_are_norwegian_time() -> None:
    """A time typed without an offset is read as Norwegian time (summer: UTC+2)."""
    f = form_filter({"since": "2025-06-01T10:00", "until": "2025-01-01"})
    assert f.since == datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    assert f.until == datetime(2024, 12, 31, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"state": "lost"}, "state"),
        ({"receiver_her_id": "12a"}, "receiver_her_id"),
        ({"since": "May"}, "since"),
    ],
)
def test_unreadable_form_values_name_their_field(values: dict[str, str], field: str) -> None:
    """A value that cannot be read is refused with a message that starts with the field's name."""
    with pytest.raises(BadFilter, match=f"^{field}:"):
        form_filter(values)


def test_page_size_is_bounded() -> None:
    """A page never asks for more than 500 rows, nor for fewer than one, nor a negative offset."""
    assert form_filter({"limit": "100000", "offset": "-5"}).limit == 500
    assert form_filter({"limit": "-1"}).limit == 1
    assert form_filter({"offset": "-5"}).offset == 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/messages?state=acked", "/messages?state=acked"),
        ("//evil.example", "/"),
        ("https://evil", "/"),
        (None, "/"),
    ],
)
def test_login_only_redirects_within_the_site(target: str | None, expected: str) -> None:
    """After login the browser goes to a path on this site, never to another host."""
    assert safe_next(target) == expected


def _row(kommune: str, outcome: str, count: int) -> ReportRow:
    return ReportRow(kommune, f"Kommune {kommune}", 1, outcome, count)


def test_chart_has_one_bar_per_kommune_scaled_to_the_largest() -> None:
    """Each kommune gets one bar; the largest fills the plot; segments follow the legend's order."""
    chart = report_chart(
        [_row("0805", "acked", 6), _row("0805", "rejected_by_receiver", 2), _row("3813", "acked", 4)]
    )
    assert [b.label for b in chart.bars] == ["Kommune 0805 (0805)", "Kommune 3813 (3813)"]
    big, small = chart.bars
    assert big.total == 8 and sum(s.width for s in big.segments) == pytest.approx(PLOT_WIDTH)
    assert sum(s.width for s in small.segments) == pytest.approx(PLOT_WIDTH / 2)
    assert [s.outcome for s in big.segments] == ["acked", "rejected_by_receiver"]
    assert chart.outcomes == (("acked", "ok"), ("rejected_by_receiver", "bad"))


def test_chart_without_rows_has_no_bars() -> None:
    """An empty period gives an empty chart, not an error."""
    assert report_chart([]).bars == ()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["0805", "3813", None]),
            st.sampled_from(["acked", "overdue", "odd"]),
            st.integers(1, 10**6),
        ),
        max_size=30,
    )
)
def test_chart_segments_stay_inside_the_plot(rows: list[tuple[str | None, str, int]]) -> None:
    """Whatever the counts, segments are contiguous, positive and never leave the plot area."""
    chart = report_chart([ReportRow(k, None, 2, o, n) for k, o, n in rows])
    for bar in chart.bars:
        x = float(LABEL_WIDTH)
        for segment in bar.segments:
            assert segment.x == pytest.approx(x) and segment.width > 0
            x += segment.width
        assert x <= LABEL_WIDTH + PLOT_WIDTH + 1e-6


def test_session_secret_is_made_once_and_private(tmp_path: Path) -> None:
    """The secret is created on first use, readable by the owner only, and the same on every later call."""
    first = session_secret(tmp_path / "home")
    assert len(first) >= 40 and session_secret(tmp_path / "home") == first
    mode = stat.S_IMODE((tmp_path / "home" / SECRET_FILE).stat().st_mode)
    assert mode == 0o600
