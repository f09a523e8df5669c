"""Accounts, tokens, the append-only audit log and replay records, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from edi_gateway.store import MessageNotFound, Store
from edi_gateway.store.operators import (
    MessageAlreadyReplaced,
    NewAuditEntry,
    NewReplay,
    OperatorExists,
    OperatorStore,
    TokenRecord,
)
from edi_gateway.store.store import MIGRATIONS_DIR
from tests.store.conftest import Builder, FakeClock

OPERATOR_TABLES = {"operators", "api_tokens", "audit_log", "replays"}
DAYS_90 = timedelta(days=90)


def _add(store: Store, username: str = "kari", role: str = "operator") -> None:
    store.add_operator(username, display_name="Kari Vakt", role=role, password_hash="$argon2id$fake")


def test_an_account_is_stored_and_read_back(store: Store, clock: FakeClock) -> None:
    """add_operator stores an enabled account that get_operator returns with every column."""
    _add(store)
    got = store.get_operator("kari")
    assert got is not None
    assert (got.username, got.display_name, got.role, got.password_hash, got.created_at, got.disabled) == (
        "kari",
        "Kari Vakt",
        "operator",
        "$argon2id$fake",
        clock.now,
        False,
    )
    assert store.get_operator("nobody") is None


def test_a_username_is_taken_once(store: Store) -> None:
    """A second account with the same username is refused with OperatorExists."""
    _add(store)
    with pytest.raises(OperatorExists):
        _add(store, role="admin")
    assert [o.role for o in store.list_operators()] == ["operator"]


def test_disabling_and_new_password_change_the_account(store: Store) -> None:
    """set_operator_disabled and set_password_hash change an existing account and report unknown ones."""
    _add(store)
    assert store.set_operator_disabled("kari", True) and store.set_password_hash("kari", "$argon2id$new")
    got = store.get_operator("kari")
    assert got is not None and got.disabled and got.password_hash == "$argon2id$new"
    assert not store.set_operator_disabled("nobody", True)


def test_a_live_token_finds_its_account_and_is_stamped(store: Store, clock: FakeClock) -> None:
    """use_api_token returns the account of a live token and records when it was used."""
    _add(store)
    created = clock.now
    token_id = store.add_api_token("kari", label="monitoring", token_hash="a" * 64, valid_for=DAYS_90)
    clock.advance(minutes=5)
    got = store.use_api_token("a" * 64)
    assert got is not None and got.username == "kari"
    (token,) = store.list_api_tokens("kari")
    assert (token.id, token.label, token.last_used_at, token.revoked_at, token.expires_at) == (
        token_id,
        "monitoring",
        clock.now,
        None,
        created + DAYS_90,
    )
    assert store.use_api_token("b" * 64) is None


def test_last_used_is_rewritten_at_most_once_a_minute(store: Store, clock: FakeClock) -> None:
    """Uses within a minute of the stamp leave last_used_at alone; the first use after it moves it."""
    _add(store)
    token_id = store.add_api_token("kari", label="ci", token_hash="d" * 64, valid_for=DAYS_90)
    first = clock.advance(seconds=1)
    assert store.use_api_token("d" * 64) is not None
    clock.advance(seconds=59)
    assert store.use_api_token("d" * 64) is not None
    assert _token(store, token_id).last_used_at == first
    later = clock.advance(seconds=1)
    assert store.use_api_token("d" * 64) is not None
    assert _token(store, token_id).last_used_at == later


def test_an_expired_token_no_longer_works(store: Store, clock: FakeClock) -> None:
    """A token works until its expiry and finds no account from that instant on."""
    _add(store)
    store.add_api_token("kari", label="ci", token_hash="e" * 64, valid_for=timedelta(days=1))
    clock.advance(days=1, seconds=-1)
    assert store.use_api_token("e" * 64) is not None
    clock.advance(seconds=1)
    assert store.use_api_token("e" * 64) is None


def test_tokens_are_listed_per_account_or_all_and_found_by_id(store: Store) -> None:
    """list_api_tokens(None) lists every account's tokens; get_api_token finds one by id, None if unknown."""
    _add(store)
    _add(store, "ola")
    kari = store.add_api_token("kari", label="a", token_hash="1" * 64, valid_for=DAYS_90)
    ola = store.add_api_token("ola", label="b", token_hash="2" * 64, valid_for=DAYS_90)
    assert [t.id for t in store.list_api_tokens("ola")] == [ola]
    assert [t.id for t in store.list_api_tokens(None)] == [kari, ola]
    assert _token(store, ola).username == "ola"
    assert store.get_api_token(ola + 100) is None


def _token(store: Store, token_id: int) -> TokenRecord:
    found = store.get_api_token(token_id)
    assert found is not None
    return found


def test_ending_sessions_bumps_the_epoch_and_a_rehash_does_not(store: Store) -> None:
    """end_sessions, a new password, a new role and disabling each bump session_epoch; a rehash keeps it."""
    _add(store)
    assert _epoch(store) == 0
    assert store.end_sessions("kari")
    assert _epoch(store) == 1
    assert store.set_password_hash("kari", "$argon2id$new")
    assert store.set_operator_role("kari", "admin")
    assert store.set_operator_disabled("kari", True)
    assert _epoch(store) == 4
    assert store.set_password_hash("kari", "$argon2id$rehash", end_sessions=False)
    got = store.get_operator("kari")
    assert got is not None and got.session_epoch == 4 and got.role == "admin"
    assert not store.end_sessions("nobody") and not store.set_operator_role("nobody", "admin")


