"""Operator write commands: ``replay one|filter``, ``operators add|token|list|disable``, ``audit search``.

The command line runs as the machine's operator: whoever may run it may read the database anyway,
so it does not ask for a password. It does ask *who* acts (``--operator``, or the environment
variable ``EDI_GATEWAY_OPERATOR``): that account must exist, be enabled and hold the role the action
needs, and it is the name the history and the audit log record.
"""

from __future__ import annotations

import getpass
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edi_gateway.cli_common import (
    OPERATOR_ENV,
    OperatorOption,
    acting_operator,
    command_settings,
    failing_cleanly,
    parse_when,
    store_session,
)

if TYPE_CHECKING:  # the commands import their services lazily, to keep start-up quick
    from edi_gateway.services.access import Operator
    from edi_gateway.services.replay import ReplayKind, ReplayResult

replay_app = typer.Typer(
    help="Replay messages: resend the same MsgId, or rebuild or edit into a new message.",
    no_args_is_help=True,
)
operators_app = typer.Typer(help="Operator accounts and API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log (admins).", no_args_is_help=True)

KindOption = Annotated[
    str, typer.Option("--kind", help="resend (same MsgId, stored bytes), rebuild or edit (a new MsgId).")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; written to the history and the audit log.")]


def register(app: typer.Typer) -> None:
    """Add the replay, account and audit commands to the main command line."""
    app.add_typer(replay_app, name="replay")
    app.add_typer(operators_app, name="operators")
    app.add_typer(audit_app, name="audit")


# -- shared --------------------------------------------------------------------------------------


def _kind(value: str) -> ReplayKind:
    from edi_gateway.services.replay import ReplayKind

    try:
        return ReplayKind(value)
    except ValueError as exc:
        raise typer.BadParameter("choose resend, rebuild or edit", param_hint="--kind") from exc


def _show(result: ReplayResult) -> None:
    new = ", ".join(result.new_msg_ids) or "-"
    typer.echo(f"{result.kind.value} {result.old_msg_id} -> {new} [{result.state}] {result.detail}")


# -- replay --------------------------------------------------------------------------------------


@replay_app.command("one")
def replay_one(
    msg_id: Annotated[str, typer.Argument(help="The MsgId of the message to replay.")],
    kind: KindOption,
    reason: ReasonOption,
    operator: OperatorOption,
    request_file: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, readable=True, help="The corrected request JSON (--kind edit)."
        ),
    ] = None,
) -> None:
    """Replay one message: resend it, rebuild it with today's registers, or send an edited request."""
    from edi_gateway.services.access import Role
    from edi_gateway.services.context import open_gateway
    from edi_gateway.services.replay import ReplayKind, replay_session

    chosen = _kind(kind)
    edited = _edited_request(request_file) if chosen is ReplayKind.EDIT else None
    if chosen is not ReplayKind.EDIT and request_file is not None:
        raise typer.BadParameter("only --kind edit takes a request file", param_hint="--request-file")
    settings = command_settings()
    with failing_cleanly():
        gateway = open_gateway(settings)
        try:
            who = acting_operator(gateway.store, operator, Role.OPERATOR)
            with replay_session(gateway, name="edi_gateway.cli") as service:
                result = service.replay(who, msg_id, chosen, reason=reason, edited_request=edited)
        finally:
            gateway.close()
    _show(result)


