"""Helpers for tests on a running gateway: send a request and take its sent message, read a queue."""

from __future__ import annotations

import time
from typing import Any

from edi_gateway.domain.states import MessageState
from edi_gateway.store.records import MessageRecord
from edi_gateway.transport.consumer import Delivery, drain
from tests.services.conftest import RunningGateway, example


def sent_message(
    running: RunningGateway, request: dict[str, Any] | None = None
) -> tuple[MessageRecord, dict[str, Any]]:
    """Send a request (kommune-only by default); return its first message once sent, and the request."""
    request = request or example("kommune-only")
    running.send(request)
    stored = running.wait_request(request["request_id"])
    message = running.gateway.store.messages_for_request(stored.ref)[0]
    assert message.state == MessageState.SENT
    return message, request


def on_queue(running: RunningGateway, queue: str, expect: int, timeout: float = 10) -> list[Delivery]:
    """Read up to ``expect`` deliveries from ``queue``, its full name (prefix included), within ``timeout``."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got += drain(running.settings.amqp_url, queue, max_messages=expect - len(got), timeout=0.5)
    return got
