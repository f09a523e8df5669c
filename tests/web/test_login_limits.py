"""Login hardening: failures hold a username at one address (and the address), an admin reset clears it.

Also the Secure cookie setting.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from edi_gateway.cli import app as cli_app
from edi_gateway.logging import configure_logging
from edi_gateway.services.access import Role, create_operator
from edi_gateway.web import create_app
from edi_gateway.web.throttle import ADDRESS_FACTOR, LoginThrottle
from tests.web.conftest import PASSWORD, Filled
from tests.web.test_pages import csrf_of


class Clock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_username_is_held_at_an_address_after_max_failures_until_the_oldest_leaves_the_window() -> None:
    """Three failures hold the username at that address (case and spaces aside) until the first expires."""
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=clock)
    for step in range(3):
        assert throttle.wait_s("kari", "10.0.0.1") == 0
        throttle.failed("kari", "10.0.0.1")
        clock.now += 10 * (step + 1)  # failures at 1000, 1010, 1030
    assert throttle.wait_s("Kari ", "10.0.0.1") == pytest.approx(1000 + 60 - clock.now)
    assert throttle.wait_s("ola", "10.0.0.1") == 0  # another user from the same address may still try
    clock.now = 1060.0  # the first failure has left the window: two of three remain
    assert throttle.wait_s("kari", "10.0.0.1") == 0


def test_failures_from_one_address_do_not_hold_the_username_elsewhere() -> None:
    """An attacker failing on admin from one address holds admin there only, not at the admin's desk."""
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=Clock())
    for _ in range(10):
        throttle.failed("admin", "203.0.113.5")
    assert throttle.wait_s("admin", "203.0.113.5") > 0
    assert throttle.wait_s("admin", "10.0.0.1") == 0


def test_a_success_clears_the_username_at_that_address_but_not_the_address() -> None:
    """After a success the username may try again there; the address's own count stays."""
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=clock)
    for n in range(2 * ADDRESS_FACTOR):  # the address limit, spread over many usernames
        throttle.failed(f"user{n}", "10.0.0.9")
    assert throttle.wait_s("newcomer", "10.0.0.9") == pytest.approx(60)
    assert throttle.wait_s("newcomer", "10.0.0.1") == 0
    throttle.failed("kari", "10.0.0.1")
    throttle.failed("kari", "10.0.0.1")
    assert throttle.wait_s("kari", "10.0.0.1") > 0
    throttle.succeeded("kari", "10.0.0.1")
    assert throttle.wait_s("kari", "10.0.0.1") == 0
    assert throttle.wait_s("newcomer", "10.0.0.9") == pytest.approx(60)


def test_a_new_reset_stamp_drops_the_username_s_failures_at_every_address() -> None:
    """A reset stamp not seen before clears the username everywhere, once; other usernames keep theirs."""
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=Clock())
    for address in ("10.0.0.1", "10.0.0.2"):
        throttle.failed("kari", address)
        throttle.failed("kari", address)
    throttle.failed("ola", "10.0.0.1")
    throttle.failed("ola", "10.0.0.1")
    stamp = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert throttle.wait_s("kari", "10.0.0.1", reset=stamp) == 0
    assert throttle.wait_s("kari", "10.0.0.2", reset=stamp) == 0
    assert throttle.wait_s("ola", "10.0.0.1") > 0
    throttle.failed("kari", "10.0.0.1")
    throttle.failed("kari", "10.0.0.1")
    assert throttle.wait_s("kari", "10.0.0.1", reset=stamp) > 0  # the same stamp again clears nothing
    assert throttle.wait_s("kari", "10.0.0.1", reset=stamp + timedelta(minutes=1)) == 0


@pytest.fixture
def strict_client(filled: Filled) -> Iterator[TestClient]:
    """A second app over the same gateway: two failures hold a username, and cookies are Secure."""
    settings = filled.running.settings.model_copy(update={"login_max_failures": 2, "web_secure_cookie": True})
    app = create_app(settings, gateway=filled.running.gateway)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        yield client


def _login(client: TestClient, password: str) -> tuple[int, dict[str, str], str]:
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"username": "operator", "password": password, "csrf": token})
    return response.status_code, dict(response.headers), response.text


