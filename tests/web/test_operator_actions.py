"""Replays asked for in the web process are recorded there and carried out, once, by a worker.

The web app here runs on settings whose broker address is closed: it records actions in the shared
database and never needs the broker. The module's real worker (RabbitMQ + SQLite) carries them out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edi_gateway.domain.states import MessageState
from edi_gateway.services.access import Operator, Role
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.operator_actions import ActionDesk, ActionRunner
from edi_gateway.services.replay import ReplayKind, replay_session
from edi_gateway.settings import Settings
from edi_gateway.store.actions import ActionState
from edi_gateway.web import create_app
from tests.web.conftest import Filled
from tests.web.test_pages import csrf_of, login

pytestmark = pytest.mark.rabbitmq

NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens on port 1


def _web_gateway(filled: Filled, **overrides: object) -> Iterator[Gateway]:
    settings: Settings = filled.running.settings.model_copy(update={"amqp_url": NO_BROKER, **overrides})
    gateway = open_gateway(settings)
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture(scope="module")
def web_gateway(filled: Filled) -> Iterator[Gateway]:
    """The web process's own gateway on the shared database, with no reachable broker."""
    yield from _web_gateway(filled)


@pytest.fixture(scope="module")
def impatient_gateway(filled: Filled) -> Iterator[Gateway]:
    """As ``web_gateway``, but replays answer at once instead of waiting for the worker."""
    yield from _web_gateway(filled, web_action_wait_s=0.0)


def _client(gateway: Gateway) -> Iterator[TestClient]:
    app: FastAPI = create_app(gateway.settings, gateway=gateway)
    with TestClient(app, follow_redirects=False) as c:
        yield c


@pytest.fixture
def web(web_gateway: Gateway) -> Iterator[TestClient]:
    """A client of the broker-less web app that waits for outcomes."""
    yield from _client(web_gateway)


@pytest.fixture
def impatient(impatient_gateway: Gateway) -> Iterator[TestClient]:
    """A client of the broker-less web app that does not wait."""
    yield from _client(impatient_gateway)


def test_a_web_app_without_a_broker_replays_through_a_worker(web: TestClient, filled: Filled) -> None:
    """The rebuild is recorded by the web app, carried out by the worker, and its result answered."""
    old = filled.rejected.msg_id
    response = web.post(
        f"/api/messages/{old}/replay",
        json={"kind": "rebuild", "reason": "kommune fixed its register entry"},
        headers=filled.auth(Role.OPERATOR),
    )
    assert response.status_code == 200, response.text
    (new_id,) = response.json()["new_msg_ids"]
    assert filled.message(new_id).conversation_ref == old
    (action,) = filled.store.actions_for_message(old)
    assert action.state is ActionState.DONE and action.claimed_by is not None
    assert action.claimed_by.startswith("worker:")
    (entry,) = filled.store.search_audit(msg_id=old, action="replay")
    assert entry.username == Role.OPERATOR.value  # the operator the web verified, not the worker


def test_a_refusal_comes_back_from_the_worker_as_the_same_error(web: TestClient, filled: Filled) -> None:
    """A resend of an answered message is refused by the worker; the web answers 409 with its reason."""
    response = web.post(
        f"/api/messages/{filled.acked.msg_id}/replay",
        json={"kind": "resend", "reason": "try"},
        headers=filled.auth(Role.OPERATOR),
    )
    assert response.status_code == 409 and "rebuild" in response.json()["detail"]
    (action,) = filled.store.actions_for_message(filled.acked.msg_id)
    assert action.state is ActionState.REFUSED


def test_checks_the_web_can_make_itself_refuse_before_recording(web: TestClient, filled: Filled) -> None:
    """A viewer, a missing reason and an unknown message are refused at once, and nothing is recorded."""
    msg_id = filled.overdue.msg_id
    before = filled.store.actions_for_message(msg_id)
    viewer = web.post(
        f"/api/messages/{msg_id}/replay",
        json={"kind": "resend", "reason": "checking"},
        headers=filled.auth(Role.VIEWER),
    )
    no_reason = web.post(
        f"/api/messages/{msg_id}/replay",
        json={"kind": "resend", "reason": " "},
        headers=filled.auth(Role.OPERATOR),
    )
    unknown = web.post(
        "/api/messages/00000000-0000-4000-8000-000000000000/replay",
        json={"kind": "resend", "reason": "checking"},
        headers=filled.auth(Role.OPERATOR),
    )
    assert (viewer.status_code, no_reason.status_code, unknown.status_code) == (403, 422, 404)
    assert filled.store.actions_for_message(msg_id) == before


