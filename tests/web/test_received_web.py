"""Received documents in the web UI (**Mottatt**) and the REST API (``/api/received``), on SQLite and PostgreSQL.

A kommune gateway (Porsgrunn 8100005) holds three documents stored as its receiving side stores them
(``Store.add_received`` with real signed MsgHeads): the hospital's behovskartlegging, which the
pathway desk takes into the worklist; a reply from a legekontor answered "OK, feil i delmelding"
that threads to a message of ours; and an older message we refused (Avvist, E21). The web app runs
without a broker (the web process never publishes).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edi_gateway.domain.model import Organisation, Sender
from edi_gateway.services.access import Role, create_operator, create_token, patient_ref_for, search_audit
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.pathways import desk_for
from edi_gateway.settings import Settings
from edi_gateway.store.received import NewReceived
from edi_gateway.web import create_app
from edi_gateway.xml.apprec import apprec_error
from tests.services.conftest import make_settings
from tests.services.test_pathways import hospital_message
from tests.services.test_receiver import kommune_receiver, outbound, signed
from tests.web.conftest import PASSWORD
from tests.web.test_pages import csrf_of, login

KOMMUNE = 8100005  # Porsgrunn kommune
HOSPITAL = 8100001
LEGEKONTOR = 8100087  # Skien legesenter 2
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"
PEOPLE = {"assessment": "18897219545", "reply": "07926217857", "rejected": "28836737557"}  # synthetic
PERSONAL = ("Sørensen", "fulgt opp av fastlegen")  # the patients' family name; the reply's text
REPLY_TEXT = "Pasienten er fulgt opp av fastlegen.\nNeste kontroll i mars."


@dataclass
class Stocked:
    """The three received documents' ids, the pathway the behovskartlegging opened, our thread's MsgId."""

    ids: dict[str, int]
    pathway_id: int
    thread_msg_id: str


def _new(
    gateway: Gateway,
    name: str,
    signed_msghead: tuple[str, bytes],
    *,
    sender: int,
    at: datetime,
    status: int = 1,
    errors: tuple[str, ...] = (),
    pathway_state: str | None = None,
    thread_msg_id: str | None = None,
) -> NewReceived:
    """The row the receiving side stores for ``name``'s document (MsgId and signed bytes) and our AppRec."""
    person = PEOPLE[name]
    msg_id, body = signed_msghead
    return NewReceived(
        msg_id=msg_id,
        sender_her_id=sender,
        receiver_her_id=KOMMUNE,
        addressed_her_id=None,
        msg_type="DIALOG_HELSEFAGLIG",
        conversation_ref=thread_msg_id,
        received_at=at,
        body=body,
        patient_ref=patient_ref_for(gateway.store, person),
        patient_masked=person[:6] + "*****",
        apprec_id=str(uuid.uuid4()),
        apprec_status=status,
        apprec_errors=[{"code": e.code, "text": e.text} for e in map(apprec_error, errors)],
        apprec_body=b"<AppRec/>",
        pathway_state=pathway_state,
        thread_msg_id=thread_msg_id,
    )


def _legekontor_reply(gateway: Gateway, pki: Path) -> tuple[str, bytes]:
    """A signed MsgHead from Skien legesenter 2 to Porsgrunn's service with its own Tema and text."""
    message = outbound(kommune_receiver(gateway.registers), patient_id=PEOPLE["reply"])
    assert message.notat is not None
    message = dataclasses.replace(
        message,
        sender=Sender(Organisation(LEGEKONTOR, "Skien legesenter 2", "961034051")),
        notat=dataclasses.replace(message.notat, tema="Svar fra fastlege", text=REPLY_TEXT),
    )
    return message.msg_id, signed(pki, message, key_her_id=LEGEKONTOR)


