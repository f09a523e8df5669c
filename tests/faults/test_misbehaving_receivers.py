"""Receivers that misbehave, against a real worker process with short deadlines: one never answers, one
answers twice (the same AppRec again, and a different one), one answers with errors.

The worker gets its deadlines through its environment (``EDI_GATEWAY_APPREC_DEADLINE_S``,
``EDI_GATEWAY_OVERDUE_SWEEP_INTERVAL_S``), as production does. Each test prints its reconciliation of
broker, store and receivers in one line, then asserts it: requests stored == published, messages per
state as expected, AppRec rows == distinct answers applied, nothing lost on any queue.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.settings import Settings
from edi_gateway.store.records import MessageRecord
from edi_gateway.transport.consumer import drain, queue_depth
from edi_gateway.xml.apprec import ERROR_TEXTS, apprec_error
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

SETTLE_S = 2.0
"""How long the worker runs on once the counts are reached: a second overdue, a repeated transition or a
looping AppRec would show up in that time (ten sweeps at the interval below)."""
SWEEP_S = 0.2
DEADLINE_S = 8.0
"""Long enough for the answering receivers to answer first, short enough to wait for."""

World = Callable[..., RunningGateway]


@pytest.fixture
def world(
    tmp_path: Path, pki_template: Path, amqp_url: str, database_url: str, queue_prefix: str
) -> Iterator[World]:
    """Set the gateway up with setting overrides (``world(apprec_deadline_s=8)``); no worker runs yet."""
    with ExitStack() as stack:

        def _world(**overrides: Any) -> RunningGateway:
            settings = make_settings(
                tmp_path,
                pki_template,
                amqp_url=amqp_url,
                database_url=database_url,
                queue_prefix=queue_prefix,
                **overrides,
            )
            return stack.enter_context(gateway_set_up(settings))

        yield _world


def timing_env(settings: Settings) -> dict[str, str]:
    """The deadline settings of ``settings``, as the worker process reads them from its environment."""
    return {
        "EDI_GATEWAY_APPREC_DEADLINE_S": str(settings.apprec_deadline_s),
        "EDI_GATEWAY_OVERDUE_SWEEP_INTERVAL_S": str(settings.overdue_sweep_interval_s),
        "EDI_GATEWAY_QUIET_THRESHOLD": str(settings.quiet_threshold),
    }


def sent_messages(world: RunningGateway, requests: list[dict[str, Any]]) -> list[MessageRecord]:
    """Publish the requests and wait until every message of theirs is ``sent``; return the messages."""
    store = world.gateway.store
    world.send(*requests)
    wait_until(
        lambda: (
            store.count_requests() == len(requests)
            and store.count_messages() == store.count_messages(MessageState.SENT) > 0
        ),
        60,
        "every request routed and its messages sent",
    )
    return all_messages(world, [r["request_id"] for r in requests])


def on_receiver_queues(world: RunningGateway, messages: list[MessageRecord]) -> Counter[str | None]:
    """Take everything off the receivers' queues the messages went to; count the copies per MsgId."""
    copies: Counter[str | None] = Counter()
    for queue in sorted({m.queue for m in messages}):
        expected = sum(1 for m in messages if m.queue == queue)
        got = drain(world.settings.amqp_url, queue, max_messages=expected + 1, timeout=2)
        copies.update(d.message_id for d in got)
    return copies


def leftovers(world: RunningGateway) -> tuple[int, int, int]:
    """Messages still ready on the requests queue, its dead-letter queue and the inbox."""
    url, names = world.settings.amqp_url, world.gateway.names
    return (
        queue_depth(url, names.requests),
        queue_depth(url, names.requests_dlq),
        queue_depth(url, names.inbox(world.settings.our_her_id)),
    )


def timeline(world: RunningGateway, msg_id: str) -> list[str]:
    """The states a message's events reached, in order."""
    return [e.to_state.value for e in world.gateway.store.events_for_message(msg_id)]


def state_counts(world: RunningGateway, messages: list[MessageRecord]) -> Counter[str]:
    found = world.gateway.store.get_messages([m.msg_id for m in messages])
    return Counter(found[m.msg_id].state.value for m in messages)