def _wait_done(client: TestClient, filled: Filled, action_id: int) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        view = client.get(f"/api/actions/{action_id}", headers=filled.auth(Role.VIEWER)).json()
        if view["state"] not in ("pending", "running"):
            return dict(view)
        time.sleep(0.05)
    raise AssertionError(f"action {action_id} was not carried out")


def test_a_replay_not_yet_carried_out_answers_202_and_its_outcome_shows_later(
    impatient: TestClient, filled: Filled
) -> None:
    """With no wait the API answers 202 with the action; the worker carries it out; API and page show it."""
    msg_id = filled.overdue.msg_id
    response = impatient.post(
        f"/api/messages/{msg_id}/replay",
        json={"kind": "resend", "reason": "receiver asked again"},
        headers=filled.auth(Role.OPERATOR),
    )
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["state"] in ("pending", "running") and pending["result"] is None
    assert "no worker has carried it out yet" in pending["detail"]
    done = _wait_done(impatient, filled, pending["action_id"])
    assert done["state"] == "done" and done["requested_by"] == Role.OPERATOR.value
    assert isinstance(done["result"], dict) and done["result"]["new_msg_ids"] == [msg_id]
    login(impatient, Role.VIEWER)
    page = impatient.get(f"/messages/{msg_id}").text
    assert 'id="operator-actions"' in page and "sent the stored message again" in page


def test_a_page_replay_not_yet_carried_out_says_so_and_loses_nothing(
    impatient: TestClient, filled: Filled
) -> None:
    """From the page the operator is told the replay is recorded; the worker then carries it out."""
    msg_id = filled.overdue.msg_id
    login(impatient, Role.OPERATOR)
    csrf = csrf_of(impatient.get(f"/messages/{msg_id}").text)
    response = impatient.post(
        f"/messages/{msg_id}/replay", data={"kind": "resend", "reason": "again, from the page", "csrf": csrf}
    )
    assert response.status_code == 303 and response.headers["location"] == f"/messages/{msg_id}"
    page = impatient.get(response.headers["location"]).text
    assert "no worker has carried it out yet" in page or "sent the stored message again" in page
    action = filled.store.actions_for_message(msg_id)[0]
    assert _wait_done(impatient, filled, action.id)["state"] == "done"


def test_however_many_workers_run_each_action_is_carried_out_once(filled: Filled) -> None:
    """Twelve resends asked at once, three workers' runners: twelve resends, twelve audit entries, twelve copies."""
    gateway, store = filled.running.gateway, filled.store
    msg_id = filled.overdue.msg_id
    message = filled.message(msg_id)
    assert message.state in (MessageState.OVERDUE, MessageState.SENT)
    queue = message.queue.removeprefix(filled.running.settings.queue_prefix)
    filled.running.receiver_deliveries(queue, expect=100, timeout=1)  # empty the receiver's queue
    audits_before = len(store.search_audit(msg_id=msg_id, action="replay", limit=1000))
    resends_before = message.resends
    stop = threading.Event()

    def runner(n: int) -> None:
        with replay_session(gateway, name=f"test-runner-{n}") as service:
            ActionRunner(gateway, service, f"worker:test-{n}", interval_s=0.01, stale_after_s=300).run(stop)

    threads = [threading.Thread(target=runner, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    desk = ActionDesk(store)
    who = Operator(Role.OPERATOR.value, Role.OPERATOR, "Test operator")
    ids = [desk.ask_replay(who, msg_id, ReplayKind.RESEND, reason=f"copy {n}") for n in range(12)]
    actions = desk.wait(ids, 30)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert [a.state for a in actions] == [ActionState.DONE] * 12
    # Each resend counts unless the overdue sweep moved the message between the replay's read and write.
    assert resends_before < filled.message(msg_id).resends <= resends_before + 12
    assert len(store.search_audit(msg_id=msg_id, action="replay", limit=1000)) == audits_before + 12
    copies = filled.running.receiver_deliveries(queue, expect=13, timeout=3)
    assert [d.message_id for d in copies].count(msg_id) == 12