@pytest.mark.rabbitmq
def test_the_form_holds_a_username_after_repeated_failures_even_for_the_right_password(
    strict_client: TestClient,
) -> None:
    """Two wrong passwords, then the right one: 429 with Retry-After, and no session is started."""
    assert _login(strict_client, "wrong one")[0] == 401
    assert _login(strict_client, "wrong two")[0] == 401
    status, headers, text = _login(strict_client, PASSWORD)
    assert status == 429
    assert 0 < int(headers["retry-after"]) <= 900
    assert "Too many failed logins" in text
    assert strict_client.get("/").status_code == 303  # still not signed in: off to the login form


@pytest.mark.rabbitmq
def test_the_session_cookie_is_secure_when_the_setting_says_so(strict_client: TestClient) -> None:
    token = csrf_of(strict_client.get("/login").text)
    response = strict_client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": token})
    assert response.status_code == 303
    assert "; secure" in response.headers["set-cookie"].lower()


def _form_login(client: TestClient, username: str, password: str) -> int:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf": token}).status_code


@pytest.fixture
def strict_app(filled: Filled) -> FastAPI:
    """An app over the shared gateway where two failures hold a username at an address."""
    settings = filled.running.settings.model_copy(update={"login_max_failures": 2})
    return create_app(settings, gateway=filled.running.gateway)


def _admin(filled: Filled) -> str:
    username = f"admin-{uuid.uuid4().hex[:8]}"
    create_operator(filled.store, username, PASSWORD, Role.ADMIN)
    return username


@pytest.mark.rabbitmq
def test_an_attacker_elsewhere_cannot_hold_an_admin_out(strict_app: FastAPI, filled: Filled) -> None:
    """Failures on an admin from one address hold that address only; the admin signs in from their desk."""
    admin = _admin(filled)
    attacker = TestClient(strict_app, follow_redirects=False, client=("203.0.113.5", 40000))
    desk = TestClient(strict_app, follow_redirects=False, client=("10.20.0.7", 40000))
    for _ in range(3):
        _form_login(attacker, admin, "guess")
    assert _form_login(attacker, admin, PASSWORD) == 429
    assert _form_login(desk, admin, PASSWORD) == 303


@pytest.mark.rabbitmq
def test_an_unlock_from_the_command_line_reaches_the_web_process(
    strict_app: FastAPI, filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``operators unlock`` in another process of the installation lets the held username in at once."""
    admin = _admin(filled)
    client = TestClient(strict_app, follow_redirects=False)
    _form_login(client, admin, "wrong one")
    _form_login(client, admin, "wrong two")
    assert _form_login(client, admin, PASSWORD) == 429
    settings = filled.running.settings
    monkeypatch.setenv("EDI_GATEWAY_HOME", str(settings.home))
    monkeypatch.setenv("EDI_GATEWAY_DATABASE_URL", settings.effective_database_url)
    try:
        result = CliRunner().invoke(cli_app, ["operators", "unlock", admin])
    finally:
        configure_logging()  # the command sent logs to stderr; later tests expect the default
    assert result.exit_code == 0, result.output
    assert _form_login(client, admin, PASSWORD) == 303


@pytest.mark.rabbitmq
def test_an_admin_unlocks_an_account_from_the_accounts_page(strict_app: FastAPI, filled: Filled) -> None:
    """The accounts page's unlock button clears the held username; a viewer may not press it (403)."""
    held = _admin(filled)
    client = TestClient(strict_app, follow_redirects=False)
    _form_login(client, held, "wrong one")
    _form_login(client, held, "wrong two")
    assert _form_login(client, held, PASSWORD) == 429
    viewer = TestClient(strict_app, follow_redirects=False, client=("10.0.0.3", 1))
    assert _form_login(viewer, "viewer", PASSWORD) == 303
    token = csrf_of(viewer.get("/").text)
    assert viewer.post(f"/operators/{held}/unlock", data={"csrf": token}).status_code == 403
    admin = TestClient(strict_app, follow_redirects=False, client=("10.0.0.4", 1))
    assert _form_login(admin, "admin", PASSWORD) == 303
    token = csrf_of(admin.get("/operators").text)
    response = admin.post(f"/operators/{held}/unlock", data={"csrf": token})
    assert response.status_code == 303 and response.headers["location"] == "/operators"
    assert _form_login(client, held, PASSWORD) == 303
