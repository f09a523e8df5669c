"""Account commands beside ``operators add|password|list|disable``: API tokens, roles, unlocking.

``operators token create|list|revoke`` manage API tokens (a token is printed once, at creation, and
expires after ``--expires-days``); ``operators role`` changes an account's role and ``operators
unlock`` clears its failed web logins in every web process. Every change is audited under the
machine account that runs the command, like the other account commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from edi_gateway.cli_common import command_settings, store_session
from edi_gateway.cli_replay import _system_actor, operators_app
from edi_gateway.localtime import shown

token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


def register() -> None:
    """Add ``token``, ``role`` and ``unlock`` to the ``operators`` command group."""
    operators_app.add_typer(token_app, name="token")
    operators_app.command("role")(operators_role)
    operators_app.command("unlock")(operators_unlock)


@token_app.command("create")
def token_create(
    username: Annotated[str, typer.Argument(help="The account the token acts for.")],
    label: Annotated[str, typer.Option("--label", help="What the token is for, e.g. the EPR's monitoring.")],
    expires_days: Annotated[
        int, typer.Option("--expires-days", min=1, max=730, help="Days until the token stops working.")
    ] = 90,
) -> None:
    """Create an API token for an account; it is printed this once and stored only as a hash."""
    from edi_gateway.services.access import audit, create_token

    settings = command_settings()
    with store_session(settings) as store:
        token = create_token(store, username, label=label, expires_days=expires_days)
        details = {"username": username, "label": label, "expires_days": expires_days}
        audit(store, _system_actor(), action="create_token", reason="command line", details=details)
    typer.echo(token)


@token_app.command("list")
def token_list(
    username: Annotated[str | None, typer.Argument(help="Only this account's tokens.")] = None,
) -> None:
    """List tokens (never the secret): id, account, label, created, expires, last used, status."""
    from datetime import UTC, datetime

    from edi_gateway.cli_ops import table

    settings = command_settings()
    with store_session(settings) as store:
        tokens = store.list_api_tokens(username)
    now = datetime.now(UTC)
    rows = [
        [
            t.id,
            t.username,
            t.label,
            shown(t.created_at),
            shown(t.expires_at) if t.expires_at else None,
            shown(t.last_used_at) if t.last_used_at else None,
            "revoked" if t.revoked_at else "live" if t.live_at(now) else "expired",
        ]
        for t in tokens
    ]
    if not rows:
        typer.echo("no tokens")
        return
    typer.echo(table(("ID", "USERNAME", "LABEL", "CREATED", "EXPIRES", "LAST_USED", "STATUS"), rows))


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id (see token list).")]) -> None:
    """Revoke a token for good: calls with it get 401 from then on."""
    from edi_gateway.services.access import revoke_token_as

    settings = command_settings()
    with store_session(settings) as store:
        token = revoke_token_as(store, _system_actor(), token_id)
    typer.echo(f"token {token.id} ({token.username}, {token.label}) revoked")


def operators_role(
    username: Annotated[str, typer.Argument(help="The account.")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
) -> None:
    """Give an account another role; its web sessions end, so it signs in again with the new role."""
    from edi_gateway.services.access import Role, audit, set_role

    try:
        chosen = Role(role)
    except ValueError as exc:
        raise typer.BadParameter("choose viewer, operator or admin", param_hint="--role") from exc
    settings = command_settings()
    with store_session(settings) as store:
        set_role(store, username, chosen)
        details = {"username": username, "role": chosen.value}
        audit(store, _system_actor(), action="set_role", reason="command line", details=details)
    typer.echo(f"{username} is now {chosen.value}")


def operators_unlock(username: Annotated[str, typer.Argument(help="The account.")]) -> None:
    """Clear an account's failed web logins, in every web process, so it may sign in at once."""
    from edi_gateway.services.access import reset_login_failures

    settings = command_settings()
    with store_session(settings) as store:
        reset_login_failures(store, _system_actor(), username)
    typer.echo(f"failed logins of {username} cleared")
