"""Sessions the server ends, API tokens that expire and are revoked, CSRF on cookie API writes.

Also: person numbers stay out of URLs, cookies are Secure and HSTS is sent over https, and /readyz
probes the broker at most once per interval. All against the real app over a gateway that ran.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edi_gateway.services.access import (
    Role,
    create_operator,
    create_token,
    end_sessions,
    search_audit,
    set_password,
    set_role,
)
from edi_gateway.store.tables import api_tokens
from edi_gateway.web import create_app, health
from edi_gateway.web.auth import SESSION_COOKIE
from tests.web.conftest import PASSWORD, Filled
from tests.web.test_pages import csrf_of

pytestmark = pytest.mark.rabbitmq


def _account(filled: Filled, role: Role = Role.OPERATOR) -> str:
    """A fresh account of ``role`` (tests here end sessions and revoke tokens: never the shared ones)."""
    username = f"{role.value}-{uuid.uuid4().hex[:8]}"
    create_operator(filled.store, username, PASSWORD, role)
    return username


def _login(client: TestClient, username: str, password: str = PASSWORD) -> int:
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"username": username, "password": password, "csrf": token})
    return response.status_code


def _signed_in(app: FastAPI, username: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    assert _login(client, username) == 303
    assert client.get("/").status_code == 200
    return client


def _with_cookie(app: FastAPI, cookie: str) -> TestClient:
    """A client that shows a copied session cookie (a replay from elsewhere)."""
    return TestClient(app, follow_redirects=False, cookies={SESSION_COOKIE: cookie})


# -- sessions ------------------------------------------------------------------------------------


def test_logout_makes_a_copied_cookie_useless(app: FastAPI, filled: Filled) -> None:
    """After logout the very cookie the session had, replayed, reaches neither pages nor the API."""
    client = _signed_in(app, _account(filled))
    cookie = client.cookies[SESSION_COOKIE]
    token = csrf_of(client.get("/").text)
    assert _with_cookie(app, cookie).get("/").status_code == 200  # the copy works while signed in
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    replayed = _with_cookie(app, cookie)
    assert replayed.get("/").status_code == 303
    assert replayed.get("/api/messages").status_code == 401


CHANGES: dict[str, Callable[[Filled, str], None]] = {
    "new password": lambda f, u: set_password(f.store, u, "a quite different phrase"),
    "new role": lambda f, u: set_role(f.store, u, Role.VIEWER),
    "disabled": lambda f, u: f.store.set_operator_disabled(u, True) and None,
    "logout elsewhere": lambda f, u: end_sessions(f.store, u),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_an_account_change_ends_every_session_of_the_account(
    app: FastAPI, filled: Filled, change: str
) -> None:
    """A new password, a new role, disabling, or a logout elsewhere ends both browsers' sessions at once."""
    username = _account(filled)
    first, second = _signed_in(app, username), _signed_in(app, username)
    other = _signed_in(app, _account(filled))
    CHANGES[change](filled, username)
    assert first.get("/").status_code == 303
    assert second.get("/api/messages").status_code == 401
    assert other.get("/").status_code == 200  # another account's session is untouched


# -- tokens --------------------------------------------------------------------------------------


def _token_id(filled: Filled, username: str) -> int:
    (token,) = filled.store.list_api_tokens(username)
    return token.id


