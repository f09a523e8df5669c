"""The store: SQLAlchemy Core tables, queries and Alembic migrations. The only package that knows SQL.

``Store`` is the API (``store.py``); ``records`` holds the value objects it takes and returns;
``tables`` the schema, which ``migrations/`` must match.
"""

from edi_gateway.store.errors import DuplicateRequest, MessageNotFound, StoreDefect
from edi_gateway.store.records import (
    EventKind,
    EventRecord,
    MessageRecord,
    NewMessage,
    NewRequest,
    RequestOutcome,
    RequestRecord,
    Transition,
)
from edi_gateway.store.store import Store

__all__ = [
    "DuplicateRequest",
    "EventKind",
    "EventRecord",
    "MessageNotFound",
    "MessageRecord",
    "NewMessage",
    "NewRequest",
    "RequestOutcome",
    "RequestRecord",
    "Store",
    "StoreDefect",
    "Transition",
]