def _edited_request(path: Path | None) -> dict[str, Any]:
    if path is None:
        raise typer.BadParameter("--kind edit needs the corrected request", param_hint="--request-file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeError, ValueError) as exc:
        raise typer.BadParameter("the file is not JSON in UTF-8", param_hint="--request-file") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter("the request must be a JSON object", param_hint="--request-file")
    return data


@replay_app.command("filter")
def replay_filter(
    state: Annotated[str, typer.Option("--state", help="Messages in this state (e.g. overdue, failed).")],
    kind: KindOption,
    reason: ReasonOption,
    operator: OperatorOption,
    kommune: Annotated[str | None, typer.Option("--kommune", help="Only this kommunenummer.")] = None,
    receiver_her_id: Annotated[int | None, typer.Option(help="Only this receiver HER-id.")] = None,
    samhandlingspunkt: Annotated[int | None, typer.Option(min=1, max=3)] = None,
    since: Annotated[
        str | None, typer.Option(help="Created at or after (date or date-time, Norwegian time).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages.")] = 50,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would happen.")] = False,
) -> None:
    """Replay every message a filter finds (resend or rebuild); try --dry-run first."""
    from edi_gateway.services.access import Role
    from edi_gateway.services.context import open_gateway
    from edi_gateway.services.queries import MessageFilter
    from edi_gateway.services.replay import replay_session

    chosen = _kind(kind)
    settings = command_settings()
    f = MessageFilter(
        state=state,
        kommunenummer=kommune,
        receiver_her_id=receiver_her_id,
        samhandlingspunkt=samhandlingspunkt,
        since=parse_when(since) if since else None,
        limit=limit,
    )
    with failing_cleanly():
        gateway = open_gateway(settings)
        try:
            who = acting_operator(gateway.store, operator, Role.OPERATOR)
            with replay_session(gateway, name="edi_gateway.cli") as service:
                if dry_run:
                    for msg_id, what in service.plan_by_filter(f, chosen):
                        typer.echo(f"{msg_id}: {what}")
                    return
                results = service.replay_by_filter(who, f, chosen, reason=reason)
        finally:
            gateway.close()
    for result in results:
        _show(result)
    if any(not r.new_msg_ids for r in results):
        raise typer.Exit(1)


# -- accounts ------------------------------------------------------------------------------------


def _system_actor() -> Operator:
    """The machine account that runs account commands, for the audit log."""
    from edi_gateway.services.access import Operator, Role

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = "unknown"
    return Operator(f"cli:{user}", Role.ADMIN, "command line")


@operators_app.command("add")
def operators_add(
    username: Annotated[str, typer.Argument(help="a-z, 0-9, '.', '_', '-'; at most 64 characters.")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    display_name: Annotated[str, typer.Option(help="The name the UI shows.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create an account; the password is asked for (twice), or read from stdin."""
    from edi_gateway.services.access import Role, audit, create_operator

    try:
        chosen = Role(role)
    except ValueError as exc:
        raise typer.BadParameter("choose viewer, operator or admin", param_hint="--role") from exc
    password = _new_password(password_stdin)
    settings = command_settings()
    with store_session(settings) as store:
        created = create_operator(store, username, password, chosen, display_name)
        details = {"username": created.username, "role": created.role.value}
        audit(store, _system_actor(), action="create_operator", reason="command line", details=details)
    typer.echo(f"created {created.username} ({created.role.value})")


@operators_app.command("password")
def operators_password(
    username: Annotated[str, typer.Argument(help="The account.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set a new password for an account (asked for twice, or read from stdin)."""
    from edi_gateway.services.access import audit, set_password

    password = _new_password(password_stdin)
    settings = command_settings()
    with store_session(settings) as store:
        set_password(store, username, password)
        audit(
            store,
            _system_actor(),
            action="set_password",
            reason="command line",
            details={"username": username},
        )
    typer.echo(f"new password set for {username}")


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@operators_app.command("list")
def operators_list() -> None:
    """List the accounts: username, role, enabled or not, display name."""

    settings = command_settings()
    with store_session(settings) as store:
        for record in store.list_operators():
            status = "disabled" if record.disabled else "enabled"
            typer.echo(f"{record.username}\t{record.role}\t{status}\t{record.display_name}")


@operators_app.command("disable")
def operators_disable(
    username: Annotated[str, typer.Argument(help="The account to disable.")],
    enable: Annotated[bool, typer.Option("--enable", help="Enable it again instead.")] = False,
) -> None:
    """Disable an account (its sign-ins and tokens stop working), or enable it again."""
    from edi_gateway.services.access import audit

    settings = command_settings()
    with store_session(settings) as store:
        if not store.set_operator_disabled(username, not enable):
            typer.echo(f"error: no operator named {username!r}", err=True)
            raise typer.Exit(1)
        action = "enable_operator" if enable else "disable_operator"
        audit(store, _system_actor(), action=action, reason="command line", details={"username": username})
    typer.echo(f"{username} {'enabled' if enable else 'disabled'}")


# -- audit ---------------------------------------------------------------------------------------


@audit_app.command("search")
def audit_search(
    admin: Annotated[
        str,
        typer.Option(
            "--as", envvar=OPERATOR_ENV, help="Your admin account (default: $EDI_GATEWAY_OPERATOR)."
        ),
    ],
    patient: Annotated[
        str | None, typer.Option(help="A person number: entries about that patient (matched by keyed hash).")
    ] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Entries of this username.")] = None,
    msg_id: Annotated[str | None, typer.Option(help="Entries about this MsgId.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of lines.")] = False,
) -> None:
    """Search the audit log, newest first; the search itself is audited."""
    from edi_gateway.services.access import Role, bind_patient_key, load_patient_key, search_audit_as

    settings = command_settings()
    with store_session(settings) as store:
        bind_patient_key(store, load_patient_key(settings))
        who = acting_operator(store, admin, Role.ADMIN)
        entries = search_audit_as(
            store,
            who,
            reason="command line",
            patient=patient,
            by_operator=operator,
            msg_id=msg_id,
            limit=limit,
        )
    if as_json:
        typer.echo(json.dumps([asdict(e) for e in entries], default=str, ensure_ascii=False, indent=2))
        return
    for e in entries:
        details = json.dumps(e.details, ensure_ascii=False) if e.details else ""
        typer.echo(f"{e.at.isoformat()}\t{e.username}\t{e.action}\t{e.msg_id or '-'}\t{e.reason}\t{details}")
