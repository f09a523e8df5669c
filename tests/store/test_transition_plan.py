"""Planning a batch of transitions (pure): what each message ends as and which events are written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edi_gateway.domain.states import MessageState
from edi_gateway.store import Transition
from edi_gateway.store.transitions import Current, Move, plan_transitions

NOW = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
Q, S, A, F = MessageState.QUEUED, MessageState.SENT, MessageState.ACKED, MessageState.FAILED


def _plan(changes: list[Transition], current: dict[str, Current]) -> tuple[list[str], dict[str, Move]]:
    plan = plan_transitions(changes, current, now=NOW, actor="worker:test")
    assert len(plan.events) == len(plan.changed)
    return plan.changed, plan.moves


@pytest.mark.parametrize(
    ("start", "changes", "changed", "move"),
    [
        (Q, [Transition("m", S, "ok", count_attempt=True)], ["m"], Move(Q, S, sent=True, attempts=1)),
        (Q, [Transition("m", A, "too early")], [], None),
        (Q, [Transition("m", S, "ok"), Transition("m", A, "apprec")], ["m", "m"], Move(Q, A, sent=True)),
        (
            S,
            [Transition("m", S, "resend", count_attempt=True)] * 2,
            ["m", "m"],
            Move(S, S, sent=True, attempts=2),
        ),
        (
            S,
            [Transition("m", S, "resend", count_attempt=True, count_resend=True)],
            ["m"],
            Move(S, S, sent=True, attempts=1, resends=1),
        ),
        (S, [Transition("m", F, "gave up", expected_from=Q)], [], None),
        (F, [Transition("m", Q, "replay"), Transition("m", A, "apprec")], ["m"], Move(F, Q)),
        (A, [Transition("m", s, "late") for s in MessageState], [], None),
    ],
    ids=[
        "send",
        "refused",
        "sent-then-acked",
        "two-resends",
        "counted-resend",
        "stale-expectation",
        "replay",
        "terminal",
    ],
)
def test_a_batch_collapses_to_one_move_per_message(
    start: MessageState, changes: list[Transition], changed: list[str], move: Move | None
) -> None:
    """Each message gets one row move from its locked state to where its allowed changes lead."""
    got_changed, moves = _plan(changes, {"m": Current(start, "ref-1")})
    assert got_changed == changed
    assert moves.get("m") == move


def test_events_record_each_step_from_the_state_it_left() -> None:
    """A message changed twice gets two events, the second leaving the state the first reached."""
    plan = plan_transitions(
        [Transition("m", S, "confirmed", details={"attempt": 1}), Transition("m", A, "apprec status 1")],
        {"m": Current(Q, "ref-1")},
        now=NOW,
        actor="worker:test",
    )
    assert [(e["from_state"], e["to_state"], e["reason"], e["details"]) for e in plan.events] == [
        ("queued", "sent", "confirmed", {"attempt": 1}),
        ("sent", "acked", "apprec status 1", None),
    ]
    assert {(e["request_ref"], e["msg_id"], e["kind"], e["actor"], e["at"]) for e in plan.events} == {
        ("ref-1", "m", "message", "worker:test", NOW)
    }


def test_unknown_messages_are_skipped() -> None:
    """A change for a msg_id that was not found is neither applied nor an event."""
    assert _plan([Transition("ghost", S, "confirmed")], {}) == ([], {})
