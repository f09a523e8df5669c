"""``edi-gateway received list|show`` on a kommune gateway's received documents, SQLite and PostgreSQL.

The store is stocked as in the web tests (``tests/web/test_received_web.py``): a behovskartlegging the
worklist took in, a legekontor's reply answered "OK, feil i delmelding", and an older refused one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.services.access import patient_ref_for, search_audit
from edi_gateway.services.context import Gateway, open_gateway
from tests.web.test_received_web import (
    LEGEKONTOR,
    PEOPLE,
    REPLY_TEXT,
    Stocked,
    add_accounts,
    assert_no_personal_data,
    kommune_settings,
    stock_received,
)


@dataclass
class Cli:
    """The stocked kommune gateway and the environment the command line runs with."""

    gateway: Gateway
    stocked: Stocked
    env: dict[str, str]

    def run(self, *args: str) -> Result:
        """Run ``edi-gateway received <args>`` in-process with this environment."""
        return CliRunner().invoke(app, ["received", *args], env=self.env)

    def id(self, name: str) -> str:
        """The received id of ``assessment``, ``reply`` or ``rejected``, as an argument."""
        return str(self.stocked.ids[name])

    def audit(self) -> list[tuple[str, str, str]]:
        """(action, username, reason) of every audit entry, newest first."""
        return [(e.action, e.username, e.reason) for e in search_audit(self.gateway.store)]


@pytest.fixture
def cli(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[Cli]:
    """Three received documents, accounts ``viewer`` and ``operator``, and the CLI's environment."""
    settings = kommune_settings(tmp_path, pki_template, database_url)
    gateway = open_gateway(settings, migrate=True)
    try:
        stocked = stock_received(gateway, settings.pki_dir)
        add_accounts(gateway)
        env = {
            "EDI_GATEWAY_HOME": str(settings.home),
            "EDI_GATEWAY_DATABASE_URL": settings.effective_database_url,
            "EDI_GATEWAY_TEST_MODE": "true",
            "EDI_GATEWAY_ROLE": "kommune",
            "EDI_GATEWAY_OUR_HER_ID": str(settings.our_her_id),
        }
        yield Cli(gateway, stocked, env)
    finally:
        gateway.close()


def test_list_prints_a_table_newest_first_with_masked_patients(cli: Cli) -> None:
    """The list is a table of every received document, newest first, patients masked, no content."""
    result = cli.run("list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["ID", "RECEIVED", "MSG_ID", "SENDER", "HER_ID"]
    assert [line.split()[0] for line in lines[2:5]] == [
        cli.id("reply"),
        cli.id("assessment"),
        cli.id("rejected"),
    ]
    assert "Skien legesenter 2" in lines[2] and "3 E10" in lines[2] and "079262*****" in lines[2]
    assert PEOPLE["assessment"][:6] + "*****" in lines[3] and "applied" in lines[3]
    assert lines[-1] == "rows 1-3 of 3"
    assert_no_personal_data(result.stdout)


def test_list_json_filters(cli: Cli) -> None:
    """--sender, --apprec-status, --pathway-state and --since narrow the JSON list to the matching documents."""

    def ids(*args: str) -> list[int]:
        result = cli.run("list", "--json", *args)
        assert result.exit_code == 0, result.output
        assert_no_personal_data(result.stdout)
        return [r["id"] for r in json.loads(result.stdout)["rows"]]

    assert ids("--sender", str(LEGEKONTOR)) == [cli.stocked.ids["reply"]]
    assert ids("--apprec-status", "2") == [cli.stocked.ids["rejected"]]
    assert ids("--pathway-state", "applied") == [cli.stocked.ids["assessment"]]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
    assert ids("--since", yesterday) == [cli.stocked.ids["reply"], cli.stocked.ids["assessment"]]
    assert ids("--until", yesterday) == [cli.stocked.ids["rejected"]]


def test_a_bad_filter_is_a_usage_error(cli: Cli) -> None:
    """An unknown pathway state or an unreadable date exits 2."""
    assert cli.run("list", "--pathway-state", "open").exit_code == 2
    assert cli.run("list", "--since", "yesterday").exit_code == 2


def test_show_prints_the_view_and_json_without_content(cli: Cli) -> None:
    """show prints sender, our AppRec with its codes and the pathway as text or JSON; never the content."""
    text = cli.run("show", cli.id("rejected"))
    assert text.exit_code == 0, text.output
    assert "apprec_errors     E21: Mottaker finnes ikke" in text.stdout
    assert "sender            Sykehuset Telemark HF (HER-id 8100001)" in text.stdout
    assert_no_personal_data(text.stdout)
    shown = cli.run("show", cli.id("assessment"), "--json")
    assert shown.exit_code == 0, shown.output
    assert_no_personal_data(shown.stdout)
    detail = json.loads(shown.stdout)
    assert (detail["pathway_id"], detail["row"]["pathway_state"]) == (cli.stocked.pathway_id, "applied")


def test_an_unknown_id_exits_1(cli: Cli) -> None:
    """show for an id no received document has exits 1 and says so."""
    result = cli.run("show", "999999")
    assert result.exit_code == 1
    assert "no received document has id 999999" in result.output


def test_content_needs_reason_and_operator_role(cli: Cli) -> None:
    """--content without --reason is a usage error; as a viewer it is refused; neither writes an audit entry."""
    missing = cli.run("show", cli.id("reply"), "--content", "--operator", "operator")
    assert missing.exit_code == 2 and "--reason" in missing.output
    viewer = cli.run("show", cli.id("reply"), "--content", "--operator", "viewer", "--reason", "INC-4")
    assert viewer.exit_code == 1 and "operator role" in viewer.output
    assert_no_personal_data(viewer.output)
    assert cli.audit() == []


def test_content_prints_patient_and_text_and_is_audited(cli: Cli) -> None:
    """--content with an operator and a reason prints the patient, Tema and full text, and writes one audit entry."""
    result = cli.run("show", cli.id("reply"), "--content", "--operator", "operator", "--reason", "INC-4")
    assert result.exit_code == 0, result.output
    assert f"patient_id    {PEOPLE['reply']}" in result.stdout
    assert "patient_name  Per Sørensen" in result.stdout
    assert result.stdout.rstrip().endswith(REPLY_TEXT)
    assert cli.audit() == [("received_reveal", "operator", "INC-4")]
    (entry,) = search_audit(cli.gateway.store, patient=PEOPLE["reply"])
    assert entry.patient_ref == patient_ref_for(cli.gateway.store, PEOPLE["reply"])
    as_json = cli.run(
        "show", cli.id("reply"), "--content", "--json", "--operator", "operator", "--reason", "INC-5"
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["text"] == REPLY_TEXT
    assert len(cli.audit()) == 2
