"""Operator read queries: message lists with filters and paging, timelines, reports."""

from __future__ import annotations

from edi_gateway.store.base import StoreBase


class QueryStore(StoreBase):
    """Read-side queries for operators (CLI, web UI, REST API)."""