def status_events(events: list[dict[str, Any]], state: str) -> Counter[str]:
    """How many status events of ``state`` each MsgId got."""
    return Counter(e["msg_id"] for e in events if e["type"] == "message" and e["state"] == state)


def test_a_receiver_that_never_answers_has_each_message_go_overdue_exactly_once(
    world: World, tmp_path: Path
) -> None:
    """Skien kommune stays silent while the fastleger answer: each kommune message goes ``overdue`` once,
    no earlier than its deadline, with one ``overdue`` event on its timeline and one status event; the
    receiver is reported quiet once; every fastlege message is acked and never overdue."""
    running = world(apprec_deadline_s=DEADLINE_S, overdue_sweep_interval_s=SWEEP_S)
    store = running.gateway.store
    requests = [example("kommune-and-fastlege") for _ in range(20)]
    log = tmp_path / "worker.log"
    with event_tap(running) as tap:
        worker = start_worker(running.settings, log, timing_env(running.settings))
        try:
            messages = sent_messages(running, requests)
            silent = [m for m in messages if m.receiver_kind == "kommune"]
            answering = [m for m in messages if m.receiver_kind == "fastlege"]
            to_inbox(running, *[signed_by(running, m.receiver_org_her_id, apprec_for(m)) for m in answering])
            wait_until(
                lambda: store.count_messages(MessageState.ACKED) == len(answering), 30, "fastleger answered"
            )
            wait_until(
                lambda: store.count_messages(MessageState.OVERDUE) == len(silent),
                DEADLINE_S + 30,
                "the silent receiver's messages overdue",
            )
            time.sleep(SETTLE_S)
        finally:
            stop_worker(worker)
        events = tap.read()

    overdue_events = {m.msg_id: store.events_for_message(m.msg_id) for m in silent}
    marks = {k: [e for e in v if e.to_state == MessageState.OVERDUE] for k, v in overdue_events.items()}
    apprec_rows = Counter({m.msg_id: len(store.apprecs_for_message(m.msg_id)) for m in messages})
    copies = on_receiver_queues(running, messages)
    alerts = Counter(e["kind"] for e in events if e["type"] == "alert")
    left = leftovers(running)
    print(
        f"\nsilent receiver: requests published {len(requests)}, stored {store.count_requests()}; "
        f"messages {dict(state_counts(running, messages))} (silent {len(silent)}, answering {len(answering)}); "
        f"overdue marks {sum(len(v) for v in marks.values())}, overdue events {status_events(events, 'overdue').total()}, "
        f"acked events {status_events(events, 'acked').total()}; AppRec rows {apprec_rows.total()}; alerts {dict(alerts)}; "
        f"on receiver queues {copies.total()} ({len(copies)} MsgIds); requests/dlq/inbox left {left}"
    )

    assert store.count_requests() == store.count_requests(RequestState.ROUTED) == len(requests)
    assert len(silent) == len(answering) == len(requests)
    assert state_counts(running, messages) == Counter(
        {MessageState.OVERDUE.value: len(silent), MessageState.ACKED.value: len(answering)}
    )
    for m in silent:
        (mark,) = marks[m.msg_id]
        assert m.first_sent_at is not None and mark.at >= m.first_sent_at + timedelta(seconds=DEADLINE_S)
        assert timeline(running, m.msg_id).count(MessageState.OVERDUE.value) == 1
    assert all(MessageState.OVERDUE.value not in timeline(running, m.msg_id) for m in answering)
    assert status_events(events, "overdue") == Counter({m.msg_id: 1 for m in silent})
    assert status_events(events, "acked") == Counter({m.msg_id: 1 for m in answering})
    assert apprec_rows == Counter({m.msg_id: 1 for m in answering})
    assert alerts == Counter({"receiver_quiet": 1})
    assert copies == Counter({m.msg_id: 1 for m in messages})  # no resends were configured
    assert left == (0, 0, 0)


