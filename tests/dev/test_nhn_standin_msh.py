"""The NHN message-service stand-in: it refuses what the published OpenAPI refuses, and answers as documented.

The stand-in runs in a real uvicorn server; the requests here are hand-made with httpx, so that they can
break the description on purpose. Parties are synthetic HER-ids; documents carry no patient.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from lxml import etree
from starlette.requests import Request

from edi_gateway.dev.nhn_standin.app import create_app
from edi_gateway.dev.nhn_standin.msh import SCOPE, Fault, MessageServiceStandIn
from edi_gateway.dev.nhn_standin.openapi import OpenApiValidator
from edi_gateway.dev.nhn_standin.server import run_in_thread
from edi_gateway.domain.apprec import AppRecParty, AppRecStatus, PartyId
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import AppRecSpec, apprec_error, build_apprec, read_apprec
from edi_gateway.xml.msghead import to_bytes

SENDER_ORG, SENDER_UNIT = 8100001, 8100002
RECEIVER_ORG, RECEIVER_SERVICE = 8200001, 8200002
OTHER_HER_ID = 8300001
HEADERS = {"api-version": "2", "nhn-source-system": "edi_gateway tests", "Authorization": "DPoP test-token"}


def msghead(
    *,
    msg_id: str | None = None,
    receiver: tuple[int, int | None] = (RECEIVER_ORG, RECEIVER_SERVICE),
    declaration: bytes = b'<?xml version="1.0" encoding="UTF-8"?>',
) -> bytes:
    """A minimal MsgHead: type, MsgId, GenDate, sender (virksomhet + unit), receiver (virksomhet + service)."""
    mh = ns.MSGHEAD
    nsmap: dict[Any, str] = {None: mh}  # lxml spells the default namespace with the key None
    root = etree.Element(f"{{{mh}}}MsgHead", nsmap=nsmap)
    info = etree.SubElement(root, f"{{{mh}}}MsgInfo")
    etree.SubElement(info, f"{{{mh}}}Type", V="DIALOG_HELSEFAGLIG", DN="Helsefaglig dialog")
    etree.SubElement(info, f"{{{mh}}}MIGversion").text = "v1.2 2006-05-24"
    etree.SubElement(info, f"{{{mh}}}GenDate").text = "2025-03-04T10:11:12"
    etree.SubElement(info, f"{{{mh}}}MsgId").text = msg_id or str(uuid.uuid4())
    for role, (org, lower) in (("Sender", (SENDER_ORG, SENDER_UNIT)), ("Receiver", receiver)):
        organisation = _organisation(etree.SubElement(info, f"{{{mh}}}{role}"), f"{role} AS", org)
        if lower is not None:
            _organisation(organisation, f"{role} unit", lower)
    return declaration + etree.tostring(root, encoding="UTF-8")


def _organisation(parent: etree._Element, name: str, her_id: int) -> etree._Element:
    mh = ns.MSGHEAD
    organisation = etree.SubElement(parent, f"{{{mh}}}Organisation")
    etree.SubElement(organisation, f"{{{mh}}}OrganisationName").text = name
    ident = etree.SubElement(organisation, f"{{{mh}}}Ident")
    etree.SubElement(ident, f"{{{mh}}}Id").text = str(her_id)
    etree.SubElement(ident, f"{{{mh}}}TypeId", V="HER", DN="HER-id", S="2.16.578.1.12.4.1.1.9051")
    return organisation


def post_body(document: bytes, **extra: object) -> dict[str, object]:
    """A PostMessageRequest for ``document``."""
    return {
        "businessDocument": base64.b64encode(document).decode(),
        "contentType": "application/xml",
        "contentTransferEncoding": "base64",
        **extra,
    }


def stub_authorize(request: Request, scope: str) -> str:
    """Accept any request with an Authorization header; its value names the client."""
    assert scope == SCOPE
    value = request.headers.get("authorization")
    if not value:
        raise HTTPException(401, "no token", headers={"WWW-Authenticate": "DPoP"})
    return value.partition(" ")[2]


@dataclass
class Served:
    standin: MessageServiceStandIn
    validator: OpenApiValidator
    http: httpx.Client

    def checked(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """Send a request and fail the test unless its answer is one the OpenAPI document describes."""
        response = self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        errors = self.validator.response_errors(
            method,
            str(response.request.url),
            status=response.status_code,
            headers=response.headers.items(),
            body=response.content,
            request_headers=response.request.headers.items(),
            request_body=response.request.content,
        )
        assert errors == [], errors
        return response


def serve(**standin_options: object) -> Iterator[Served]:
    validator = OpenApiValidator.msh()
    standin = MessageServiceStandIn(validator=validator, authorize=stub_authorize, **standin_options)  # type: ignore[arg-type]
    with (
        run_in_thread(create_app(msh=standin)) as base_url,
        httpx.Client(base_url=base_url, timeout=5) as http,
    ):
        yield Served(standin, validator, http)


@pytest.fixture
def served() -> Iterator[Served]:
    yield from serve(known_her_ids={RECEIVER_ORG, RECEIVER_SERVICE, SENDER_ORG, SENDER_UNIT})


def send(served: Served, document: bytes | None = None) -> str:
    response = served.checked("POST", "/Messages", headers=HEADERS, json=post_body(document or msghead()))
    assert response.status_code == 201, response.text
    return str(response.json())


# --- refusals the OpenAPI description makes -------------------------------------------------------


def test_missing_api_version_header_is_refused_and_recorded(served: Served) -> None:
    """A request without the api-version header is answered 400 ErrorMessage and recorded as a violation."""
    headers = {k: v for k, v in HEADERS.items() if k != "api-version"}
    response = served.checked(
        "GET", "/Messages", params={"ReceiverHerIds": RECEIVER_SERVICE}, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == 1000
    assert any("api-version" in line for line in served.validator.violations)


def test_missing_source_system_header_is_refused(served: Served) -> None:
    """A request without nhn-source-system is refused as well."""
    headers = {k: v for k, v in HEADERS.items() if k != "nhn-source-system"}
    response = served.http.post("/Messages", headers=headers, json=post_body(msghead()))
    assert response.status_code == 400
    assert any("nhn-source-system" in line for line in served.validator.violations)
    assert served.standin.sent() == []


def test_query_parameter_names_are_case_sensitive(served: Served) -> None:
    """receiverHerIds (camelCase) is not the published ReceiverHerIds: the required parameter is missing."""
    response = served.checked(
        "GET", "/Messages", params={"receiverHerIds": RECEIVER_SERVICE}, headers=HEADERS
    )
    assert response.status_code == 400
    assert served.validator.violations
    assert all("ReceiverHerIds" in line for line in served.validator.violations)


def test_messages_to_fetch_above_100_is_refused(served: Served) -> None:
    """MessagesToFetch=101 breaks the published maximum of 100."""
    params = {"ReceiverHerIds": RECEIVER_SERVICE, "MessagesToFetch": 101}
    response = served.checked("GET", "/Messages", params=params, headers=HEADERS)
    assert response.status_code == 400
    assert any("MessagesToFetch" in line and "maximum" in line for line in served.validator.violations)


def test_messages_to_fetch_of_100_is_accepted(served: Served) -> None:
    """MessagesToFetch=100, the bound itself, is valid."""
    params = {"ReceiverHerIds": RECEIVER_SERVICE, "MessagesToFetch": 100}
    response = served.checked("GET", "/Messages", params=params, headers=HEADERS)
    assert response.status_code == 200
    assert served.validator.violations == []


def test_post_without_a_required_body_field_is_refused(served: Served) -> None:
    """A PostMessageRequest without contentTransferEncoding is refused before anything is stored."""
    body = post_body(msghead())
    del body["contentTransferEncoding"]
    response = served.checked("POST", "/Messages", headers=HEADERS, json=body)
    assert response.status_code == 400
    assert any("contentTransferEncoding" in line for line in served.validator.violations)
    assert served.standin.sent() == []


def test_post_with_an_undocumented_body_field_is_refused(served: Served) -> None:
    """PostMessageRequest allows no additional properties."""
    response = served.http.post("/Messages", headers=HEADERS, json=post_body(msghead(), priority="high"))
    assert response.status_code == 400
    assert any("priority" in line for line in served.validator.violations)


def test_violation_lines_never_quote_the_document(served: Served) -> None:
    """A body violation is described by the schema's messages, not by repeating the (base64) document."""
    body = post_body(msghead())
    del body["contentType"]
    served.http.post("/Messages", headers=HEADERS, json=body)
    assert served.validator.violations
    assert all(str(body["businessDocument"])[:40] not in line for line in served.validator.violations)


