"""Rendering pages: the Jinja2 environment, its filters, and what every page gets in its context."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from lxml import etree

from edi_gateway.domain.states import MessageState
from edi_gateway.localtime import shown
from edi_gateway.services.access import Operator, Role
from edi_gateway.web.auth import csrf_token
from edi_gateway.xml.safe import parse_xml

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
FLASH_KEY = "flash"

# The words the integration desk uses for each state (shown beside the technical name).
STATE_WORDS = {
    MessageState.QUEUED.value: "I kø",
    MessageState.SENT.value: "Sendt",
    MessageState.ACKED.value: "Kvittert OK",
    MessageState.ACKED_WITH_ERRORS.value: "Kvittert med feil",
    MessageState.REJECTED_BY_RECEIVER.value: "Avvist",
    MessageState.OVERDUE.value: "Forfalt (overdue)",
    MessageState.FAILED.value: "Feilet",
}
APPREC_WORDS = {1: "OK", 2: "Avvist", 3: "OK, feil i delmelding"}


def local_time(value: datetime | None) -> str:
    """Show a time as the desk's clock does: Norwegian time, to the second."""
    if value is None:
        return "–"
    return shown(value)


def pretty_xml(data: bytes) -> str:
    """Indent a stored document for reading (display only; the stored bytes are never changed)."""
    root = parse_xml(data)
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode")


def make_templates() -> Jinja2Templates:
    """The pages' Jinja2 environment (autoescaping on) with the filters the templates use."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.filters["local_time"] = local_time
    env.filters["state_word"] = lambda state: STATE_WORDS.get(str(state), str(state))
    env.filters["apprec_word"] = lambda status: APPREC_WORDS.get(status, "–") if status else "–"
    env.globals["STATES"] = list(STATE_WORDS)
    return templates


def can(operator: Operator | None, role: Role) -> bool:
    """Whether ``operator`` holds ``role`` or a higher one (to hide buttons they may not use)."""
    return operator is not None and operator.role.allows(role)


def flash(request: Request, text: str) -> None:
    """Leave a one-time notice for the next page (ids and words only, never personal data)."""
    request.session[FLASH_KEY] = text


def page(
    request: Request,
    templates: Jinja2Templates,
    name: str,
    operator: Operator | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page with what every page needs: the operator, roles, CSRF token and any notice."""
    base = {
        "operator": operator,
        "csrf": csrf_token(request),
        "flash": request.session.pop(FLASH_KEY, None),
        "is_operator": can(operator, Role.OPERATOR),
        "is_admin": can(operator, Role.ADMIN),
        "is_kommune": request.app.state.web.gateway.settings.role == "kommune",  # the pathway worklist
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def private(response: HTMLResponse) -> HTMLResponse:
    """Mark a response that shows personal data: no browser or proxy may keep it."""
    response.headers["Cache-Control"] = "no-store"
    return response
