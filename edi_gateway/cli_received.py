"""Received documents on the command line: ``received list|show``.

``list`` and ``show`` print what the views hold (ids, HER-ids, the sender's name, the Tema, the
patient masked, our AppRec with its codes, the pathway state); never the content. ``show --content``
prints the patient's name and person number, the Tema and the whole text; it needs ``--operator``
(the operator role) and ``--reason`` and is written to the audit log (``received_reveal``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edi_gateway.cli_common import OPERATOR_ENV, OPERATOR_HELP, acting_operator, gateway_session, parse_when
from edi_gateway.localtime import shown
from edi_gateway.services.queries.received import MAX_PAGE, ReceivedFilter

if TYPE_CHECKING:  # the gateway context loads keys and schemas: import it only when a command runs
    from edi_gateway.services.queries.received import ReceivedContent, ReceivedDetail, ReceivedRow

received_app = typer.Typer(
    help="Documents received on our inbox: list, show, read the content (audited).",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
IdArgument = Annotated[int, typer.Argument(min=1, help="The received document's id (from received list).")]
_HEADERS = (
    "ID",
    "RECEIVED",
    "MSG_ID",
    "SENDER",
    "HER_ID",
    "TYPE",
    "TEMA",
    "PATIENT",
    "APPREC",
    "ANNOUNCED",
    "PATHWAY",
)


def register(app: typer.Typer) -> None:
    """Add the received commands to the main command line."""
    app.add_typer(received_app, name="received")


@received_app.command("list")
def list_command(
    since: Annotated[
        str | None, typer.Option(help="Received at or after (date or date-time, local).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Received before; a bare date includes that day.")] = None,
    sender: Annotated[int | None, typer.Option(min=1, help="Only from this sender HER-id.")] = None,
    pathway_state: Annotated[
        str | None, typer.Option(help="Only in this worklist state: pending, applied, conflict, ignored.")
    ] = None,
    apprec_status: Annotated[
        int | None,
        typer.Option(min=1, max=3, help="Only with our AppRec status 1 OK, 2 Avvist, 3 OK m/feil."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many rows (newest first).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """List received documents, newest first: sender, Tema, patient masked, our AppRec (never the content)."""
    from edi_gateway.cli_ops import table
    from edi_gateway.services.queries.received import list_received

    f = ReceivedFilter(
        since=parse_when(since) if since else None,
        until=parse_when(until, end_of_day=True) if until else None,
        sender_her_id=sender,
        pathway_state=pathway_state,
        apprec_status=apprec_status,
        limit=limit,
        offset=offset,
    )
    with gateway_session() as gateway:
        page = list_received(gateway.store, gateway.registers.address, f)
    if as_json:
        _echo_json(page)
        return
    if not page.rows:
        typer.echo(f"no received documents match ({page.total} in all)")
        return
    typer.echo(table(_HEADERS, [_cells(r) for r in page.rows]))
    typer.echo(f"\nrows {page.offset + 1}-{page.offset + len(page.rows)} of {page.total}")


@received_app.command("show")
def show_command(
    received_id: IdArgument,
    as_json: JsonOption = False,
    content: Annotated[
        bool, typer.Option("--content", help="Print the patient, Tema and full text (audited).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="With --content: why (audit log).")] = None,
    operator: Annotated[
        str | None, typer.Option(envvar=OPERATOR_ENV, help="With --content: " + OPERATOR_HELP)
    ] = None,
) -> None:
    """Show one received document and our AppRec; --content also the patient and text (operator, audited)."""
    if content:
        _show_content(received_id, reason, operator, as_json)
        return
    from edi_gateway.services.queries.received import show_received

    with gateway_session() as gateway:
        detail = show_received(gateway.store, gateway.registers.address, received_id)
    if as_json:
        _echo_json(detail)
    else:
        typer.echo(format_detail(detail))


def _show_content(received_id: int, reason: str | None, username: str | None, as_json: bool) -> None:
    if not (username and reason and reason.strip()):
        raise typer.BadParameter("--content shows patient data and is audited: give --operator and --reason")
    from edi_gateway.services.access import Role
    from edi_gateway.services.queries.received import reveal_received

    with gateway_session() as gateway:
        who = acting_operator(gateway.store, username, Role.OPERATOR)
        revealed = reveal_received(gateway.store, gateway.registers.address, who, received_id, reason=reason)
    if as_json:
        _echo_json(revealed)
    else:
        typer.echo(format_content(revealed))


def format_detail(d: ReceivedDetail) -> str:
    """Return one received document's view as text for a terminal (no content)."""
    r = d.row
    errors = "; ".join(f"{e.code}: {e.text}" for e in d.apprec_errors) or "none"
    sent = shown(d.apprec_sent_at) if d.apprec_sent_at is not None else "not yet"
    fields = [
        ("id", str(r.id)),
        ("msg_id", r.msg_id),
        ("received", shown(r.received_at)),
        ("sender", f"{r.sender_name or '-'} (HER-id {r.sender_her_id})"),
        (
            "receiver",
            str(r.receiver_her_id) + (f", addressed to {r.addressed_her_id}" if r.addressed_her_id else ""),
        ),
        ("msg_type", r.msg_type),
        ("tema", _text(r.tema)),
        ("patient", _text(r.patient_masked)),
        ("apprec", f"{r.apprec_status} ({r.apprec_status_text}), id {d.apprec_id}, sent {sent}"),
        ("apprec_errors", errors),
        ("announced", shown(d.announced_at) if d.announced_at is not None else "no"),
        ("pathway", _text(r.pathway_state) + (f" (pathway {d.pathway_id})" if d.pathway_id else "")),
        ("thread_msg_id", _text(r.thread_msg_id)),
        ("conversation_ref", _text(d.conversation_ref)),
    ]
    return _aligned(fields)


def format_content(c: ReceivedContent) -> str:
    """Return a revealed document as text: its view, then the patient, Tema and the full text."""
    head = [
        ("patient_id", _text(c.patient_id)),
        ("patient_name", _text(c.patient_name)),
        ("tema", _text(c.tema)),
    ]
    return f"{format_detail(c.detail)}\n\n{_aligned(head)}\n\n{c.text or ''}"


def _aligned(fields: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in fields)
    return "\n".join(f"{k.ljust(width)}  {value}" for k, value in fields)


def _cells(r: ReceivedRow) -> list[object]:
    apprec = str(r.apprec_status) + (f" {','.join(r.apprec_codes)}" if r.apprec_codes else "")
    return [
        r.id,
        shown(r.received_at),
        r.msg_id,
        r.sender_name or "-",
        r.sender_her_id,
        r.msg_type,
        _text(r.tema),
        _text(r.patient_masked),
        apprec,
        "yes" if r.announced else "no",
        _text(r.pathway_state),
    ]


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _echo_json(value: Any) -> None:
    from edi_gateway.services.queries import to_jsonable

    typer.echo(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2))
