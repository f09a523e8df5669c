"""The kommune's pathway worklist in the web UI and the REST API, on SQLite and PostgreSQL.

A kommune gateway (``role=kommune``, Porsgrunn 8100005) gets three signed behovskartlegginger, stored
as its receiving side stores them (the desk tests' helpers), and its desk takes them into the
worklist: one patient's samhandlingspunkt 2 is overdue, one's is due now, one's opens within the
due-soon days. The web app runs on that gateway without a broker (the web process never publishes;
notes to the fastlege are rows a worker sends).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from edi_gateway.cli import app as cli_app
from edi_gateway.domain.pathway import add_months, local_day
from edi_gateway.services.access import Role, create_operator, create_token, search_audit
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.pathways import PathwayDesk, desk_for
from edi_gateway.settings import Settings
from edi_gateway.store.tables import pathway_notes
from edi_gateway.web import create_app
from tests.services.conftest import example, make_settings
from tests.services.test_pathways import hospital_message, receive, rows
from tests.web.conftest import PASSWORD
from tests.web.test_pages import csrf_of, login

KOMMUNE = 8100005  # Porsgrunn kommune, where the three synthetic patients live
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"  # the web process never opens the broker
PEOPLE = {"late": "18897219545", "due": "28919817242", "soon": "16857513022"}  # synthetic (month+80)
ROLES = (Role.VIEWER, Role.OPERATOR)


@dataclass
class Kommune:
    """A kommune gateway with three pathways, an account and token per role, and its web client."""

    gateway: Gateway
    client: TestClient
    ids: dict[str, int]
    tokens: dict[Role, str]

    @property
    def desk(self) -> PathwayDesk:
        """The gateway's pathway desk."""
        return desk_for(self.gateway)

    def auth(self, role: Role) -> dict[str, str]:
        """The Authorization header of ``role``'s operator."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def cli_json(self, *args: str) -> Any:
        """Run ``edi-gateway pathway <args> --json`` on the same home and database; its JSON."""
        settings = self.gateway.settings
        env = {
            "EDI_GATEWAY_HOME": str(settings.home),
            "EDI_GATEWAY_DATABASE_URL": settings.effective_database_url,
            "EDI_GATEWAY_TEST_MODE": "true",
            "EDI_GATEWAY_ROLE": "kommune",
            "EDI_GATEWAY_OUR_HER_ID": str(KOMMUNE),
        }
        result = CliRunner().invoke(cli_app, ["pathway", *args, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def point(self, name: str, number: int) -> str:
        """The state of samhandlingspunkt ``number`` of the pathway ``name``."""
        view = self.desk.show(self.ids[name])
        return next(p.state for p in view.points if p.samhandlingspunkt == number)


def receive_assessment(gateway: Gateway, person: str, diagnosis: date) -> None:
    """Store a signed behovskartlegging for ``person`` (diagnosis and assessment dates given) as received now."""
    assessment = {
        **example("kommune-only")["assessment"],
        "date": (diagnosis + timedelta(days=7)).isoformat(),
    }
    message = hospital_message(
        gateway, person, diagnosis={"date": diagnosis.isoformat()}, assessment=assessment
    )
    assert message.receiver_org_her_id == KOMMUNE
    receive(gateway, message, at=datetime.now(UTC), person=person)


def diagnoses(today: date) -> dict[str, date]:
    """Diagnosis dates putting samhandlingspunkt 2 (3–4 months) overdue, due now, and due in a week."""
    return {
        "late": add_months(today, -5),
        "due": add_months(today, -3) - timedelta(days=10),
        "soon": add_months(today, -3) + timedelta(days=7),
    }


def _settings(tmp_path: Path, pki_template: Path, database_url: str, **overrides: Any) -> Settings:
    return make_settings(
        tmp_path,
        pki_template,
        amqp_url=NO_BROKER,
        database_url=database_url,
        queue_prefix="unused.",
        **overrides,
    )


@pytest.fixture
def kommune(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[Kommune]:
    """The kommune gateway with its three pathways, accounts ``viewer`` and ``operator``, and a client."""
    settings = _settings(tmp_path, pki_template, database_url, role="kommune", our_her_id=KOMMUNE)
    gateway = open_gateway(settings, migrate=True)
    try:
        for name, diagnosis in diagnoses(local_day(datetime.now(UTC))).items():
            receive_assessment(gateway, PEOPLE[name], diagnosis)
        desk = desk_for(gateway)
        assert desk.apply_received(datetime.now(UTC), actor="worker:test") == len(PEOPLE)
        ids = {name: _pathway_of(desk, PEOPLE[name]) for name in PEOPLE}
        tokens = {}
        for role in ROLES:
            create_operator(gateway.store, role.value, PASSWORD, role, display_name=f"Test {role.value}")
            tokens[role] = create_token(gateway.store, role.value, label="tests")
        with TestClient(create_app(settings, gateway=gateway), follow_redirects=False) as client:
            yield Kommune(gateway, client, ids, tokens)
    finally:
        gateway.close()


def _pathway_of(desk: PathwayDesk, person: str) -> int:
    masked = f"{person[:6]}*****"
    return next(p.pathway_id for p in desk.worklist() if p.patient == masked)


# -- the API ---------------------------------------------------------------------------------------


def test_the_api_answers_what_the_cli_prints(kommune: Kommune) -> None:
    """List (with and without a state filter) and show answer exactly the CLI's --json for the same store."""
    auth = kommune.auth(Role.VIEWER)
    listed = kommune.client.get("/api/pathways", headers=auth)
    assert listed.status_code == 200, listed.text
    assert listed.json() == kommune.cli_json("list")
    assert len(listed.json()) == 3 * len(PEOPLE)
    overdue = kommune.client.get("/api/pathways?state=overdue", headers=auth).json()
    assert overdue == kommune.cli_json("list", "--state", "overdue")
    assert [p["pathway_id"] for p in overdue] == [kommune.ids["late"]]
    late = kommune.ids["late"]
    shown = kommune.client.get(f"/api/pathways/{late}", headers=auth)
    assert shown.status_code == 200
    assert shown.json() == kommune.cli_json("show", str(late))


