"""Reading parked documents: one document, pages of them without their payloads, lists and counts.

Parking and resolving are part of the acknowledgement batch (``acks.py``). Here is what operators,
metrics and tests read, every listing through one set of filters: a page of summaries that never
loads the stored bytes (only their length), one document with them, and the oldest-first list with
payloads. ``Store`` inherits these.
"""

from __future__ import annotations

import sqlalchemy as sa

from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.records import ParkedKind, ParkedRecord, ParkedSummary
from edi_gateway.store.tables import parked

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
        where = _conditions(resolved, None, code)
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
            found = [rows.parked_summary(r._mapping) for r in conn.execute(query)]
            total = int(conn.execute(count).scalar_one())
        return found, total

    def list_parked(
        self,
        *,
        unresolved_only: bool = True,
        kind: ParkedKind | None = None,
        code: str | None = None,
        limit: int = 100,
    ) -> list[ParkedRecord]:
        """Return parked documents with their payloads, oldest first (the order one works through them).

        Args:
            unresolved_only: leave out the ones an operator has resolved.
            kind: only this kind of document.
            code: only this code (e.g. ``apprec.wrong_sender``).
            limit: at most this many.
        """
        where = _conditions(False if unresolved_only else None, kind, code)
        query = sa.select(parked).where(*where).order_by(parked.c.received_at, parked.c.id).limit(limit)
        with self._read() as conn:
            return [rows.parked_record(r) for r in conn.execute(query)]

    def count_parked(
        self, *, unresolved_only: bool = True, kind: ParkedKind | None = None, code: str | None = None
    ) -> int:
        """Return how many parked documents match the filters of ``list_parked``."""
        where = _conditions(False if unresolved_only else None, kind, code)
        return self._scalar_int(sa.select(sa.func.count()).select_from(parked).where(*where))


def _conditions(
    resolved: bool | None, kind: ParkedKind | None, code: str | None
) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions every parked listing shares (None: no condition on that column)."""
    where: list[sa.ColumnElement[bool]] = []
    if resolved is not None:
        where.append(parked.c.resolved_at.is_not(None) if resolved else parked.c.resolved_at.is_(None))
    if kind is not None:
        where.append(parked.c.kind == ParkedKind(kind).value)
    if code is not None:
        where.append(parked.c.code == code)
    return where
