"""The account commands that need no broker: ``operators list|disable|password|role|unlock|token``.

On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.logging import configure_logging
from edi_gateway.services.access import (
    Role,
    authenticate,
    authenticate_token,
    bind_patient_key,
    load_patient_key,
    logins_reset_at,
    search_audit,
    session_epoch,
    session_operator,
)
from edi_gateway.settings import Settings
from edi_gateway.store import Store

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a quite different phrase"


class Accounts:
    """A migrated database and a way to run account commands on it."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.database_url = database_url
        self.env = {"EDI_GATEWAY_HOME": str(home), "EDI_GATEWAY_DATABASE_URL": database_url}

    def run(self, *args: str, stdin: str | None = None) -> Result:
        """Run ``edi-gateway <args>`` in-process."""
        return CliRunner().invoke(app, list(args), env=self.env, input=stdin)

    def add(self, username: str, role: Role) -> None:
        """Create an account through the command line."""
        result = self.run(
            "operators", "add", username, "--role", role.value, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert result.exit_code == 0, result.output

    def store(self) -> Store:
        """A store on the database, with the installation's patient key bound (for audit searches)."""
        store = Store.connect(self.database_url)
        bind_patient_key(store, load_patient_key(Settings(home=self.home)))
        return store


@pytest.fixture
def accounts(tmp_path: Path, database_url: str) -> Iterator[Accounts]:
    """An empty, migrated database on SQLite and on PostgreSQL."""
    with Store.connect(database_url) as store:
        store.migrate()
    yield Accounts(tmp_path / "home", database_url)
    configure_logging()  # the commands sent logs to stderr; later tests expect the default


def test_operators_list_shows_every_account_with_role_and_status(accounts: Accounts) -> None:
    accounts.add("kari", Role.OPERATOR)
    accounts.add("ola", Role.VIEWER)
    result = accounts.run("operators", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["kari\toperator\tenabled\tkari", "ola\tviewer\tenabled\tola"]


def test_operators_disable_stops_sign_in_and_enable_restores_it(accounts: Accounts) -> None:
    accounts.add("kari", Role.OPERATOR)
    assert accounts.run("operators", "disable", "kari").exit_code == 0
    with accounts.store() as store:
        assert authenticate(store, "kari", PASSWORD) is None
    assert "kari\toperator\tdisabled" in accounts.run("operators", "list").stdout
    assert accounts.run("operators", "disable", "kari", "--enable").exit_code == 0
    with accounts.store() as store:
        assert authenticate(store, "kari", PASSWORD) is not None
    assert accounts.run("operators", "disable", "nobody").exit_code == 1


def test_operators_password_replaces_the_password_and_is_audited(accounts: Accounts) -> None:
    accounts.add("kari", Role.OPERATOR)
    result = accounts.run("operators", "password", "kari", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    with accounts.store() as store:
        assert authenticate(store, "kari", PASSWORD) is None
        assert authenticate(store, "kari", NEW_PASSWORD) is not None
        (entry,) = [e for e in search_audit(store) if e.action == "set_password"]
        assert entry.details == {"username": "kari"}
        assert NEW_PASSWORD not in str(entry)


def test_operators_password_refuses_a_short_password_and_an_unknown_account(accounts: Accounts) -> None:
    accounts.add("kari", Role.OPERATOR)
    short = accounts.run("operators", "password", "kari", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.stderr
    unknown = accounts.run("operators", "password", "nobody", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert unknown.exit_code == 1 and "no operator named 'nobody'" in unknown.stderr
    with accounts.store() as store:
        assert authenticate(store, "kari", PASSWORD) is not None


def test_tokens_are_created_with_an_expiry_listed_without_secret_and_revoked(accounts: Accounts) -> None:
    """``token create --expires-days`` prints a working token; ``token list`` hides it; ``token revoke`` ends it."""
    accounts.add("kari", Role.OPERATOR)
    created = accounts.run("operators", "token", "create", "kari", "--label", "ci", "--expires-days", "7")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    with accounts.store() as store:
        assert authenticate_token(store, token) is not None
        (record,) = store.list_api_tokens("kari")
        assert record.expires_at is not None and (record.expires_at - record.created_at).days == 7
    listed = accounts.run("operators", "token", "list")
    assert listed.exit_code == 0, listed.output
    header, _, row = listed.stdout.splitlines()
    assert header.split() == ["ID", "USERNAME", "LABEL", "CREATED", "EXPIRES", "LAST_USED", "STATUS"]
    assert row.split()[:3] == [str(record.id), "kari", "ci"] and row.split()[-1] == "live"
    assert token not in listed.stdout
    revoked = accounts.run("operators", "token", "revoke", str(record.id))
    assert revoked.exit_code == 0, revoked.output
    with accounts.store() as store:
        assert authenticate_token(store, token) is None
        assert [e.details for e in search_audit(store) if e.action == "revoke_token"] == [
            {"token_id": record.id, "username": "kari"}
        ]
    assert accounts.run("operators", "token", "list", "kari").stdout.splitlines()[2].split()[-1] == "revoked"
    unknown = accounts.run("operators", "token", "revoke", "9999")
    assert unknown.exit_code == 1 and "no API token with id 9999" in unknown.stderr
    too_long = accounts.run("operators", "token", "create", "kari", "--label", "x", "--expires-days", "9999")
    assert too_long.exit_code == 2


def test_operators_role_changes_the_role_and_ends_the_sessions(accounts: Accounts) -> None:
    """``operators role`` sets the role, bumps the session epoch and is audited; a bad role is a usage error."""
    accounts.add("kari", Role.VIEWER)
    with accounts.store() as store:
        before = session_epoch(store, "kari")
    result = accounts.run("operators", "role", "kari", "--role", "admin")
    assert result.exit_code == 0, result.output
    with accounts.store() as store:
        assert session_operator(store, "kari", before) is None
        assert session_operator(store, "kari", session_epoch(store, "kari")) is not None
        assert [e.details for e in search_audit(store) if e.action == "set_role"] == [
            {"username": "kari", "role": "admin"}
        ]
    assert "kari\tadmin\tenabled" in accounts.run("operators", "list").stdout
    assert accounts.run("operators", "role", "kari", "--role", "boss").exit_code == 2
    assert accounts.run("operators", "role", "nobody", "--role", "admin").exit_code == 1


def test_operators_unlock_stamps_the_reset_and_is_audited(accounts: Accounts) -> None:
    """``operators unlock`` stamps the account's logins_reset_at (read by every web process) and audits it."""
    accounts.add("kari", Role.ADMIN)
    result = accounts.run("operators", "unlock", "kari")
    assert result.exit_code == 0, result.output
    with accounts.store() as store:
        assert logins_reset_at(store, "kari") is not None
        assert [e.action for e in search_audit(store)].count("reset_login_failures") == 1
    unknown = accounts.run("operators", "unlock", "nobody")
    assert unknown.exit_code == 1 and "no operator named 'nobody'" in unknown.stderr
