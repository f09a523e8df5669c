"""Operator read commands: ``messages list|show``, ``registry lookup``, ``report``.

Plain aligned text for a terminal, ``--json`` for scripts. Times given without a zone, and times
shown, are in Norwegian local time (Europe/Oslo), the time of the people on call. Lists show the
patient masked; the full signed message (``messages show --xml``) names the patient, so it needs a
reason and is written to the audit log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edi_gateway.cli_common import (
    OPERATOR_ENV,
    OPERATOR_HELP,
    acting_operator,
    gateway_session,
    parse_when,
)
from edi_gateway.cli_pilot import ReportBy, ReportFormat, pilot_command
from edi_gateway.domain.states import MessageState
from edi_gateway.localtime import shown
from edi_gateway.services import queries

if TYPE_CHECKING:  # the gateway context loads keys and schemas: import it only when a command runs
    pass

messages_app = typer.Typer(help="Find and inspect messages.", no_args_is_help=True)
registry_app = typer.Typer(help="Look up the registers the way routing sees them.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the operator read commands, and the token/role/unlock account commands, to the command line."""
    from edi_gateway import cli_accounts

    app.add_typer(messages_app, name="messages")
    app.add_typer(registry_app, name="registry")
    app.command("report")(report_command)
    cli_accounts.register()  # extends the ``operators`` group the write commands define


# -- plumbing --------------------------------------------------------------------------------------


def _since(value: str | None) -> datetime | None:
    return parse_when(value) if value is not None else None


def _until(value: str | None) -> datetime | None:
    return parse_when(value, end_of_day=True) if value is not None else None


def _local(moment: datetime | None) -> str:
    return shown(moment) if moment is not None else "-"


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return rows as plain text columns, padded to the widest cell, under a header line."""
    cells = [list(headers), *[[_text(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(queries.to_jsonable(value), ensure_ascii=False, indent=2))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


# -- messages --------------------------------------------------------------------------------------

_ROW_HEADERS = ("CREATED", "MSG_ID", "STATE", "APPREC", "RECEIVER", "HER_ID", "KOMMUNE", "SP", "PATIENT")


def _row_cells(r: queries.MessageRow) -> list[object]:
    return [
        _local(r.created_at),
        r.msg_id,
        r.state,
        r.apprec_status,
        f"{r.receiver_kind}: {r.receiver_name}",
        r.receiver_her_id,
        r.kommunenummer,
        r.samhandlingspunkt,
        r.patient_masked,
    ]


@messages_app.command("list")
def list_command(
    state: Annotated[MessageState | None, typer.Option(help="Only messages in this state.")] = None,
    kommune: Annotated[str | None, typer.Option(help="Only messages for this kommunenummer.")] = None,
    receiver: Annotated[
        int | None, typer.Option(help="Only messages to this HER-id (service, fastlege or virksomhet).")
    ] = None,
    samhandlingspunkt: Annotated[int | None, typer.Option(min=1, max=3, help="1, 2 or 3.")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (date or date-time, local).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before; a bare date includes that day.")] = None,
    request_id: Annotated[str | None, typer.Option(help="Only the messages of this request.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=queries.MAX_PAGE, help="Rows per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many rows (newest first).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List messages, newest first, with state, last AppRec status and the patient masked."""
    f = queries.MessageFilter(
        state=state.value if state is not None else None,
        kommunenummer=kommune,
        receiver_her_id=receiver,
        samhandlingspunkt=samhandlingspunkt,
        since=_since(since),
        until=_until(until),
        request_id=request_id,
        limit=limit,
        offset=offset,
    )
    with gateway_session() as gateway:
        page = queries.list_messages(gateway.store, f)
    if as_json:
        _echo_json(page)
        return
    if not page.rows:
        typer.echo(f"no messages match ({page.total} in all)")
        return
    typer.echo(table(_ROW_HEADERS, [_row_cells(r) for r in page.rows]))
    last = page.offset + len(page.rows)
    typer.echo(f"\nrows {page.offset + 1}-{last} of {page.total}")