def test_a_viewer_reads_but_every_change_is_403(kommune: Kommune) -> None:
    """A viewer's token reads list, pathway and counts; assigning and marking answer 403 and change nothing."""
    auth, late = kommune.auth(Role.VIEWER), kommune.ids["late"]
    for path in ("/api/pathways", f"/api/pathways/{late}", "/api/pathways/summary"):
        assert kommune.client.get(path, headers=auth).status_code == 200, path
    assign = {"to": "role:kreftkoordinator", "reason": "ukens fordeling"}
    assert kommune.client.post(f"/api/pathways/{late}/assign", json=assign, headers=auth).status_code == 403
    move = {"action": "done", "reason": "samtale gjennomført"}
    refused = kommune.client.post(f"/api/pathways/{late}/points/2", json=move, headers=auth)
    assert refused.status_code == 403
    assert "needs the operator role" in refused.json()["detail"]
    assert kommune.point("late", 2) == "overdue"


def test_an_operator_records_done_with_a_note_for_the_fastlege(kommune: Kommune) -> None:
    """Done with a note answers the pathway: the point done, a pending note row, an audit entry by the operator."""
    late = kommune.ids["late"]
    yesterday = local_day(datetime.now(UTC)) - timedelta(days=1)
    body = {
        "action": "done",
        "reason": "hjemmebesøk",
        "on": yesterday.isoformat(),
        "note": "Samtale gjennomført.",
    }
    response = kommune.client.post(
        f"/api/pathways/{late}/points/2", json=body, headers=kommune.auth(Role.OPERATOR)
    )
    assert response.status_code == 200, response.text
    answered = response.json()
    assert next(p["state"] for p in answered["points"] if p["samhandlingspunkt"] == 2) == "done"
    assert [(n["samhandlingspunkt"], n["state"], n["asked_by"]) for n in answered["notes"]] == [
        (2, "pending", "operator:operator")
    ]
    assert kommune.point("late", 2) == "done"
    notes = rows(kommune.gateway, pathway_notes)
    assert [(n["pathway_id"], n["number"], n["state"], n["text"]) for n in notes] == [
        (late, 2, "pending", "Samtale gjennomført.")
    ]
    entries = search_audit(kommune.gateway.store, patient=PEOPLE["late"])
    assert [(e.action, e.username, e.reason) for e in entries] == [
        ("pathway_mark", "operator", "hjemmebesøk")
    ]
    assert entries[0].details is not None and entries[0].details["note"] is True


