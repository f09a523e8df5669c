"""The command line: setup, send and the demo, run as a newcomer would run them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest

from edi_gateway.resources import resource_dir
from edi_gateway.transport.consumer import drain

pytestmark = pytest.mark.rabbitmq


def _run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edi_gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path, pki_template: Path, amqp_url: str, queue_prefix: str):  # type: ignore[no-untyped-def]
    """Environment for a CLI run: own home (shared PKI copied in), own queue prefix; queues removed after."""
    home = tmp_path / "home"
    shutil.copytree(pki_template, home / "pki")
    env = {
        **os.environ,
        "EDI_GATEWAY_HOME": str(home),
        "EDI_GATEWAY_AMQP_URL": amqp_url,
        "EDI_GATEWAY_QUEUE_PREFIX": queue_prefix,
        "EDI_GATEWAY_TEST_MODE": "true",  # the copied test PKI signs, the fixture registers route
    }
    env.pop("EDI_GATEWAY_DATABASE_URL", None)
    yield env
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for her_id in range(8100001, 8100140):
        channel.queue_delete(f"{queue_prefix}{her_id}_async")
    for name in ("edi.requests", "edi.requests.dlq"):
        channel.queue_delete(f"{queue_prefix}{name}")
    channel.exchange_delete(f"{queue_prefix}edi.events")
    connection.close()


def test_setup_is_idempotent(cli_env: dict[str, str]) -> None:
    """setup can run twice; both runs succeed and say what they declared."""
    first = _run(["setup"], cli_env)
    second = _run(["setup"], cli_env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "receiver queues" in second.stdout


def test_send_publishes_the_file_to_edi_requests(
    cli_env: dict[str, str], amqp_url: str, queue_prefix: str
) -> None:
    """send puts the file's bytes on edi.requests as application/json."""
    assert _run(["setup"], cli_env).returncode == 0
    example = resource_dir("fixtures") / "requests" / "kommune-only.json"
    result = _run(["send", str(example)], cli_env)
    assert result.returncode == 0, result.stderr
    (delivery,) = drain(amqp_url, f"{queue_prefix}edi.requests", max_messages=2, timeout=2)
    assert delivery.body == example.read_bytes()
    assert delivery.content_type == "application/json"


def test_send_missing_file_is_a_usage_error(cli_env: dict[str, str]) -> None:
    """A file that does not exist is a usage error (exit 2), not a crash."""
    result = _run(["send", f"/nonexistent/{uuid.uuid4()}.json"], cli_env)
    assert result.returncode == 2


def test_bad_setting_names_the_variable(cli_env: dict[str, str]) -> None:
    """A malformed setting stops the command with the variable's name."""
    result = _run(["setup"], {**cli_env, "EDI_GATEWAY_BATCH_SIZE": "many"})
    assert result.returncode == 2
    assert "EDI_GATEWAY_BATCH_SIZE" in result.stderr


def _production(cli_env: dict[str, str]) -> dict[str, str]:
    """The environment with TEST_MODE off and nothing production needs set."""
    return {k: v for k, v in cli_env.items() if k != "EDI_GATEWAY_TEST_MODE"}


