"""``edi-gateway report --pilot``: text, CSV and JSON of the pilot report, per period or per month."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.services.queries.pilot import CSV_HEADER
from edi_gateway.store import Store
from tests.store.conftest import Builder, FakeClock
from tests.store.test_pilot import PORSGRUNN, Pilot, fill_pilot

PERIOD = ("--since", "2024-10-15", "--until", "2024-12-09")  # a bare until date includes that day


@dataclass
class Cli:
    """A home and a database holding the pilot's fixed history, and a way to run commands on it."""

    env: dict[str, str]

    def run(self, *args: str) -> Result:
        """Run ``edi-gateway <args>`` in-process with this environment."""
        return CliRunner().invoke(app, list(args), env=self.env)


@pytest.fixture
def cli(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[Cli]:
    """The pilot history on SQLite and on PostgreSQL, with an EDI_GATEWAY_HOME holding the test PKI."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    clock = FakeClock()
    engine = sa.create_engine(database_url)
    with Store.connect(database_url, clock=clock) as store:
        store.migrate()
        fill_pilot(Pilot(store, Builder(clock), clock, engine))
    engine.dispose()
    yield Cli(
        {
            "EDI_GATEWAY_HOME": str(home),
            "EDI_GATEWAY_DATABASE_URL": database_url,
            "EDI_GATEWAY_TEST_MODE": "true",
        }
    )


def test_text_shows_totals_and_a_row_per_kommune(cli: Cli) -> None:
    """Without --format the pilot report is the totals and an aligned table, one row per kommune."""
    result = cli.run("report", "--pilot", *PERIOD)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "period    2024-10-15 - 2024-12-10 (until excluded)"
    assert lines[1] == "consent   JA 3, NEI 3"
    assert lines[2] == "kommune   sent 3 (3 requests), acknowledged 2"
    assert lines[3] == "points    done 1, declined 1, not reachable 1, overdue 2"
    assert lines[5].split()[:4] == ["KOMMUNE", "NAME", "FROM", "UNTIL"]
    counts = ["3", "1", "3", "2", "1", "1", "0", "1"]  # JA NEI SENT ACKED DONE DECLINED NOT_REACHABLE OVERDUE
    assert lines[7].split() == [PORSGRUNN, "Porsgrunn", "kommune", "2024-10-15", "2024-12-10", *counts]
    assert len(lines) == 10  # Porsgrunn, Skien and the requests without a kommune


def test_csv_by_month_has_a_header_and_a_line_per_kommune_and_month(cli: Cli) -> None:
    """--format csv --by month prints RFC 4180 CSV: the header, then a line per kommune and month."""
    result = cli.run("report", "--pilot", *PERIOD, "--format", "csv", "--by", "month")
    assert result.exit_code == 0, result.output
    text = result.stdout_bytes.decode()  # .stdout would turn CRLF into LF
    assert text.startswith(",".join(CSV_HEADER) + "\r\n") and text.endswith("\r\n")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [(r["kommunenummer"], r["period_start"][:7]) for r in parsed] == [
        ("4001", "2024-10"),
        ("4003", "2024-10"),
        ("4001", "2024-11"),
        ("4003", "2024-11"),
        ("", "2024-11"),
        ("4001", "2024-12"),
        ("4003", "2024-12"),
    ]


def test_json_and_the_json_flag_print_the_same_report(cli: Cli) -> None:
    """--format json and --json both print the pilot report's JSON with rows and totals."""
    by_format = cli.run("report", "--pilot", *PERIOD, "--format", "json")
    by_flag = cli.run("report", "--pilot", *PERIOD, "--json")
    assert by_format.exit_code == 0 and by_flag.exit_code == 0, by_format.output + by_flag.output
    found = json.loads(by_format.stdout)
    assert found == json.loads(by_flag.stdout)
    assert found["by"] is None and len(found["rows"]) == 3
    assert found["totals"]["ja"] == 3 and found["totals"]["points_overdue"] == 2


def test_the_plain_report_is_unchanged_and_by_needs_pilot(cli: Cli) -> None:
    """Without --pilot the report is the outcome report; --by or --format csv without --pilot is a usage error."""
    plain = cli.run("report", *PERIOD, "--format", "json")
    assert plain.exit_code == 0, plain.output
    assert {"rows", "consent_yes", "median_seconds_to_apprec"} <= set(json.loads(plain.stdout))
    for extra in (("--by", "month"), ("--format", "csv")):
        refused = cli.run("report", *PERIOD, *extra)
        assert refused.exit_code == 2 and "--pilot" in refused.output
    assert cli.run("report", "--pilot", *PERIOD, "--by", "week").exit_code == 2
