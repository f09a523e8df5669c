"""``edi-gateway demo``: the whole outbound flow on the embedded defaults and the local RabbitMQ.

Sends the example requests plus a few more (several kommuner, a fastlege, no consent, an invalid one,
a patient outside Telemark), runs a worker until every request has its outcome, and prints a table:
request → receiver → MsgId → state, with rejection reasons. Each run gives its requests fresh
request ids (derived from a run id), so a second run shows the same cases again instead of repeats.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edi_gateway.domain.states import MessageState
from edi_gateway.errors import BrokerUnavailable, EdiGatewayError
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.services.worker import run_worker
from edi_gateway.settings import Settings
from edi_gateway.transport.connection import connect
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoCase:
    """One request the demo sends, and what it shows."""

    label: str
    body: bytes
    request_id: str | None


def _example(name: str) -> dict[str, Any]:
    with (resource_dir("fixtures") / "requests" / f"{name}.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _variant(
    base: dict[str, Any], *, patient_id: str, given: str, family: str, **changes: Any
) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(base))
    data["patient"].update({"id": patient_id, "given_name": given, "family_name": family})
    data.update(changes)
    return data


def demo_cases(run_id: uuid.UUID) -> list[DemoCase]:
    """The demo's requests; request ids are fresh per run (uuid5 of the run id and the label)."""
    kommune_only = _example("kommune-only")
    raw: list[tuple[str, dict[str, Any] | bytes]] = [
        ("kommune-only", kommune_only),
        ("kommune-and-fastlege", _example("kommune-and-fastlege")),
        ("fastlege-missing", _example("fastlege-missing")),
        ("no-consent", _example("no-consent")),
        (
            "porsgrunn+fastlege",
            _variant(
                kommune_only,
                patient_id="18897219545",
                given="Tone",
                family="Lie",
                send_to_fastlege=True,
                samhandlingspunkt=2,
            ),
        ),
        (
            "notodden",
            _variant(
                kommune_only, patient_id="04885543095", given="Solveig", family="Dahl", samhandlingspunkt=3
            ),
        ),
        (
            "fyresdal (D-nummer)",
            _variant(kommune_only, patient_id="43858828997", given="Ragnhild", family="Lie"),
        ),
        (
            "invalid: bad checksum",
            _variant(kommune_only, patient_id="23915700968", given="Knut", family="Hansen"),
        ),
        ("outside Telemark", _variant(kommune_only, patient_id="17918331999", given="Ola", family="Utenfor")),
        ("not JSON", b"this is not a request"),
    ]
    cases = []
    for label, data in raw:
        if isinstance(data, bytes):
            cases.append(DemoCase(label, data, None))
            continue
        request_id = str(uuid.uuid5(run_id, label))
        data["request_id"] = request_id
        cases.append(DemoCase(label, json.dumps(data, ensure_ascii=False).encode(), request_id))
    return cases


