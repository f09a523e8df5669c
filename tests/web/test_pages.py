"""The server-rendered pages over a gateway that really ran: login, roles, reveal, replay, audit."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from edi_gateway.services.access import Role, search_audit
from edi_gateway.services.queries import patient_id_of
from tests.web.conftest import PASSWORD, Filled

pytestmark = pytest.mark.rabbitmq
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def login(client: TestClient, role: Role) -> str:
    """Log in through the form as ``role``'s operator; return the session's CSRF token."""
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"username": role.value, "password": PASSWORD, "csrf": token, "next": "/messages"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/messages"
    return csrf_of(client.get("/").text)


def test_pages_send_anonymous_visitors_to_login(client: TestClient) -> None:
    """A page asked for without a session redirects to the login form, remembering where it was going."""
    response = client.get("/messages?state=acked")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/messages%3Fstate%3Dacked"
    assert client.get("/static/style.css").status_code == 200


def test_login_refuses_a_wrong_password_and_a_missing_csrf_token(client: TestClient, filled: Filled) -> None:
    """A wrong password shows the form again with 401; a login post without the form's token is 403."""
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"username": "viewer", "password": "nope", "csrf": token})
    assert wrong.status_code == 401 and "wrong password" in wrong.text
    no_token = client.post("/login", data={"username": "viewer", "password": PASSWORD})
    assert no_token.status_code == 403