def test_a_receiver_that_answers_twice_acks_once_and_its_conflicting_answer_is_flagged(
    world: World, tmp_path: Path
) -> None:
    """Each message gets its AppRec three times, the same id with other content once, and a second AppRec
    of its own: one ``acked`` transition, the repeats are no-ops, the same-id change is parked as a
    conflict with an alert, the late second answer is recorded without moving the message."""
    running = world()
    store = running.gateway.store
    requests = [example("kommune-only") for _ in range(10)]
    log = tmp_path / "worker.log"
    with event_tap(running) as tap:
        worker = start_worker(running.settings, log)
        try:
            messages = sent_messages(running, requests)
            first_ids = {m.msg_id: str(uuid.uuid4()) for m in messages}

            def signed(m: MessageRecord, **apprec: Any) -> bytes:
                return signed_by(running, m.receiver_org_her_id, apprec_for(m, **apprec))

            first = {m.msg_id: signed(m, apprec_id=first_ids[m.msg_id]) for m in messages}
            # The same bytes twice in a row: the copies meet in one batch, or in the next.
            to_inbox(running, *[b for m in messages for b in (first[m.msg_id], first[m.msg_id])])
            wait_until(lambda: store.count_messages(MessageState.ACKED) == len(messages), 30, "first answers")
            later = [
                body
                for m in messages
                for body in (
                    first[m.msg_id],  # a third copy, after the message was acked
                    signed(
                        m,
                        apprec_id=first_ids[m.msg_id],
                        status=AppRecStatus.AVVIST,
                        errors=(apprec_error("E10"),),
                    ),
                    signed(m, status=AppRecStatus.AVVIST, errors=(apprec_error("E35"),)),
                )
            ]
            to_inbox(running, *later)
            wait_until(
                lambda: (
                    store.count_parked() == len(messages)
                    and sum(len(store.apprecs_for_message(m.msg_id)) for m in messages) == 2 * len(messages)
                ),
                30,
                "conflicts parked and second answers recorded",
            )
            time.sleep(SETTLE_S)
        finally:
            stop_worker(worker)
        events = tap.read()

    published = 2 * len(messages) + len(later)
    judged = Counter(e["outcome"] for e in worker_log(log, "AppRec judged"))
    rows = {m.msg_id: store.apprecs_for_message(m.msg_id) for m in messages}
    parked = store.list_parked(limit=100)
    alerts = Counter(e["kind"] for e in events if e["type"] == "alert")
    left = leftovers(running)
    print(
        f"\nreceiver answering twice: requests published {len(requests)}, stored {store.count_requests()}; "
        f"messages {dict(state_counts(running, messages))}; AppRecs published {published}, judged {judged.total()} "
        f"{dict(judged)}; AppRec rows {sum(len(r) for r in rows.values())}; parked {len(parked)} "
        f"{dict(Counter(p.code for p in parked))}; alerts {dict(alerts)}; status events "
        f"acked {status_events(events, 'acked').total()}, rejected {status_events(events, 'rejected_by_receiver').total()}; "
        f"requests/dlq/inbox left {left}"
    )

    assert store.count_requests() == len(requests)
    assert state_counts(running, messages) == Counter({MessageState.ACKED.value: len(messages)})
    assert judged == Counter({"transition": 10, "duplicate": 20, "conflict": 10, "already_terminal": 10})
    assert judged.total() == published
    for m in messages:
        assert timeline(running, m.msg_id) == [MessageState.QUEUED.value, MessageState.SENT.value, "acked"]
        answers = sorted((r.status, r.outcome.value, [p.code for p in r.errors]) for r in rows[m.msg_id])
        assert answers == [
            (AppRecStatus.OK, "transition", []),
            (AppRecStatus.AVVIST, "already_terminal", ["apprec.E35"]),
        ]
        assert first_ids[m.msg_id] in {r.apprec_id for r in rows[m.msg_id]}
    assert sorted((p.code, p.apprec_id, p.msg_id) for p in parked) == sorted(
        ("apprec.conflict", first_ids[m.msg_id], m.msg_id) for m in messages
    )
    assert alerts == Counter({"apprec.conflict": len(messages)})
    assert status_events(events, "acked") == Counter({m.msg_id: 1 for m in messages})
    assert status_events(events, "rejected_by_receiver") == Counter()
    assert left == (0, 0, 0)


