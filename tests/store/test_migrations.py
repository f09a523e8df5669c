"""The hand-written Alembic revisions build exactly the schema ``tables.py`` declares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from edi_gateway.domain.states import MessageState
from edi_gateway.store import Store, StoreDefect
from edi_gateway.store.rows import message_row, request_row
from edi_gateway.store.store import MIGRATIONS_DIR
from edi_gateway.store.tables import UtcDateTime, audit_log, events, messages, metadata, requests
from tests.store.conftest import Builder

# Columns revision 0002 added to ``messages``; rows written "at 0001" leave them out.
COLUMNS_OF_0002 = ("first_sent_at", "resends")


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


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _move_to(store: Store, revision: str, *, down: bool = False) -> None:
    """Migrate the store's database to ``revision`` the way ``Store.migrate`` does, on its connection."""
    config = _config()
    with store._write() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


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
    assert _revision(database_url) == _head() == "0009"


def test_migrating_twice_is_a_no_op(database_url: str, build: Builder) -> None:
    """A second migrate() changes nothing: same revision, stored data intact."""
    store = Store.connect(database_url)
    try:
        store.migrate()
        outcome = build.routed()
        store.save_outcomes([outcome], actor="worker:test")
        store.migrate()
        assert _revision(database_url) == _head()
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


@pytest.mark.parametrize("table", [events, audit_log])
def test_history_tables_refuse_update_and_delete(store: Store, build: Builder, table: sa.Table) -> None:
    """events and audit_log are append-only in the database itself: UPDATE and DELETE fail, rows stay."""
    store.save_outcomes([build.routed()], actor="test")
    with store._write() as conn:
        conn.execute(
            audit_log.insert(),
            [{"at": build.clock.now, "username": "kari", "action": "replay", "reason": "INC-1"}],
        )
    before = _all_rows(store, table)
    assert before
    for statement in (sa.update(table).values(reason="rewritten"), sa.delete(table)):
        with pytest.raises(StoreDefect) as refused, store._write() as conn:
            conn.execute(statement)
        assert "append-only" in str(refused.value.__cause__)
    assert _all_rows(store, table) == before


def _all_rows(store: Store, table: sa.Table) -> list[tuple[object, ...]]:
    with store._read() as conn:
        return [tuple(row) for row in conn.execute(sa.select(table).order_by(table.c.id))]


def test_upgrading_from_0001_backfills_the_first_send(database_url: str, build: Builder) -> None:
    """Messages stored before 0002 get first_sent_at = sent_at (None while unsent) and zero resends."""
    store = Store.connect(database_url)
    try:
        _move_to(store, "0001")
        assert _revision(database_url) == "0001"
        outcome = build.routed(receivers=2)
        sent, queued = outcome.messages
        sent_at = build.clock.now + timedelta(seconds=3)
        old_rows = [message_row(m, outcome.request.ref, build.clock.now) for m in outcome.messages]
        old_rows[0] |= {"state": MessageState.SENT.value, "sent_at": sent_at, "attempts": 1}
        with store._write() as conn:
            conn.execute(requests.insert(), [request_row(outcome.request, build.clock.now)])
            conn.execute(messages.insert(), [_as_0001(r) for r in old_rows])

        store.migrate()

        assert _revision(database_url) == _head()
        got_sent, got_queued = store.get_message(sent.msg_id), store.get_message(queued.msg_id)
        assert got_sent is not None and got_queued is not None
        assert (got_sent.state, got_sent.sent_at, got_sent.first_sent_at, got_sent.resends) == (
            MessageState.SENT,
            sent_at,
            sent_at,
            0,
        )
        assert (got_queued.first_sent_at, got_queued.resends) == (None, 0)
    finally:
        store.close()
    assert _differences(database_url) == []


def test_0002_downgrades_and_upgrades_again_keeping_the_messages(database_url: str, build: Builder) -> None:
    """Downgrading to 0001 drops the new columns and tables but keeps messages; upgrading restores them."""
    store = Store.connect(database_url)
    try:
        store.migrate()
        outcome = build.routed()
        store.save_outcomes([outcome], actor="worker:test")

        _move_to(store, "0001", down=True)
        assert _revision(database_url) == "0001"
        engine = sa.create_engine(database_url)
        try:
            inspector = sa.inspect(engine)
            assert not {"apprecs", "parked", "receiver_health"} & set(inspector.get_table_names())
            assert not set(COLUMNS_OF_0002) & {c["name"] for c in inspector.get_columns("messages")}
        finally:
            engine.dispose()

        store.migrate()
        assert store.count_messages() == 1
    finally:
        store.close()
    assert _differences(database_url) == []


def _as_0001(row: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in row.items() if k not in COLUMNS_OF_0002}


def test_upgrading_from_0004_gives_existing_tokens_90_days_and_keeps_accounts(database_url: str) -> None:
    """Tokens stored before 0005 expire 90 days after the upgrade and work until then; accounts start at epoch 0."""
    store = Store.connect(database_url)
    try:
        _move_to(store, "0004")
        now = datetime.now(UTC)
        account = {
            "username": "kari",
            "display_name": "Kari",
            "role": "operator",
            "password_hash": "$argon2id$fake",
            "created_at": now,
            "disabled": False,
        }
        token = {"username": "kari", "label": "old", "token_hash": "f" * 64, "created_at": now}
        with store._write() as conn:
            conn.execute(_as_0004("operators", account).insert(), [account])
            conn.execute(_as_0004("api_tokens", token).insert(), [token])

        store.migrate()

        (stored,) = store.list_api_tokens("kari")
        assert stored.expires_at is not None
        assert timedelta(days=89) < stored.expires_at - now < timedelta(days=90, minutes=5)
        assert store.use_api_token("f" * 64) is not None
        record = store.get_operator("kari")
        assert record is not None and record.session_epoch == 0 and record.logins_reset_at is None
        _move_to(store, "0004", down=True)
        engine = sa.create_engine(database_url)
        try:
            assert "expires_at" not in {c["name"] for c in sa.inspect(engine).get_columns("api_tokens")}
        finally:
            engine.dispose()
        store.migrate()
    finally:
        store.close()
    assert _differences(database_url) == []


def _as_0004(name: str, row: dict[str, object]) -> sa.TableClause:
    """The table with just the row's columns: at 0004 it lacks those ``tables.py`` now declares."""
    columns = [sa.column(k, UtcDateTime()) if k == "created_at" else sa.column(k) for k in row]
    return sa.table(name, *columns)