def _epoch(store: Store) -> int:
    got = store.get_operator("kari")
    assert got is not None
    return got.session_epoch


def test_a_login_reset_is_stamped_on_the_account(store: Store, clock: FakeClock) -> None:
    """reset_login_failures stamps logins_reset_at with now; an unknown account reports False."""
    _add(store)
    got = store.get_operator("kari")
    assert got is not None and got.logins_reset_at is None
    clock.advance(minutes=3)
    assert store.reset_login_failures("kari")
    got = store.get_operator("kari")
    assert got is not None and got.logins_reset_at == clock.now
    assert not store.reset_login_failures("nobody")


def test_a_revoked_token_no_longer_works(store: Store) -> None:
    """After revoke_api_token the token finds no account; revoking twice reports nothing to revoke."""
    _add(store)
    token_id = store.add_api_token("kari", label="ci", token_hash="c" * 64, valid_for=DAYS_90)
    assert store.revoke_api_token(token_id)
    assert store.use_api_token("c" * 64) is None
    assert not store.revoke_api_token(token_id)


def test_audit_entries_are_appended_and_searched_newest_first(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """Entries come back newest first, filtered by username, msg_id and patient ref, with the request ref."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor="worker:test")
    msg_id = outcome.messages[0].msg_id
    store.append_audit(
        NewAuditEntry("kari", "reveal_patient", "nurse called", msg_id=msg_id, patient_ref="p1")
    )
    clock.advance(seconds=1)
    store.append_audit(
        NewAuditEntry("ola", "replay", "kommune asked", msg_id=msg_id, details={"kind": "resend"})
    )
    clock.advance(seconds=1)
    store.append_audit(NewAuditEntry("kari", "search_audit", "check"))

    assert [e.action for e in store.search_audit()] == ["search_audit", "replay", "reveal_patient"]
    assert [e.action for e in store.search_audit(username="kari")] == ["search_audit", "reveal_patient"]
    (by_patient,) = store.search_audit(patient_ref="p1")
    assert by_patient.request_ref == outcome.request.ref and by_patient.msg_id == msg_id
    (replayed,) = store.search_audit(msg_id=msg_id, action="replay")
    assert replayed.details == {"kind": "resend"} and replayed.username == "ola"
    assert len(store.search_audit(limit=1)) == 1


def test_the_audit_log_offers_no_way_to_change_or_delete() -> None:
    """The operator store has methods to append and search the audit log, none to update or delete it."""
    audit_methods = {name for name in dir(OperatorStore) if "audit" in name}
    assert audit_methods == {"append_audit", "search_audit"}


def test_a_replay_message_joins_the_request_with_history_on_both_messages(
    store: Store, build: Builder
) -> None:
    """add_replay_message stores the new message queued, an event on each message, and the replay row."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor="worker:test")
    old = outcome.messages[0]
    new = build.message(conversation_ref=old.msg_id)
    store.add_replay_message(
        NewReplay(old.msg_id, new, "kari", "edit", "wrong phone", b'{"edited": true}'), actor="operator:kari"
    )

    stored = store.get_message(new.msg_id)
    assert stored is not None and stored.state == "queued" and stored.request_ref == outcome.request.ref
    assert stored.conversation_ref == old.msg_id
    (first,) = store.events_for_message(new.msg_id)
    assert first.reason == f"replay of {old.msg_id} by operator:kari (edit): wrong phone"
    old_events = store.events_for_message(old.msg_id)
    assert (
        old_events[-1].reason.startswith(f"continued by {new.msg_id}") and old_events[-1].to_state == "queued"
    )
    made = store.replay_that_made(new.msg_id)
    assert made is not None and made.request_body == b'{"edited": true}' and made.kind == "edit"
    assert [r.new_msg_id for r in store.replays_of(old.msg_id)] == [new.msg_id]
    assert store.replay_that_made(old.msg_id) is None


def test_a_message_is_continued_once_per_receiver(store: Store, build: Builder) -> None:
    """A second new message for the same receiver continuing the same MsgId is refused; nothing is written."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor="worker:test")
    old = outcome.messages[0]
    store.add_replay_message(
        NewReplay(old.msg_id, build.message(conversation_ref=old.msg_id), "kari", "rebuild", "r"),
        actor="operator:kari",
    )
    again = build.message(conversation_ref=old.msg_id)
    with pytest.raises(MessageAlreadyReplaced):
        store.add_replay_message(NewReplay(old.msg_id, again, "kari", "rebuild", "r"), actor="operator:kari")
    assert store.get_message(again.msg_id) is None
    with pytest.raises(MessageNotFound):
        store.add_replay_message(
            NewReplay(str(uuid.uuid4()), build.message(), "kari", "rebuild", "r"), actor="operator:kari"
        )


def test_0003_downgrades_and_upgrades_again(database_url: str, build: Builder) -> None:
    """Downgrading to 0002 drops exactly the operator tables and keeps messages; upgrading restores them."""
    store = Store.connect(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        store.migrate()
        store.save_outcomes([build.routed()], actor="worker:test")
        with store._write() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        engine = sa.create_engine(database_url)
        try:
            assert not OPERATOR_TABLES & set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
        store.migrate()
        assert store.count_messages() == 1
        _add(store)
        assert store.get_operator("kari") is not None
    finally:
        store.close()
