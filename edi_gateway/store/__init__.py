"""The store: SQLAlchemy Core tables, queries and Alembic migrations. The only package that knows SQL.

``Store`` is the API (``store.py`` for requests and messages, ``acks.py`` for AppRecs, parked
documents and receiver health); ``records`` holds the value objects it takes and returns; ``tables``
the schema, which ``migrations/`` must match.
"""

from edi_gateway.store.errors import DuplicateAppRec, DuplicateRequest, MessageNotFound, StoreDefect
from edi_gateway.store.records import (
    AppRecRecord,
    EventKind,
    EventRecord,
    MessageRecord,
    NewAppRec,
    NewMessage,
    NewParked,
    NewRequest,
    ParkedKind,
    ParkedRecord,
    ParkedSummary,
    RequestOutcome,
    RequestRecord,
    SignatureCheck,
    Transition,
)
from edi_gateway.store.store import Store
from edi_gateway.store.tables import APPREC_ID_MAX_LEN

__all__ = [
    "APPREC_ID_MAX_LEN",
    "AppRecRecord",
    "DuplicateAppRec",
    "DuplicateRequest",
    "EventKind",
    "EventRecord",
    "MessageNotFound",
    "MessageRecord",
    "NewAppRec",
    "NewMessage",
    "NewParked",
    "NewRequest",
    "ParkedKind",
    "ParkedRecord",
    "ParkedSummary",
    "RequestOutcome",
    "RequestRecord",
    "SignatureCheck",
    "Store",
    "StoreDefect",
    "Transition",
]