def ensure_broker(settings: Settings, echo: Echo, *, wait_s: float = 90) -> None:
    """Make sure RabbitMQ answers at AMQP_URL; start the local ``rabbitmq-server`` if it is installed.

    Raises:
        BrokerUnavailable: nothing answers and no local broker can be started; the message says what to do.
    """
    try:
        connect(settings.amqp_url, name="edi-gateway demo probe").close()
        return
    except BrokerUnavailable:
        pass
    server = shutil.which("rabbitmq-server")
    if server is None:
        raise BrokerUnavailable(
            "RabbitMQ does not answer at EDI_GATEWAY_AMQP_URL and rabbitmq-server is not installed: "
            "install it (apt-get install rabbitmq-server) or point EDI_GATEWAY_AMQP_URL at a running broker"
        )
    echo("RabbitMQ did not answer; starting the local rabbitmq-server (rabbitmq-server -detached) ...")
    subprocess.run([server, "-detached"], check=False, capture_output=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(2)
        try:
            connect(settings.amqp_url, name="edi-gateway demo probe").close()
            echo("RabbitMQ is up.")
            return
        except BrokerUnavailable:
            continue
    raise BrokerUnavailable(f"started rabbitmq-server but it did not answer within {wait_s:.0f} s")


def _publish_cases(settings: Settings, gateway: Gateway, cases: list[DemoCase]) -> None:
    with ConfirmingPublisher(settings.amqp_url, name="edi-gateway demo sender") as publisher:
        outgoing = [
            Outgoing(
                exchange="",
                routing_key=gateway.names.requests,
                body=c.body,
                message_id=str(uuid.uuid4()),
                correlation_id=c.request_id,
                content_type="application/json",
            )
            for c in cases
        ]
        errors = [e for e in publisher.publish_many(outgoing, timeout=settings.confirm_timeout_s) if e]
    if errors:
        raise BrokerUnavailable(f"{len(errors)} demo requests were not confirmed by the broker: {errors[0]}")


def _settled(gateway: Gateway, cases: list[DemoCase], started: float) -> bool:
    store = gateway.store
    for case in cases:
        if case.request_id is None:
            continue
        request = store.get_request(case.request_id)
        if request is None:
            return False
        if any(m.state == MessageState.QUEUED for m in store.messages_for_request(request.ref)):
            return False
    # Requests without a usable id are recorded too; give the worker the same batch to finish them.
    return time.monotonic() - started > 1.0


def _table(gateway: Gateway, cases: list[DemoCase]) -> list[list[str]]:
    rows = [["request", "request id", "state", "receiver (HER-id)", "MsgId", "message state", "reason"]]
    for case in cases:
        request = gateway.store.get_request(case.request_id) if case.request_id else None
        if request is None:
            rows.append(
                [case.label, "-", "rejected", "", "", "", "no request_id: see edi.events / the store"]
            )
            continue
        short = request.request_id[:8] if request.request_id else "-"
        reason = "; ".join(f"{p.code}: {p.reason}" for p in request.problems)
        messages = gateway.store.messages_for_request(request.ref)
        if not messages:
            rows.append([case.label, short, request.state, "", "", "", reason])
        for i, m in enumerate(messages):
            rows.append(
                [
                    case.label if i == 0 else "",
                    short if i == 0 else "",
                    request.state if i == 0 else "",
                    f"{m.receiver_name} ({m.receiver_her_id})",
                    m.msg_id,
                    m.state,
                    reason if i == 0 else "",
                ]
            )
    return rows


def _render(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  ------")
    return "\n".join(lines)


def run_demo(settings: Settings, *, timeout: float, echo: Echo) -> bool:
    """Run the demo; return True when every request reached its outcome in time."""
    echo(f"edi_gateway demo — state under {settings.home}")
    ensure_broker(settings, echo)
    gateway = open_gateway(settings, migrate=True)
    stop, ready = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def _worker() -> None:
        try:
            run_worker(gateway, stop, ready=ready)
        except BaseException as exc:  # reported below; the demo must not hang on a dead worker
            failure.append(exc)
            ready.set()

    try:
        declare_gateway_topology(gateway)
        thread = threading.Thread(target=_worker, name="demo-worker", daemon=True)
        thread.start()
        ready.wait(30)
        if failure:
            raise EdiGatewayError(f"the worker failed to start: {failure[0]}")
        cases = demo_cases(uuid.uuid4())
        _publish_cases(settings, gateway, cases)
        echo(f"sent {len(cases)} requests to {gateway.names.requests}; waiting for the worker ...")
        started = time.monotonic()
        done = False
        while time.monotonic() - started < timeout and not failure:
            if _settled(gateway, cases, started):
                done = True
                break
            time.sleep(0.2)
        stop.set()
        thread.join(30)
        echo("")
        echo(_render(_table(gateway, cases)))
        echo("")
        if failure:
            echo(f"the worker failed: {failure[0]}")
            return False
        if not done:
            echo(f"not every request reached its outcome within {timeout:.0f} s")
        return done
    finally:
        stop.set()
        gateway.close()
