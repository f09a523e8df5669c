"""Poison on both of the worker's queues, through a real worker process: nothing loops, nothing else suffers.

A request whose handling always fails for a reason nobody classified is retried up to the delivery
limit and then recorded ``failed`` once (README, "States"), while the requests batched with it go out
as usual. AppRecs the gateway cannot apply (not well-formed, a DTD, an unknown MsgId, too large) are
parked once each (docs/architecture.md, "An AppRec's walk"), while the good ones around them land.
A request the database refuses to store is stored alone once its batch is refused, so it does not take
its batch-mates down (as the inbox isolates an AppRec it cannot apply).
Each test prints its reconciliation of broker, store and receivers in one line, then asserts it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.resources import resource_dir
from edi_gateway.services.acknowledgements import MAX_APPREC_BYTES
from edi_gateway.store.records import MessageRecord
from edi_gateway.store.rows import PARKED_RAW_KEEP_BYTES
from edi_gateway.transport.consumer import drain, queue_depth
from tests.faults.helpers import (
    all_messages,
    event_tap,
    gateway_set_up,
    start_worker,
    stop_worker,
    wait_until,
    worker_log,
)
from tests.services.conftest import RunningGateway, example, make_settings
from tests.services.test_acknowledgements import apprec_for, signed_by, to_inbox

pytestmark = [pytest.mark.rabbitmq, pytest.mark.faults]

GOOD_REQUESTS = 50
GOOD_APPRECS = 30
SETTLE_S = 2.0
"""How long the worker runs on after the work is done: a loop would show up as more rows, lines or events."""

POISON_PATIENT = "18897219545"
"""A synthetic patient of the fixture registers (bosted Porsgrunn) who has a fastlege."""
BROKEN_GP = 8100999
"""A HER-id no fixture party holds: the fastlege the poisoned register gives POISON_PATIENT."""


def poisoned_registers(folder: Path, **gp: object) -> Path:
    """The shipped fixture registers, except that POISON_PATIENT gets a new fastlege, with the fields in ``gp``.

    Register data is trusted, so nothing checks it on the way in. A number for a name makes building
    the fastlege's MsgHead fail with a ``TypeError`` the gateway cannot classify, on every delivery of
    every request for that patient, and for no other request.
    """
    shutil.copytree(resource_dir("fixtures") / "registers", folder)
    address_file, fastlege_file = folder / "adresseregister.json", folder / "fastlegeregister.json"
    address = json.loads(address_file.read_text(encoding="utf-8"))
    fastlege = json.loads(fastlege_file.read_text(encoding="utf-8"))
    (assignment,) = [a for a in fastlege["assignments"] if a["patient_id"] == POISON_PATIENT]
    (office,) = [
        v
        for v in address["virksomheter"]
        if any(p["her_id"] == assignment["gp_her_id"] for p in v["persons"])
    ]
    office["persons"].append(
        {"her_id": BROKEN_GP, "given_name": 4711, "family_name": "Lege", "hpr": "9999999", **gp}
    )
    assignment["gp_her_id"] = BROKEN_GP
    address_file.write_text(json.dumps(address, ensure_ascii=False), encoding="utf-8")
    fastlege_file.write_text(json.dumps(fastlege, ensure_ascii=False), encoding="utf-8")
    return folder


def _world(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str, **overrides: Any
) -> Iterator[RunningGateway]:
    settings = make_settings(
        tmp_path,
        pki_template,
        amqp_url=amqp_url,
        database_url=database_url,
        queue_prefix=queue_prefix,
        **overrides,
    )
    with gateway_set_up(settings) as running:
        yield running


@pytest.fixture
def world(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """The gateway's database and queues, set up; no worker runs until the test starts one."""
    yield from _world(tmp_path, pki_template, amqp_url, database_url, queue_prefix)