def test_an_operator_assigns_a_pathway_through_the_api(kommune: Kommune) -> None:
    """Assign answers the pathway assigned, and the worklist filters by that assignee."""
    due = kommune.ids["due"]
    body = {"to": "role:kreftkoordinator", "reason": "ukens fordeling"}
    response = kommune.client.post(
        f"/api/pathways/{due}/assign", json=body, headers=kommune.auth(Role.OPERATOR)
    )
    assert response.status_code == 200, response.text
    assert response.json()["assigned_to"] == "role:kreftkoordinator"
    mine = kommune.client.get(
        "/api/pathways", params={"assigned_to": "role:kreftkoordinator"}, headers=kommune.auth(Role.VIEWER)
    ).json()
    assert {p["pathway_id"] for p in mine} == {due}


def test_a_move_the_rules_refuse_is_409_with_the_reason(kommune: Kommune) -> None:
    """Reopening a point the calendar holds, or marking a done point again, is 409 with the domain's reason."""
    late, auth = kommune.ids["late"], kommune.auth(Role.OPERATOR)
    reopen = kommune.client.post(
        f"/api/pathways/{late}/points/2", json={"action": "reopen", "reason": "feil"}, headers=auth
    )
    assert reopen.status_code == 409
    assert "refused" in reopen.json()["detail"] and "samhandlingspunkt 2" in reopen.json()["detail"]
    again = kommune.client.post(
        f"/api/pathways/{late}/points/1", json={"action": "done", "reason": "x" * 3}, headers=auth
    )
    assert again.status_code == 409
    assert kommune.point("late", 2) == "overdue"


def test_an_unknown_pathway_or_point_is_404(kommune: Kommune) -> None:
    """An id no pathway has, or a point the course lacks, answers 404 on reads and moves."""
    auth, late = kommune.auth(Role.OPERATOR), kommune.ids["late"]
    move = {"action": "done", "reason": "samtale"}
    assert kommune.client.get("/api/pathways/999999", headers=auth).status_code == 404
    assert kommune.client.post("/api/pathways/999999/points/2", json=move, headers=auth).status_code == 404
    assign = {"to": "role:kreftkoordinator", "reason": "fordeling"}
    assert kommune.client.post("/api/pathways/999999/assign", json=assign, headers=auth).status_code == 404
    missing = kommune.client.post(f"/api/pathways/{late}/points/9", json=move, headers=auth)
    assert missing.status_code == 404
    assert "samhandlingspunkt 9" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("points/2", {"action": "finished", "reason": "samtale"}),
        ("points/2", {"action": "done", "reason": "x"}),
        ("points/2", {"action": "reopen", "reason": "samtale", "on": "2026-01-02"}),
        ("points/2", {"action": "declined", "reason": "samtale", "note": "til fastlegen"}),
        ("points/2", {"action": "done", "reason": "samtale", "note": "   "}),
        ("points/2", {"action": "done", "reason": "samtale", "extra": 1}),
        ("assign", {"to": "kreftkoordinator", "reason": "fordeling"}),
    ],
)
def test_invalid_input_is_422_and_changes_nothing(kommune: Kommune, path: str, body: dict[str, Any]) -> None:
    """An unknown action, a short reason, a day or note where none belongs, or a badly written assignee is 422."""
    late = kommune.ids["late"]
    response = kommune.client.post(
        f"/api/pathways/{late}/{path}", json=body, headers=kommune.auth(Role.OPERATOR)
    )
    assert response.status_code == 422, response.text
    view = kommune.desk.show(late)
    assert view.assigned_to is None and not view.notes
    assert kommune.point("late", 2) == "overdue"