@pytest.mark.parametrize("command", [["worker"], ["web", "--port", "8199"], ["setup"]])
def test_production_without_a_signing_key_refuses_to_start_with_one_line(
    cli_env: dict[str, str], command: list[str]
) -> None:
    """TEST_MODE off and no key: the command exits 2 with one stderr line naming the settings to set."""
    result = _run(command, _production(cli_env), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: EDI_GATEWAY_SIGNING_KEY and EDI_GATEWAY_SIGNING_CERT must be set when ")
    assert "EDI_GATEWAY_TEST_MODE is off" in line and "EDI_GATEWAY_REGISTERS must be set" in line
    assert "Traceback" not in result.stdout + result.stderr


def test_production_without_a_register_choice_refuses_to_start(cli_env: dict[str, str]) -> None:
    """With our key and the parties' certificates set but no register source, worker names REGISTERS."""
    pki = Path(cli_env["EDI_GATEWAY_HOME"]) / "pki"
    env = {
        **_production(cli_env),
        "EDI_GATEWAY_SIGNING_KEY": str(pki / "8100001.key.pem"),
        "EDI_GATEWAY_SIGNING_CERT": str(pki / "8100001.cert.pem"),
        "EDI_GATEWAY_CERTIFICATES_DIR": str(pki),
    }
    result = _run(["worker"], env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: EDI_GATEWAY_REGISTERS must be set when EDI_GATEWAY_TEST_MODE is off (fixtures or nhn)"
    )


def test_demo_over_the_nhn_stand_in_ends_the_same_way_and_breaks_no_published_interface(
    cli_env: dict[str, str],
) -> None:
    """`demo --transport nhn` runs the same cases through the NHN stand-in, with no request refused as invalid."""
    result = _run(["demo", "--deadline", "4", "--transport", "nhn"], _production(cli_env))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "NHN stand-in (message service, HelseID) at http://127.0.0.1:" in out
    assert "on the nhn transport" in out
    table, kommune_side = out.split("oppfølgingsliste", 1)
    states = re.findall(r"-[0-9a-f]{12}\s+(\w+)", table)
    assert sorted(states) == ["acked"] * 6 + ["overdue", "rejected_by_receiver"]
    assert re.search(r"notat til fastlegen: MsgId [0-9a-f-]{36} til .+ — acked", kommune_side)
    assert "Avvist (E35" in out
    assert "broke the published OpenAPI description: 0" in out


def test_demo_runs_the_whole_loop_and_prints_the_table(cli_env: dict[str, str]) -> None:
    """The demo closes the loop: AppRecs ack most messages, one receiver rejects, one goes overdue.

    It sets test mode itself: the environment here has TEST_MODE off.
    """
    result = _run(["demo", "--deadline", "4"], _production(cli_env))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for label in (
        "kommune-only",
        "kommune-and-fastlege",
        "fastlege-missing",
        "no-consent",
        "outside Telemark",
        "invalid: bad checksum",
        "not JSON",
    ):
        assert label in out
    table, kommune_side = out.split("oppfølgingsliste", 1)
    states = re.findall(r"-[0-9a-f]{12}\s+(\w+)", table)  # the state after each MsgId: 8 messages
    assert sorted(states) == ["acked"] * 6 + ["overdue", "rejected_by_receiver"]
    # The kommune's half: its worklist with the due windows, a point done, the note acknowledged.
    assert re.search(r"\n  2 .+ \d{4}-\d{2}-\d{2} – \d{4}-\d{2}-\d{2}", kommune_side)
    assert "registrerte samhandlingspunkt 2 som utført" in kommune_side
    assert re.search(r"notat til fastlegen: MsgId [0-9a-f-]{36} til .+ — acked", kommune_side)
    assert "Avvist (E35" in out
    for code in (
        "routing.kommune_unknown",
        "person_id.checksum",
        "routing.fastlege_missing",
        "request.not_json",
    ):
        assert code in out
    assert "no_consent" in out
    for person_number in ("23915700969", "07926217857"):
        assert person_number not in out


def test_worker_processes_requests_and_stops_cleanly_on_sigterm(cli_env: dict[str, str]) -> None:
    """The worker consumes a sent request, and SIGTERM ends it with exit code 0 and a stop line."""
    from edi_gateway.settings import Settings
    from edi_gateway.store import Store

    assert _run(["setup"], cli_env).returncode == 0
    env = {**cli_env, "EDI_GATEWAY_TEST_MODE": "true"}  # the example's person number is synthetic
    worker = subprocess.Popen(
        [sys.executable, "-m", "edi_gateway", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        example = resource_dir("fixtures") / "requests" / "kommune-only.json"
        assert _run(["send", str(example)], cli_env).returncode == 0
        settings = Settings(home=Path(cli_env["EDI_GATEWAY_HOME"]))
        store = Store.connect(settings.effective_database_url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and store.count_messages(state="sent") < 1:
            time.sleep(0.1)
        assert store.count_messages(state="sent") == 1
        store.close()
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output
    assert "worker stopped" in output
    assert "request processed" in output
