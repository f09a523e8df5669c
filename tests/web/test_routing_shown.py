"""The message page and the API's message view show which kommune service was chosen, and why."""

from __future__ import annotations

import html

import pytest
from fastapi.testclient import TestClient

from edi_gateway.services.access import Role
from tests.services.conftest import example
from tests.web.conftest import Filled
from tests.web.test_pages import login

pytestmark = pytest.mark.rabbitmq
BAMBLE_PATIENT = "08818028386"  # Bamble is registered without a tjenestekontor

FIRST_CHOICE = "tjenestekontor (KD0501) registered: the first preference of the routing rules"
FALLBACK = (
    "no tjenestekontor (KD0501) registered; falls back to kreftkoordinator (KX06), "
    "the next preference of the routing rules"
)


def _bamble_msg_id(filled: Filled) -> str:
    """Send a request for a Bamble patient through the worker; return its kommune message's MsgId."""
    request = example("kommune-only")
    request["patient"]["id"] = BAMBLE_PATIENT
    filled.running.send(request)
    stored = filled.running.wait_request(request["request_id"])
    (message,) = filled.store.messages_for_request(stored.ref)
    return message.msg_id


def test_the_message_page_shows_the_tjenestekontor_and_why(client: TestClient, filled: Filled) -> None:
    """A message the worker routed shows the chosen service and the recorded reason, with no fallback mark."""
    login(client, Role.VIEWER)
    page = client.get(f"/messages/{filled.acked.msg_id}")
    assert page.status_code == 200
    start = page.text.index('id="routing-choice"')
    shown = html.unescape(page.text[start : page.text.index("</dd>", start)])
    assert "Tjenestekontoret (KD0501)" in shown and FIRST_CHOICE in shown
    assert "reserve" not in shown


def test_a_fallback_is_marked_on_the_page_and_in_the_api(client: TestClient, filled: Filled) -> None:
    """A kommune without a tjenestekontor gets the kreftkoordinator; page and API say so and why."""
    msg_id = _bamble_msg_id(filled)
    login(client, Role.VIEWER)
    page = client.get(f"/messages/{msg_id}")
    start = page.text.index('id="routing-choice"')
    shown = html.unescape(page.text[start : page.text.index("</dd>", start)])
    assert "(KX06)" in shown and "reserve" in shown and FALLBACK in shown
    detail = client.get(f"/api/messages/{msg_id}", headers=filled.auth(Role.VIEWER)).json()
    assert detail["routing"] == {
        "service_code": "KX06",
        "service_name": "Kreftkoordinator",
        "reason": FALLBACK,
        "fallback": True,
        "preference": ["KD0501", "KX06", "KP02"],
        "rule": "default",
    }