def test_an_unknown_state_filter_is_422(kommune: Kommune) -> None:
    """A state the worklist does not know is refused, naming the states it does."""
    response = kommune.client.get("/api/pathways?state=finished", headers=kommune.auth(Role.VIEWER))
    assert response.status_code == 422
    assert "not_reachable" in response.json()["detail"]


def test_a_cookie_session_writes_with_the_csrf_header_only(kommune: Kommune) -> None:
    """A signed-in browser's API write without X-CSRF-Token is 403; with the session's token it is done."""
    login(kommune.client, Role.OPERATOR)
    token = kommune.client.get("/api/session").json()["csrf_token"]
    path, body = (
        f"/api/pathways/{kommune.ids['due']}/points/2",
        {"action": "declined", "reason": "ønsker ikke"},
    )
    assert kommune.client.post(path, json=body).status_code == 403
    assert kommune.point("due", 2) == "due"
    response = kommune.client.post(path, json=body, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text
    assert kommune.point("due", 2) == "declined"


def test_a_hospital_gateway_has_no_worklist(tmp_path: Path, pki_template: Path, database_url: str) -> None:
    """On the hospital role the API and the pages answer 404 saying the worklist is the kommune role's."""
    gateway = open_gateway(_settings(tmp_path, pki_template, database_url), migrate=True)
    try:
        create_operator(gateway.store, "operator", PASSWORD, Role.OPERATOR)
        auth = {"Authorization": f"Bearer {create_token(gateway.store, 'operator', label='tests')}"}
        with TestClient(create_app(gateway.settings, gateway=gateway), follow_redirects=False) as client:
            for path in ("/api/pathways", "/api/pathways/1", "/api/pathways/summary"):
                response = client.get(path, headers=auth)
                assert response.status_code == 404, path
                assert "belongs to the kommune role" in response.json()["detail"]
            move = client.post(
                "/api/pathways/1/points/2", json={"action": "done", "reason": "x" * 3}, headers=auth
            )
            assert move.status_code == 404
            page = client.get("/pathways", headers=auth)
            assert page.status_code == 404 and "hører til kommunerollen" in page.text
            dashboard = client.get("/", headers=auth)
            assert dashboard.status_code == 200
            assert "pathway-panel" not in dashboard.text and 'href="/pathways"' not in dashboard.text
    finally:
        gateway.close()


# -- the pages -------------------------------------------------------------------------------------


def test_the_worklist_page_shows_masked_patients_and_marks_deadlines(kommune: Kommune) -> None:
    """The worklist lists every pathway masked (never a full person number) and marks overdue and due-soon rows."""
    login(kommune.client, Role.VIEWER)
    page = kommune.client.get("/pathways")
    assert page.status_code == 200
    html = page.text
    assert 'href="/pathways">Oppfølging</a>' in html
    for name, person in PEOPLE.items():
        assert f"{person[:6]}*****" in html and person not in html
        assert f'href="/pathways/{kommune.ids[name]}"' in html
    assert html.count('class="row-overdue"') == 1 and html.count('class="row-due_soon"') == 1
    assert "Behovskartlegging i kommunen, ca. 3–4 måneder etter diagnosen" in html


@pytest.mark.parametrize(("frist", "name"), [("overdue", "late"), ("due_soon", "soon")])
def test_the_worklist_filters_by_deadline(kommune: Kommune, frist: str, name: str) -> None:
    """The dashboard's links (?frist=…) list only the rows the counts counted."""
    login(kommune.client, Role.VIEWER)
    html = kommune.client.get(f"/pathways?frist={frist}").text
    linked = {pathway_id for pathway_id in kommune.ids.values() if f'href="/pathways/{pathway_id}"' in html}
    assert linked == {kommune.ids[name]}


def test_the_pathway_page_shows_points_history_and_forms_for_an_operator_only(kommune: Kommune) -> None:
    """A viewer sees points and history without forms; an operator also sees assign and each allowed move."""
    late = kommune.ids["late"]
    login(kommune.client, Role.VIEWER)
    viewer = kommune.client.get(f"/pathways/{late}")
    assert viewer.status_code == 200
    assert f"{PEOPLE['late'][:6]}*****" in viewer.text and PEOPLE["late"] not in viewer.text
    assert 'id="history"' in viewer.text and "worker:test" in viewer.text
    assert 'id="assign-form"' not in viewer.text
    kommune.client.post("/logout", data={"csrf": csrf_of(viewer.text)})
    login(kommune.client, Role.OPERATOR)
    html = kommune.client.get(f"/pathways/{late}").text
    for form in ("assign-form", "move-2-done", "move-2-declined", "move-2-not_reachable"):
        assert f'id="{form}"' in html
    assert 'id="move-1-done"' not in html and 'id="move-2-reopen"' not in html
    assert kommune.client.get("/pathways/999999").status_code == 404


def test_the_forms_need_csrf_and_redirect_with_a_notice(kommune: Kommune) -> None:
    """A form without the CSRF token is 403; with it, done (with a note) and assign redirect back with a notice."""
    late = kommune.ids["late"]
    csrf = login(kommune.client, Role.OPERATOR)
    done = {"action": "done", "reason": "hjemmebesøk", "note": "Samtale gjennomført.", "on": ""}
    assert kommune.client.post(f"/pathways/{late}/points/2", data=done).status_code == 403
    assert kommune.point("late", 2) == "overdue"
    response = kommune.client.post(f"/pathways/{late}/points/2", data={**done, "csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == f"/pathways/{late}"
    html = kommune.client.get(f"/pathways/{late}").text
    assert "samhandlingspunkt 2: Utført. Notatet til fastlegen er bestilt" in html
    assert 'id="notes"' in html and "Venter på sending" in html
    assert kommune.point("late", 2) == "done"
    assign = {"to": "operator:operator", "reason": "tar denne", "csrf": csrf}
    assert kommune.client.post(f"/pathways/{late}/assign", data=assign).status_code == 303
    assert f"Forløp {late} er tildelt operator:operator." in kommune.client.get(f"/pathways/{late}").text


def test_a_refused_form_comes_back_as_a_notice_and_changes_nothing(kommune: Kommune) -> None:
    """Reopening a point the calendar holds redirects back saying why; a viewer's form post is 403."""
    late = kommune.ids["late"]
    csrf = login(kommune.client, Role.OPERATOR)
    reopen = {"action": "reopen", "reason": "ved en feil", "csrf": csrf}
    response = kommune.client.post(f"/pathways/{late}/points/2", data=reopen)
    assert response.status_code == 303
    assert "Ikke registrert: samhandlingspunkt 2" in kommune.client.get(f"/pathways/{late}").text
    bad_day = {"action": "declined", "reason": "ønsker ikke", "on": "i går", "csrf": csrf}
    kommune.client.post(f"/pathways/{late}/points/2", data=bad_day)
    assert "er ikke en dato" in kommune.client.get(f"/pathways/{late}").text
    assert kommune.point("late", 2) == "overdue"
    with TestClient(kommune.client.app, follow_redirects=False) as viewer:
        token = login(viewer, Role.VIEWER)
        declined = {"action": "declined", "reason": "ønsker ikke", "csrf": token}
        assert viewer.post(f"/pathways/{late}/points/2", data=declined).status_code == 403
    assert kommune.point("late", 2) == "overdue"


def test_the_dashboard_shows_the_pathway_counts(kommune: Kommune) -> None:
    """A kommune's dashboard has the Oppfølging panel: one overdue and one due soon, linking to the filtered list."""
    login(kommune.client, Role.VIEWER)
    html = kommune.client.get("/").text
    assert "Oppfølging (pakkeforløp hjem)" in html
    panel = html.split('id="pathway-panel"', 1)[1].split("</section>", 1)[0]
    assert '<a class="tile s-overdue" href="/pathways?frist=overdue"><span class="num">1</span>' in panel
    assert '<a class="tile t-due_soon" href="/pathways?frist=due_soon"><span class="num">1</span>' in panel
    summary = kommune.client.get("/api/pathways/summary", headers=kommune.auth(Role.VIEWER)).json()
    assert (summary["overdue"], summary["due"], summary["due_soon"]) == (1, 1, 1)
