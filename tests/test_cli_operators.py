"""The account commands that need no broker: ``operators list|disable|password``, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.logging import configure_logging
from edi_gateway.services.access import Role, authenticate, bind_patient_key, load_patient_key, search_audit
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
