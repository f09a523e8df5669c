"""The REST API over a gateway that really ran: permissions, lists, details, replay, reveal, audit."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from edi_gateway.services.access import Role, search_audit
from tests.web.conftest import Filled

pytestmark = pytest.mark.rabbitmq

API_CALLS = [
    ("GET", "/api/messages", None),
    ("GET", "/api/messages/x", None),
    ("POST", "/api/messages/x/replay", {"kind": "resend", "reason": "test"}),
    ("POST", "/api/replay/dry-run", {"filter": {}, "kind": "resend"}),
    ("POST", "/api/replay", {"filter": {}, "kind": "resend", "reason": "test"}),
    ("GET", "/api/report", None),
    ("GET", "/api/registry/lookup?q=0805", None),
    ("POST", "/api/registry/lookup", {"q": "0805"}),
    ("POST", "/api/messages/x/reveal", {"what": "patient", "reason": "test"}),
    ("GET", "/api/audit", None),
    ("POST", "/api/audit/search", {}),
    ("GET", "/api/session", None),
    ("GET", "/api/tokens", None),
    ("POST", "/api/tokens/1/revoke", None),
    ("GET", "/api/dashboard", None),
    ("GET", "/api/openapi.json", None),
]


def _patient_id(filled: Filled, msg_id: str) -> str:
    from edi_gateway.services.queries import patient_id_of

    found = patient_id_of(filled.store, msg_id)
    assert found is not None
    return found


@pytest.mark.parametrize(("method", "path", "body"), API_CALLS)
def test_anonymous_gets_401_everywhere_in_the_api(
    client: TestClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    """Every API route answers 401 with a Bearer challenge to a caller without session or token."""
    response = client.request(method, path, json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


NOBODY = "00000000-0000-4000-8000-000000000000"  # no such message: a call that passes the role check ends 404
NO_MATCH = {"kommunenummer": "9999"}  # a filter that finds nothing: a replay by filter that does nothing
ROLE_NEEDED = [
    ("GET", "/api/messages", None, Role.VIEWER),
    ("GET", f"/api/messages/{NOBODY}", None, Role.VIEWER),
    ("POST", "/api/replay/dry-run", {"filter": NO_MATCH, "kind": "resend"}, Role.VIEWER),
    ("GET", "/api/report", None, Role.VIEWER),
    ("GET", "/api/registry/lookup?q=4005", None, Role.VIEWER),
    ("GET", "/api/dashboard", None, Role.VIEWER),
    ("GET", "/api/openapi.json", None, Role.VIEWER),
    ("POST", f"/api/messages/{NOBODY}/replay", {"kind": "resend", "reason": "test"}, Role.OPERATOR),
    ("POST", "/api/replay", {"filter": NO_MATCH, "kind": "resend", "reason": "test"}, Role.OPERATOR),
    ("POST", f"/api/messages/{NOBODY}/reveal", {"what": "patient", "reason": "test"}, Role.OPERATOR),
    ("POST", f"/api/messages/{NOBODY}/reveal", {"what": "payload", "reason": "test"}, Role.OPERATOR),
    ("POST", "/api/registry/lookup", {"q": "07926217857", "reason": "test"}, Role.OPERATOR),
    ("GET", "/api/audit", None, Role.ADMIN),
    ("POST", "/api/audit/search", {"operator": "nobody"}, Role.ADMIN),
]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("method", "path", "body", "needed"), ROLE_NEEDED)
def test_every_api_action_is_open_to_its_role_and_above_only(
    client: TestClient,
    filled: Filled,
    role: Role,
    method: str,
    path: str,
    body: dict[str, object] | None,
    needed: Role,
) -> None:
    """Each action answers 403 to a role below the one it needs; past the check, 404 for NOBODY, else 200."""
    response = client.request(method, path, json=body, headers=filled.auth(role))
    if role.allows(needed):
        assert response.status_code == (404 if NOBODY in path else 200), response.text
    else:
        assert response.status_code == 403, response.text
        assert f"needs the {needed.value} role" in response.json()["detail"]


def test_a_wrong_token_is_401(client: TestClient) -> None:
    """An unknown bearer token is refused like no login at all."""
    response = client.get("/api/messages", headers={"Authorization": "Bearer egw_not-a-token"})
    assert response.status_code == 401


def test_health_and_metrics_need_no_login(client: TestClient, filled: Filled) -> None:
    """/healthz, /readyz and /metrics answer anonymous callers; metrics carry states, never a MsgId.

    An anonymous /readyz says up or down only; a signed-in caller also gets every check's detail.
    """
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "up"}
    detailed = client.get("/readyz", headers=filled.auth(Role.VIEWER))
    assert detailed.status_code == 200 and detailed.json()["failing"] == []
    checks = detailed.json()["checks"]
    assert set(checks) == {"database", "broker", "schemas", "signing", "party_certificates", "transport"}
    assert "expires in" in checks["signing"]["detail"]
    assert checks["transport"]["detail"].startswith("amqp:")
    assert checks["party_certificates"]["ok"] and "renew soon" not in checks["party_certificates"]["detail"]
    metrics = client.get("/metrics").text
    assert 'edi_gateway_messages{state="rejected_by_receiver"}' in metrics
    assert "edi_gateway_parked_unresolved" in metrics
    assert 'edi_gateway_requests{outcome="routed"}' in metrics
    assert filled.acked.msg_id not in metrics


def test_viewer_lists_messages_with_masked_patients(client: TestClient, filled: Filled) -> None:
    """A viewer's list has every message, the patient masked and never the full person number."""
    response = client.get("/api/messages", headers=filled.auth(Role.VIEWER))
    assert response.status_code == 200
    page = response.json()
    ids = {row["msg_id"] for row in page["rows"]}
    assert {filled.acked.msg_id, filled.rejected.msg_id, filled.overdue.msg_id} <= ids
    person = _patient_id(filled, filled.acked.msg_id)
    assert person not in response.text
    assert all(row["patient_masked"].endswith("*****") for row in page["rows"])


