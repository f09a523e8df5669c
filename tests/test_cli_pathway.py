"""``edi-gateway pathway …`` on a real store: the worklist for the kommune nurse, moves by an operator."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.services.access import Role, create_operator, patient_ref_for, search_audit
from edi_gateway.services.context import open_gateway
from edi_gateway.services.pathway_models import shipped_model
from edi_gateway.services.pathways import PathwayDesk
from edi_gateway.settings import Settings
from edi_gateway.store.tables import pathway_notes
from tests.services.test_pathways import PERSON, WORKER, hospital_message, noon, receive, rows

LIST_KEYS = {
    "pathway_id",
    "samhandlingspunkt",
    "title",
    "due_from",
    "due_to",
    "state",
    "assigned_to",
    "patient",
    "msg_id",
}


@dataclass
class Cli:
    """A kommune home and database with one pathway, and a way to run commands on it."""

    env: dict[str, str]
    settings: Settings
    pathway_id: int
    msg_id: str

    def run(self, *args: str, **env: str) -> Result:
        """Run ``edi-gateway <args>`` in-process with this environment (and ``env`` on top)."""
        return CliRunner().invoke(app, list(args), env={**self.env, **env})


@pytest.fixture
def cli(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[Cli]:
    """A kommune gateway's store (SQLite and PostgreSQL) with the pathway of a received behovskartlegging."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    hospital = Settings(home=home, database_url=database_url, test_mode=True)
    gateway = open_gateway(hospital, migrate=True)
    try:
        message = hospital_message(gateway)
        receive(gateway, message, at=noon(date(2026, 11, 4)))
        kommune = message.receiver_org_her_id
        desk = PathwayDesk(gateway.store, shipped_model("telemark"), gateway.registers, our_her_id=kommune)
        desk.apply_received(noon(date(2026, 11, 4)), actor=WORKER)
        create_operator(gateway.store, "ola", "a long enough password", Role.OPERATOR)
        create_operator(gateway.store, "vera", "a long enough password", Role.VIEWER)
        pathway_id = desk.worklist()[0].pathway_id
    finally:
        gateway.close()
    env = {
        "EDI_GATEWAY_HOME": str(home),
        "EDI_GATEWAY_DATABASE_URL": database_url,
        "EDI_GATEWAY_TEST_MODE": "true",
        "EDI_GATEWAY_ROLE": "kommune",
        "EDI_GATEWAY_OUR_HER_ID": str(kommune),
    }
    yield Cli(env, hospital, pathway_id, message.msg_id)


def test_list_json_prints_exactly_the_agreed_keys(cli: Cli) -> None:
    """list --json is an array with one object per point and exactly the agreed keys and values."""
    result = cli.run("pathway", "list", "--json")
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)
    assert [set(p) for p in points] == [LIST_KEYS] * 3
    assert points[1] == {
        "pathway_id": cli.pathway_id,
        "samhandlingspunkt": 2,
        "title": "Behovskartlegging i kommunen, ca. 3–4 måneder etter diagnosen",
        "due_from": "2027-01-12",
        "due_to": "2027-02-12",
        "state": "planned",
        "assigned_to": None,
        "patient": "079262*****",
        "msg_id": cli.msg_id,
    }
    assert points[0]["due_to"] is None and points[0]["state"] == "done"


