"""The message page and its actions: reveal the person number or the XML, load the request, replay.

Every action that shows personal data or changes anything is a form post with a reason; the services
check the role and write the audit entry. A revealed value is rendered into that one response
(``Cache-Control: no-store``) and kept nowhere else: reload the page and it is masked again.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edi_gateway.errors import PermanentError
from edi_gateway.services import queries
from edi_gateway.services.access import Operator, reveal_patient_id, reveal_payload, reveal_request
from edi_gateway.services.operator_actions import outcome_text, raise_outcome, result_of
from edi_gateway.services.replay import RESENDABLE, ReplayKind
from edi_gateway.web.auth import OperatorRole, Viewer, check_csrf
from edi_gateway.web.render import flash, page, pretty_xml, private
from edi_gateway.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
State = Annotated[WebState, Depends(web_state)]
Reason = Annotated[str, Form(min_length=3, max_length=500)]
Csrf = Depends(check_csrf)


class EditedRequestInvalid(PermanentError):
    """The edited request is not a JSON object."""


def _message_page(
    request: Request, state: WebState, operator: Operator, msg_id: str, **extra: Any
) -> HTMLResponse:
    detail = queries.message_detail(state.store, msg_id)
    if detail is None:
        raise HTTPException(404, "no message with this msg_id")
    resendable = detail.row.state in {s.value for s in RESENDABLE}
    actions = [(a, outcome_text(a)) for a in state.store.actions_for_message(msg_id)]
    return page(
        request,
        state.templates,
        "message.html",
        operator,
        d=detail,
        resendable=resendable,
        actions=actions,
        **extra,
    )


@router.get("/messages/{msg_id}")
def message_page(request: Request, msg_id: str, state: State, operator: Viewer) -> HTMLResponse:
    """Timeline, AppRecs in plain language, related messages, and the actions the operator may take."""
    return _message_page(request, state, operator, msg_id)


@router.post("/messages/{msg_id}/reveal", dependencies=[Csrf])
def reveal(
    request: Request,
    msg_id: str,
    state: State,
    operator: OperatorRole,
    what: Annotated[str, Form(pattern="^(patient|payload)$")],
    reason: Reason,
) -> HTMLResponse:
    """Show the full person number or the pretty-printed signed XML once (OPERATOR; audited)."""
    if what == "patient":
        patient_id = reveal_patient_id(state.store, operator, msg_id, reason=reason)
        return private(_message_page(request, state, operator, msg_id, patient_id=patient_id))
    xml = pretty_xml(reveal_payload(state.store, operator, msg_id, reason=reason))
    return private(_message_page(request, state, operator, msg_id, xml=xml))


@router.post("/messages/{msg_id}/edit-request", dependencies=[Csrf])
def load_request_for_edit(
    request: Request, msg_id: str, state: State, operator: OperatorRole, reason: Reason
) -> HTMLResponse:
    """Show the original request in an editing form (it holds personal data: OPERATOR, audited)."""
    original = _readable_json(reveal_request(state.store, operator, msg_id, reason=reason))
    return private(_message_page(request, state, operator, msg_id, edit_text=original))


@router.post("/messages/{msg_id}/replay", dependencies=[Csrf])
def replay(
    request: Request,
    msg_id: str,
    state: State,
    operator: OperatorRole,
    kind: Annotated[ReplayKind, Form()],
    reason: Reason,
    edited_request: Annotated[str, Form(max_length=256 * 1024)] = "",
) -> Response:
    """Replay the message (a worker carries it out) and show where it went, or that it is pending."""
    edited = _edited(edited_request) if kind is ReplayKind.EDIT else None
    action_id = state.actions.ask_replay(operator, msg_id, kind, reason=reason, edited_request=edited)
    (action,) = state.actions.wait([action_id], state.action_wait_s)
    raise_outcome(action)
    result = result_of(action)
    if result is None:
        flash(request, f"{kind.value}: {outcome_text(action)}; this page shows the outcome when it has")
        return RedirectResponse(f"/messages/{msg_id}", status_code=303)
    target = result.new_msg_ids[0] if result.new_msg_ids else msg_id
    state_note = "" if result.state in result.detail else f" (state {result.state})"
    flash(request, f"{result.kind.value}: {result.detail}{state_note}")
    return RedirectResponse(f"/messages/{target}", status_code=303)


def _edited(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise EditedRequestInvalid("the edited request is not valid JSON") from None
    if not isinstance(value, dict):
        raise EditedRequestInvalid("the edited request must be a JSON object")
    return value


def _readable_json(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", errors="replace")