def test_apprec_status_outside_the_enum_is_refused(served: Served) -> None:
    """appRecStatus must be Ok, Rejected or OkErrorInMessagePart."""
    message_id = send(served)
    path = f"/Messages/{message_id}/apprec/{RECEIVER_SERVICE}"
    response = served.checked("POST", path, headers=HEADERS, json={"appRecStatus": "1"})
    assert response.status_code == 400
    assert served.standin.apprecs() == []


def test_message_id_that_is_not_a_uuid_is_refused(served: Served) -> None:
    """The {id} path parameter must be a uuid."""
    response = served.checked("GET", "/Messages/not-a-uuid/status", headers=HEADERS)
    assert response.status_code == 400
    assert any("uuid" in line for line in served.validator.violations)


def test_her_id_zero_in_the_read_path_is_refused(served: Served) -> None:
    """{herId} has a published minimum of 1."""
    response = served.http.put(f"/Messages/{uuid.uuid4()}/read/0", headers=HEADERS)
    assert response.status_code == 400
    assert served.validator.violations


def test_a_dpop_token_passes_the_documents_bearer_scheme(served: Served) -> None:
    """The document's Bearer security requirement does not refuse a DPoP-authorized request."""
    response = served.checked(
        "GET", "/Messages", params={"ReceiverHerIds": RECEIVER_SERVICE}, headers=HEADERS
    )
    assert response.status_code == 200
    assert served.validator.violations == []


