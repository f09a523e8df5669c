"""What every part of the store shares: the engine, the clock, and read and write transactions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edi_gateway.store import rows
from edi_gateway.store.engine import WRITE_OPTION, translate_errors

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC (the store's default clock)."""
    return datetime.now(UTC)


class StoreBase:
    """An engine and a clock, with the connection handling every store call goes through."""

    def __init__(self, engine: sa.Engine, *, clock: Clock = utc_now) -> None:
        """Wrap an engine made by ``create_store_engine``; ``clock`` stamps rows and events."""
        self._engine = engine
        self._clock = clock

    def _now(self) -> datetime:
        return rows.aware(self._clock(), "the clock's now")

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with translate_errors(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with translate_errors(), self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """A connection in a write transaction, committed when the block ends without error."""
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _scalar_int(self, query: sa.Select[Any]) -> int:
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())
