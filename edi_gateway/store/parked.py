"""Parked documents for operators: one document, and pages of them without their payloads.

Parking itself is part of the acknowledgement batch (``acks.py``, which also lists, counts and
resolves). Here is what the operators' list and detail views read: a page of summaries that never
loads the stored bytes (only their length), and one document with them. ``Store`` inherits these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.records import ParkedKind, ParkedRecord
from edi_gateway.store.tables import parked


@dataclass(frozen=True, slots=True)
class ParkedSummary:
    """A parked document without its payload.

    Attributes:
        raw_kept: how many bytes of the document the store holds (see ``rows.PARKED_RAW_KEEP_BYTES``).
        details: the JSON the worker recorded; ``raw_size`` and ``raw_sha256`` there when it was cut.
    """

    id: int
    kind: ParkedKind
    code: str
    reason: str
    received_at: datetime
    raw_kept: int
    amqp_message_id: str | None
    apprec_id: str | None
    msg_id: str | None
    details: dict[str, Any] | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


_SUMMARY_COLUMNS = [c for c in parked.c if c.name != "raw"]


class ParkedStore(StoreBase):
    """The store's reads of parked documents for the operators' views."""

    def get_parked(self, parked_id: int) -> ParkedRecord | None:
        """Return the parked document with this id, payload included, or None.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        with self._read() as conn:
            row = conn.execute(sa.select(parked).where(parked.c.id == parked_id)).first()
        return rows.parked_record(row) if row is not None else None

    def parked_page(
        self,
        *,
        resolved: bool | None = False,
        code: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[ParkedSummary], int]:
        """Return one page of parked documents, newest first, and how many match in all.

        Args:
            resolved: False for the ones waiting for an operator, True for the handled ones, None for all.
            code: only this code (e.g. ``apprec.wrong_sender``).
            limit: at most this many.
            offset: skip this many.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        where: list[sa.ColumnElement[bool]] = []
        if resolved is not None:
            where.append(parked.c.resolved_at.is_not(None) if resolved else parked.c.resolved_at.is_(None))
        if code is not None:
            where.append(parked.c.code == code)
        kept = sa.func.length(parked.c.raw).label("raw_kept")
        query = (
            sa.select(*_SUMMARY_COLUMNS, kept)
            .where(*where)
            .order_by(parked.c.received_at.desc(), parked.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(parked).where(*where)
        with self._read() as conn:
            found = [_summary(r._mapping) for r in conn.execute(query)]
            total = int(conn.execute(count).scalar_one())
        return found, total


def _summary(m: Any) -> ParkedSummary:
    return ParkedSummary(
        id=m["id"],
        kind=ParkedKind(m["kind"]),
        code=m["code"],
        reason=m["reason"],
        received_at=m["received_at"],
        raw_kept=int(m["raw_kept"] or 0),
        amqp_message_id=m["amqp_message_id"],
        apprec_id=m["apprec_id"],
        msg_id=m["msg_id"],
        details=m["details"],
        resolved_at=m["resolved_at"],
        resolved_by=m["resolved_by"],
        resolution=m["resolution"],
    )
