"""The pilot report as operators get it: kommune names, totals, the month split, CSV and JSON shapes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from edi_gateway.registers.base import Registers
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.queries.pilot import (
    CSV_HEADER,
    PilotReport,
    PilotRow,
    PilotTotals,
    per_kommune,
    pilot_report,
    to_csv,
    to_json,
)
from edi_gateway.store import Store
from tests.store.conftest import Builder, FakeClock
from tests.store.test_pilot import NOVEMBER, PORSGRUNN, SINCE, SKIEN, UNTIL, Pilot, fill_pilot

WHOLE = {"since": SINCE, "until": UNTIL}


@pytest.fixture(scope="module")
def registers() -> Registers:
    """The embedded fixture registers."""
    return load_fixture_registers(resource_dir("fixtures") / "registers")


@pytest.fixture
def pilot_store(store: Store, build: Builder, clock: FakeClock, database_url: str) -> Store:
    """The store with the pilot's fixed history (see ``fill_pilot``)."""
    engine = sa.create_engine(database_url)
    try:
        fill_pilot(Pilot(store, build, clock, engine))
    finally:
        engine.dispose()
    return store


def test_rows_name_each_kommune_and_the_totals_add_up(pilot_store: Store, registers: Registers) -> None:
    """Each row carries the Adresseregister's name (none for an unknown kommune); totals cover them all."""
    found = pilot_report(pilot_store, registers, **WHOLE)
    assert [(r.kommunenummer, r.kommune_name) for r in found.rows] == [
        (PORSGRUNN, "Porsgrunn kommune"),
        (SKIEN, "Skien kommune"),
        (None, None),
    ]
    porsgrunn = found.rows[0]
    assert (porsgrunn.ja, porsgrunn.nei, porsgrunn.sent, porsgrunn.acknowledged) == (3, 1, 3, 2)
    assert found.totals == PilotTotals(
        ja=3,
        nei=3,
        sent=3,
        sent_requests=3,
        acknowledged=2,
        points_done=1,
        points_declined=1,
        points_not_reachable=1,
        points_overdue=2,
    )
    assert (found.since, found.until, found.by) == (SINCE, UNTIL, None)


def test_by_month_folds_back_into_the_whole_period(pilot_store: Store, registers: Registers) -> None:
    """Monthly rows, folded per kommune, equal the whole period's rows; overdue is not summed over months."""
    whole = pilot_report(pilot_store, registers, **WHOLE)
    monthly = pilot_report(pilot_store, registers, **WHOLE, by="month")
    assert len(monthly.rows) == 7
    assert monthly.totals == whole.totals
    assert per_kommune(monthly) == whole.rows
    assert sum(r.points_overdue for r in monthly.rows) == 5  # what a naive sum would have said


def test_by_accepts_month_only(pilot_store: Store, registers: Registers) -> None:
    """Grouping by anything but month is a ValueError."""
    with pytest.raises(ValueError, match="by: expected 'month'"):
        pilot_report(pilot_store, registers, **WHOLE, by="week")


def test_csv_is_a_header_and_one_comma_separated_line_per_row(
    pilot_store: Store, registers: Registers
) -> None:
    """The CSV has the header, a CRLF-ended line per row, Norwegian times with offset, no semicolons."""
    text = to_csv(pilot_report(pilot_store, registers, **WHOLE, by="month"))
    lines = text.split("\r\n")
    assert lines[0] == ",".join(CSV_HEADER) and lines[-1] == ""
    assert ";" not in text
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 7
    assert parsed[0] == {
        "kommunenummer": PORSGRUNN,
        "kommune": "Porsgrunn kommune",
        "period_start": "2024-10-15T00:00:00+02:00",
        "period_end": "2024-11-01T00:00:00+01:00",
        "ja": "1",
        "nei": "0",
        "sent": "1",
        "sent_requests": "1",
        "acknowledged": "1",
        "points_done": "0",
        "points_declined": "0",
        "points_not_reachable": "0",
        "points_overdue": "1",
    }
    (unknown,) = [p for p in parsed if not p["kommunenummer"]]  # no kommune: empty fields
    assert (unknown["kommune"], unknown["nei"]) == ("", "1")


def test_csv_quotes_a_field_holding_a_comma() -> None:
    """A kommune name with a comma or a quote is quoted as RFC 4180 says."""
    start, end = datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC)
    row = PilotRow("4001", 'Porsgrunn, "test"', start, end, ja=2)
    text = to_csv(PilotReport(start, end, None, (row,), PilotTotals(ja=2)))
    assert text.split("\r\n")[1].startswith('4001,"Porsgrunn, ""test""",2024-11-01T01:00:00+01:00,')
    assert next(csv.DictReader(io.StringIO(text)))["kommune"] == 'Porsgrunn, "test"'


def test_json_has_the_period_rows_and_totals(pilot_store: Store, registers: Registers) -> None:
    """The JSON form is plain JSON: period and grouping, a row object per row, the totals."""
    found = to_json(pilot_report(pilot_store, registers, **WHOLE, by="month"))
    assert json.loads(json.dumps(found)) == found
    assert set(found) == {"since", "until", "by", "rows", "totals"}
    assert (found["since"], found["until"], found["by"]) == (
        "2024-10-15T00:00:00+02:00",
        "2024-12-10T00:00:00+01:00",
        "month",
    )
    november = [r for r in found["rows"] if r["period_start"] == NOVEMBER.isoformat()]
    assert [(r["kommunenummer"], r["kommune_name"], r["nei"]) for r in november] == [
        (PORSGRUNN, "Porsgrunn kommune", 1),
        (SKIEN, "Skien kommune", 0),
        (None, None, 1),
    ]
    assert set(found["rows"][0]) == {"kommunenummer", "kommune_name", "period_start", "period_end"} | set(
        found["totals"]
    )
    assert found["totals"]["points_overdue"] == 2


def test_an_empty_period_gives_a_header_only_csv_and_zero_totals(store: Store, registers: Registers) -> None:
    """Nothing stored: the CSV is its header line, the JSON has no rows and zero totals."""
    found = pilot_report(store, registers, **WHOLE)
    assert to_csv(found) == ",".join(CSV_HEADER) + "\r\n"
    as_json = to_json(found)
    assert as_json["rows"] == [] and set(as_json["totals"].values()) == {0}
