"""Engines tuned per database, and the boundary where SQLAlchemy errors become the project's errors.

SQLite (the embedded default) gets WAL, enforced foreign keys, a busy timeout and ``BEGIN IMMEDIATE``
for write transactions; PostgreSQL (production) gets pre-ping and a connect timeout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.pool import ConnectionPoolEntry

from edi_gateway.errors import StoreUnavailable
from edi_gateway.store.errors import StoreDefect

# Execution option that marks a connection as about to write (see ``_begin_sqlite``).
WRITE_OPTION = "edi_gateway_write"

BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5


def create_store_engine(url: str) -> sa.Engine:
    """Create the engine for ``url`` with the settings the store relies on.

    Statement parameters are hidden from error messages: they hold request bodies and signed XML,
    which carry personal data and must never reach a log line through an exception.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return sa.create_engine(parsed, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    engine = sa.create_engine(url, hide_parameters=True, connect_args={"timeout": BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # The driver's own transaction handling starts transactions late (only at the first DML) and
    # deferred; SQLAlchemy emits BEGIN itself instead (``_begin_sqlite``).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run beside the one writer. synchronous stays FULL (the default): the
        # worker acks a request only after its commit, so a commit must survive a power cut.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    finally:
        cursor.close()


def _begin_sqlite(conn: sa.Connection) -> None:
    # A deferred transaction that has read and then writes fails at once with SQLITE_BUSY when
    # another connection committed in between (the busy timeout does not help then); taking the
    # write lock up front makes two writers queue up instead, which read-check-update relies on.
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy errors into ``StoreUnavailable`` (retry) or ``StoreDefect`` (an operator).

    Only the exception class names go into the messages; the chained original stays for tracebacks
    and carries no statement parameters (``hide_parameters``).
    """
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise StoreUnavailable(f"database unavailable ({_cause(error)})") from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise StoreUnavailable(f"database connection lost ({_cause(error)})") from error
        raise StoreDefect(f"database refused a statement ({_cause(error)})") from error


def _cause(error: exc.SQLAlchemyError) -> str:
    orig = getattr(error, "orig", None)
    return type(orig if orig is not None else error).__name__