def test_a_request_without_authorization_is_left_to_authorize(served: Served) -> None:
    """Authentication is the stand-in's own check: no token means 401 from authorize, not an OpenAPI violation."""
    headers = {k: v for k, v in HEADERS.items() if k != "Authorization"}
    response = served.http.get("/Messages", params={"ReceiverHerIds": RECEIVER_SERVICE}, headers=headers)
    assert response.status_code == 401
    assert served.validator.violations == []


# --- service behaviour, every answer checked against the document ----------------------------------


def test_send_list_fetch_read_and_status_answer_as_documented(served: Served) -> None:
    """The whole receive cycle works, and every answer validates against the published description."""
    msg_id = str(uuid.uuid4())
    document = msghead(msg_id=msg_id)
    message_id = send(served, document)
    params = {"ReceiverHerIds": RECEIVER_SERVICE, "IncludeMetadata": "true"}
    listed = served.checked("GET", "/Messages", params=params, headers=HEADERS).json()
    assert listed == [
        {
            "id": message_id,
            "receiverHerId": RECEIVER_SERVICE,
            "contentType": "application/xml",
            "senderHerId": SENDER_UNIT,
            "businessDocumentId": msg_id,
            "businessDocumentGenDate": "2025-03-04T09:11:12+00:00",
            "isAppRec": False,
        }
    ]
    one = served.checked("GET", f"/Messages/{message_id}", headers=HEADERS).json()
    assert one == listed[0]
    fetched = served.checked("GET", f"/Messages/{message_id}/business-document", headers=HEADERS).json()
    assert base64.b64decode(fetched["businessDocument"]) == document
    status = served.checked("GET", f"/Messages/{message_id}/status", headers=HEADERS).json()
    # appRecStatus is left out until an AppRec arrives (see _without_null_status in the stand-in).
    assert status == [{"receiverHerId": RECEIVER_SERVICE, "transportDeliveryState": "Unconfirmed"}]
    marked = served.checked("PUT", f"/Messages/{message_id}/read/{RECEIVER_SERVICE}", headers=HEADERS)
    assert marked.status_code == 204
    assert served.checked("GET", "/Messages", params=params, headers=HEADERS).json() == []
    status = served.checked("GET", f"/Messages/{message_id}/status", headers=HEADERS).json()
    assert status[0]["transportDeliveryState"] == "Acknowledged"
    assert served.standin.read_marks() == [(message_id, RECEIVER_SERVICE)]
    assert served.validator.violations == []
    assert served.validator.response_violations == []


def test_listing_without_metadata_gives_id_and_receiver_only(served: Served) -> None:
    """IncludeMetadata defaults to false: a Message then carries only id and receiverHerId."""
    message_id = send(served)
    listed = served.checked(
        "GET", "/Messages", params={"ReceiverHerIds": RECEIVER_SERVICE}, headers=HEADERS
    ).json()
    assert listed == [{"id": message_id, "receiverHerId": RECEIVER_SERVICE}]


def test_listing_stops_at_messages_to_fetch(served: Served) -> None:
    """At most MessagesToFetch unread messages are listed, oldest first."""
    ids = [send(served) for _ in range(3)]
    params = {"ReceiverHerIds": RECEIVER_SERVICE, "MessagesToFetch": 2}
    listed = served.checked("GET", "/Messages", params=params, headers=HEADERS).json()
    assert [m["id"] for m in listed] == ids[:2]


