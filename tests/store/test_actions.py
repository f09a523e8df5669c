"""Operator actions on SQLite and PostgreSQL: claimed once however many workers ask, stale ones failed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from edi_gateway.store import Store
from edi_gateway.store.actions import STALE_OUTCOME, ActionState, NewAction
from tests.store.conftest import Builder, FakeClock


def _message(store: Store, build: Builder) -> str:
    outcome = build.routed()
    store.save_outcomes([outcome], actor="worker:test")
    return outcome.messages[0].msg_id


def _ask(store: Store, msg_id: str, body: bytes | None = None) -> int:
    kind = "edit" if body is not None else "resend"
    return store.add_action(NewAction("kari", "operator", "Kari", "replay", kind, msg_id, "asked", body))


def test_an_action_is_recorded_pending_with_the_operator_the_web_verified(
    store: Store, build: Builder
) -> None:
    """The record keeps who asked, what and why; it is pending until a worker claims it."""
    msg_id = _message(store, build)
    action_id = _ask(store, msg_id)
    (action,) = store.get_actions([action_id])
    assert (action.username, action.role, action.kind, action.msg_id, action.reason) == (
        "kari",
        "operator",
        "resend",
        msg_id,
        "asked",
    )
    assert action.state is ActionState.PENDING and action.outcome is None and action.claimed_by is None
    assert store.actions_for_message(msg_id) == [action]
    assert store.get_actions([action_id + 1000]) == []


def test_of_two_workers_claiming_at_once_each_action_goes_to_one(store: Store, build: Builder) -> None:
    """Two workers claiming in a loop from the same instant split 30 actions with none claimed twice."""
    msg_id = _message(store, build)
    asked = {_ask(store, msg_id) for _ in range(30)}
    barrier = threading.Barrier(2)

    def claim_all(holder: str) -> list[int]:
        barrier.wait()
        got: list[int] = []
        while batch := store.claim_actions(holder, limit=3, stale_after_s=300):
            got += [a.id for a in batch]
        return got

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(claim_all, ["worker:a", "worker:b"])
    assert not set(a) & set(b)
    assert set(a) | set(b) == asked
    running = store.get_actions(sorted(asked))
    assert {x.state for x in running} == {ActionState.RUNNING}
    assert {x.id for x in running if x.claimed_by == "worker:a"} == set(a)


def test_only_the_claiming_worker_finishes_an_action_and_the_edit_body_is_cleared(
    store: Store, build: Builder
) -> None:
    """finish_action by another worker changes nothing; by the claimer it stores the outcome, drops the body."""
    msg_id = _message(store, build)
    action_id = _ask(store, msg_id, body=b'{"request_id": "x"}')
    (claimed,) = store.claim_actions("worker:a", limit=10, stale_after_s=300)
    assert claimed.request_body == b'{"request_id": "x"}'
    assert not store.finish_action(action_id, "worker:b", ActionState.DONE, {"result": {}})
    assert store.finish_action(action_id, "worker:a", ActionState.REFUSED, {"detail": "no"})
    assert not store.finish_action(action_id, "worker:a", ActionState.DONE, {"result": {}})  # once only
    (done,) = store.get_actions([action_id])
    assert (done.state, done.outcome, done.request_body) == (ActionState.REFUSED, {"detail": "no"}, None)
    assert done.finished_at is not None
    assert store.claim_actions("worker:b", limit=10, stale_after_s=300) == []


def test_an_action_whose_worker_died_is_failed_once_stale_never_carried_out_twice(
    store: Store, build: Builder, clock: FakeClock
) -> None:
    """A claimed action not finished within the stale limit is marked failed with the reason; nobody claims it."""
    msg_id = _message(store, build)
    action_id = _ask(store, msg_id)
    assert [a.id for a in store.claim_actions("worker:dead", limit=10, stale_after_s=60)] == [action_id]
    clock.advance(seconds=59)
    assert store.claim_actions("worker:b", limit=10, stale_after_s=60) == []
    assert store.get_actions([action_id])[0].state is ActionState.RUNNING
    clock.advance(seconds=2)
    assert store.claim_actions("worker:b", limit=10, stale_after_s=60) == []
    (failed,) = store.get_actions([action_id])
    assert (failed.state, failed.outcome) == (ActionState.FAILED, STALE_OUTCOME)
    assert not store.finish_action(action_id, "worker:dead", ActionState.DONE, {"result": {}})
