"""What every command of the command line shares: settings, error exits, the acting operator account.

Exit codes: 0 ok, 1 a runtime failure (the gateway's own errors, printed as one line), 2 a usage
error (a bad setting or option value, or settings the gateway refuses to start with, such as no
signing key outside test mode).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import ValidationError

from edi_gateway.errors import EdiGatewayError
from edi_gateway.localtime import parse_local
from edi_gateway.settings import ConfigurationError, Settings

if TYPE_CHECKING:  # commands import their services lazily, to keep start-up quick
    from edi_gateway.services.access import Operator, Role
    from edi_gateway.services.context import Gateway
    from edi_gateway.store import Store

OPERATOR_ENV = "EDI_GATEWAY_OPERATOR"
OPERATOR_HELP = (
    "Your operator account (default: $EDI_GATEWAY_OPERATOR). It must exist, be enabled and hold the "
    "operator role or higher; the history and the audit log record it."
)
OperatorOption = Annotated[str, typer.Option("--operator", envvar=OPERATOR_ENV, help=OPERATOR_HELP)]


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment (and ``overrides``); a bad value names its variable and exits 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for err in exc.errors():
            name = "EDI_GATEWAY_" + "_".join(str(p) for p in err["loc"]).upper()
            typer.echo(f"setting {name}: {err['msg']}", err=True)
        raise typer.Exit(2) from exc


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as one line on stderr and return the exit to raise (2 for configuration, else 1)."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigurationError) else 1)


@contextmanager
def failing_cleanly() -> Iterator[None]:
    """Turn the gateway's errors into a one-line message and exit code 1 (2 for a configuration error)."""
    try:
        yield
    except EdiGatewayError as exc:
        raise fail(exc) from exc


def command_settings() -> Settings:
    """The settings for a command whose stdout is its result: logs (warnings and worse) go to stderr."""
    from edi_gateway.logging import configure_logging

    configure_logging(level="WARNING", stream=sys.stderr)
    return load_settings()


@contextmanager
def gateway_session() -> Iterator[Gateway]:
    """Open the gateway for one command and close it after.

    The gateway's errors exit as :func:`fail` says (1, or 2 for a configuration error); a bad value
    (``ValueError``) exits 2.
    """
    from edi_gateway.services.context import open_gateway

    settings = command_settings()
    with failing_cleanly():
        gateway = open_gateway(settings)
    try:
        with failing_cleanly():
            yield gateway
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        gateway.close()


@contextmanager
def store_session(settings: Settings) -> Iterator[Store]:
    """The store alone, for the account and audit commands, with HOME prepared owner-only first.

    The gateway's errors exit as :func:`failing_cleanly` says.
    """
    from edi_gateway.services.context import prepare_home
    from edi_gateway.store import Store

    with failing_cleanly():
        prepare_home(settings)
        with Store.connect(settings.effective_database_url) as store:
            yield store


def acting_operator(store: Store, username: str, role: Role) -> Operator:
    """The enabled account ``username``, which must hold ``role`` or higher.

    Raises:
        AccessDenied: no such enabled account, or its role is too low.
    """
    from edi_gateway.services.access import AccessDenied, enabled_operator, require

    operator = enabled_operator(store, username)
    if operator is None:
        raise AccessDenied(f"no enabled operator account named {username!r}")
    return require(operator, role)


def parse_when(value: str, *, end_of_day: bool = False) -> datetime:
    """Read a date or date-time an operator typed; without a zone it is Norwegian local time.

    Args:
        value: ``2024-11-04``, ``2024-11-04T09:30``, ``2024-11-04 09:30`` or with an offset.
        end_of_day: a bare date means the end of that day (midnight after it), for ``--until``.

    Raises:
        typer.BadParameter: the value is not a date (exit code 2).
    """
    try:
        return parse_local(value, end_of_day=end_of_day)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM)"
        ) from exc


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for showing configuration)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