def test_receiver_without_a_lower_level_gets_the_message_in_the_virksomhets_inbox(served: Served) -> None:
    """A receiver with no nested Organisation is addressed by the virksomhet's own HER-id."""
    send(served, msghead(receiver=(RECEIVER_ORG, None)))
    assert [entry.receiver_her_id for entry in served.standin.inbox()] == [RECEIVER_ORG]


def test_unknown_receiver_is_refused_with_an_error_message(served: Served) -> None:
    """A receiver outside known_her_ids is answered 400 with an ErrorMessage that names it."""
    response = served.checked(
        "POST", "/Messages", headers=HEADERS, json=post_body(msghead(receiver=(OTHER_HER_ID, None)))
    )
    assert response.status_code == 400
    assert str(OTHER_HER_ID) in " ".join(response.json()["validationErrors"])
    assert served.standin.sent() == []


@pytest.mark.parametrize(
    "document",
    [
        b"this is not XML",
        msghead(declaration=b""),
        msghead(declaration=b"<?xml version='1.0' encoding='ISO-8859-1'?>"),
        b'<?xml version="1.0" encoding="UTF-8"?><Other xmlns="urn:example"/>',
        b'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>',
    ],
    ids=["not-xml", "no-declaration", "latin-1", "not-msghead", "doctype"],
)
def test_documents_that_are_not_utf8_declared_msgheads_are_refused(served: Served, document: bytes) -> None:
    """Only XML declaring UTF-8 in its first line, a MsgHead or AppRec without DTD, is taken."""
    response = served.checked("POST", "/Messages", headers=HEADERS, json=post_body(document))
    assert response.status_code == 400
    assert served.standin.sent() == []


def test_posted_apprec_is_delivered_to_the_original_sender(served: Served) -> None:
    """PostAppRec builds an AppRec v1.1 answering the MsgId and delivers it to the sender's inbox."""
    msg_id = str(uuid.uuid4())
    message_id = send(served, msghead(msg_id=msg_id))
    body = {"appRecStatus": "Rejected", "appRecErrorList": [{"errorCode": "E21", "details": "no such unit"}]}
    response = served.checked(
        "POST", f"/Messages/{message_id}/apprec/{RECEIVER_SERVICE}", headers=HEADERS, json=body
    )
    assert response.status_code == 201
    apprec_message_id = response.json()
    [entry] = served.standin.inbox(SENDER_UNIT)
    assert (entry.message_id, entry.is_apprec) == (apprec_message_id, True)
    fetched = served.checked(
        "GET", f"/Messages/{apprec_message_id}/business-document", headers=HEADERS
    ).json()
    apprec = read_apprec(base64.b64decode(fetched["businessDocument"]))
    assert apprec.original_msg_id == msg_id
    assert apprec.status.value == 2
    assert [e.code for e in apprec.errors] == ["E21"]
    assert apprec.sender.her_ids == {RECEIVER_ORG, RECEIVER_SERVICE}
    assert apprec.receiver.her_ids == {SENDER_ORG, SENDER_UNIT}
    status = served.checked("GET", f"/Messages/{message_id}/status", headers=HEADERS).json()
    assert status[0]["appRecStatus"] == "Rejected"
    info = served.checked("GET", f"/Messages/{message_id}/apprec", headers=HEADERS).json()
    assert info[0]["appRecErrorList"][0]["errorCode"] == "E21"
    assert served.validator.response_violations == []


def test_apprec_sent_as_a_document_answers_the_original(served: Served) -> None:
    """An AppRec sent with POST /Messages reaches the sender's inbox and fills the original's appRecStatus."""
    msg_id = str(uuid.uuid4())
    message_id = send(served, msghead(msg_id=msg_id))
    spec = AppRecSpec(
        id=str(uuid.uuid4()),
        gen_date=datetime(2025, 3, 4, 11, 0, tzinfo=UTC),
        status=AppRecStatus.OK_FEIL_I_DELMELDING,
        errors=(apprec_error("E35", detail="synthetic"),),
        sender=AppRecParty(
            inst=PartyId(str(RECEIVER_ORG), "HER"), dept=PartyId(str(RECEIVER_SERVICE), "HER")
        ),
        receiver=AppRecParty(inst=PartyId(str(SENDER_ORG), "HER"), dept=PartyId(str(SENDER_UNIT), "HER")),
        original_msg_id=msg_id,
        original_msg_type="DIALOG_HELSEFAGLIG",
        original_issue_date="2025-03-04T10:11:12",
    )
    apprec_message_id = send(served, to_bytes(build_apprec(spec)))
    [entry] = served.standin.inbox(SENDER_UNIT)
    assert (entry.message_id, entry.is_apprec, entry.business_document_id) == (
        apprec_message_id,
        True,
        spec.id,
    )
    status = served.checked("GET", f"/Messages/{message_id}/status", headers=HEADERS).json()
    assert status[0]["appRecStatus"] == "OkErrorInMessagePart"
    info = served.checked("GET", f"/Messages/{message_id}/apprec", headers=HEADERS).json()
    assert info[0]["appRecErrorList"][0]["errorCode"] == "E35"


