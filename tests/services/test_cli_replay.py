"""The replay, account and audit commands, run in-process against a running gateway (RabbitMQ, SQLite)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from edi_gateway.cli import app
from edi_gateway.logging import configure_logging
from edi_gateway.services.access import authenticate, authenticate_token
from tests.services.conftest import (
    RunningGateway,
)
from tests.services.helpers import on_queue, sent_message

pytestmark = pytest.mark.rabbitmq

PASSWORD = "correct horse battery"
PATIENT = "07926217857"  # the synthetic patient of the kommune-only example


@pytest.fixture
def running(start: Callable[..., RunningGateway]) -> RunningGateway:
    """A gateway with a worker on its own queues and SQLite file."""
    return start()


@pytest.fixture
def cli(running: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run ``edi-gateway`` in-process with the running gateway's settings in the environment."""
    s = running.settings
    for name, value in {
        "HOME": str(s.home),
        "DATABASE_URL": s.effective_database_url,
        "AMQP_URL": s.amqp_url,
        "QUEUE_PREFIX": s.queue_prefix,
        "TEST_MODE": "true",
    }.items():
        monkeypatch.setenv(f"EDI_GATEWAY_{name}", value)
    monkeypatch.delenv("EDI_GATEWAY_OPERATOR", raising=False)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=stdin)

    yield run
    configure_logging()  # the commands sent logs to stderr; later tests expect the default


def _add(cli: Any, username: str, role: str) -> None:
    result = cli("operators", "add", username, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output


def test_operators_add_creates_an_account_that_signs_in(cli: Any, running: RunningGateway) -> None:
    """``operators add --password-stdin`` creates an account; ``operators list`` shows it; the creation is audited."""
    _add(cli, "kari", "operator")
    store = running.gateway.store
    signed_in = authenticate(store, "kari", PASSWORD)
    assert signed_in is not None and signed_in.role == "operator"
    listed = cli("operators", "list")
    assert listed.exit_code == 0 and listed.output.startswith("kari\toperator\tenabled")
    (entry,) = store.search_audit(action="create_operator")
    assert entry.username.startswith("cli:") and entry.details == {"username": "kari", "role": "operator"}


def test_operators_add_refuses_bad_input(cli: Any) -> None:
    """An unknown role is a usage error (2); a taken username or a short password a refusal (1)."""
    assert (
        cli("operators", "add", "kari", "--role", "boss", "--password-stdin", stdin=PASSWORD).exit_code == 2
    )
    _add(cli, "kari", "viewer")
    taken = cli("operators", "add", "kari", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert taken.exit_code == 1 and "exists already" in taken.output
    short = cli("operators", "add", "ola", "--role", "admin", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "12 characters" in short.output


def test_operators_token_prints_a_working_token_once(cli: Any, running: RunningGateway) -> None:
    """``operators token create`` prints a token that authenticates the account; disabling stops it."""
    _add(cli, "kari", "viewer")
    result = cli("operators", "token", "create", "kari", "--label", "monitoring")
    assert result.exit_code == 0
    token = result.output.strip()
    store = running.gateway.store
    assert authenticate_token(store, token) is not None
    assert cli("operators", "disable", "kari").exit_code == 0
    assert authenticate_token(store, token) is None


def test_replay_one_resends_as_the_named_operator(cli: Any, running: RunningGateway) -> None:
    """``replay one --kind resend`` publishes the same MsgId again and records the operator and reason."""
    _add(cli, "kari", "operator")
    message, _ = sent_message(running)
    on_queue(running, message.queue, 1)

    result = cli(
        "replay", "one", message.msg_id, "--kind", "resend", "--reason", "lost", "--operator", "kari"
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"resend {message.msg_id} -> {message.msg_id} [sent]")
    (again,) = on_queue(running, message.queue, 1)
    assert again.message_id == message.msg_id
    last = running.gateway.store.events_for_message(message.msg_id)[-1]
    assert (last.actor, last.reason) == ("operator:kari", "lost")


def test_replay_one_refuses_viewers_and_unknown_accounts(cli: Any, running: RunningGateway) -> None:
    """A viewer or an account that does not exist cannot replay: exit 1 with the reason, nothing sent."""
    _add(cli, "vera", "viewer")
    message, _ = sent_message(running)
    on_queue(running, message.queue, 1)
    for who in ("vera", "nobody"):
        result = cli("replay", "one", message.msg_id, "--kind", "resend", "--reason", "x", "--operator", who)
        assert result.exit_code == 1 and "error:" in result.output
    assert on_queue(running, message.queue, 1) == []


def test_replay_one_edit_sends_the_request_file(cli: Any, running: RunningGateway, tmp_path: Path) -> None:
    """``--kind edit --request-file`` sends a new message made from the corrected request."""
    _add(cli, "kari", "operator")
    message, request = sent_message(running)
    on_queue(running, message.queue, 1)
    edited = copy.deepcopy(request)
    edited["sender"]["contact"]["phone"] = "+4735009999"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edited), encoding="utf-8")
    args = ("replay", "one", message.msg_id, "--kind", "edit", "--reason", "new phone", "--operator", "kari")

    assert cli(*args).exit_code == 2  # an edit needs the corrected request
    result = cli(*args, "--request-file", str(path))

    assert result.exit_code == 0, result.output
    (delivered,) = on_queue(running, message.queue, 1)
    assert delivered.message_id != message.msg_id and "+4735009999" in delivered.body.decode()


def test_replay_filter_dry_run_then_run(cli: Any, running: RunningGateway) -> None:
    """``replay filter --dry-run`` lists what would happen and sends nothing; without it, it resends."""
    _add(cli, "kari", "operator")
    message, _ = sent_message(running)
    on_queue(running, message.queue, 1)
    args = (
        "replay",
        "filter",
        "--state",
        "sent",
        "--kind",
        "resend",
        "--reason",
        "outage",
        "--operator",
        "kari",
    )

    planned = cli(*args, "--dry-run")
    assert planned.exit_code == 0 and planned.output.startswith(f"{message.msg_id}: resend:")
    assert on_queue(running, message.queue, 1) == []

    done = cli(*args)
    assert done.exit_code == 0, done.output
    assert [d.message_id for d in on_queue(running, message.queue, 1)] == [message.msg_id]


def test_audit_search_finds_entries_per_patient_for_admins_only(cli: Any, running: RunningGateway) -> None:
    """``audit search --patient`` finds the replay of that patient's message; only an admin may search."""
    _add(cli, "kari", "operator")
    _add(cli, "ada", "admin")
    message, _ = sent_message(running)
    assert (
        cli(
            "replay", "one", message.msg_id, "--kind", "resend", "--reason", "lost", "--operator", "kari"
        ).exit_code
        == 0
    )

    denied = cli("audit", "search", "--patient", PATIENT, "--as", "kari")
    assert denied.exit_code == 1 and "admin" in denied.output
    result = cli("audit", "search", "--patient", PATIENT, "--as", "ada", "--json")

    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)
    assert (entry["action"], entry["username"], entry["msg_id"]) == ("replay", "kari", message.msg_id)
    assert PATIENT not in result.output
    lines = cli("audit", "search", "--operator", "ada", "--as", "ada").output.splitlines()
    assert len(lines) == 1 and "\tada\tsearch_audit\t" in lines[0]