def test_filters_and_paging(client: TestClient, filled: Filled) -> None:
    """state= finds the rejected message only; limit/offset page through the list with the same total."""
    auth = filled.auth(Role.VIEWER)
    rejected = client.get("/api/messages?state=rejected_by_receiver", headers=auth).json()
    assert [r["msg_id"] for r in rejected["rows"]] == [filled.rejected.msg_id]
    assert rejected["rows"][0]["apprec_status"] == 2
    first = client.get("/api/messages?limit=1&offset=0", headers=auth).json()
    second = client.get("/api/messages?limit=1&offset=1", headers=auth).json()
    assert first["total"] == second["total"] >= 3
    assert first["rows"][0]["msg_id"] != second["rows"][0]["msg_id"]


def test_a_bad_filter_is_a_clear_error(client: TestClient, filled: Filled) -> None:
    """An unknown state is refused with 400 naming the field; a malformed kommunenummer with 422."""
    auth = filled.auth(Role.VIEWER)
    bad_state = client.get("/api/messages?state=lost", headers=auth)
    assert bad_state.status_code == 400 and "state" in bad_state.json()["detail"]
    assert client.get("/api/messages?kommunenummer=abc", headers=auth).status_code == 422


def test_detail_shows_apprec_errors_in_plain_language(client: TestClient, filled: Filled) -> None:
    """The rejected message's detail carries the E35 error with its text and a timeline to the rejection."""
    response = client.get(f"/api/messages/{filled.rejected.msg_id}", headers=filled.auth(Role.VIEWER))
    assert response.status_code == 200
    detail = response.json()
    (apprec,) = detail["apprecs"]
    assert apprec["status"] == 2
    code, text = apprec["errors"][0]
    assert code == "E35" and text
    assert "rejected_by_receiver" in [e["to_state"] for e in detail["timeline"]]
    assert client.get("/api/messages/nope", headers=filled.auth(Role.VIEWER)).status_code == 404


def test_viewer_may_not_replay_or_reveal(client: TestClient, filled: Filled) -> None:
    """Replay and reveal answer 403 to a viewer, and nothing is replayed."""
    auth = filled.auth(Role.VIEWER)
    msg_id = filled.overdue.msg_id
    replay = client.post(
        f"/api/messages/{msg_id}/replay", json={"kind": "resend", "reason": "try"}, headers=auth
    )
    reveal = client.post(
        f"/api/messages/{msg_id}/reveal", json={"what": "patient", "reason": "try"}, headers=auth
    )
    by_filter = client.post(
        "/api/replay", json={"filter": {}, "kind": "resend", "reason": "x!x"}, headers=auth
    )
    assert (replay.status_code, reveal.status_code, by_filter.status_code) == (403, 403, 403)
    assert filled.message(msg_id).resends == 0


