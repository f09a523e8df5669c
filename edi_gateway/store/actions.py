"""Operator actions: recorded by the web process, claimed and carried out by exactly one worker.

The web UI and API never publish. They record what a verified operator asked for (``add_action``);
every worker polls for pending actions and claims each with one guarded UPDATE (``claim_actions``),
so two workers never carry out the same action. The worker writes the outcome (``finish_action``)
and the web reads it back. A worker that dies with an action in hand leaves it ``running``; once that
is older than the stale limit, the next claim marks it ``failed`` with an explanation, so no action
waits for ever and none is carried out twice. ``Store`` inherits this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.tables import operator_actions


class ActionState(StrEnum):
    """Where an operator action is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    REFUSED = "refused"  # the action cannot be done (wrong state, invalid request ...)
    FAILED = "failed"  # a dependency let the worker down, or the worker stopped mid-action

    @property
    def finished(self) -> bool:
        """True once the outcome is known."""
        return self in (ActionState.DONE, ActionState.REFUSED, ActionState.FAILED)


STALE_OUTCOME: dict[str, Any] = {
    "error": "WorkerStopped",
    "category": "transient",
    "detail": "the worker carrying out this action stopped before it finished; look at the message's "
    "history before asking again",
}


@dataclass(frozen=True, slots=True)
class NewAction:
    """An action a verified operator asked for.

    Attributes:
        username, role, display_name: the operator, as the web process verified them.
        action: what to do (``replay``).
        kind: the kind of replay (``resend``, ``rebuild``, ``edit``).
        request_body: the edited request of an ``edit`` (patient data: cleared once finished).
    """

    username: str
    role: str
    display_name: str
    action: str
    kind: str
    msg_id: str
    reason: str
    request_body: bytes | None = None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One stored operator action; ``outcome`` is set once it is finished."""

    id: int
    requested_at: datetime
    username: str
    role: str
    display_name: str
    action: str
    kind: str
    msg_id: str
    reason: str
    request_body: bytes | None
    state: ActionState
    claimed_by: str | None
    finished_at: datetime | None
    outcome: dict[str, Any] | None


class ActionStore(StoreBase):
    """The store's side of operator actions."""

    def add_action(self, action: NewAction) -> int:
        """Record a pending action and return its id.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        with self._write() as conn:
            inserted = conn.execute(
                operator_actions.insert().values(
                    requested_at=self._now(),
                    username=action.username,
                    role=action.role,
                    display_name=action.display_name,
                    action=action.action,
                    kind=action.kind,
                    msg_id=action.msg_id,
                    reason=action.reason,
                    request_body=action.request_body,
                    state=ActionState.PENDING.value,
                )
            )
            key = inserted.inserted_primary_key
            assert key is not None
            return int(key[0])

    def claim_actions(self, holder: str, *, limit: int, stale_after_s: float) -> list[ActionRecord]:
        """Claim up to ``limit`` pending actions, oldest first, for ``holder``; first fail stale ones.

        Each claim is a guarded UPDATE from ``pending``: an action another worker claimed first is
        skipped, never carried out twice.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        now = self._now()
        table = operator_actions
        stale = sa.and_(
            table.c.state == ActionState.RUNNING.value,
            table.c.claimed_at < now - timedelta(seconds=stale_after_s),
        )
        # Every worker polls often and there is rarely an action: look before taking the write lock.
        with self._read() as conn:
            waiting = sa.or_(table.c.state == ActionState.PENDING.value, stale)
            if conn.execute(sa.select(table.c.id).where(waiting).limit(1)).first() is None:
                return []
        with self._write() as conn:
            conn.execute(
                table.update()
                .where(stale)
                .values(
                    state=ActionState.FAILED.value, finished_at=now, outcome=STALE_OUTCOME, request_body=None
                )
            )
            ids = conn.execute(
                sa.select(table.c.id)
                .where(table.c.state == ActionState.PENDING.value)
                .order_by(table.c.id)
                .limit(limit)
            ).scalars()
            claimed = []
            for action_id in list(ids):
                taken = conn.execute(
                    table.update()
                    .where(table.c.id == action_id, table.c.state == ActionState.PENDING.value)
                    .values(state=ActionState.RUNNING.value, claimed_by=holder, claimed_at=now)
                ).rowcount
                if taken == 1:
                    claimed.append(action_id)
            if not claimed:
                return []
            found = conn.execute(sa.select(table).where(table.c.id.in_(claimed)).order_by(table.c.id))
            return [_record(row) for row in found.mappings()]

    def finish_action(self, action_id: int, holder: str, state: ActionState, outcome: dict[str, Any]) -> bool:
        """Write the outcome of an action ``holder`` claimed; False if it was no longer its to finish.

        The edited request body, which holds patient data, is cleared.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        table = operator_actions
        with self._write() as conn:
            done = conn.execute(
                table.update()
                .where(
                    table.c.id == action_id,
                    table.c.claimed_by == holder,
                    table.c.state == ActionState.RUNNING.value,
                )
                .values(
                    state=ActionState(state).value,
                    finished_at=self._now(),
                    outcome=outcome,
                    request_body=None,
                )
            ).rowcount
        return done == 1

    def get_actions(self, action_ids: list[int]) -> list[ActionRecord]:
        """Return the actions with these ids (those that exist), by id."""
        if not action_ids:
            return []
        table = operator_actions
        with self._read() as conn:
            found = conn.execute(sa.select(table).where(table.c.id.in_(action_ids)).order_by(table.c.id))
            return [_record(row) for row in found.mappings()]

    def actions_for_message(self, msg_id: str, *, limit: int = 20) -> list[ActionRecord]:
        """Return the latest actions asked for on a message, newest first."""
        table = operator_actions
        with self._read() as conn:
            found = conn.execute(
                sa.select(table).where(table.c.msg_id == msg_id).order_by(table.c.id.desc()).limit(limit)
            )
            return [_record(row) for row in found.mappings()]


def _record(row: sa.RowMapping) -> ActionRecord:
    return ActionRecord(
        id=int(row["id"]),
        requested_at=rows.aware(row["requested_at"], "requested_at"),
        username=row["username"],
        role=row["role"],
        display_name=row["display_name"],
        action=row["action"],
        kind=row["kind"],
        msg_id=row["msg_id"],
        reason=row["reason"],
        request_body=row["request_body"],
        state=ActionState(row["state"]),
        claimed_by=row["claimed_by"],
        finished_at=rows.aware(row["finished_at"], "finished_at") if row["finished_at"] is not None else None,
        outcome=row["outcome"],
    )