def stock_received(gateway: Gateway, pki: Path) -> Stocked:
    """Store the three documents as the receiving side does, and let the desk take in the behovskartlegging."""
    now = datetime.now(UTC)
    assessment, rejected = (hospital_message(gateway, PEOPLE[n]) for n in ("assessment", "rejected"))
    thread = str(uuid.uuid4())
    stored = gateway.store.add_received(
        [
            _new(
                gateway,
                "rejected",
                (rejected.msg_id, rejected.signed_xml),
                sender=HOSPITAL,
                at=now - timedelta(days=3),
                status=2,
                errors=("E21",),
            ),
            _new(
                gateway,
                "assessment",
                (assessment.msg_id, assessment.signed_xml),
                sender=HOSPITAL,
                at=now - timedelta(hours=2),
                pathway_state="pending",
            ),
            _new(
                gateway,
                "reply",
                _legekontor_reply(gateway, pki),
                sender=LEGEKONTOR,
                at=now - timedelta(hours=1),
                status=3,
                errors=("E10",),
                thread_msg_id=thread,
            ),
        ]
    )
    ids = {name: r.id for name, r in zip(("rejected", "assessment", "reply"), stored, strict=True) if r}
    gateway.store.mark_apprecs_sent(list(ids.values()))
    gateway.store.mark_announced([ids["assessment"], ids["reply"]])
    assert desk_for(gateway).apply_received(now, actor="worker:test") == 1
    pathway = gateway.store.pathway_for_patient(patient_ref_for(gateway.store, PEOPLE["assessment"]))
    assert pathway is not None
    return Stocked(ids, pathway.id, thread)


def kommune_settings(tmp_path: Path, pki_template: Path, database_url: str) -> Settings:
    """A kommune gateway's settings (Porsgrunn) on ``database_url``, with no broker."""
    return make_settings(
        tmp_path,
        pki_template,
        amqp_url=NO_BROKER,
        database_url=database_url,
        queue_prefix="unused.",
        role="kommune",
        our_her_id=KOMMUNE,
    )


def add_accounts(gateway: Gateway) -> dict[Role, str]:
    """Accounts ``viewer`` and ``operator`` with the test password; a bearer token for each."""
    tokens = {}
    for role in (Role.VIEWER, Role.OPERATOR):
        create_operator(gateway.store, role.value, PASSWORD, role, display_name=f"Test {role.value}")
        tokens[role] = create_token(gateway.store, role.value, label="tests")
    return tokens


