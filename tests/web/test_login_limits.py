"""Login hardening: repeated failures hold the username (and the address), and the Secure cookie setting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

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


def test_a_username_is_held_after_max_failures_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=clock)
    for step in range(3):
        assert throttle.wait_s("kari", "10.0.0.1") == 0
        throttle.failed("kari", "10.0.0.1")
        clock.now += 10 * (step + 1)  # failures at 1000, 1010, 1030
    assert throttle.wait_s("Kari ", "10.0.0.2") == pytest.approx(1000 + 60 - clock.now)
    assert throttle.wait_s("ola", "10.0.0.1") == 0  # another user from the same address may still try
    clock.now = 1060.0  # the first failure has left the window: two of three remain
    assert throttle.wait_s("kari", "10.0.0.1") == 0


def test_a_success_clears_the_username_but_not_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=2, window_s=60, clock=clock)
    for n in range(2 * ADDRESS_FACTOR):  # the address limit, spread over many usernames
        throttle.failed(f"user{n}", "10.0.0.9")
    assert throttle.wait_s("newcomer", "10.0.0.9") == pytest.approx(60)
    assert throttle.wait_s("newcomer", "10.0.0.1") == 0
    throttle.failed("kari", "10.0.0.1")
    throttle.failed("kari", "10.0.0.1")
    assert throttle.wait_s("kari", "10.0.0.1") > 0
    throttle.succeeded("kari")
    assert throttle.wait_s("kari", "10.0.0.2") == 0


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
