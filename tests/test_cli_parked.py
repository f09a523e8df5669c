"""``edi-gateway parked list|show|resolve|dismiss`` on a store with parked AppRecs, SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.services.access import Role, create_operator, search_audit
from edi_gateway.store import Store
from tests.store.conftest import Builder, FakeClock

PASSWORD = "correct horse battery"
RAW = b"<AppRec><Id>stray-1</Id></AppRec>"


@dataclass
class Cli:
    """A home and a database with two parked AppRecs and a viewer and an operator account."""

    env: dict[str, str]
    database_url: str
    unknown: int  # parked id of an apprec.unknown_message
    wrong: int  # parked id of an apprec.wrong_sender

    def run(self, *args: str) -> Result:
        """Run ``edi-gateway <args>`` in-process with this environment."""
        return CliRunner().invoke(app, list(args), env=self.env)

    def audit_actions(self) -> list[tuple[str, str]]:
        """(action, reason) of every audit entry, newest first."""
        with Store.connect(self.database_url) as store:
            return [(e.action, e.reason) for e in search_audit(store)]


@pytest.fixture
def cli(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[Cli]:
    """Two parked AppRecs (the wrong-sender one newer), and accounts ``viewer`` and ``operator``."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    clock = FakeClock()
    build = Builder(clock)
    with Store.connect(database_url, clock=clock) as store:
        store.migrate()
        unknown = dataclasses.replace(build.parked("apprec.unknown_message", apprec_id="stray-1"), raw=RAW)
        clock.advance(minutes=1)
        wrong = build.parked("apprec.wrong_sender", msg_id="6f1c0b7e-0000-4000-8000-000000000001")
        store.save_acknowledgements(apprecs=[], parked=[unknown, wrong], transitions=[], health=[], actor="w")
        ids = {p.code: p.id for p in store.list_parked()}
        for role in (Role.VIEWER, Role.OPERATOR):
            create_operator(store, role.value, PASSWORD, role)
    env = {
        "EDI_GATEWAY_HOME": str(home),
        "EDI_GATEWAY_DATABASE_URL": database_url,
        "EDI_GATEWAY_TEST_MODE": "true",
    }
    yield Cli(env, database_url, ids["apprec.unknown_message"], ids["apprec.wrong_sender"])


def test_list_prints_a_table_newest_first_without_payloads(cli: Cli) -> None:
    """The list is a table of the open parked AppRecs, newest first, and never prints the document."""
    result = cli.run("parked", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "RECEIVED", "CODE", "APPREC_ID", "MSG_ID", "SIZE", "OUTCOME"]
    assert lines[2].split()[0] == str(cli.wrong) and "apprec.wrong_sender" in lines[2]
    assert lines[3].split()[0] == str(cli.unknown) and f" {len(RAW)} " in lines[3]
    assert lines[-1] == "rows 1-2 of 2"
    assert "<AppRec>" not in result.stdout


def test_list_json_filters_by_code(cli: Cli) -> None:
    """--code and --json give the matching views and the total as JSON."""
    result = cli.run("parked", "list", "--code", "apprec.unknown_message", "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert (page["total"], [r["id"] for r in page["rows"]]) == (1, [cli.unknown])
    assert (page["rows"][0]["apprec_id"], page["rows"][0]["size"]) == ("stray-1", len(RAW))


def test_show_prints_the_view_and_json(cli: Cli) -> None:
    """show prints code, reason, ids and size as text, or the view as JSON; not the document."""
    text = cli.run("parked", "show", str(cli.unknown))
    assert text.exit_code == 0, text.output
    assert "code             apprec.unknown_message" in text.stdout
    assert f"size             {len(RAW)} bytes" in text.stdout
    assert "outcome          waiting for an operator" in text.stdout
    assert "<AppRec>" not in text.stdout
    as_json = json.loads(cli.run("parked", "show", str(cli.wrong), "--json").stdout)
    assert (as_json["id"], as_json["code"], as_json["outcome"]) == (cli.wrong, "apprec.wrong_sender", None)


def test_show_payload_needs_operator_and_reason_and_is_audited(cli: Cli) -> None:
    """--payload without --operator and --reason is a usage error; with them it prints the bytes and audits."""
    missing = cli.run("parked", "show", str(cli.unknown), "--payload", "--operator", "operator")
    assert missing.exit_code == 2 and "--reason" in missing.output
    viewer = cli.run(
        "parked", "show", str(cli.unknown), "--payload", "--operator", "viewer", "--reason", "x y"
    )
    assert viewer.exit_code == 1 and "operator role" in viewer.output
    assert cli.audit_actions() == []
    shown = cli.run(
        "parked", "show", str(cli.unknown), "--payload", "--operator", "operator", "--reason", "INC-3"
    )
    assert shown.exit_code == 0, shown.output
    assert shown.stdout_bytes == RAW + b"\n"
    assert cli.audit_actions() == [("reveal_parked", "INC-3")]


def test_resolve_once_then_refused(cli: Cli) -> None:
    """resolve marks it handled with the reason; a second resolve exits 1 and says who did it."""
    done = cli.run(
        "parked", "resolve", str(cli.wrong), "--reason", "kommune resent", "--operator", "operator"
    )
    assert done.exit_code == 0, done.output
    assert (
        done.stdout.strip() == f"parked {cli.wrong} resolved by operator:operator: resolved: kommune resent"
    )
    again = cli.run("parked", "dismiss", str(cli.wrong), "--reason", "again", "--operator", "operator")
    assert again.exit_code == 1
    assert "was resolved already, by operator:operator" in again.output
    assert cli.audit_actions() == [("resolve_parked", "kommune resent")]
    handled = json.loads(cli.run("parked", "list", "--state", "handled", "--json").stdout)
    assert [r["id"] for r in handled["rows"]] == [cli.wrong]


def test_dismiss_as_json_and_refusals(cli: Cli) -> None:
    """dismiss --json prints the view; a viewer, a missing reason and an unknown id are refused."""
    viewer = cli.run("parked", "dismiss", str(cli.unknown), "--reason", "noise", "--operator", "viewer")
    assert viewer.exit_code == 1
    no_reason = cli.run("parked", "dismiss", str(cli.unknown), "--operator", "operator")
    assert no_reason.exit_code == 2
    unknown = cli.run("parked", "resolve", "999999", "--reason", "done", "--operator", "operator")
    assert unknown.exit_code == 1 and "no parked document has id 999999" in unknown.output
    done = cli.run(
        "parked", "dismiss", str(cli.unknown), "--reason", "noise", "--operator", "operator", "--json"
    )
    assert done.exit_code == 0, done.output
    view = json.loads(done.stdout)
    assert (view["outcome"], view["resolution"]) == ("dismissed", "dismissed: noise")
    assert cli.audit_actions() == [("dismiss_parked", "noise")]