@pytest.fixture
def poison_world(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """As ``world``, on the poisoned registers (the worker must be given them too)."""
    registers = poisoned_registers(tmp_path / "registers")
    yield from _world(tmp_path, pki_template, amqp_url, database_url, queue_prefix, registers_dir=registers)


def _on_receiver_queues(world: RunningGateway, messages: list[MessageRecord]) -> Counter[str | None]:
    """Take everything off the receivers' queues the messages went to; count the copies per MsgId."""
    copies: Counter[str | None] = Counter()
    for queue in sorted({m.queue for m in messages}):
        expected = sum(1 for m in messages if m.queue == queue)
        got = drain(world.settings.amqp_url, queue, max_messages=expected + 1, timeout=2)
        copies.update(d.message_id for d in got)
    return copies


def _states(world: RunningGateway, messages: list[MessageRecord]) -> list[MessageState]:
    found = world.gateway.store.get_messages([m.msg_id for m in messages])
    return [found[m.msg_id].state for m in messages]


def test_a_poison_request_fails_once_at_the_limit_and_its_batch_mates_all_go_out(
    poison_world: RunningGateway, tmp_path: Path
) -> None:
    """A request that always raises an unclassified fault, amid 50 good ones: it is delivered exactly
    the delivery limit's number of times, then recorded ``failed`` once (not dead-lettered, not
    looping); every good request is routed and each (request, receiver) has one MsgId, sent once."""
    world = poison_world
    store, names, url = world.gateway.store, world.gateway.names, world.settings.amqp_url
    limit = world.settings.request_delivery_limit
    good = [example("kommune-and-fastlege") for _ in range(GOOD_REQUESTS)]
    poison = example("kommune-and-fastlege")
    poison["patient"] = {**poison["patient"], "id": POISON_PATIENT}
    requests = [*good[: GOOD_REQUESTS // 2], poison, *good[GOOD_REQUESTS // 2 :]]
    log = tmp_path / "worker.log"
    with event_tap(world) as tap:
        worker = start_worker(
            world.settings, log, {"EDI_GATEWAY_REGISTERS_DIR": str(world.settings.registers_dir)}
        )
        try:
            world.send(*requests)
            wait_until(
                lambda: (
                    store.count_requests() == len(requests) and store.count_messages(MessageState.QUEUED) == 0
                ),
                60,
                "every request has its outcome",
            )
            time.sleep(SETTLE_S)
        finally:
            stop_worker(worker)
        events = tap.read()

    poisoned = store.get_request(poison["request_id"])
    assert poisoned is not None
    deliveries = [e["delivery_count"] for e in worker_log(log, "unexpected fault while planning a request")]
    good_ids = [r["request_id"] for r in good]
    messages = all_messages(world, good_ids)
    copies = _on_receiver_queues(world, messages)
    states = Counter(m.state.value for m in messages)
    left, dead = queue_depth(url, names.requests), queue_depth(url, names.requests_dlq)
    request_events = Counter(
        (e["request_id"] == poison["request_id"], e["state"]) for e in events if e["type"] == "request"
    )
    sent_events = Counter(e["msg_id"] for e in events if e["type"] == "message" and e["state"] == "sent")
    print(
        f"\npoison request: published {len(requests)}, stored {store.count_requests()} "
        f"(routed {store.count_requests(RequestState.ROUTED)}, failed {store.count_requests(RequestState.FAILED)}); "
        f"poison delivered {len(deliveries)}x (limit {limit}), state {poisoned.state}; "
        f"messages {store.count_messages()} {dict(states)}, on receiver queues {sum(copies.values())} "
        f"({len(copies)} MsgIds); requests queue {left}, dlq {dead}; "
        f"request events {dict(Counter(s for _, s in request_events.elements()))}, sent events {sum(sent_events.values())}"
    )

    # The poison: one delivery per allowed attempt, then one recorded outcome and nothing built.
    assert deliveries == list(range(limit))
    assert poisoned.state == RequestState.FAILED
    assert [p.code for p in poisoned.problems] == ["gateway.internal_error"]
    assert store.messages_for_request(poisoned.ref) == []
    assert request_events[(True, "failed")] == 1 and sum(n for (p, _), n in request_events.items() if p) == 1
    assert (left, dead) == (0, 0)
    # The good ones: all routed, one MsgId per (request, receiver), each on its queue exactly once.
    assert store.count_requests() == len(requests)
    assert store.count_requests(RequestState.ROUTED) == GOOD_REQUESTS
    assert len({(m.request_ref, m.receiver_key) for m in messages}) == len(messages) == 2 * GOOD_REQUESTS
    assert store.count_messages() == len(messages)
    assert states == {MessageState.SENT.value: len(messages)}
    assert copies == Counter({m.msg_id: 1 for m in messages})
    assert request_events[(False, "routed")] == GOOD_REQUESTS
    assert sent_events == Counter({m.msg_id: 1 for m in messages})


def _with_doctype(signed: bytes, doctype: bytes, entity: bytes) -> bytes:
    """A signed AppRec with a DOCTYPE before its root and an entity reference in place of its MIGversion."""
    root = signed.index(b"<AppRec")
    hostile = signed[:root] + doctype + b"\n" + signed[root:]
    return hostile.replace(
        b"<MIGversion>v1.1 2012-02-15</MIGversion>", b"<MIGversion>" + entity + b"</MIGversion>"
    )


BILLION_LAUGHS = (
    b'<!DOCTYPE AppRec [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol;" if i == 1 else b"&lol%d;" % (i - 1)) * 10)
        for i in range(1, 10)
    )
    + b"]>"
)


def poison_apprecs(world: RunningGateway, message: MessageRecord) -> dict[str, tuple[bytes, str]]:
    """AppRecs the gateway cannot apply, each with the code it must be parked under.

    All but the unknown-MsgId one claim to answer ``message``, which must therefore stay ``sent``.
    """
    org = message.receiver_org_her_id
    genuine = signed_by(world, org, apprec_for(message))
    assert b"<MIGversion>v1.1 2012-02-15</MIGversion>" in genuine
    return {
        "not well-formed": (genuine[: len(genuine) // 2], "apprec.malformed"),
        "external entity": (
            _with_doctype(
                genuine, b'<!DOCTYPE AppRec [<!ENTITY ext SYSTEM "file:///etc/hostname">]>', b"&ext;"
            ),
            "apprec.malformed",
        ),
        "entity expansion": (_with_doctype(genuine, BILLION_LAUGHS, b"&lol9;"), "apprec.malformed"),
        "unknown MsgId": (
            signed_by(world, org, apprec_for(message, original_msg_id=str(uuid.uuid4()))),
            "apprec.unknown_message",
        ),
        "oversized": (genuine + b"\n" + b" " * MAX_APPREC_BYTES, "apprec.malformed"),
    }


def test_poison_apprecs_are_parked_once_each_and_the_good_ones_land(
    world: RunningGateway, tmp_path: Path
) -> None:
    """Thirty good AppRecs mixed with five that cannot be applied: the good ones ack their messages
    once each, the bad ones are parked once each with their code and an alert, nothing loops, the
    message they claim to answer stays ``sent``, and the inbox ends empty."""
    store, names, url = world.gateway.store, world.gateway.names, world.settings.amqp_url
    requests = [example("kommune-only") for _ in range(GOOD_APPRECS + 1)]
    log = tmp_path / "worker.log"
    with event_tap(world) as tap:
        worker = start_worker(world.settings, log)
        try:
            world.send(*requests)
            wait_until(
                lambda: store.count_messages(MessageState.SENT) == len(requests), 60, "every message sent"
            )
            *answered, unanswered = all_messages(world, [r["request_id"] for r in requests])
            bad = poison_apprecs(world, unanswered)
            good = [signed_by(world, m.receiver_org_her_id, apprec_for(m)) for m in answered]
            mixed = list(good)
            for i, (body, _) in enumerate(bad.values()):
                mixed.insert(3 + i * 6, body)  # spread over several batches
            to_inbox(world, *mixed)
            wait_until(
                lambda: (
                    store.count_messages(MessageState.ACKED) == len(good) and store.count_parked() == len(bad)
                ),
                60,
                "good AppRecs applied and bad ones parked",
            )
            time.sleep(SETTLE_S)
        finally:
            stop_worker(worker)
        events = tap.read()

    parked = store.list_parked(limit=100)
    rows = {m.msg_id: store.apprecs_for_message(m.msg_id) for m in [*answered, unanswered]}
    parked_lines = worker_log(log, "AppRec parked")
    alerts = Counter(e["kind"] for e in events if e["type"] == "alert")
    acked_events = Counter(e["msg_id"] for e in events if e["type"] == "message" and e["state"] == "acked")
    inbox = queue_depth(url, names.inbox(world.settings.our_her_id))
    dead = queue_depth(url, names.requests_dlq)
    print(
        f"\npoison AppRecs: published {len(mixed)} (good {len(good)}, bad {len(bad)}); "
        f"messages {dict(Counter(m.value for m in _states(world, [*answered, unanswered])))}; "
        f"AppRec rows {sum(len(r) for r in rows.values())}; parked {len(parked)} "
        f"{dict(Counter(p.code for p in parked))}, parked log lines {len(parked_lines)}; "
        f"alerts {dict(alerts)}, acked events {sum(acked_events.values())}; inbox {inbox}, requests dlq {dead}"
    )

    # The good ones: every message answered once, acked once, announced once.
    assert store.count_messages(MessageState.ACKED) == len(good) == len(answered)
    assert all(len(rows[m.msg_id]) == 1 for m in answered)
    assert acked_events == Counter({m.msg_id: 1 for m in answered})
    # The bad ones: each parked exactly once, under its code, with one alert; none moved its message.
    assert len(parked) == len(parked_lines) == len(bad)
    assert Counter((p.raw, p.code) for p in parked) == Counter(
        (body[:PARKED_RAW_KEEP_BYTES], code) for body, code in bad.values()
    )
    oversized = bad["oversized"][0]
    assert [p.details for p in parked if p.details] == [
        {
            "raw_size": len(oversized),
            "raw_sha256": hashlib.sha256(oversized).hexdigest(),
            "raw_kept": PARKED_RAW_KEEP_BYTES,
        }
    ]
    assert alerts == Counter(code for _, code in bad.values())
    assert _states(world, [unanswered]) == [MessageState.SENT]
    assert rows[unanswered.msg_id] == []
    assert sum(len(r) for r in rows.values()) == len(good)
    assert worker_log(log, "unexpected fault on an AppRec, parked") == []
    # Nothing left behind, nothing dead-lettered.
    assert (inbox, dead) == (0, 0)


@pytest.fixture
def unstorable_world(
    tmp_path: Path, pki_template: Path, amqp_url: str, postgres_url: str, queue_prefix: str
) -> Iterator[RunningGateway]:
    """As ``world`` on PostgreSQL, on registers where POISON_PATIENT's fastlege has a 600-letter name.

    The name goes into ``messages.receiver_name`` (500 characters), so PostgreSQL refuses the row:
    the request fails after planning, in the store. SQLite does not enforce the length (no fault).
    """
    registers = poisoned_registers(tmp_path / "registers", given_name="Kari", family_name="L" * 600)
    yield from _world(tmp_path, pki_template, amqp_url, postgres_url, queue_prefix, registers_dir=registers)


@pytest.mark.postgres
def test_a_request_the_store_refuses_does_not_take_its_batch_mates_down(
    unstorable_world: RunningGateway, tmp_path: Path
) -> None:
    """A request whose message the database refuses arrives with seven good ones (one batch), then 43
    more follow: the poison ends with one outcome (failed, or dead-lettered alone) and all 50 good
    requests are routed and sent; none is dead-lettered with the poison."""
    world = unstorable_world
    store, names, url = world.gateway.store, world.gateway.names, world.settings.amqp_url
    good = [example("kommune-and-fastlege") for _ in range(GOOD_REQUESTS)]
    poison = example("kommune-and-fastlege")
    poison["patient"] = {**poison["patient"], "id": POISON_PATIENT}
    burst = [*good[:3], poison, *good[3:7]]  # one batch's worth (BATCH_SIZE 8)

    def settled(count: int) -> bool:
        return (
            queue_depth(url, names.requests) == 0
            and store.count_requests() + queue_depth(url, names.requests_dlq) >= count
        )

    log = tmp_path / "worker.log"
    # A batch waits long enough to fill, so the burst is redelivered as one batch each time.
    env = {"EDI_GATEWAY_REGISTERS_DIR": str(world.settings.registers_dir), "EDI_GATEWAY_BATCH_WAIT_MS": "300"}
    worker = start_worker(world.settings, log, env)
    try:
        world.send(*burst)
        wait_until(lambda: settled(len(burst)), 60, "the burst settled")
        world.send(*good[7:])
        wait_until(lambda: settled(len(good) + 1), 60, "every request has its outcome or is dead-lettered")
        time.sleep(SETTLE_S)
    finally:
        stop_worker(worker)
    dead = Counter(
        json.loads(d.body)["request_id"]
        for d in drain(url, names.requests_dlq, max_messages=len(good) + 2, timeout=1)
    )
    poison_dead, good_dead = dead[poison["request_id"]], dead.total() - dead[poison["request_id"]]
    routed = store.count_requests(RequestState.ROUTED)
    failed = store.count_requests(RequestState.FAILED)
    requeued = worker_log(log, "consumer.handler_failed")
    print(
        f"\nunstorable request: published {len(good) + 1}, stored {store.count_requests()} "
        f"(routed {routed}, failed {failed}); dead-lettered {dead.total()} (poison {poison_dead}, good {good_dead}); "
        f"whole batches requeued {len(requeued)} ({sorted({e['error'] for e in requeued})}); "
        f"messages {store.count_messages()} sent {store.count_messages(MessageState.SENT)}"
    )
    assert poison_dead + failed == 1
    assert good_dead == 0
    assert routed == GOOD_REQUESTS
    assert store.count_messages() == store.count_messages(MessageState.SENT) == 2 * GOOD_REQUESTS
