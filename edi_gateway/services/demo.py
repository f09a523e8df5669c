"""``edi-gateway demo``: the whole loop on the embedded defaults and the local RabbitMQ.

Sends the example requests plus a few more (several kommuner, a fastlege, no consent, an invalid one,
a patient outside Telemark), runs a worker and a receiver for every kommune and legekontor involved
(one of them rejects, one stays silent), waits until every message has its final state, and prints a
table: request → receiver → MsgId → state → AppRec status and errors, with rejection reasons. Then the
kommune side (``demo_pathway``): a kommune's worklist with the due windows, a point completed, and the
note to the fastlege sent and acknowledged. Each run gives its requests fresh
request ids (derived from a run id), so a second run shows the same cases again instead of repeats.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState
from edi_gateway.errors import BrokerUnavailable, EdiGatewayError
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import Gateway, ensure_gateway_pki, open_gateway
from edi_gateway.services.demo_pathway import CASE as PATHWAY_CASE
from edi_gateway.services.demo_pathway import run_pathway_demo
from edi_gateway.services.kommune import run_receiver
from edi_gateway.services.receiver import ReceiverBehaviour
from edi_gateway.services.setup import declare_gateway_topology
from edi_gateway.services.worker import run_worker
from edi_gateway.settings import Settings
from edi_gateway.store.records import RequestRecord
from edi_gateway.transport.connection import connect
from edi_gateway.transport.publisher import ConfirmingPublisher, Outgoing
from edi_gateway.xml.apprec import STATUS_TEXTS

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoCase:
    """One request the demo sends, and what it shows."""

    label: str
    body: bytes
    request_id: str | None
    message_id: str


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
            cases.append(DemoCase(label, data, None, str(uuid.uuid5(run_id, label))))
            continue
        request_id = str(uuid.uuid5(run_id, label))
        data["request_id"] = request_id
        cases.append(
            DemoCase(
                label,
                json.dumps(data, ensure_ascii=False).encode(),
                request_id,
                str(uuid.uuid5(run_id, label + "/amqp")),
            )
        )
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
                message_id=c.message_id,
                correlation_id=c.request_id,
                content_type="application/json",
            )
            for c in cases
        ]
        errors = [e for e in publisher.publish_many(outgoing, timeout=settings.confirm_timeout_s) if e]
    if errors:
        raise BrokerUnavailable(f"{len(errors)} demo requests were not confirmed by the broker: {errors[0]}")


FINAL_STATES = frozenset(
    {
        MessageState.ACKED,
        MessageState.ACKED_WITH_ERRORS,
        MessageState.REJECTED_BY_RECEIVER,
        MessageState.OVERDUE,
        MessageState.FAILED,
    }
)

# Scripted receiver behaviour, so every ending can be seen: Notodden kommune rejects (E35, the patient
# is not known there) and Fyresdal kommune has gone silent (its message ends overdue). All others answer OK.
REJECTING_RECEIVER = 8100015
SILENT_RECEIVER = 8100070


def _settled(gateway: Gateway, cases: list[DemoCase], started: float) -> bool:
    store = gateway.store
    for case in cases:
        if case.request_id is None:
            continue
        request = store.get_request(case.request_id)
        if request is None:
            return False
        if any(m.state not in FINAL_STATES for m in store.messages_for_request(request.ref)):
            return False
    # Requests without a usable id are recorded too; give the worker the same batch to finish them.
    return time.monotonic() - started > 1.0


def _request_of(gateway: Gateway, case: DemoCase) -> RequestRecord | None:
    if case.request_id:
        return gateway.store.get_request(case.request_id)
    return gateway.store.get_request_by_amqp_message_id(case.message_id)


def _apprec_column(gateway: Gateway, msg_id: str) -> str:
    apprecs = gateway.store.apprecs_for_message(msg_id)
    if not apprecs:
        return "-"
    last = apprecs[-1]
    text = STATUS_TEXTS[last.status]
    errors = "; ".join(f"{p.code.removeprefix('apprec.')} {p.reason}" for p in last.errors)
    return f"{text} ({errors})" if errors else text


def _table(gateway: Gateway, cases: list[DemoCase]) -> list[list[str]]:
    rows = [
        ["request", "request id", "state", "receiver (HER-id)", "MsgId", "message state", "AppRec / reason"]
    ]
    for case in cases:
        request = _request_of(gateway, case)
        if request is None:
            rows.append([case.label, "-", "?", "", "", "", "not recorded (yet)"])
            continue
        short = request.request_id[:8] if request.request_id else "-"
        reason = "; ".join(f"{p.code}: {p.reason}" for p in request.problems)
        messages = gateway.store.messages_for_request(request.ref)
        if not messages:
            rows.append([case.label, short, request.state, "", "", "", reason])
        for i, m in enumerate(messages):
            first = i == 0
            rows.append(
                [
                    case.label if first else "",
                    short if first else "",
                    request.state if first else "",
                    f"{m.receiver_name} ({m.receiver_her_id})",
                    m.msg_id,
                    m.state,
                    _apprec_column(gateway, m.msg_id) + (f" — {reason}" if first and reason else ""),
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


class _Threads:
    """The demo's background loops (worker and receivers); the first failure of any is kept."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    def start(self, name: str, target: Callable[[threading.Event], None]) -> None:
        ready = threading.Event()

        def _run() -> None:
            try:
                target(ready)
            except BaseException as exc:  # reported by the demo; it must not hang on a dead loop
                self.failures.append(exc)
                ready.set()

        thread = threading.Thread(target=_run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        ready.wait(30)
        if self.failures:
            raise EdiGatewayError(f"{name} failed to start: {self.failures[0]}")

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)


