"""Operator read commands: ``messages list|show``, ``registry lookup``, ``report``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the operator read commands to the main command line."""