def test_an_expired_token_gets_401(client: TestClient, filled: Filled) -> None:
    """A token past its expiry is refused with 401 like an unknown one; before it, it works."""
    username = _account(filled, Role.VIEWER)
    token = create_token(filled.store, username, label="short", expires_days=1)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/messages", headers=auth).status_code == 200
    with filled.store._write() as conn:
        conn.execute(
            api_tokens.update()
            .where(api_tokens.c.id == _token_id(filled, username))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = client.get("/api/messages", headers=auth)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_the_api_lists_own_tokens_and_revokes_them_admins_any(client: TestClient, filled: Filled) -> None:
    """GET /api/tokens shows a viewer only their tokens, never a secret; revoking another's is 403, an admin may."""
    viewer, other = _account(filled, Role.VIEWER), _account(filled, Role.VIEWER)
    mine, theirs = (
        create_token(filled.store, viewer, label="mine"),
        create_token(filled.store, other, label="x"),
    )
    auth, their_auth = {"Authorization": f"Bearer {mine}"}, {"Authorization": f"Bearer {theirs}"}
    listed = client.get("/api/tokens", headers=auth)
    assert listed.status_code == 200
    assert [(t["username"], t["label"], t["live"]) for t in listed.json()] == [(viewer, "mine", True)]
    assert mine not in listed.text and listed.json()[0]["expires_at"] is not None
    assert listed.json()[0]["last_used_at"] is not None  # this very call used it
    their_id = _token_id(filled, other)
    assert client.post(f"/api/tokens/{their_id}/revoke", headers=auth).status_code == 403
    assert client.get("/api/messages", headers=their_auth).status_code == 200
    revoked = client.post(f"/api/tokens/{their_id}/revoke", headers=filled.auth(Role.ADMIN))
    assert revoked.status_code == 200 and revoked.json()["live"] is False
    assert client.get("/api/messages", headers=their_auth).status_code == 401
    own = client.post(f"/api/tokens/{_token_id(filled, viewer)}/revoke", headers=auth)
    assert own.status_code == 200
    assert client.get("/api/messages", headers=auth).status_code == 401
    assert client.post("/api/tokens/999999/revoke", headers=filled.auth(Role.ADMIN)).status_code == 404
    admin_sees = {t["username"] for t in client.get("/api/tokens", headers=filled.auth(Role.ADMIN)).json()}
    assert {viewer, other, "admin"} <= admin_sees


def test_the_tokens_page_revokes_a_token_and_the_accounts_page_is_for_admins(
    app: FastAPI, filled: Filled
) -> None:
    """An operator revokes their own token from /tokens (then it gets 401); /operators answers admins only."""
    username = _account(filled)
    token = create_token(filled.store, username, label="from-page")
    client = _signed_in(app, username)
    listing = client.get("/tokens")
    token_id = _token_id(filled, username)
    assert listing.status_code == 200 and "from-page" in listing.text and token not in listing.text
    assert f'id="revoke-{token_id}"' in listing.text
    assert client.post(f"/tokens/{token_id}/revoke", data={}).status_code == 403  # no CSRF token
    response = client.post(f"/tokens/{token_id}/revoke", data={"csrf": csrf_of(listing.text)})
    assert response.status_code == 303 and response.headers["location"] == "/tokens"
    assert client.get("/api/messages", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert f'id="revoke-{token_id}"' not in client.get("/tokens").text
    assert client.get("/operators").status_code == 403
    admin = _signed_in(app, _account(filled, Role.ADMIN))
    accounts = admin.get("/operators")
    assert accounts.status_code == 200 and f'id="unlock-{username}"' in accounts.text


# -- CSRF on the API -----------------------------------------------------------------------------

DRY_RUN = {"filter": {"kommunenummer": "9999"}, "kind": "resend"}


def test_a_cookie_api_write_needs_the_csrf_header_and_a_bearer_call_does_not(
    app: FastAPI, filled: Filled
) -> None:
    """With the session cookie, a POST without X-CSRF-Token (or a wrong one) is 403; with it, 200."""
    client = _signed_in(app, _account(filled, Role.VIEWER))
    assert client.get("/api/messages").status_code == 200  # reads need no header
    assert client.post("/api/replay/dry-run", json=DRY_RUN).status_code == 403
    wrong = client.post("/api/replay/dry-run", json=DRY_RUN, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403 and "X-CSRF-Token" in wrong.json()["detail"]
    session = client.get("/api/session").json()
    assert session["role"] == "viewer" and session["csrf_token"]
    right = client.post("/api/replay/dry-run", json=DRY_RUN, headers={"X-CSRF-Token": session["csrf_token"]})
    assert right.status_code == 200
    bearer = TestClient(app).post("/api/replay/dry-run", json=DRY_RUN, headers=filled.auth(Role.VIEWER))
    assert bearer.status_code == 200
    assert TestClient(app).get("/api/session", headers=filled.auth(Role.VIEWER)).json()["csrf_token"] is None


# -- person numbers stay out of URLs -------------------------------------------------------------


def test_a_person_number_in_a_look_up_url_is_refused_unanswered(client: TestClient, filled: Filled) -> None:
    """A person number in the query string of a look-up or an audit search is 400 pointing to the POST.

    Nothing is looked up or searched, so nothing is audited about the patient.
    """
    from edi_gateway.services.queries import patient_id_of

    person = patient_id_of(filled.store, filled.acked.msg_id)
    assert person is not None
    before = len(search_audit(filled.store, patient=person, limit=1000))
    response = client.get(f"/api/registry/lookup?q={person}", headers=filled.auth(Role.OPERATOR))
    assert response.status_code == 400 and "POST" in response.json()["detail"]
    assert len(search_audit(filled.store, patient=person, limit=1000)) == before
    audit_get = client.get(f"/api/audit?patient={person}", headers=filled.auth(Role.ADMIN))
    assert audit_get.status_code == 400 and "POST /api/audit/search" in audit_get.json()["detail"]
    assert len(search_audit(filled.store, patient=person, limit=1000)) == before


# -- cookies and HSTS ----------------------------------------------------------------------------


def _app_with(filled: Filled, **settings: Any) -> FastAPI:
    return create_app(filled.running.settings.model_copy(update=settings), gateway=filled.running.gateway)


def _cookie_on_login(app: FastAPI, base_url: str) -> tuple[str, dict[str, str]]:
    with TestClient(app, base_url=base_url, follow_redirects=False) as client:
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"username": "viewer", "password": PASSWORD, "csrf": token})
        assert response.status_code == 303
        return response.headers["set-cookie"].lower(), dict(response.headers)


def test_cookies_are_secure_outside_test_mode_and_hsts_goes_out_over_https(filled: Filled) -> None:
    """Outside test mode the cookie is Secure and https responses carry HSTS; test mode over http has neither."""
    cookie, headers = _cookie_on_login(_app_with(filled, test_mode=False), "https://testserver")
    assert "; secure" in cookie
    assert headers["strict-transport-security"] == "max-age=31536000"
    cookie, headers = _cookie_on_login(_app_with(filled, test_mode=True), "http://testserver")
    assert "; secure" not in cookie and "strict-transport-security" not in headers
    forced, _ = _cookie_on_login(
        _app_with(filled, test_mode=True, web_secure_cookie=True), "https://testserver"
    )
    assert "; secure" in forced


# -- /readyz -------------------------------------------------------------------------------------


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counted_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every broker connection /readyz opens (real ones, to the test broker), by name."""
    opened: list[str] = []
    real = health.connect

    def counting(url: str, *, name: str) -> Any:
        opened.append(name)
        return real(url, name=name)

    monkeypatch.setattr(health, "connect", counting)
    yield opened


def test_readyz_opens_one_broker_connection_per_interval_however_often_asked(
    filled: Filled, counted_connections: list[str]
) -> None:
    """Twenty calls within the interval share one probe; the first call after it probes again."""
    app = _app_with(filled)
    clock = Clock()
    app.state.web.readiness.clock = clock
    with TestClient(app) as client:
        for _ in range(20):
            assert client.get("/readyz").json() == {"status": "up"}
            clock.now += 0.2
        assert counted_connections == ["edi_gateway.readyz"]
        clock.now += health.READY_CACHE_S
        assert client.get("/readyz").status_code == 200
    assert len(counted_connections) == 2