def _receivers_for(gateway: Gateway, cases: list[DemoCase]) -> list[int]:
    """The virksomheter the demo's patients are routed to (kommuner and their fastleger's legekontor)."""
    registers, her_ids = gateway.registers, set()
    for case in cases:
        try:
            patient = json.loads(case.body)["patient"]["id"]
        except (ValueError, KeyError, TypeError):
            continue
        kommunenummer = registers.population.bosted_kommune(patient)
        kommune = registers.address.kommune(kommunenummer) if kommunenummer else None
        gp = registers.fastlege.fastlege_for(patient)
        her_ids |= {v.her_id for v in (kommune, gp.legekontor if gp else None) if v is not None}
    return sorted(her_ids)


def _kommune_side(
    gateway: Gateway,
    cases: list[DemoCase],
    receiver_settings: Callable[[int], Settings],
    *,
    timeout: float,
    echo: Echo,
) -> bool:
    """The kommune's half (``demo_pathway``) for the patient of the kommune-and-fastlege case."""
    case = next(c for c in cases if c.label == PATHWAY_CASE)
    request = _request_of(gateway, case)
    messages = gateway.store.messages_for_request(request.ref) if request is not None else []
    kommune = next((m for m in messages if m.receiver_kind == ReceiverKind.KOMMUNE), None)
    if kommune is None or kommune.state != MessageState.ACKED:
        echo(f"the {PATHWAY_CASE} message was not acknowledged by its kommune; no pathway to show")
        return False
    her_id = kommune.receiver_org_her_id
    return run_pathway_demo(gateway, kommune, receiver_settings(her_id), timeout=timeout, echo=echo)


def _behaviour(her_id: int) -> ReceiverBehaviour:
    if her_id == REJECTING_RECEIVER:
        return ReceiverBehaviour(reject="E35")
    if her_id == SILENT_RECEIVER:
        return ReceiverBehaviour(silent=True)
    return ReceiverBehaviour()


def _run_receiver(settings: Settings, her_id: int, stop: threading.Event, ready: threading.Event) -> None:
    run_receiver(settings, her_id, _behaviour(her_id), stop, ready)