def test_operator_reveals_patient_and_payload_with_audit(client: TestClient, filled: Filled) -> None:
    """An operator gets the full person number and the signed XML; each reveal is in the audit log."""
    auth = filled.auth(Role.OPERATOR)
    msg_id = filled.acked.msg_id
    patient = client.post(
        f"/api/messages/{msg_id}/reveal", json={"what": "patient", "reason": "INC-1"}, headers=auth
    )
    assert patient.status_code == 200
    assert patient.json()["patient_id"] == _patient_id(filled, msg_id)
    payload = client.post(
        f"/api/messages/{msg_id}/reveal", json={"what": "payload", "reason": "INC-1"}, headers=auth
    )
    assert payload.json()["payload"].lstrip().startswith("<?xml")
    audit = client.get(f"/api/audit?msg_id={msg_id}", headers=filled.auth(Role.ADMIN)).json()
    assert {"reveal_patient", "reveal_payload"} <= {e["action"] for e in audit}
    assert all(e["username"] == "operator" and e["reason"] == "INC-1" for e in audit)


def test_reveal_needs_a_reason(client: TestClient, filled: Filled) -> None:
    """A reveal without a real reason is refused before anything is shown."""
    response = client.post(
        f"/api/messages/{filled.acked.msg_id}/reveal",
        json={"what": "patient", "reason": ""},
        headers=filled.auth(Role.OPERATOR),
    )
    assert response.status_code == 422
    assert "patient_id" not in response.text