@messages_app.command("show")
def show_command(
    msg_id: Annotated[str, typer.Argument(help="The MsgId.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    xml: Annotated[
        bool, typer.Option("--xml", help="Print the signed message as sent (names the patient: audited).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why you need the signed message (audit log).")] = None,
    operator: Annotated[
        str | None,
        typer.Option(envvar=OPERATOR_ENV, help="With --xml: " + OPERATOR_HELP),
    ] = None,
) -> None:
    """Show one message: state, AppRecs, history and related messages; --xml the signed document."""
    if xml:
        if not operator:
            raise typer.BadParameter("--xml shows patient data: give --operator (your account)")
        _show_xml(msg_id, reason, operator)
        return
    with gateway_session() as gateway:
        detail = queries.message_detail(gateway.store, msg_id)
    if detail is None:
        typer.echo(f"error: no message has MsgId {msg_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        _echo_json(detail)
    else:
        typer.echo(format_detail(detail))


def _show_xml(msg_id: str, reason: str | None, username: str) -> None:
    if reason is None or not reason.strip():
        raise typer.BadParameter("--xml shows patient data: give --reason (it goes to the audit log)")
    from edi_gateway.services.access import Role, reveal_payload
    from edi_gateway.store import MessageNotFound

    with gateway_session() as gateway:
        who = acting_operator(gateway.store, username, Role.OPERATOR)
        try:
            payload = reveal_payload(gateway.store, who, msg_id, reason=reason)
        except MessageNotFound as exc:
            typer.echo(f"error: no message has MsgId {msg_id}", err=True)
            raise typer.Exit(1) from exc
    sys.stdout.buffer.write(payload if payload.endswith(b"\n") else payload + b"\n")
    sys.stdout.flush()


def format_detail(d: queries.MessageDetail) -> str:
    """Return a message's detail as text for a terminal."""
    r = d.row
    problems = "; ".join(f"{p.code}: {p.reason}" for p in d.request_problems) or "none"
    fields = [
        ("msg_id", r.msg_id),
        ("state", r.state + (f" (last AppRec status {r.apprec_status})" if r.apprec_status else "")),
        ("request_id", _text(r.request_id)),
        ("request", f"{d.request_state} (ref {r.request_ref}); problems: {problems}"),
        ("receiver", f"{r.receiver_kind}: {r.receiver_name}"),
        ("her_id", f"{r.receiver_her_id} (virksomhet {r.receiver_org_her_id})"),
        ("kommune", _text(r.kommunenummer)),
        ("samhandlingspunkt", _text(r.samhandlingspunkt)),
        ("patient", r.patient_masked),
        ("created", _local(r.created_at)),
        ("updated", _local(r.updated_at)),
        ("sent", _local(d.sent_at)),
        ("attempts/resends", f"{d.attempts} / {d.resends}"),
        ("conversation_ref", _text(d.conversation_ref)),
    ]
    if d.routing is not None:
        fields.append(("routing", f"{d.routing.service_code} ({d.routing.rule}): {d.routing.reason}"))
    if d.transport is not None:
        via = d.transport + (f", NHN id {d.transport_id}" if d.transport_id else "")
        fields.append(("transport", via + (f", delivery {d.transport_state}" if d.transport_state else "")))
    if d.refusal:
        fields.append(("refused", "; ".join(f"{k}: {v}" for k, v in d.refusal.items() if v)))
    width = max(len(k) for k, _ in fields)
    out = [f"{k.ljust(width)}  {v}" for k, v in fields]
    out += ["", "AppRecs:"] + (_apprec_lines(d.apprecs) or ["  none"])
    timeline = [
        [_local(e.at), e.kind, f"{_text(e.from_state)} -> {_text(e.to_state)}", e.actor, e.reason]
        for e in d.timeline
    ]
    out += ["", "History:", _indent(table(("AT", "KIND", "STATE", "ACTOR", "REASON"), timeline))]
    if d.related:
        out += ["", "Related messages:", _indent(table(_ROW_HEADERS, [_row_cells(m) for m in d.related]))]
    return "\n".join(out)


def _apprec_lines(apprecs: Sequence[queries.AppRecView]) -> list[str]:
    lines: list[str] = []
    for a in apprecs:
        lines.append(
            f"  {_local(a.received_at)}  {a.apprec_id}  status {a.status} {a.status_text}  signature {a.signature}"
        )
        lines += [f"      {code}  {text}" for code, text in a.errors]
    return lines


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


# -- registry --------------------------------------------------------------------------------------


@registry_app.command("lookup")
def lookup_command(
    query: Annotated[str, typer.Argument(help="Person number (11 digits), kommunenummer (4) or HER-id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    reason: Annotated[
        str | None, typer.Option(help="For a person number: why you look the patient up (audit log).")
    ] = None,
    operator: Annotated[
        str | None, typer.Option(envvar=OPERATOR_ENV, help="For a person number: " + OPERATOR_HELP)
    ] = None,
) -> None:
    """Show who routing would choose: a person's kommune, service and fastlege; a kommune; a HER-id.

    A person number is personal data: it needs --operator (an operator account) and --reason, and the
    look-up is written to the audit log.
    """
    from edi_gateway.services.access import Role
    from edi_gateway.services.lookup import is_person_query, registry_lookup

    person = is_person_query(query)
    if person and not (operator and reason and reason.strip()):
        raise typer.BadParameter("a person number is audited: give --operator and --reason")
    with gateway_session() as gateway:
        if person and operator:
            who = acting_operator(gateway.store, operator, Role.OPERATOR)
            answer = registry_lookup(gateway, who, query, reason)
        else:
            answer = queries.registry_lookup(gateway.registers, gateway.rules, query)
    if as_json:
        _echo_json(answer)
    else:
        typer.echo("\n".join(tree_lines(answer)))
    if not answer.get("found"):
        raise typer.Exit(1)


def tree_lines(value: dict[str, Any], indent: int = 0) -> list[str]:
    """Return a nested answer as indented ``key: value`` lines: a list of values on one line, a party a line."""
    pad = "  " * indent
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines += [f"{pad}{key}:", *tree_lines(item, indent + 1)]
        elif isinstance(item, list) and any(isinstance(i, dict) for i in item):
            lines.append(f"{pad}{key}:")
            lines += [f"{pad}  - " + ", ".join(f"{k}: {_text(v)}" for k, v in i.items()) for i in item]
        elif isinstance(item, list):
            lines.append(f"{pad}{key}: {', '.join(_text(i) for i in item) or '-'}")
        else:
            lines.append(f"{pad}{key}: {_text(item)}")
    return lines


# -- report ----------------------------------------------------------------------------------------


def report_command(
    since: Annotated[str, typer.Option(help="First day (or date-time), local time.")],
    until: Annotated[str, typer.Option(help="Last day, included (or a date-time, excluded).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    pilot: Annotated[
        bool, typer.Option("--pilot", help="The pilot report: JA, NEI, sent, acknowledged, kommune points.")
    ] = False,
    fmt: Annotated[
        ReportFormat | None, typer.Option("--format", help="text (default), json, or csv (--pilot only).")
    ] = None,
    by: Annotated[
        ReportBy | None, typer.Option(help="--pilot: a row per kommune per calendar month (local).")
    ] = None,
) -> None:
    """Report a period: outcomes per kommune and samhandlingspunkt, consent, median time to AppRec.

    With --pilot: per kommune (and month), JA, NEI, sent to the kommune, acknowledged, and the
    kommune's samhandlingspunkter done, declined, not reachable and overdue.
    """
    if not pilot and (by is not None or fmt is ReportFormat.CSV):
        raise typer.BadParameter("--by and --format csv go with --pilot")
    fmt = ReportFormat.JSON if as_json else fmt or ReportFormat.TEXT
    start, end = parse_when(since), parse_when(until, end_of_day=True)
    if pilot:
        pilot_command(start, end, fmt=fmt, by=by)
        return
    as_json = fmt is ReportFormat.JSON
    with gateway_session() as gateway:
        found = queries.report(gateway.store, gateway.registers, since=start, until=end)
    if as_json:
        _echo_json(found)
        return
    typer.echo(format_report(found))


def format_report(r: queries.Report) -> str:
    """Return a report as text for a terminal."""
    rows = [[x.kommunenummer, x.kommune_name, x.samhandlingspunkt, x.outcome, x.count] for x in r.rows]
    lines = [
        f"period             {_local(r.since)} - {_local(r.until)} (until excluded)",
        f"requests           {r.requests} (consent yes {r.consent_yes}, no {r.consent_no})",
        f"messages           {r.messages}",
        f"median to AppRec   {_duration(r.median_seconds_to_apprec)}",
        "",
        table(("KOMMUNE", "NAME", "SP", "OUTCOME", "COUNT"), rows) if rows else "nothing in this period",
    ]
    return "\n".join(lines)