def test_a_receiver_that_answers_with_errors_has_its_codes_stored(world: World, tmp_path: Path) -> None:
    """Status 3 (OK, feil i delmelding) ends ``acked_with_errors`` and status 2 (Avvist) ends
    ``rejected_by_receiver``; each AppRec's kodeverk 8221 codes are stored with their official texts,
    in order, on the AppRec, on the transition's event and in the status event."""
    running = world()
    store = running.gateway.store
    requests = [example("kommune-only") for _ in range(12)]
    answers: list[tuple[AppRecStatus, tuple[str, ...]]] = [
        (AppRecStatus.OK_FEIL_I_DELMELDING, ("X99",)),
        (AppRecStatus.OK_FEIL_I_DELMELDING, ("E36", "T99")),
        (AppRecStatus.AVVIST, ("E35",)),
        (AppRecStatus.AVVIST, ("E21", "E10")),
    ]
    state_of = {
        AppRecStatus.OK_FEIL_I_DELMELDING: MessageState.ACKED_WITH_ERRORS,
        AppRecStatus.AVVIST: MessageState.REJECTED_BY_RECEIVER,
    }
    log = tmp_path / "worker.log"
    with event_tap(running) as tap:
        worker = start_worker(running.settings, log)
        try:
            messages = sent_messages(running, requests)
            given = {m.msg_id: answers[i % len(answers)] for i, m in enumerate(messages)}
            to_inbox(
                running,
                *[
                    signed_by(
                        running,
                        m.receiver_org_her_id,
                        apprec_for(
                            m,
                            status=given[m.msg_id][0],
                            errors=tuple(apprec_error(c) for c in given[m.msg_id][1]),
                        ),
                    )
                    for m in messages
                ],
            )
            wait_until(
                lambda: (
                    store.count_messages(MessageState.ACKED_WITH_ERRORS)
                    + store.count_messages(MessageState.REJECTED_BY_RECEIVER)
                    == len(messages)
                ),
                30,
                "every answer applied",
            )
            time.sleep(SETTLE_S)
        finally:
            stop_worker(worker)
        events = tap.read()

    rows = {m.msg_id: store.apprecs_for_message(m.msg_id) for m in messages}
    answered = [
        e
        for e in events
        if e["type"] == "message" and e["state"] in ("acked_with_errors", "rejected_by_receiver")
    ]
    by_msg = {e["msg_id"]: e for e in answered}
    judged = worker_log(log, "AppRec judged")
    expected_states = Counter(state_of[status].value for status, _ in given.values())
    left = leftovers(running)
    print(
        f"\nreceiver answering with errors: requests published {len(requests)}, stored {store.count_requests()}; "
        f"messages {dict(state_counts(running, messages))} (expected {dict(expected_states)}); "
        f"AppRec rows {sum(len(r) for r in rows.values())} with codes "
        f"{dict(Counter(p.code for r in rows.values() for a in r for p in a.errors))}; "
        f"parked {store.count_parked()}; judged {len(judged)}; status events {len(answered)}; "
        f"requests/dlq/inbox left {left}"
    )

    assert store.count_requests() == store.count_requests(RequestState.ROUTED) == len(requests)
    assert state_counts(running, messages) == expected_states
    assert sum(len(r) for r in rows.values()) == len(messages) and store.count_parked() == 0
    for m in messages:
        status, codes = given[m.msg_id]
        expected_codes = [f"apprec.{c}" for c in codes]
        (row,) = rows[m.msg_id]
        assert (row.status, [p.code for p in row.errors]) == (status, expected_codes)
        assert [p.reason for p in row.errors] == [ERROR_TEXTS[c] for c in codes]
        (transition,) = [e for e in store.events_for_message(m.msg_id) if e.to_state == state_of[status]]
        assert [p["code"] for p in (transition.details or {})["errors"]] == expected_codes
        assert [p["code"] for p in by_msg[m.msg_id]["errors"]] == expected_codes
    assert Counter(e["msg_id"] for e in answered) == Counter({m.msg_id: 1 for m in messages})
    assert Counter(e["outcome"] for e in judged) == Counter({"transition": len(messages)})
    assert left == (0, 0, 0)
