"""Operator actions: the web process records what an operator asks for, a worker carries it out.

The web UI and API never publish to the broker (nor call NHN): a replay asked for there is checked
(role, reason, the message exists) and recorded with the operator the web verified
(``ActionDesk``). Every worker runs an ``ActionRunner`` that claims pending actions (one guarded
UPDATE each, so one worker carries out each action however many run), replays through the worker's
own publisher and transport with ``ReplayService`` (which audits it), and writes the outcome. The web
waits a few seconds for that outcome and shows it; an action still pending after the wait is shown
as pending, with its id, and its outcome appears on the message page and at ``/api/actions/{id}``.

An outcome is JSON with no personal data: ``{"result": ReplayResult}`` or ``{"error", "category",
"detail", "problems"}``; ``raise_outcome`` turns a recorded failure back into the error the web shows.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from edi_gateway.errors import (
    EdiGatewayError,
    PermanentError,
    Problem,
    RequestRejected,
    TransientError,
    UnknownError,
    Unroutable,
)
from edi_gateway.logging import get_logger
from edi_gateway.services import queries
from edi_gateway.services.access import AccessDenied, Operator, Role, check_reason
from edi_gateway.services.context import Gateway
from edi_gateway.services.replay import (
    DeliveryRefused,
    ReplayKind,
    ReplayRefused,
    ReplayResult,
    ReplayService,
    filter_kind,
)
from edi_gateway.store import MessageNotFound, Store
from edi_gateway.store.actions import ActionRecord, ActionState, NewAction

log = get_logger(__name__)

REPLAY: Final = "replay"
CLAIM_LIMIT: Final = 10
WAIT_POLL_S: Final = 0.05


class ActionRefused(PermanentError):
    """A worker refused the recorded action (the message's state or request does not allow it)."""


class ActionFailed(TransientError):
    """A dependency let the worker down while it carried out the action; ask again later."""


class ActionBroken(UnknownError):
    """The worker met an unexpected fault carrying out the action; its log says more."""


# -- the web's side ------------------------------------------------------------------------------


class ActionDesk:
    """Records operators' actions for the workers and reads their outcomes; never publishes."""

    def __init__(self, store: Store) -> None:
        """Record in and read from ``store``."""
        self._store = store

    def ask_replay(
        self,
        operator: Operator | None,
        msg_id: str,
        kind: ReplayKind,
        *,
        reason: str,
        edited_request: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a replay of one message; return the action's id.

        Raises:
            AccessDenied: the operator lacks the operator role.
            ReasonRequired: no reason was given.
            ReplayRefused: an edited request without kind ``edit``, or kind ``edit`` without one.
            MessageNotFound: no message has this msg_id.
        """
        who, reason = check_reason(operator, reason)
        kind = ReplayKind(kind)
        if (kind is ReplayKind.EDIT) != (edited_request is not None):
            raise ReplayRefused("an edited request goes with kind edit, and kind edit needs one")
        if self._store.get_message(msg_id) is None:
            raise MessageNotFound(msg_id)
        body = None
        if edited_request is not None:
            body = json.dumps(dict(edited_request), ensure_ascii=False).encode()
        return self._store.add_action(_new_action(who, msg_id, kind, reason, body))

    def ask_replay_by_filter(
        self, operator: Operator | None, f: queries.MessageFilter, kind: ReplayKind, *, reason: str
    ) -> list[int]:
        """Record a replay of every message the filter finds (one page); return the actions' ids.

        Raises:
            AccessDenied: the operator lacks the operator role.
            ReasonRequired: no reason was given.
            ReplayRefused: kind ``edit``.
        """
        who, reason = check_reason(operator, reason)
        kind = filter_kind(kind)
        rows = queries.list_messages(self._store, f).rows
        return [self._store.add_action(_new_action(who, row.msg_id, kind, reason, None)) for row in rows]

    def wait(self, action_ids: Sequence[int], timeout_s: float) -> list[ActionRecord]:
        """Return the actions once all are finished, or as they are when ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            actions = self._store.get_actions(list(action_ids))
            if all(a.state.finished for a in actions) or time.monotonic() >= deadline:
                return actions
            time.sleep(WAIT_POLL_S)

    def get(self, action_id: int) -> ActionRecord | None:
        """Return one action, or None."""
        found = self._store.get_actions([action_id])
        return found[0] if found else None


def _new_action(who: Operator, msg_id: str, kind: ReplayKind, reason: str, body: bytes | None) -> NewAction:
    return NewAction(who.username, who.role.value, who.display_name, REPLAY, kind.value, msg_id, reason, body)


def result_of(action: ActionRecord) -> ReplayResult | None:
    """The replay's result when the action is done, else None."""
    if action.state is not ActionState.DONE or action.outcome is None:
        return None
    r = action.outcome["result"]
    return ReplayResult(
        ReplayKind(r["kind"]), r["old_msg_id"], tuple(r["new_msg_ids"]), r["state"], r["detail"]
    )


def raise_outcome(action: ActionRecord) -> None:
    """Raise the error a refused or failed action recorded (as the web shows errors); else nothing."""
    if action.state not in (ActionState.REFUSED, ActionState.FAILED):
        return
    outcome = action.outcome or {}
    category, detail = outcome.get("category"), str(outcome.get("detail", ""))
    if category == "rejected":
        raise RequestRejected(Problem(**p) for p in outcome.get("problems", []))
    if category == "not_found":
        raise MessageNotFound(action.msg_id)
    if category == "access":
        raise AccessDenied(detail)
    if category == "refused":
        raise ActionRefused(detail)
    if category == "unroutable":
        raise DeliveryRefused(detail)
    if category == "transient":
        raise ActionFailed(detail)
    raise ActionBroken(detail)


def outcome_text(action: ActionRecord) -> str:
    """One line on where the action is, for pages and replay-by-filter results (no personal data)."""
    result = result_of(action)
    if result is not None:
        return f"{result.kind.value}: {result.detail}"
    if action.state.finished:
        return f"not replayed: {(action.outcome or {}).get('detail', action.state.value)}"
    return f"recorded as action {action.id}; no worker has carried it out yet"


# -- the worker's side ---------------------------------------------------------------------------


class ActionRunner:
    """Claims pending operator actions and carries them out with the worker's replay service."""

    def __init__(
        self, gateway: Gateway, replay: ReplayService, holder: str, *, interval_s: float, stale_after_s: float
    ) -> None:
        """Carry out actions as ``holder`` every ``interval_s``; fail actions running longer than ``stale_after_s``."""
        self._store = gateway.store
        self._replay = replay
        self._holder = holder
        self._interval_s = interval_s
        self._stale_after_s = stale_after_s

    def run_once(self) -> int:
        """Carry out the pending actions there are now (at most a claim's worth); return how many."""
        actions = self._store.claim_actions(
            self._holder, limit=CLAIM_LIMIT, stale_after_s=self._stale_after_s
        )
        for action in actions:
            state, outcome = self._carry_out(action)
            self._store.finish_action(action.id, self._holder, state, outcome)
            log.info(
                "operator action",
                action_id=action.id,
                msg_id=action.msg_id,
                kind=action.kind,
                state=state.value,
            )
        return len(actions)

    def run(self, stop: threading.Event) -> None:
        """Carry out actions every interval until ``stop`` is set; a database fault waits a round."""
        while not stop.wait(self._interval_s):
            try:
                while self.run_once() == CLAIM_LIMIT and not stop.is_set():
                    pass
            except TransientError as exc:
                log.warning("operator actions skipped a round", error=type(exc).__name__)

    def _carry_out(self, action: ActionRecord) -> tuple[ActionState, dict[str, Any]]:
        who = Operator(action.username, Role(action.role), action.display_name)
        edited = json.loads(action.request_body) if action.request_body is not None else None
        try:
            result = self._replay.replay(
                who, action.msg_id, ReplayKind(action.kind), reason=action.reason, edited_request=edited
            )
        except EdiGatewayError as exc:
            return _failure(exc)
        except Exception as exc:  # a defect must not stop the worker's other loops, nor lose the action
            log.error(
                "operator action failed unexpectedly",
                action_id=action.id,
                error=type(exc).__name__,
                exc_info=exc,
            )
            return ActionState.FAILED, {
                "error": type(exc).__name__,
                "category": "unknown",
                "detail": "internal error while carrying out the action; see the worker's log",
            }
        return ActionState.DONE, {"result": {**dataclasses.asdict(result), "kind": result.kind.value}}


def _failure(exc: EdiGatewayError) -> tuple[ActionState, dict[str, Any]]:
    """The state and recorded outcome of an action the replay service raised ``exc`` for."""
    outcome: dict[str, Any] = {"error": type(exc).__name__, "detail": str(exc)}
    if isinstance(exc, RequestRejected):
        outcome |= {"category": "rejected", "problems": [p.as_dict() for p in exc.problems]}
    elif isinstance(exc, MessageNotFound):
        outcome["category"] = "not_found"
    elif isinstance(exc, AccessDenied):
        outcome["category"] = "access"
    elif isinstance(exc, PermanentError):
        outcome["category"] = "refused"
    elif isinstance(exc, Unroutable | DeliveryRefused):
        outcome["category"] = "unroutable"
    elif isinstance(exc, TransientError):
        outcome["category"] = "transient"
    else:
        outcome["category"] = "unknown"
    state = ActionState.REFUSED if isinstance(exc, PermanentError) else ActionState.FAILED
    return state, outcome