@dataclass
class Site:
    """The kommune gateway, its stocked documents, a bearer token per role and a web client."""

    gateway: Gateway
    stocked: Stocked
    tokens: dict[Role, str]
    client: TestClient

    def auth(self, role: Role) -> dict[str, str]:
        """The Authorization header of ``role``'s operator."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def id(self, name: str) -> int:
        """The received id of ``assessment``, ``reply`` or ``rejected``."""
        return self.stocked.ids[name]

    def audit(self) -> list[tuple[str, str, str | None]]:
        """(action, username, patient_ref) of every audit entry, newest first."""
        return [(e.action, e.username, e.patient_ref) for e in search_audit(self.gateway.store)]


@pytest.fixture
def site(tmp_path: Path, pki_template: Path, database_url: str) -> Iterator[Site]:
    """The stocked kommune gateway with its accounts, and a client of its web app."""
    settings = kommune_settings(tmp_path, pki_template, database_url)
    gateway = open_gateway(settings, migrate=True)
    try:
        stocked = stock_received(gateway, settings.pki_dir)
        tokens = add_accounts(gateway)
        with TestClient(create_app(settings, gateway=gateway), follow_redirects=False) as client:
            yield Site(gateway, stocked, tokens, client)
    finally:
        gateway.close()


def assert_no_personal_data(text: str) -> None:
    """No person number, no patient name and no document text in ``text``."""
    for secret in (*PEOPLE.values(), *PERSONAL):
        assert secret not in text


# -- the API ---------------------------------------------------------------------------------------


def test_the_list_shows_every_document_newest_first_with_masked_patients(site: Site) -> None:
    """GET /api/received lists the three newest first: sender names, Tema, our AppRec codes, patients masked."""
    response = site.client.get("/api/received", headers=site.auth(Role.VIEWER))
    assert response.status_code == 200, response.text
    assert_no_personal_data(response.text)
    page = response.json()
    assert page["total"] == 3
    rows = page["rows"]
    assert [r["id"] for r in rows] == [site.id("reply"), site.id("assessment"), site.id("rejected")]
    reply, assessment, rejected = rows
    assert (reply["sender_her_id"], reply["sender_name"], reply["tema"]) == (
        LEGEKONTOR,
        "Skien legesenter 2",
        "Svar fra fastlege",
    )
    assert (reply["apprec_status"], reply["apprec_codes"], reply["thread_msg_id"]) == (
        3,
        ["E10"],
        site.stocked.thread_msg_id,
    )
    assert assessment["sender_name"] == "Sykehuset Telemark HF"
    assert assessment["tema"].startswith("Pakkeforløp hjem")
    assert (assessment["pathway_state"], assessment["announced"]) == ("applied", True)
    assert (rejected["apprec_status"], rejected["apprec_codes"], rejected["announced"]) == (2, ["E21"], False)
    assert [r["patient_masked"] for r in rows] == [
        PEOPLE[n][:6] + "*****" for n in ("reply", "assessment", "rejected")
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"sender_her_id": LEGEKONTOR}, ["reply"]),
        ({"apprec_status": 2}, ["rejected"]),
        ({"pathway_state": "applied"}, ["assessment"]),
        ({"since": "SINCE"}, ["reply", "assessment"]),
        ({"until": "SINCE"}, ["rejected"]),
        ({"sender_her_id": HOSPITAL, "apprec_status": 1}, ["assessment"]),
        ({"limit": 1, "offset": 1}, ["assessment"]),
    ],
)
def test_the_list_filters(site: Site, query: dict[str, object], expected: list[str]) -> None:
    """Sender, AppRec status, pathway state, time and paging each narrow the list to the right documents."""
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    params = {k: since if v == "SINCE" else v for k, v in query.items()}
    response = site.client.get("/api/received", params=params, headers=site.auth(Role.VIEWER))
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["rows"]] == [site.id(n) for n in expected]


def test_a_bad_filter_is_422(site: Site) -> None:
    """An unknown pathway state or AppRec status is refused with 422."""
    auth = site.auth(Role.VIEWER)
    assert site.client.get("/api/received?pathway_state=open", headers=auth).status_code == 422
    assert site.client.get("/api/received?apprec_status=7", headers=auth).status_code == 422


def test_one_document_shows_our_apprec_and_the_pathway_without_content(site: Site) -> None:
    """GET /api/received/{id} names our AppRec with its errors and the pathway it opened; no patient data."""
    shown = site.client.get(f"/api/received/{site.id('assessment')}", headers=site.auth(Role.VIEWER))
    assert shown.status_code == 200, shown.text
    assert_no_personal_data(shown.text)
    assert (shown.json()["pathway_id"], shown.json()["row"]["pathway_state"]) == (
        site.stocked.pathway_id,
        "applied",
    )
    rejected = site.client.get(f"/api/received/{site.id('rejected')}", headers=site.auth(Role.VIEWER)).json()
    assert rejected["apprec_errors"] == [{"code": "E21", "text": "Mottaker finnes ikke"}]
    assert rejected["apprec_sent_at"] is not None and rejected["pathway_id"] is None


def test_an_unknown_id_is_404(site: Site) -> None:
    """An id no received document has answers 404 on show and on reveal."""
    assert site.client.get("/api/received/999999", headers=site.auth(Role.VIEWER)).status_code == 404
    reveal = site.client.post(
        "/api/received/999999/reveal", json={"reason": "INC-1"}, headers=site.auth(Role.OPERATOR)
    )
    assert reveal.status_code == 404
    assert site.audit() == []


def test_reveal_needs_a_reason_and_the_operator_role(site: Site) -> None:
    """Without a reason the reveal is 422, for a viewer 403; neither writes an audit entry."""
    path = f"/api/received/{site.id('reply')}/reveal"
    assert site.client.post(path, json={}, headers=site.auth(Role.OPERATOR)).status_code == 422
    assert site.client.post(path, json={"reason": ""}, headers=site.auth(Role.OPERATOR)).status_code == 422
    denied = site.client.post(path, json={"reason": "INC-7"}, headers=site.auth(Role.VIEWER))
    assert denied.status_code == 403
    assert_no_personal_data(denied.text)
    assert site.client.post(path, json={"reason": "INC-7"}).status_code == 401
    assert site.audit() == []


def test_reveal_answers_the_content_and_writes_one_audit_entry(site: Site) -> None:
    """An operator with a reason gets patient, Tema and full text; the audit entry carries the row's patient ref."""
    response = site.client.post(
        f"/api/received/{site.id('reply')}/reveal",
        json={"reason": "INC-7 fastlege ringte"},
        headers=site.auth(Role.OPERATOR),
    )
    assert response.status_code == 200, response.text
    content = response.json()
    assert (content["patient_id"], content["patient_name"]) == (PEOPLE["reply"], "Per Sørensen")
    assert (content["tema"], content["text"]) == ("Svar fra fastlege", REPLY_TEXT)
    assert content["detail"]["row"]["id"] == site.id("reply")
    ref = patient_ref_for(site.gateway.store, PEOPLE["reply"])
    assert site.audit() == [("received_reveal", "operator", ref)]
    (entry,) = search_audit(site.gateway.store, patient=PEOPLE["reply"])
    assert (entry.reason, entry.msg_id) == ("INC-7 fastlege ringte", site.stocked.thread_msg_id)
    assert entry.details is not None and entry.details["received_id"] == site.id("reply")
    assert PEOPLE["reply"] not in str(entry.details)


