"""The operator read commands on a filled store: ``messages list|show``, ``registry lookup``, ``report``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.cli_ops import parse_when, table
from edi_gateway.services.access import (
    Role,
    bind_patient_key,
    create_operator,
    load_patient_key,
    search_audit,
)
from edi_gateway.settings import Settings
from edi_gateway.store import Store
from tests.store.conftest import Builder, FakeClock
from tests.store.test_queries import PATIENT_A, PATIENT_B, Scenario, fill_scenario


@dataclass
class Cli:
    """A home and database filled with the store tests' scenario, and a way to run commands on it."""

    env: dict[str, str]
    home: Path
    database_url: str
    scenario: Scenario

    def run(self, *args: str) -> Result:
        """Run ``edi-gateway <args>`` in-process with this environment."""
        return CliRunner().invoke(app, list(args), env=self.env)


@pytest.fixture
def cli(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[Cli]:
    """A filled store on SQLite and on PostgreSQL, with an EDI_GATEWAY_HOME holding the test PKI."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    clock = FakeClock()
    with Store.connect(database_url, clock=clock) as store:
        store.migrate()
        scenario = fill_scenario(store, Builder(clock), clock)
    env = {
        "EDI_GATEWAY_HOME": str(home),
        "EDI_GATEWAY_DATABASE_URL": database_url,
        "EDI_GATEWAY_TEST_MODE": "true",  # the copied test PKI signs, the fixture registers route
    }
    yield Cli(env, home, database_url, scenario)


def _no_full_person_number(text: str) -> None:
    assert PATIENT_A not in text and PATIENT_B not in text


def test_messages_list_prints_an_aligned_table_with_masked_patients(cli: Cli) -> None:
    """The list is a table, newest first, patients masked, with a line saying which rows of how many."""
    result = cli.run("messages", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["CREATED", "MSG_ID", "STATE"]
    assert set(lines[1]) <= {"-", " "}
    assert cli.scenario.kb2 in lines[2] and "queued" in lines[2]
    assert "2024-11-04 09:30:00" in result.stdout  # T0 (08:30 UTC) shown in Norwegian time
    assert PATIENT_A[:6] + "*****" in result.stdout
    assert lines[-1] == "rows 1-4 of 4"
    _no_full_person_number(result.stdout)


def test_messages_list_filters_and_prints_json(cli: Cli) -> None:
    """--state and --json give the matching rows and total as JSON."""
    result = cli.run("messages", "list", "--state", "overdue", "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert (page["total"], [r["msg_id"] for r in page["rows"]]) == (1, [cli.scenario.fa])
    assert page["rows"][0]["patient_masked"] == PATIENT_A[:6] + "*****"


def test_a_bare_until_date_includes_that_day(cli: Cli) -> None:
    """--since and --until with bare local dates select the whole of those days."""
    result = cli.run("messages", "list", "--since", "2024-11-05", "--until", "2024-11-05", "--json")
    assert result.exit_code == 0, result.output
    assert [r["msg_id"] for r in json.loads(result.stdout)["rows"]] == [cli.scenario.kb]


def test_messages_list_with_nothing_found_says_so(cli: Cli) -> None:
    """A filter without matches prints a plain sentence, not an empty table."""
    result = cli.run("messages", "list", "--kommune", "4036")
    assert (result.exit_code, result.stdout.strip()) == (0, "no messages match (0 in all)")


@pytest.mark.parametrize(
    "args",
    [
        ("messages", "list", "--state", "delivered"),
        ("messages", "list", "--since", "yesterday"),
        ("messages", "list", "--limit", "0"),
        ("report", "--since", "2024-11-01"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: tuple[str, ...]) -> None:
    """An unknown state, a bad date, a bad limit or a missing option is a usage error."""
    assert cli.run(*args).exit_code == 2


def test_messages_show_prints_state_apprecs_history_and_related(cli: Cli) -> None:
    """show prints the fields, the AppRec with its 8221 code, the history and the related replay."""
    result = cli.run("messages", "show", cli.scenario.kb)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "rejected_by_receiver (last AppRec status 2)" in out
    assert "status 2 Avvist" in out and "E35  Pasienten finnes ikke i mottakersystemet" in out
    assert "History:" in out and "sent -> rejected_by_receiver" in out
    assert "Related messages:" in out and cli.scenario.kb2 in out
    _no_full_person_number(out)


def test_messages_show_json_and_unknown(cli: Cli) -> None:
    """--json prints the detail as JSON; an unknown MsgId exits 1 with an error."""
    result = cli.run("messages", "show", cli.scenario.ka, "--json")
    assert result.exit_code == 0, result.output
    detail = json.loads(result.stdout)
    assert (detail["row"]["state"], detail["apprecs"][0]["status_text"]) == ("acked", "OK")
    _no_full_person_number(result.stdout)
    missing = cli.run("messages", "show", "00000000-0000-4000-8000-000000000000")
    assert missing.exit_code == 1 and "no message" in missing.stderr


def test_messages_show_xml_needs_a_reason(cli: Cli) -> None:
    """--xml without --reason is a usage error and prints nothing of the message."""
    result = cli.run("messages", "show", cli.scenario.ka, "--xml")
    assert result.exit_code == 2
    assert "MsgHead" not in result.stdout


def _account(cli: Cli, username: str, role: Role) -> None:
    with Store.connect(cli.database_url) as store:
        create_operator(store, username, "correct horse battery", role)


@pytest.mark.parametrize(
    ("account", "why"),
    [(None, "no enabled operator account"), (Role.VIEWER, "needs the operator role")],
)
def test_messages_show_xml_needs_an_operator_account(cli: Cli, account: Role | None, why: str) -> None:
    """--xml for a name without an account, or for a viewer, exits 1, prints nothing and audits nothing."""
    if account is not None:
        _account(cli, "anne", account)
    result = cli.run("messages", "show", cli.scenario.ka, "--xml", "--reason", "r", "--operator", "anne")
    assert result.exit_code == 1
    assert why in result.stderr and "MsgHead" not in result.stdout
    with Store.connect(cli.database_url) as store:
        bind_patient_key(store, load_patient_key(Settings(home=cli.home)))
        assert search_audit(store, msg_id=cli.scenario.ka) == []


def test_messages_show_xml_prints_the_signed_message_and_audits_it(cli: Cli) -> None:
    """With a reason, --xml prints the stored bytes and writes a reveal_payload audit entry for the operator."""
    _account(cli, "anne", Role.OPERATOR)
    result = cli.run(
        "messages", "show", cli.scenario.ka, "--xml", "--reason", "kommunen ringte", "--operator", "anne"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<MsgHead>")
    with Store.connect(cli.database_url) as store:
        bind_patient_key(store, load_patient_key(Settings(home=cli.home)))
        (entry,) = search_audit(store, msg_id=cli.scenario.ka)
        assert (entry.username, entry.action, entry.reason) == ("anne", "reveal_payload", "kommunen ringte")
        assert search_audit(store, patient=PATIENT_A) == [entry]
        assert entry.patient_ref is not None and PATIENT_A not in entry.patient_ref


def test_registry_lookup_prints_the_kommune_and_its_chosen_service(cli: Cli) -> None:
    """A kommunenummer prints the kommune, its services, the one routing chooses and why."""
    result = cli.run("registry", "lookup", "4026")
    assert result.exit_code == 0, result.output
    assert "name: Tinn kommune" in result.stdout
    assert "chosen_service:\n  her_id: 8100057\n  name: Tjenestekontoret\n  code: KD0501\n" in result.stdout
    assert "chosen_reason: tjenestekontor (KD0501) registered" in result.stdout


def test_registry_lookup_of_a_person_prints_json_with_the_patient_masked_and_audits_it(cli: Cli) -> None:
    """A person number gives the bosted kommune and fastlege, the number masked; the look-up is audited."""
    _account(cli, "anne", Role.OPERATOR)
    result = cli.run(
        "registry", "lookup", PATIENT_B, "--json", "--operator", "anne", "--reason", "sykepleier spurte"
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["bosted_kommunenummer"], answer["kommune"]["chosen_service"]["code"]) == ("4003", "KD0501")
    assert answer["fastlege"] is not None
    _no_full_person_number(result.stdout)
    with Store.connect(cli.database_url) as store:
        bind_patient_key(store, load_patient_key(Settings(home=cli.home)))
        (entry,) = search_audit(store, patient=PATIENT_B)
        assert (entry.username, entry.action, entry.reason) == (
            "anne",
            "registry_lookup_person",
            "sykepleier spurte",
        )


def test_registry_lookup_of_a_person_needs_an_operator_account_and_a_reason(cli: Cli) -> None:
    """Without --operator and --reason it is a usage error; a viewer account is refused (exit 1)."""
    assert cli.run("registry", "lookup", PATIENT_B).exit_code == 2
    assert cli.run("registry", "lookup", PATIENT_B, "--reason", "r").exit_code == 2
    _account(cli, "vera", Role.VIEWER)
    refused = cli.run("registry", "lookup", PATIENT_B, "--operator", "vera", "--reason", "r")
    assert refused.exit_code == 1 and "needs the operator role" in refused.stderr
    assert "fastlege" not in refused.stdout


def test_registry_lookup_unknown_exits_1_and_malformed_exits_2(cli: Cli) -> None:
    """An id the registers do not know exits 1; a query of no known form exits 2."""
    assert cli.run("registry", "lookup", "9999999").exit_code == 1
    assert cli.run("registry", "lookup", "Skien").exit_code == 2


def test_report_prints_totals_median_and_rows(cli: Cli) -> None:
    """The report shows the period's totals, consent, the median time to AppRec and a row per group."""
    result = cli.run("report", "--since", "2024-11-04", "--until", "2024-11-10")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "requests           5 (consent yes 3, no 1)" in out
    assert "median to AppRec   1 h 59 min" in out
    assert "Porsgrunn kommune" in out and "no_consent" in out and "rejected_by_receiver" in out


def test_report_json(cli: Cli) -> None:
    """--json prints the report with its rows and period."""
    result = cli.run("report", "--since", "2024-11-04", "--until", "2024-11-10", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (len(found["rows"]), found["messages"], found["median_seconds_to_apprec"]) == (6, 4, 7140.0)
    assert found["until"] == "2024-11-11T00:00:00+01:00"


def test_parse_when_reads_local_dates_and_explicit_offsets() -> None:
    """Bare dates and times are Norwegian local time; an explicit offset is kept; until-dates end the day."""
    assert parse_when("2024-07-01") == datetime(2024, 6, 30, 22, tzinfo=UTC)
    assert parse_when("2024-12-01", end_of_day=True) == datetime(2024, 12, 1, 23, tzinfo=UTC)
    assert parse_when("2024-12-01T10:15") == datetime(2024, 12, 1, 9, 15, tzinfo=UTC)
    assert parse_when("2024-12-01T10:15+00:00") == datetime(2024, 12, 1, 10, 15, tzinfo=UTC)


def test_table_pads_columns_to_the_widest_cell() -> None:
    """Every column starts at the same position on every line; None prints as a dash."""
    text = table(("A", "LONG"), [("x", None), ("wider", 1)])
    assert text.splitlines() == ["A      LONG", "-----  ----", "x      -", "wider  1"]