def test_deliver_puts_a_document_in_an_inbox_as_another_system_would(served: Served) -> None:
    """deliver() stores a document without HTTP; it is then listed like any other message."""
    message_id = served.standin.deliver(msghead(receiver=(RECEIVER_ORG, None)))
    listed = served.checked(
        "GET", "/Messages", params={"ReceiverHerIds": RECEIVER_ORG}, headers=HEADERS
    ).json()
    assert listed == [{"id": message_id, "receiverHerId": RECEIVER_ORG}]
    with pytest.raises(ValueError, match="not found"):
        served.standin.deliver(msghead(receiver=(OTHER_HER_ID, None)))


def test_rejected_apprec_without_errors_is_refused(served: Served) -> None:
    """HIS 80415: a Rejected AppRec needs at least one error; the stand-in answers 400."""
    message_id = send(served)
    response = served.checked(
        "POST",
        f"/Messages/{message_id}/apprec/{RECEIVER_SERVICE}",
        headers=HEADERS,
        json={"appRecStatus": "Rejected"},
    )
    assert response.status_code == 400
    assert served.standin.apprecs() == []


def test_unknown_message_id_is_not_found(served: Served) -> None:
    """An id the service never gave is answered 404 ErrorMessage."""
    response = served.checked("GET", f"/Messages/{uuid.uuid4()}", headers=HEADERS)
    assert response.status_code == 404


def test_client_may_only_act_for_its_her_ids() -> None:
    """With her_ids_by_client, listing another's inbox is answered 403 Not authorized for HerId(s)."""
    for served in serve(her_ids_by_client={"test-token": frozenset({SENDER_UNIT})}):
        params = {"ReceiverHerIds": [SENDER_UNIT, RECEIVER_SERVICE]}
        response = served.checked("GET", "/Messages", params=params, headers=HEADERS)
        assert response.status_code == 403
        assert str(RECEIVER_SERVICE) in response.json()["error"]


def test_queued_faults_answer_the_next_calls_then_service_resumes(served: Served) -> None:
    """Faults are used once each, in order, for their operation only."""
    served.standin.faults.queue("GetMessages", Fault.rate_limited("7"), Fault.server_error())
    params = {"ReceiverHerIds": RECEIVER_SERVICE}
    first = served.http.get("/Messages", params=params, headers=HEADERS)
    second = served.http.get("/Messages", params=params, headers=HEADERS)
    third = served.http.get("/Messages", params=params, headers=HEADERS)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert second.status_code == 500
    assert third.status_code == 200
    assert served.standin.faults.pending("GetMessages") == 0
    assert served.validator.response_violations == []


def test_faults_are_queued_by_published_operation_id(served: Served) -> None:
    """A misspelt operation id is refused at once rather than silently never used."""
    with pytest.raises(ValueError, match="getMessages"):
        served.standin.faults.queue("getMessages", Fault.server_error())


def test_oversized_fault_streams_about_the_size_asked(served: Served) -> None:
    """An oversized fault streams the size asked (to a base64 quantum), as declared, of the documented shape."""
    served.standin.faults.queue("GetBusinessDocument", Fault.oversized(300_000, declare_length=True))
    response = served.http.get(f"/Messages/{uuid.uuid4()}/business-document", headers=HEADERS)
    assert 299_996 <= len(response.content) <= 300_000
    assert response.headers["content-length"] == str(len(response.content))
    assert set(response.json()) == {"businessDocument", "contentType", "contentTransferEncoding"}


def test_response_check_catches_an_undocumented_answer(served: Served) -> None:
    """The response helper reports an answer that breaks the document (a Message with a string HER-id)."""
    errors = served.validator.response_errors(
        "GET",
        str(served.http.base_url.join(f"/Messages/{uuid.uuid4()}")),
        status=200,
        headers={"content-type": "application/json"},
        body=b'{"id": "5f5e94d5-d908-476b-a172-a241c52eddb6", "receiverHerId": "8200002"}',
        request_headers={"api-version": "2", "nhn-source-system": "x"},
    )
    assert errors and "receiverHerId" in errors[0]