# -- the pages -------------------------------------------------------------------------------------


def test_the_list_page_renders_masked_and_filters(site: Site) -> None:
    """Mottatt is in the navigation; the page lists the documents masked, and its form filters by AppRec status."""
    login(site.client, Role.VIEWER)
    page = site.client.get("/received")
    assert page.status_code == 200
    assert '<a href="/received">Mottatt</a>' in page.text
    assert_no_personal_data(page.text)
    for name in PEOPLE:
        assert f'href="/received/{site.id(name)}"' in page.text
    assert "Skien legesenter 2" in page.text and "188972*****" in page.text
    refused = site.client.get("/received?apprec_status=2&since=&sender_her_id=")
    assert refused.status_code == 200
    assert f'href="/received/{site.id("rejected")}"' in refused.text
    assert f'href="/received/{site.id("reply")}"' not in refused.text
    assert site.client.get("/received?sender_her_id=abc").status_code == 400


def test_the_item_page_links_the_pathway_and_our_message(site: Site) -> None:
    """The item page shows our AppRec's codes, links the pathway and the thread; a viewer gets no reveal form."""
    login(site.client, Role.VIEWER)
    assessment = site.client.get(f"/received/{site.id('assessment')}")
    assert assessment.status_code == 200
    assert f'href="/pathways/{site.stocked.pathway_id}"' in assessment.text
    assert 'id="reveal-received"' not in assessment.text
    assert_no_personal_data(assessment.text)
    reply = site.client.get(f"/received/{site.id('reply')}")
    assert f'href="/messages/{site.stocked.thread_msg_id}"' in reply.text
    assert "<code>E10</code>" in reply.text
    assert site.client.get("/received/999999").status_code == 404


def test_the_reveal_form_shows_the_content_once_and_audits(site: Site) -> None:
    """An operator's reveal form (CSRF, reason) shows patient and text, no-store, audited; reload hides them."""
    csrf = login(site.client, Role.OPERATOR)
    path = f"/received/{site.id('reply')}"
    assert 'id="reveal-received"' in site.client.get(path).text
    assert site.client.post(f"{path}/reveal", data={"reason": "INC-9"}).status_code == 403  # no CSRF
    assert site.client.post(f"{path}/reveal", data={"csrf": csrf}).status_code == 422  # no reason
    assert site.audit() == []
    shown = site.client.post(f"{path}/reveal", data={"csrf": csrf, "reason": "INC-9"})
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    assert PEOPLE["reply"] in shown.text and "Per Sørensen" in shown.text
    assert "Neste kontroll i mars." in shown.text
    assert [a for a, _, _ in site.audit()] == ["received_reveal"]
    assert_no_personal_data(site.client.get(path).text)


def test_a_viewer_cannot_reveal_through_the_form(site: Site) -> None:
    """A viewer's reveal post is 403 and writes nothing to the audit log."""
    csrf = login(site.client, Role.VIEWER)
    denied = site.client.post(f"/received/{site.id('reply')}/reveal", data={"csrf": csrf, "reason": "INC-9"})
    assert denied.status_code == 403
    assert_no_personal_data(denied.text)
    assert site.audit() == []


def test_csrf_of_the_item_page_is_the_session_token(site: Site) -> None:
    """The reveal form carries the session's CSRF token (the one every form of the session carries)."""
    csrf = login(site.client, Role.OPERATOR)
    assert csrf_of(site.client.get(f"/received/{site.id('reply')}").text) == csrf


def test_the_openapi_description_names_the_received_routes(site: Site) -> None:
    """/api/openapi.json describes the list, the item and the reveal of received documents."""
    schema = site.client.get("/api/openapi.json", headers=site.auth(Role.VIEWER)).json()
    assert {"/api/received", "/api/received/{received_id}", "/api/received/{received_id}/reveal"} <= set(
        schema["paths"]
    )
