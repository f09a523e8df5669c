"""The pilot report on the web: ``GET /api/report/pilot`` (JSON, CSV), the report page's charts, the layout."""

from __future__ import annotations

import csv
import html
import io
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from edi_gateway.services.access import Role, create_operator, create_token
from edi_gateway.services.queries.pilot import CSV_HEADER, PilotRow
from edi_gateway.settings import Settings
from edi_gateway.store import Store
from edi_gateway.web import create_app
from edi_gateway.web.chart import LABEL_WIDTH, PLOT_WIDTH
from edi_gateway.web.pilot import HOSPITAL_SERIES, KOMMUNE_SERIES, grouped_chart, pilot_charts
from tests.store.conftest import Builder, FakeClock
from tests.store.test_pilot import SINCE, UNTIL, Pilot, fill_pilot
from tests.web.conftest import PASSWORD
from tests.web.test_pages import login

PERIOD = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


@pytest.fixture
def client(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[tuple[TestClient, str]]:
    """The web app over the pilot history (SQLite and PostgreSQL), with a viewer account and its token."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    clock = FakeClock()
    engine = sa.create_engine(database_url)
    with Store.connect(database_url, clock=clock) as store:
        store.migrate()
        fill_pilot(Pilot(store, Builder(clock), clock, engine))
    engine.dispose()
    with Store.connect(database_url) as store:  # the real clock: a token made in 2024 would have expired
        create_operator(store, Role.VIEWER.value, PASSWORD, Role.VIEWER, display_name="Test viewer")
        token = create_token(store, Role.VIEWER.value, label="tests")
    settings = Settings(home=home, database_url=database_url, test_mode=True)
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c, token


def test_the_api_answers_the_report_as_json(client: tuple[TestClient, str]) -> None:
    """A viewer gets the pilot report as JSON, a row per kommune and month with ``by=month``."""
    c, token = client
    auth = {"Authorization": f"Bearer {token}"}
    whole = c.get("/api/report/pilot", params=PERIOD, headers=auth)
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    found = whole.json()
    assert (found["since"], found["until"], found["by"]) == (SINCE.isoformat(), UNTIL.isoformat(), None)
    assert [(r["kommunenummer"], r["ja"], r["nei"], r["sent"], r["acknowledged"]) for r in found["rows"]] == [
        ("4001", 3, 1, 3, 2),
        ("4003", 0, 1, 0, 0),
        (None, 0, 1, 0, 0),
    ]
    monthly = c.get("/api/report/pilot", params={**PERIOD, "by": "month"}, headers=auth).json()
    assert len(monthly["rows"]) == 7 and monthly["totals"] == found["totals"]


def test_the_api_gives_csv_as_a_download(client: tuple[TestClient, str]) -> None:
    """format=csv answers text/csv with an attachment named after the period, a header and a line per row."""
    c, token = client
    response = c.get(
        "/api/report/pilot",
        params={**PERIOD, "by": "month", "format": "csv"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        response.headers["content-disposition"]
        == 'attachment; filename="pilot-report-2024-10-15-2024-12-10-by-month.csv"'
    )
    assert response.text.startswith(",".join(CSV_HEADER) + "\r\n")
    assert len(list(csv.DictReader(io.StringIO(response.text)))) == 7


def test_the_api_needs_a_login_and_sound_parameters(client: tuple[TestClient, str]) -> None:
    """Anonymous callers get 401; an unknown grouping or format 422; a reversed period 400."""
    c, token = client
    anonymous = c.get("/api/report/pilot", params=PERIOD)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    auth = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/report/pilot", params={**PERIOD, "by": "week"}, headers=auth).status_code == 422
    assert c.get("/api/report/pilot", params={**PERIOD, "format": "xml"}, headers=auth).status_code == 422
    reversed_period = {"since": PERIOD["until"], "until": PERIOD["since"]}
    assert c.get("/api/report/pilot", params=reversed_period, headers=auth).status_code == 400
    assert c.get("/api/report/pilot", headers=auth).status_code == 200  # default: the last 30 days


def test_the_report_page_shows_the_pilot_charts_and_its_csv_link_works(
    client: tuple[TestClient, str],
) -> None:
    """The report page draws both pilot charts and links the CSV, which the page's session can fetch."""
    c, _ = client
    login(c, Role.VIEWER)
    page = c.get("/report", params={"since": "2024-10-15T00:00", "until": "2024-12-10T00:00"})
    assert page.status_code == 200
    start = page.text.index('id="pilot-report"')
    section = html.unescape(page.text[start:])
    assert section.count("<svg") == 2
    assert "Porsgrunn kommune (4001): JA 3" in section and "Skien kommune (4003): Forfalt 1" in section
    assert "JA 3 · NEI 3 · sendt kommunen 3 · kvittert 2" in section
    link = re.search(r'id="pilot-csv" href="([^"]+)"', section)
    assert link is not None
    download = c.get(link.group(1))
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.text.splitlines()[1].startswith("4001,Porsgrunn kommune,2024-10-15T00:00:00+02:00,")


def _row(nr: str, **counts: int) -> PilotRow:
    start, end = datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC)
    return PilotRow(nr, f"Kommune {nr}", start, end, **counts)


def test_bars_are_grouped_per_kommune_and_scaled_to_the_largest_figure() -> None:
    """Each kommune gets a bar per figure, the largest figure the full width, groups one under another."""
    chart = grouped_chart(
        [_row("4001", ja=10, nei=5, sent=10, acknowledged=8), _row("4003", ja=2)], HOSPITAL_SERIES
    )
    first, second = chart.groups
    assert [b.label for b in first.bars] == ["JA", "NEI", "Sendt kommunen", "Kvittert"]
    assert [b.width for b in first.bars] == [PLOT_WIDTH, PLOT_WIDTH / 2, PLOT_WIDTH, PLOT_WIDTH * 0.8]
    assert [b.value for b in second.bars] == [2, 0, 0, 0]
    assert first.label == "Kommune 4001 (4001)" and second.bars[0].y > first.bars[-1].y
    assert chart.height > second.bars[-1].y and chart.width > LABEL_WIDTH + PLOT_WIDTH
    assert chart.series[0] == ("JA", "other")


def test_a_kommune_without_points_is_left_out_of_the_points_chart() -> None:
    """The points chart shows only kommuner with points; with none at all it has no groups."""
    hospital, points = pilot_charts([_row("4001", ja=1), _row("4003", points_overdue=2)])
    assert [g.label for g in hospital.groups] == ["Kommune 4001 (4001)"]
    assert [g.label for g in points.groups] == ["Kommune 4003 (4003)"]
    assert grouped_chart([_row("4001", ja=1)], KOMMUNE_SERIES).groups == ()
