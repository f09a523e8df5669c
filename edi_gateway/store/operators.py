"""Operator accounts, API tokens and the append-only audit log."""

from __future__ import annotations

from edi_gateway.store.base import StoreBase


class OperatorStore(StoreBase):
    """Accounts, tokens and the audit log."""