def test_operator_resends_an_overdue_message(client: TestClient, filled: Filled) -> None:
    """A resend keeps the MsgId, counts a resend, and the message is sent again."""
    msg_id = filled.overdue.msg_id
    response = client.post(
        f"/api/messages/{msg_id}/replay",
        json={"kind": "resend", "reason": "kommune asked for it again"},
        headers=filled.auth(Role.OPERATOR),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["kind"] == "resend" and result["new_msg_ids"] == [msg_id]
    assert filled.message(msg_id).resends == 1
    queue = filled.overdue.queue.removeprefix(filled.running.settings.queue_prefix)
    deliveries = filled.running.receiver_deliveries(queue, expect=4)  # three first sends and the resend
    assert [d.message_id for d in deliveries].count(msg_id) == 2


def test_operator_rebuilds_a_rejected_message(client: TestClient, filled: Filled) -> None:
    """A rebuild makes a new message with ConversationRef to the rejected one; resend of it is refused."""
    auth = filled.auth(Role.OPERATOR)
    old = filled.rejected.msg_id
    refused = client.post(
        f"/api/messages/{old}/replay", json={"kind": "resend", "reason": "again"}, headers=auth
    )
    assert refused.status_code == 409 and "rebuild" in refused.json()["detail"]
    response = client.post(
        f"/api/messages/{old}/replay", json={"kind": "rebuild", "reason": "patient data fixed"}, headers=auth
    )
    assert response.status_code == 200, response.text
    (new_id,) = response.json()["new_msg_ids"]
    assert new_id != old
    detail = client.get(f"/api/messages/{new_id}", headers=auth).json()
    assert detail["conversation_ref"] == old


def test_operator_replays_an_edited_request(client: TestClient, filled: Filled) -> None:
    """An edit takes the corrected request JSON and makes a new message; a broken edit gives its codes."""
    auth = filled.auth(Role.OPERATOR)
    msg_id = filled.acked.msg_id
    request = filled.store.get_request_by_ref(filled.acked.request_ref)
    assert request is not None
    edited = json.loads(request.body)
    edited["assessment"]["notes"] = "Rettet etter telefon med kommunen."
    response = client.post(
        f"/api/messages/{msg_id}/replay",
        json={"kind": "edit", "reason": "notes corrected", "edited_request": edited},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "edit" and response.json()["new_msg_ids"] != [msg_id]
    edited["samhandlingspunkt"] = 9
    broken = client.post(
        f"/api/messages/{msg_id}/replay",
        json={"kind": "edit", "reason": "try a bad edit", "edited_request": edited},
        headers=auth,
    )
    assert broken.status_code == 422
    assert isinstance(broken.json()["detail"], list)


def test_dry_run_plans_without_changing(client: TestClient, filled: Filled) -> None:
    """The dry run says what a replay by filter would do to each message and leaves them as they were."""
    before = filled.message(filled.acked.msg_id)
    response = client.post(
        "/api/replay/dry-run",
        json={"filter": {"state": "acked"}, "kind": "resend"},
        headers=filled.auth(Role.VIEWER),
    )
    assert response.status_code == 200
    plan = response.json()
    assert filled.acked.msg_id in {p["msg_id"] for p in plan}
    assert all(p["plan"] for p in plan)
    assert filled.message(filled.acked.msg_id) == before


def test_only_admin_searches_the_audit_log(client: TestClient, filled: Filled) -> None:
    """The audit log answers an admin (also by patient) and refuses an operator with 403."""
    assert client.get("/api/audit", headers=filled.auth(Role.OPERATOR)).status_code == 403
    msg_id = filled.acked.msg_id
    client.post(
        f"/api/messages/{msg_id}/reveal",
        json={"what": "patient", "reason": "audit test"},
        headers=filled.auth(Role.OPERATOR),
    )
    person = _patient_id(filled, msg_id)
    response = client.post("/api/audit/search", json={"patient": person}, headers=filled.auth(Role.ADMIN))
    assert response.status_code == 200
    assert any(e["reason"] == "audit test" for e in response.json())
    assert person not in response.text
    searches = [e for e in search_audit(filled.store, patient=person) if e.action == "search_audit"]
    assert [(e.username, e.reason, (e.details or {})["by_patient"]) for e in searches] == [
        ("admin", "API", True)
    ]


def test_report_registry_and_dashboard(client: TestClient, filled: Filled) -> None:
    """Report, registry look-up and dashboard figures answer a viewer."""
    auth = filled.auth(Role.VIEWER)
    report = client.get("/api/report", headers=auth).json()
    assert report["messages"] >= 3
    assert {"acked", "rejected_by_receiver"} <= {r["outcome"] for r in report["rows"]}
    kommune = filled.acked.kommunenummer
    assert client.get(f"/api/registry/lookup?q={kommune}", headers=auth).status_code == 200
    dashboard = client.get("/api/dashboard", headers=auth).json()
    assert dashboard["counts_by_state"].get("acked", 0) >= 1
    assert set(dashboard["last_hour"]) >= {"requests", "messages", "acked"}


def test_openapi_is_served_behind_login_and_lists_the_routes(client: TestClient, filled: Filled) -> None:
    """/api/openapi.json names every REST route; FastAPI's CDN-backed docs pages are not served."""
    schema = client.get("/api/openapi.json", headers=filled.auth(Role.VIEWER)).json()
    assert {"/api/messages", "/api/messages/{msg_id}/replay", "/api/replay/dry-run", "/api/audit"} <= set(
        schema["paths"]
    )
    assert client.get("/docs", follow_redirects=False).status_code == 404
    assert client.get("/redoc", follow_redirects=False).status_code == 404


def test_person_lookup_in_the_api_is_audited(client: TestClient, filled: Filled) -> None:
    """A person-number look-up (a POST) needs OPERATOR and a reason and is audited; bad queries are 400."""
    person = _patient_id(filled, filled.acked.msg_id)
    url = "/api/registry/lookup"
    asked = {"q": person, "reason": "why"}
    assert client.post(url, json=asked, headers=filled.auth(Role.VIEWER)).status_code == 403
    assert client.post(url, json={"q": person}, headers=filled.auth(Role.OPERATOR)).status_code == 400
    asked = {"q": person, "reason": "kommune asks"}
    found = client.post(url, json=asked, headers=filled.auth(Role.OPERATOR))
    assert found.status_code == 200 and person not in found.text
    assert "bosted_kommunenummer" in found.text
    search = client.post("/api/audit/search", json={"patient": person}, headers=filled.auth(Role.ADMIN))
    assert any(
        e["action"] == "registry_lookup_person" and e["reason"] == "kommune asks" for e in search.json()
    )
    bad = client.get("/api/registry/lookup?q=Skien", headers=filled.auth(Role.VIEWER))
    assert bad.status_code == 400
