"""Parked AppRecs on the command line: ``parked list|show|resolve|dismiss``.

``list`` and ``show`` print what the views hold (codes, ids, sizes, times, the resolution), never
the stored document. ``show --payload`` writes the stored bytes to stdout; it needs ``--operator``
and ``--reason`` and is written to the audit log. ``resolve`` and ``dismiss`` need the same, happen
once, and are audited too.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edi_gateway.cli_common import (
    OPERATOR_ENV,
    OPERATOR_HELP,
    OperatorOption,
    acting_operator,
    gateway_session,
)
from edi_gateway.localtime import shown
from edi_gateway.services.parked import MAX_PAGE, ParkedAction, ParkedState

if TYPE_CHECKING:  # the gateway context loads keys and schemas: import it only when a command runs
    from edi_gateway.services.parked import ParkedView

parked_app = typer.Typer(
    help="Parked AppRecs: list, show, reveal (audited), resolve or dismiss (audited).",
    no_args_is_help=True,
)
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; written to the audit log.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
IdArgument = Annotated[int, typer.Argument(min=1, help="The parked document's id (from parked list).")]
_HEADERS = ("ID", "RECEIVED", "CODE", "APPREC_ID", "MSG_ID", "SIZE", "OUTCOME")


def register(app: typer.Typer) -> None:
    """Add the parked commands to the main command line."""
    app.add_typer(parked_app, name="parked")


@parked_app.command("list")
def list_command(
    state: Annotated[
        ParkedState, typer.Option(help="open (waiting for an operator), handled, or all.")
    ] = ParkedState.OPEN,
    code: Annotated[str | None, typer.Option(help="Only this code, e.g. apprec.wrong_sender.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many rows (newest first).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """List parked AppRecs, newest first: code, ids, size and outcome (never the document)."""
    from edi_gateway.cli_ops import table
    from edi_gateway.services.parked import list_parked

    with gateway_session() as gateway:
        page = list_parked(gateway.store, state=state, code=code, limit=limit, offset=offset)
    if as_json:
        _echo_json(page)
        return
    if not page.rows:
        typer.echo(f"no parked AppRecs match ({page.total} in all)")
        return
    typer.echo(table(_HEADERS, [_cells(v) for v in page.rows]))
    typer.echo(f"\nrows {page.offset + 1}-{page.offset + len(page.rows)} of {page.total}")


@parked_app.command("show")
def show_command(
    parked_id: IdArgument,
    as_json: JsonOption = False,
    payload: Annotated[
        bool, typer.Option("--payload", help="Write the stored document to stdout (audited).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="With --payload: why (audit log).")] = None,
    operator: Annotated[
        str | None, typer.Option(envvar=OPERATOR_ENV, help="With --payload: " + OPERATOR_HELP)
    ] = None,
) -> None:
    """Show one parked AppRec; --payload writes the document as stored (operator role, reason, audited)."""
    from edi_gateway.services.access import Role
    from edi_gateway.services.parked import reveal_parked, show_parked

    if payload and not (operator and reason and reason.strip()):
        raise typer.BadParameter("--payload is audited: give --operator and --reason")
    with gateway_session() as gateway:
        if payload and operator and reason:
            who = acting_operator(gateway.store, operator, Role.OPERATOR)
            revealed = reveal_parked(gateway.store, who, parked_id, reason=reason)
            data = revealed.payload
            sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
            sys.stdout.flush()
            return
        view = show_parked(gateway.store, parked_id)
    if as_json:
        _echo_json(view)
    else:
        typer.echo(format_view(view))


@parked_app.command("resolve")
def resolve_command(
    parked_id: IdArgument, reason: ReasonOption, operator: OperatorOption, as_json: JsonOption = False
) -> None:
    """Mark a parked AppRec handled (something was done about it), once; audited."""
    _decide(parked_id, ParkedAction.RESOLVE, reason, operator, as_json)


@parked_app.command("dismiss")
def dismiss_command(
    parked_id: IdArgument, reason: ReasonOption, operator: OperatorOption, as_json: JsonOption = False
) -> None:
    """Dismiss a parked AppRec (nothing to do, e.g. a duplicate), once; audited."""
    _decide(parked_id, ParkedAction.DISMISS, reason, operator, as_json)


def _decide(parked_id: int, action: ParkedAction, reason: str, operator: str, as_json: bool) -> None:
    from edi_gateway.services.access import Role
    from edi_gateway.services.parked import decide_parked

    with gateway_session() as gateway:
        who = acting_operator(gateway.store, operator, Role.OPERATOR)
        view = decide_parked(gateway.store, who, parked_id, action, reason=reason)
    if as_json:
        _echo_json(view)
    else:
        typer.echo(f"parked {view.id} {view.outcome} by {view.resolved_by}: {view.resolution}")


def format_view(v: ParkedView) -> str:
    """Return one parked document's view as text for a terminal."""
    size = f"{v.size} bytes" + (f" (first {v.kept} kept, sha256 {v.sha256})" if v.truncated else "")
    outcome = "waiting for an operator"
    if v.outcome is not None:
        outcome = f"{v.outcome} by {v.resolved_by} at {_local(v)}: {v.resolution}"
    fields = [
        ("id", str(v.id)),
        ("kind", v.kind),
        ("code", v.code),
        ("reason", v.reason),
        ("received", shown(v.received_at)),
        ("apprec_id", _text(v.apprec_id)),
        ("msg_id", _text(v.msg_id)),
        ("amqp_message_id", _text(v.amqp_message_id)),
        ("size", size),
        ("details", json.dumps(_plain_details(v), ensure_ascii=False, sort_keys=True)),
        ("outcome", outcome),
    ]
    width = max(len(k) for k, _ in fields)
    return "\n".join(f"{k.ljust(width)}  {value}" for k, value in fields)


def _cells(v: ParkedView) -> list[object]:
    return [v.id, shown(v.received_at), v.code, v.apprec_id, v.msg_id, v.size, v.outcome or "open"]


def _plain_details(v: ParkedView) -> dict[str, Any]:
    return {k: value for k, value in (v.details or {}).items() if not k.startswith("raw_")}


def _local(v: ParkedView) -> str:
    return shown(v.resolved_at) if v.resolved_at is not None else "-"


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _echo_json(value: Any) -> None:
    from edi_gateway.services.queries import to_jsonable

    typer.echo(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2))
