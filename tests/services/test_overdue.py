"""The overdue sweep on the real store (SQLite and PostgreSQL), with a recording transport and publisher.

Each sweep reads the due ``sent`` messages a page at a time and must reach all of them in one sweep,
however many pages that takes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edi_gateway.domain.states import MessageState
from edi_gateway.messaging.base import Accepted, AppRecAnswer, Envelope, SendResult
from edi_gateway.services.acknowledgements import AckDeps
from edi_gateway.services.overdue import OverdueSweeper, SweepResult
from edi_gateway.settings import Settings
from edi_gateway.store import Store, Transition
from edi_gateway.store.records import MessageRecord
from edi_gateway.transport.names import Names
from edi_gateway.transport.outgoing import Outgoing
from tests.store.conftest import KOMMUNE_ORG, Builder, FakeClock

ACTOR = "worker:test"
HOUR_S = 3600.0


@dataclass
class RecordingTransport:
    """Takes every document it is handed, as the broker confirming each publish would."""

    sent: list[Envelope] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "amqp"

    def send_many(self, envelopes: Sequence[Envelope]) -> list[SendResult]:
        self.sent += envelopes
        return [Accepted() for _ in envelopes]

    def send_apprecs(self, answers: Sequence[AppRecAnswer]) -> list[SendResult]:
        raise AssertionError("the sweep sends no AppRecs")


@dataclass
class RecordingPublisher:
    """Confirms every event it is handed."""

    published: list[Outgoing] = field(default_factory=list)

    def publish_many(self, msgs: Sequence[Outgoing], *, timeout: float) -> list[BaseException | None]:
        self.published += msgs
        return [None] * len(msgs)


@dataclass
class Sweep:
    """A sweeper on the test store, and what it sent and published."""

    sweeper: OverdueSweeper
    transport: RecordingTransport
    publisher: RecordingPublisher


def sweeper_on(store: Store, clock: FakeClock, tmp_path: Path, *, page_size: int, **rules: Any) -> Sweep:
    """An ``OverdueSweeper`` on ``store`` with the test clock, pages of ``page_size`` and these settings."""
    settings = Settings(home=tmp_path / "home", test_mode=True, **rules)
    transport, publisher = RecordingTransport(), RecordingPublisher()
    deps = AckDeps(
        settings=settings,
        registers=None,  # type: ignore[arg-type]  # the sweep never looks a party up
        store=store,
        publisher=publisher,  # type: ignore[arg-type]
        names=Names("t."),
        actor=ACTOR,
        transport=transport,
    )
    return Sweep(OverdueSweeper(deps, clock=clock, page_size=page_size), transport, publisher)


def sent_messages(store: Store, build: Builder, clock: FakeClock, count: int) -> list[str]:
    """Store ``count`` kommune messages, all to one receiver, confirmed sent a second apart; their MsgIds."""
    outcomes = [build.routed() for _ in range(count)]
    store.save_outcomes(outcomes, actor=ACTOR)
    msg_ids = [o.messages[0].msg_id for o in outcomes]
    for msg_id in msg_ids:
        clock.advance(seconds=1)
        store.transition_messages([Transition(msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    return msg_ids


@pytest.mark.parametrize("due", [6, 7], ids=["whole-pages", "part-page"])
def test_one_sweep_marks_every_due_message_over_several_pages(
    store: Store, build: Builder, clock: FakeClock, tmp_path: Path, due: int
) -> None:
    """More due messages than a page are all marked overdue, announced and counted in one sweep."""
    late = sent_messages(store, build, clock, due)
    clock.advance(hours=96)
    young = sent_messages(store, build, clock, 2)
    run = sweeper_on(store, clock, tmp_path, page_size=3, apprec_deadline_s=96 * HOUR_S, quiet_threshold=4)

    result = run.sweeper.sweep()

    assert (result.marked_overdue, result.resent, result.alerts) == (tuple(late), (), 1)
    assert [store.get_message(m).state for m in late] == [MessageState.OVERDUE] * due  # type: ignore[union-attr]
    assert [store.get_message(m).state for m in young] == [MessageState.SENT] * 2  # type: ignore[union-attr]
    events = [json.loads(o.body) for o in run.publisher.published if o.routing_key == "status.overdue"]
    assert [e["msg_id"] for e in events] == late
    assert all(e["request_id"] for e in events)
    alerts = [o.routing_key for o in run.publisher.published if o.routing_key.startswith("alert.")]
    assert alerts == ["alert.receiver_quiet"]  # the run of overdue messages counts across pages
    assert store.receiver_health([KOMMUNE_ORG])[KOMMUNE_ORG].consecutive_overdue == due
    assert run.sweeper.sweep().marked_overdue == ()


def test_a_sweep_resends_across_pages_and_loads_whole_rows_only_to_act(
    store: Store, build: Builder, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every message due for a resend gets its stored bytes again; pages with nothing due load no rows."""
    msg_ids = sent_messages(store, build, clock, 5)
    clock.advance(hours=1)
    run = sweeper_on(
        store,
        clock,
        tmp_path,
        page_size=2,
        apprec_deadline_s=96 * HOUR_S,
        resend_after_s=HOUR_S,
        max_resends=1,
    )
    loaded: list[str] = []
    get_messages = store.get_messages

    def recording_get_messages(msg_ids: Collection[str]) -> dict[str, MessageRecord]:
        loaded.extend(msg_ids)
        return get_messages(msg_ids)

    monkeypatch.setattr(store, "get_messages", recording_get_messages)

    assert run.sweeper.sweep().resent == tuple(msg_ids)
    assert [e.msg_id for e in run.transport.sent] == msg_ids
    assert [e.body for e in run.transport.sent] == [store.get_message(m).signed_xml for m in msg_ids]  # type: ignore[union-attr]
    assert [store.get_message(m).resends for m in msg_ids] == [1] * 5  # type: ignore[union-attr]
    assert sorted(loaded) == sorted(msg_ids)

    loaded.clear()
    clock.advance(hours=2)  # resends used up, deadline far: the pages are judged, nothing is loaded
    assert run.sweeper.sweep() == SweepResult()
    assert loaded == [] and len(run.transport.sent) == 5


def test_a_long_sweep_stops_when_its_lease_has_gone_to_another_worker(
    store: Store, build: Builder, clock: FakeClock, tmp_path: Path
) -> None:
    """Between pages the sweep renews its lease; once another worker holds it, the rest is left to that one."""
    late = sent_messages(store, build, clock, 6)
    clock.advance(hours=96)
    run = sweeper_on(store, clock, tmp_path, page_size=2, apprec_deadline_s=96 * HOUR_S)
    answers = iter([True, False])
    asked: list[bool] = []

    def still_holder() -> bool:
        asked.append(next(answers))
        return asked[-1]

    result = run.sweeper.sweep(still_holder=still_holder)

    assert asked == [True, False]  # asked before the second page and before the third
    assert result.marked_overdue == tuple(late[:4])
    assert [store.get_message(m).state for m in late[4:]] == [MessageState.SENT] * 2  # type: ignore[union-attr]
    assert run.sweeper.sweep().marked_overdue == tuple(late[4:])  # the next holder's sweep finishes it