def test_list_text_is_a_table_for_the_nurse_without_person_numbers(cli: Cli) -> None:
    """The text list has Norwegian headings and states, the patient masked, and a count line."""
    result = cli.run("pathway", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["FORLØP", "PUNKT", "STATUS", "FRA"]
    assert "utført" in lines[2] and "planlagt" in lines[3]
    assert "079262*****" in result.stdout and PERSON not in result.stdout
    assert lines[-1] == "3 samhandlingspunkt(er)"


def test_list_filters_by_state_and_says_so_when_empty(cli: Cli) -> None:
    """--state narrows the list; nothing matching prints a plain sentence."""
    result = cli.run("pathway", "list", "--state", "planned", "--json")
    assert [p["samhandlingspunkt"] for p in json.loads(result.stdout)] == [2, 3]
    empty = cli.run("pathway", "list", "--state", "overdue")
    assert (empty.exit_code, empty.stdout.strip()) == (0, "Ingen samhandlingspunkter på arbeidslisten.")
    assert cli.run("pathway", "list", "--state", "late").exit_code == 1


def test_show_prints_points_moves_messages_and_history(cli: Cli) -> None:
    """show prints the pathway in Norwegian with allowed moves, its message and the history; --json too."""
    result = cli.run("pathway", "show", str(cli.pathway_id))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Forløp {cli.pathway_id} — pasient 079262*****" in out
    assert "Diagnosedato: 2026-10-12 (forløp 1)" in out
    assert "punkt 2: done, decline, not-reachable" in out and "punkt 1: ingen (endelig)" in out
    assert cli.msg_id in out and "Historikk:" in out and PERSON not in out
    shown = json.loads(cli.run("pathway", "show", str(cli.pathway_id), "--json").stdout)
    assert shown["pathway_id"] == cli.pathway_id and shown["moves"]["2"] == [
        "done",
        "declined",
        "not_reachable",
    ]


def test_done_with_a_note_asks_for_the_fastlege_note(cli: Cli) -> None:
    """done --note records the point done as the operator, with a pending note and an audit entry."""
    result = cli.run(
        "pathway",
        "done",
        str(cli.pathway_id),
        "--point",
        "2",
        "--reason",
        "hjemmebesøk",
        "--note",
        "Samtale gjennomført.",
        "--on",
        "2026-12-01",
        "--operator",
        "ola",
    )
    assert result.exit_code == 0, result.output
    assert "samhandlingspunkt 2: utført" in result.stdout and "fastlegen" in result.stdout
    gateway = open_gateway(cli.settings)
    try:
        notes = rows(gateway, pathway_notes)
        entries = search_audit(gateway.store, patient=PERSON)
        ref = patient_ref_for(gateway.store, PERSON)
    finally:
        gateway.close()
    assert [(n["number"], n["state"], n["text"], n["asked_by"]) for n in notes] == [
        (2, "pending", "Samtale gjennomført.", "operator:ola")
    ]
    assert [(e.username, e.action, e.reason, e.patient_ref) for e in entries] == [
        ("ola", "pathway_mark", "hjemmebesøk", ref)
    ]


def test_decline_reopen_and_assign_with_json(cli: Cli) -> None:
    """decline, reopen and assign answer with the pathway as JSON when asked."""
    base = ["--reason", "ringte", "--operator", "ola", "--json"]
    declined = cli.run("pathway", "decline", str(cli.pathway_id), "--point", "3", *base)
    assert declined.exit_code == 0, declined.output
    assert json.loads(declined.stdout)["points"][2]["state"] == "declined"
    reopened = json.loads(cli.run("pathway", "reopen", str(cli.pathway_id), "--point", "3", *base).stdout)
    assert reopened["points"][2]["state"] == "planned"
    unreachable = cli.run("pathway", "not-reachable", str(cli.pathway_id), "--point", "2", *base[:-1])
    assert "ikke nådd" in unreachable.stdout
    assigned = cli.run("pathway", "assign", str(cli.pathway_id), "--to", "role:kreftkoordinator", *base[:-1])
    assert assigned.exit_code == 0 and "role:kreftkoordinator" in assigned.stdout
    listed = json.loads(cli.run("pathway", "list", "--assigned-to", "role:kreftkoordinator", "--json").stdout)
    assert len(listed) == 3


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("reopen", "{id}", "--point", "2", "--reason", "r", "--operator", "ola"), 1, "refused"),
        (("done", "{id}", "--point", "2", "--reason", "r", "--operator", "vera"), 1, "operator role"),
        (("done", "{id}", "--point", "2", "--reason", "r", "--operator", "nobody"), 1, "no enabled operator"),
        (("done", "999", "--point", "2", "--reason", "r", "--operator", "ola"), 1, "no pathway with id 999"),
        (("done", "{id}", "--point", "9", "--reason", "r", "--operator", "ola"), 1, "no samhandlingspunkt 9"),
        (("done", "{id}", "--point", "2", "--reason", "r", "--on", "01.12.2026", "--operator", "ola"), 2, ""),
        (("decline", "{id}", "--point", "2", "--reason", "r", "--note", "x", "--operator", "ola"), 2, ""),
        (("done", "{id}", "--point", "2", "--operator", "ola"), 2, ""),
    ],
    ids=[
        "refused-move",
        "viewer",
        "unknown-operator",
        "unknown-pathway",
        "unknown-point",
        "bad-date",
        "note-on-decline",
        "no-reason",
    ],
)
def test_refusals_exit_with_a_plain_message(cli: Cli, args: tuple[str, ...], code: int, says: str) -> None:
    """A refused move, a viewer, an unknown account, pathway or point exit 1; usage errors exit 2."""
    result = cli.run("pathway", *(a.replace("{id}", str(cli.pathway_id)) for a in args))
    assert result.exit_code == code, result.output
    assert says in result.output
    assert "Traceback" not in result.output


def test_a_hospital_gateway_refuses_the_worklist(cli: Cli) -> None:
    """Without EDI_GATEWAY_ROLE=kommune every pathway command exits 2 naming the setting."""
    result = cli.run("pathway", "list", EDI_GATEWAY_ROLE="hospital")
    assert result.exit_code == 2
    assert "EDI_GATEWAY_ROLE=kommune" in result.output


def test_restart_plans_a_new_course_from_a_later_diagnosis_date_and_refuses_an_earlier_one(cli: Cli) -> None:
    """restart closes the open points and plans the points again from the new date; an earlier date is refused."""
    base = ["--reason", "ny diagnose, avklart med sykehuset", "--operator", "ola"]
    later = cli.run(
        "pathway", "restart", str(cli.pathway_id), "--diagnosis-date", "2027-03-01", *base, "--json"
    )
    assert later.exit_code == 0, later.output
    view = json.loads(later.stdout)
    assert view["course"] == 2 and view["diagnosis_date"] == "2027-03-01"
    assert [p["due_from"] for p in view["points"]][1:] == ["2027-06-01", "2028-03-01"]
    earlier = cli.run("pathway", "restart", str(cli.pathway_id), "--diagnosis-date", "2020-01-01", *base)
    assert earlier.exit_code == 1
    bad = cli.run("pathway", "restart", str(cli.pathway_id), "--diagnosis-date", "1.3.2027", *base)
    assert bad.exit_code == 2 and "--diagnosis-date" in bad.output
