"""A gateway with messages in every state, operators of every role, and the web app over it.

One real gateway (RabbitMQ + SQLite) per test module: requests go through the worker, receivers'
AppRecs come back through the inbox (one OK, one Avvist E35), and one message is left to go overdue.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.states import MessageState
from edi_gateway.services.access import Role, create_operator, create_token
from edi_gateway.store import Store
from edi_gateway.store.records import MessageRecord
from edi_gateway.web import create_app
from edi_gateway.xml.apprec import apprec_error
from tests.services.conftest import (
    RunningGateway,
    cleanup_gateway,
    example,
    make_settings,
    start_gateway,
    stop_gateway,
)
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox

PASSWORD = "correct horse battery"
ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


@dataclass
class Filled:
    """The running gateway, its messages by what happened to them, and a bearer token per role."""

    running: RunningGateway
    acked: MessageRecord
    rejected: MessageRecord
    overdue: MessageRecord
    tokens: dict[Role, str]

    @property
    def store(self) -> Store:
        """The gateway's store."""
        return self.running.gateway.store

    def message(self, msg_id: str) -> MessageRecord:
        """The stored message (it must exist)."""
        found = self.store.get_message(msg_id)
        assert found is not None
        return found

    def auth(self, role: Role) -> dict[str, str]:
        """The Authorization header of ``role``'s operator."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def _sent(running: RunningGateway) -> MessageRecord:
    request = example("kommune-only")
    running.send(request)
    stored = running.wait_request(request["request_id"])
    return running.gateway.store.messages_for_request(stored.ref)[0]


def _wait_state(running: RunningGateway, msg_id: str, state: MessageState) -> MessageRecord:
    store = running.gateway.store

    def reached() -> bool:
        found = store.get_message(msg_id)
        return found is not None and found.state == state

    running.wait_for(reached)
    found = store.get_message(msg_id)
    assert found is not None
    return found


def fill(running: RunningGateway) -> Filled:
    """Make an acked, a rejected (E35) and an overdue message, and one operator per role with a token."""
    acked, rejected, overdue = (_sent(running) for _ in range(3))
    ok = apprec_for(acked)
    avvist = apprec_for(rejected, status=AppRecStatus.AVVIST, errors=(apprec_error("E35"),))
    org = acked.receiver_org_her_id
    to_inbox(running, signed_by(running, org, ok), signed_by(running, org, avvist))
    tokens = {}
    for role in ROLES:
        create_operator(running.gateway.store, role.value, PASSWORD, role, display_name=f"Test {role.value}")
        tokens[role] = create_token(running.gateway.store, role.value, label="tests")
    return Filled(
        running=running,
        acked=_wait_state(running, acked.msg_id, MessageState.ACKED),
        rejected=_wait_state(running, rejected.msg_id, MessageState.REJECTED_BY_RECEIVER),
        overdue=_wait_state(running, overdue.msg_id, MessageState.OVERDUE),
        tokens=tokens,
    )


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, pki_template: Path, amqp_url: str) -> Iterator[Filled]:
    """A running gateway (own queues, own SQLite) with messages in several states; one per module."""
    tmp = tmp_path_factory.mktemp("web")
    settings = make_settings(
        tmp,
        pki_template,
        amqp_url=amqp_url,
        database_url=f"sqlite:///{tmp / 'edi.sqlite3'}",
        queue_prefix=f"t{uuid.uuid4().hex[:10]}.",
        apprec_deadline_s=1.5,
        overdue_sweep_interval_s=0.2,
    )
    running = start_gateway(settings)
    try:
        yield fill(running)
    finally:
        stop_gateway(running)
        cleanup_gateway(running)


@pytest.fixture(scope="module")
def app(filled: Filled) -> FastAPI:
    """The web app over the filled gateway."""
    return create_app(filled.running.settings, gateway=filled.running.gateway)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A fresh HTTP client (no cookies) for the app."""
    with TestClient(app, follow_redirects=False) as c:
        yield c
