"""Operator write commands: ``replay`` and the account and audit commands."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the replay, account and audit commands to the main command line."""