def _receiving(settings: Settings) -> Settings:
    """The settings of a demo kommune's gateway: the loops nobody uses in the demo look less often.

    A dozen whole gateways share one process (and, on nhn, the in-process stand-in) in the demo: their
    operator actions and NHN delivery states are never used here, and polling each of their services'
    inboxes five times a second would only slow the AppRecs the demo waits for.
    """
    nhn = settings.nhn.model_copy(update={"nhn_poll_interval_s": 0.5, "nhn_status_poll_interval_s": 30.0})
    return settings.model_copy(update={"operator_action_interval_s": 5.0, "nhn": nhn})


def run_demo(settings: Settings, *, timeout: float, echo: Echo) -> bool:
    """Run the demo; return True when every request reached its outcome in time.

    With ``settings.transport == "nhn"`` the business documents and AppRecs travel through a local
    stand-in for NHN's message service and HelseID (``edi_gateway.dev.nhn_standin``), started here.
    """
    echo(f"edi_gateway demo — state under {settings.home}")
    ensure_broker(settings, echo)
    if settings.transport != "nhn":
        return _run(settings, lambda her_id: _receiving(settings), timeout=timeout, echo=echo)
    from edi_gateway.dev.nhn_standin.world import party_of, run_standin
    from edi_gateway.registers.fixtures import load_fixture_registers

    # Poll as often as the local stand-in allows: the demo's AppRec deadline is seconds, not 96 h.
    fast = settings.nhn.model_copy(update={"nhn_poll_interval_s": 0.2, "nhn_status_poll_interval_s": 1.0})
    settings = settings.model_copy(update={"nhn": fast})
    plain = load_fixture_registers(settings.effective_registers_dir)
    ensure_gateway_pki(settings, plain)
    virksomheter = {v.her_id: v for v in plain.address.all_virksomheter()}
    parties = {h: party_of(v, settings.pki_dir / f"{h}.key.pem") for h, v in virksomheter.items()}
    with run_standin(list(parties.values()), plain, certificates_dir=settings.pki_dir) as standin:
        echo(f"NHN stand-in (message service, HelseID) at {standin.base_url}")
        ours = standin.settings_for(settings, parties[settings.our_her_id])
        ok = _run(
            ours,
            lambda her_id: _receiving(standin.settings_for(settings, parties[her_id])),
            timeout=timeout,
            echo=echo,
        )
        violations = standin.violations()
        echo(f"requests to the stand-in that broke the published OpenAPI description: {len(violations)}")
        return ok and not violations


def _run(
    settings: Settings, receiver_settings: Callable[[int], Settings], *, timeout: float, echo: Echo
) -> bool:
    gateway = open_gateway(settings, migrate=True)
    loops = _Threads()
    try:
        declare_gateway_topology(gateway)
        loops.start("worker", lambda ready: run_worker(gateway, loops.stop, ready=ready))
        cases = demo_cases(uuid.uuid4())
        receivers = _receivers_for(gateway, cases)
        for her_id in receivers:
            target = functools.partial(_run_receiver, receiver_settings(her_id), her_id, loops.stop)
            loops.start(f"receiver {her_id}", target)
        echo(
            f"started the worker and {len(receivers)} receivers (kommuner and legekontor) on the "
            f"{settings.transport} transport; {REJECTING_RECEIVER} rejects, {SILENT_RECEIVER} stays silent; "
            f"AppRec deadline {settings.apprec_deadline_s:.0f} s"
        )
        _publish_cases(settings, gateway, cases)
        echo(f"sent {len(cases)} requests to {gateway.names.requests}; waiting for AppRecs ...")
        started = time.monotonic()
        done = False
        while time.monotonic() - started < timeout and not loops.failures:
            if _settled(gateway, cases, started):
                done = True
                break
            time.sleep(0.2)
        echo("")
        echo(_render(_table(gateway, cases)))
        pathway_ok = done and _kommune_side(gateway, cases, receiver_settings, timeout=timeout, echo=echo)
        loops.join()
        echo("")
        if loops.failures:
            echo(f"a demo loop failed: {loops.failures[0]}")
            return False
        if not done:
            echo(f"not every message reached its final state within {timeout:.0f} s")
        return done and pathway_ok
    finally:
        loops.stop.set()
        gateway.close()
