"""Parked AppRecs in the web UI and the REST API, over a gateway whose inbox really parked one."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from edi_gateway.services.access import Role, search_audit
from edi_gateway.store import NewParked, ParkedKind, ParkedRecord
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox
from tests.web.conftest import Filled
from tests.web.test_pages import login

pytestmark = pytest.mark.rabbitmq
NOTODDEN = 8100015  # a kommune that is not the receiver of any message here


@pytest.fixture(scope="module")
def wrong_sender(filled: Filled) -> ParkedRecord:
    """An AppRec for the acked message, signed and sent by another kommune: the worker parks it."""
    running = filled.running
    to_inbox(running, signed_by(running, NOTODDEN, apprec_for(filled.acked, sender_org=NOTODDEN)))
    running.wait_for(lambda: filled.store.count_parked(code="apprec.wrong_sender") == 1)
    (parked,) = filled.store.list_parked(code="apprec.wrong_sender")
    return parked


def _audit(filled: Filled, action: str) -> list[tuple[str, str, dict[str, object] | None]]:
    return [(e.username, e.reason, e.details) for e in search_audit(filled.store) if e.action == action]


def test_the_list_and_item_pages_show_the_parked_apprec_without_its_document(
    client: TestClient, filled: Filled, wrong_sender: ParkedRecord
) -> None:
    """A viewer sees the code, ids and size in the list and on the item page; the document is not shown."""
    login(client, Role.VIEWER)
    listing = client.get("/parked")
    assert listing.status_code == 200
    assert f'href="/parked/{wrong_sender.id}"' in listing.text and "apprec.wrong_sender" in listing.text
    assert 'href="/parked"' in listing.text  # the nav link
    item = client.get(f"/parked/{wrong_sender.id}")
    assert item.status_code == 200
    assert wrong_sender.msg_id is not None and wrong_sender.msg_id in item.text
    assert f"{len(wrong_sender.raw)} bytes" in item.text
    assert 'id="parked-payload"' not in item.text and 'id="reveal-parked"' not in item.text
    assert client.get("/parked/99999999").status_code == 404


def test_a_viewer_cannot_reveal_or_resolve(
    client: TestClient, filled: Filled, wrong_sender: ParkedRecord
) -> None:
    """Posting a reveal or a resolve as a viewer is 403 and changes nothing."""
    token = login(client, Role.VIEWER)
    for action in ("reveal", "resolve", "dismiss"):
        response = client.post(
            f"/parked/{wrong_sender.id}/{action}", data={"reason": "curious", "csrf": token}
        )
        assert response.status_code == 403
    stored = filled.store.get_parked(wrong_sender.id)
    assert stored is not None and stored.resolved_at is None


def test_an_operator_reveals_the_document_once_and_it_is_audited(
    client: TestClient, filled: Filled, wrong_sender: ParkedRecord
) -> None:
    """The reveal form shows the stored AppRec in that response only (no-store) and writes an audit entry."""
    token = login(client, Role.OPERATOR)
    shown = client.post(f"/parked/{wrong_sender.id}/reveal", data={"reason": "INC-11 sender", "csrf": token})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert 'id="parked-payload"' in shown.text and "AppRec" in shown.text
    assert 'id="parked-payload"' not in client.get(f"/parked/{wrong_sender.id}").text
    assert (
        "operator",
        "INC-11 sender",
        {"parked_id": wrong_sender.id, "kind": "apprec", "code": "apprec.wrong_sender"},
    ) in _audit(filled, "reveal_parked")
    no_csrf = client.post(f"/parked/{wrong_sender.id}/reveal", data={"reason": "INC-11 sender"})
    assert no_csrf.status_code == 403


def test_the_api_lists_shows_reveals_and_resolves_once(filled: Filled, client: TestClient) -> None:
    """GET lists and shows without the document; reveal returns it (audited); resolve works once, then 409."""
    build_doc = _stray()
    filled.store.save_acknowledgements(
        apprecs=[], parked=[build_doc], transitions=[], health=[], actor="worker:test"
    )
    (parked,) = filled.store.list_parked(code="apprec.unknown_message")

    listing = client.get(
        "/api/parked", params={"code": "apprec.unknown_message"}, headers=filled.auth(Role.VIEWER)
    )
    assert listing.status_code == 200
    page = listing.json()
    assert (page["total"], [r["id"] for r in page["rows"]]) == (1, [parked.id])
    assert "payload" not in page["rows"][0] and page["rows"][0]["size"] == len(build_doc.raw)
    shown = client.get(f"/api/parked/{parked.id}", headers=filled.auth(Role.VIEWER)).json()
    assert (shown["code"], shown["apprec_id"], shown["outcome"]) == (
        "apprec.unknown_message",
        "api-stray",
        None,
    )
    assert client.get("/api/parked/99999999", headers=filled.auth(Role.VIEWER)).status_code == 404

    denied = client.post(
        f"/api/parked/{parked.id}/reveal", json={"reason": "look"}, headers=filled.auth(Role.VIEWER)
    )
    assert denied.status_code == 403
    revealed = client.post(
        f"/api/parked/{parked.id}/reveal", json={"reason": "INC-12 look"}, headers=filled.auth(Role.OPERATOR)
    )
    assert revealed.status_code == 200
    assert (
        revealed.json()["payload"] == build_doc.raw.decode() and revealed.json()["parked"]["id"] == parked.id
    )
    assert (
        "operator",
        "INC-12 look",
        {"parked_id": parked.id, "kind": "apprec", "code": "apprec.unknown_message"},
    ) in _audit(filled, "reveal_parked")

    short = client.post(
        f"/api/parked/{parked.id}/resolve", json={"reason": ""}, headers=filled.auth(Role.OPERATOR)
    )
    assert short.status_code == 422
    done = client.post(
        f"/api/parked/{parked.id}/dismiss", json={"reason": "test system"}, headers=filled.auth(Role.OPERATOR)
    )
    assert done.status_code == 200
    assert (done.json()["outcome"], done.json()["resolved_by"]) == ("dismissed", "operator:operator")
    again = client.post(
        f"/api/parked/{parked.id}/resolve", json={"reason": "once more"}, headers=filled.auth(Role.ADMIN)
    )
    assert again.status_code == 409 and "dismissed already" in again.json()["detail"]
    assert (
        "operator",
        "test system",
        {"parked_id": parked.id, "kind": "apprec", "code": "apprec.unknown_message"},
    ) in _audit(filled, "dismiss_parked")
    assert "once more" not in [reason for _, reason, _ in _audit(filled, "resolve_parked")]


def test_an_operator_resolves_from_the_page_once(client: TestClient, filled: Filled) -> None:
    """The resolve form marks it resolved and shows the outcome; a second post is refused with 409."""
    document = dataclasses.replace(_stray(), code="apprec.bad_signature", apprec_id="page-stray")
    filled.store.save_acknowledgements(
        apprecs=[], parked=[document], transitions=[], health=[], actor="worker:test"
    )
    (parked,) = filled.store.list_parked(code="apprec.bad_signature")
    token = login(client, Role.OPERATOR)
    done = client.post(f"/parked/{parked.id}/resolve", data={"reason": "kommune informed", "csrf": token})
    assert done.status_code == 303 and done.headers["location"] == f"/parked/{parked.id}"
    page = client.get(f"/parked/{parked.id}")
    assert "resolved av operator:operator" in page.text and "resolved: kommune informed" in page.text
    assert 'id="resolve-parked"' not in page.text
    again = client.post(f"/parked/{parked.id}/dismiss", data={"reason": "again", "csrf": token})
    assert again.status_code == 409
    assert f'href="/parked/{parked.id}"' not in client.get("/parked").text
    assert f'href="/parked/{parked.id}"' in client.get("/parked?state=handled").text
    assert [r for r in _audit(filled, "resolve_parked") if r[1] == "kommune informed"] == [
        (
            "operator",
            "kommune informed",
            {"parked_id": parked.id, "kind": "apprec", "code": "apprec.bad_signature"},
        )
    ]


def _stray() -> NewParked:
    """An AppRec naming a MsgId we never sent, parked as the worker would."""
    return NewParked(
        kind=ParkedKind.APPREC,
        code="apprec.unknown_message",
        reason="OriginalMsgId is not a message we sent",
        received_at=datetime.now(UTC),
        raw=b"<AppRec>api stray</AppRec>",
        apprec_id="api-stray",
        msg_id="not-ours",
    )
