"""The hand-written Alembic revisions build exactly the schema ``tables.py`` declares."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from edi_gateway.store import Store, StoreDefect
from edi_gateway.store.rows import message_row
from edi_gateway.store.store import MIGRATIONS_DIR
from edi_gateway.store.tables import messages, metadata
from tests.store.conftest import Builder


def _differences(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def test_migrating_an_empty_database_matches_the_metadata(database_url: str) -> None:
    """After migrate() on an empty database, Alembic finds no difference from our MetaData."""
    store = Store.connect(database_url)
    try:
        store.migrate()
    finally:
        store.close()
    assert _differences(database_url) == []
    assert _revision(database_url) == _head() == "0001"


def test_migrating_twice_is_a_no_op(database_url: str, build: Builder) -> None:
    """A second migrate() changes nothing: same revision, stored data intact."""
    store = Store.connect(database_url)
    try:
        store.migrate()
        outcome = build.routed()
        store.save_outcomes([outcome], actor="worker:test")
        store.migrate()
        assert _revision(database_url) == "0001"
        assert store.get_request_by_ref(outcome.request.ref) is not None
        assert store.count_messages() == 1
    finally:
        store.close()
    assert _differences(database_url) == []


def test_foreign_keys_are_enforced(database_url: str, build: Builder) -> None:
    """The migrated schema refuses a message whose request does not exist, on SQLite too."""
    store = Store.connect(database_url)
    try:
        store.migrate()
        orphan = message_row(build.message(), "no-such-request", build.clock.now)
        with pytest.raises(StoreDefect), store._write() as conn:
            conn.execute(messages.insert(), [orphan])
        assert store.count_messages() == 0
    finally:
        store.close()