def test_session_cookie_is_http_only_and_strict(client: TestClient, filled: Filled) -> None:
    """The session cookie cannot be read by scripts and is not sent on cross-site requests."""
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"username": "viewer", "password": PASSWORD, "csrf": token})
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("edi_gateway_session=")
    assert "httponly" in cookie and "samesite=strict" in cookie
    response = client.get("/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


def test_viewer_sees_lists_but_no_actions(client: TestClient, filled: Filled) -> None:
    """A viewer's pages show the masked patient and no replay or reveal forms; posting one anyway is 403."""
    token = login(client, Role.VIEWER)
    listing = client.get("/messages?state=rejected_by_receiver")
    assert filled.rejected.msg_id[:8] in listing.text
    assert filled.acked.msg_id[:8] not in listing.text
    page = client.get(f"/messages/{filled.rejected.msg_id}")
    assert page.status_code == 200
    assert "*****" in page.text and 'id="replay-rebuild"' not in page.text
    post = client.post(
        f"/messages/{filled.rejected.msg_id}/replay", data={"kind": "rebuild", "reason": "try", "csrf": token}
    )
    assert post.status_code == 403
    assert client.get("/audit").status_code == 403


def test_message_page_explains_the_rejection(client: TestClient, filled: Filled) -> None:
    """The page of a rejected message shows the AppRec status in words and the E35 error."""
    login(client, Role.VIEWER)
    page = client.get(f"/messages/{filled.rejected.msg_id}").text
    assert "Avvist" in page and "E35" in page


def test_operator_reveals_the_person_number_once(client: TestClient, filled: Filled) -> None:
    """Revealing shows the full person number in that response only (not cached, not on reload)."""
    from edi_gateway.services.queries import patient_id_of

    token = login(client, Role.OPERATOR)
    msg_id = filled.acked.msg_id
    person = patient_id_of(filled.store, msg_id)
    assert person is not None
    shown = client.post(
        f"/messages/{msg_id}/reveal", data={"what": "patient", "reason": "INC-7", "csrf": token}
    )
    assert shown.status_code == 200 and person in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert person not in client.get(f"/messages/{msg_id}").text
    xml = client.post(
        f"/messages/{msg_id}/reveal", data={"what": "payload", "reason": "INC-7", "csrf": token}
    )
    assert "MsgHead" in xml.text and 'id="payload-xml"' in xml.text


def test_operator_edits_and_replays_from_the_page(client: TestClient, filled: Filled) -> None:
    """Loading the request for editing is audited; the edited request is replayed as a new message."""
    token = login(client, Role.OPERATOR)
    msg_id = filled.acked.msg_id
    form = client.post(f"/messages/{msg_id}/edit-request", data={"reason": "fix notes", "csrf": token})
    assert form.status_code == 200 and 'name="edited_request"' in form.text
    text = re.search(r'<textarea name="edited_request"[^>]*>(.*?)</textarea>', form.text, re.S)
    assert text is not None
    edited = html.unescape(text.group(1))
    replay = client.post(
        f"/messages/{msg_id}/replay",
        data={"kind": "edit", "reason": "fix notes", "edited_request": edited, "csrf": token},
    )
    assert replay.status_code == 303
    new_page = client.get(replay.headers["location"])
    assert "edit:" in new_page.text  # the notice of what the replay did
    actions = [e.action for e in filled.store.search_audit(msg_id=msg_id, limit=50)]
    assert "reveal_request" in actions and "replay" in actions
    patient = patient_id_of(filled.store, msg_id)
    assert patient is not None
    about_patient = search_audit(filled.store, patient=patient, msg_id=msg_id)
    assert "reveal_request" in [e.action for e in about_patient]  # the entry names the patient (keyed)


def test_a_broken_edit_is_explained(client: TestClient, filled: Filled) -> None:
    """An edited request that is not JSON is refused with a plain message."""
    token = login(client, Role.OPERATOR)
    response = client.post(
        f"/messages/{filled.acked.msg_id}/replay",
        data={"kind": "edit", "reason": "oops", "edited_request": "{not json", "csrf": token},
    )
    assert response.status_code == 400 and "not valid JSON" in response.text


def test_admin_searches_the_audit_log(client: TestClient, filled: Filled) -> None:
    """The audit page lists entries and finds an operator's by name."""
    token = login(client, Role.ADMIN)
    assert client.get("/audit").status_code == 200
    found = client.post("/audit", data={"who": "operator", "patient": "", "msg_id": "", "csrf": token})
    assert found.status_code == 200 and "operator" in found.text
    (search,) = [e for e in search_audit(filled.store, operator="admin") if e.reason == "web UI"]
    assert search.action == "search_audit" and (search.details or {})["operator"] == "operator"


def test_dashboard_report_registry_and_docs_render(client: TestClient, filled: Filled) -> None:
    """Dashboard, report (with its SVG chart), registry look-up and API docs render for a viewer."""
    token = login(client, Role.VIEWER)
    dashboard = client.get("/")
    assert dashboard.status_code == 200 and "Forfalt" in dashboard.text
    report = client.get("/report")
    assert report.status_code == 200 and "<svg" in report.text
    period = client.get("/report?since=2024-11-01&until=2024-12-01").text
    assert 'name="since" value="2024-11-01T00:00"' in period  # the period in force fills the form
    assert 'name="until" value="2024-12-01T00:00"' in period
    registry = client.post("/registry", data={"q": filled.acked.kommunenummer, "csrf": token})
    assert registry.status_code == 200 and 'id="lookup-result"' in registry.text
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/api/messages/{msg_id}/replay" in docs.text


def test_logout_ends_the_session(client: TestClient, filled: Filled) -> None:
    """After logging out, pages redirect to the login form again."""
    token = login(client, Role.VIEWER)
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    assert client.get("/").status_code == 303


def test_person_lookup_on_the_page_needs_operator_and_a_reason(client: TestClient, filled: Filled) -> None:
    """A viewer cannot look a person up; an operator can, with a reason, and the number is not echoed."""
    from edi_gateway.services.queries import patient_id_of

    person = patient_id_of(filled.store, filled.acked.msg_id)
    assert person is not None
    token = login(client, Role.VIEWER)
    assert client.post("/registry", data={"q": person, "reason": "why", "csrf": token}).status_code == 403
    client.post("/logout", data={"csrf": token})
    token = login(client, Role.OPERATOR)
    without = client.post("/registry", data={"q": person, "csrf": token})
    assert without.status_code == 400
    found = client.post("/registry", data={"q": person, "reason": "kommune asks", "csrf": token})
    assert found.status_code == 200 and person not in found.text
    assert "bosted_kommunenummer" in found.text
    bad = client.post("/registry", data={"q": "Skien", "csrf": token})
    assert bad.status_code == 400
