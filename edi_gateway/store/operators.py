"""Operator accounts, API tokens, the append-only audit log, and the records of operator replays.

The store holds only what is safe to hold: argon2 hashes of passwords, sha256 hashes of API tokens,
and keyed hashes of person numbers in the audit log (``services.access`` computes all three). The
audit log has an insert and a search, and nothing that updates or deletes a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from edi_gateway.domain.states import MessageState
from edi_gateway.errors import PermanentError
from edi_gateway.store import rows
from edi_gateway.store.base import StoreBase
from edi_gateway.store.engine import translate_errors
from edi_gateway.store.errors import MessageNotFound
from edi_gateway.store.records import NewMessage
from edi_gateway.store.tables import api_tokens, audit_log, events, messages, operators, replays

LAST_USED_EVERY = timedelta(minutes=1)
"""A token's ``last_used_at`` is rewritten at most this often: a busy script costs reads, not writes."""


class OperatorExists(PermanentError):
    """An account with this username exists already."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"an operator named {username!r} exists already")


class MessageAlreadyReplaced(PermanentError):
    """A message for this receiver continuing the same MsgId is stored already (one rebuild per message).

    Attributes:
        msg_id: the message that was to be continued.
    """

    def __init__(self, msg_id: str) -> None:
        self.msg_id = msg_id
        super().__init__(
            f"message {msg_id} was already rebuilt for this receiver; replay the newer message instead"
        )


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """A stored account, every column (``password_hash`` is an argon2 encoded hash).

    Attributes:
        session_epoch: web sessions that began in another epoch are over (see ``end_sessions``).
        logins_reset_at: when an admin last cleared the account's failed logins, if ever.
    """

    username: str
    display_name: str
    role: str
    password_hash: str
    created_at: datetime
    disabled: bool
    session_epoch: int = 0
    logins_reset_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored API token, without its hash: what an operator may see of it."""

    id: int
    username: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None

    def live_at(self, now: datetime) -> bool:
        """Whether the token authenticates at ``now``: not revoked and not expired."""
        return self.revoked_at is None and self.expires_at is not None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    """One audit entry to append.

    Attributes:
        username: who acted (an operator's username, or a system actor such as ``system:cli``).
        action: what was done, a stable word (``reveal_patient``, ``replay``, ``create_operator``...).
        reason: the operator's stated reason, in their words.
        msg_id: the message concerned, if any; the store adds its request's ref.
        patient_ref: the keyed hash of the person number concerned, never the number itself.
        details: extra JSON (ids, codes, outcomes); no personal data.
    """

    username: str
    action: str
    reason: str
    msg_id: str | None = None
    patient_ref: str | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored audit entry, every column."""

    id: int
    at: datetime
    username: str
    action: str
    msg_id: str | None
    request_ref: str | None
    patient_ref: str | None
    reason: str
    details: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A replay that made a new message: who, why, from which message, and an edit's request body."""

    id: int
    at: datetime
    username: str
    kind: str
    old_msg_id: str
    new_msg_id: str
    reason: str
    request_body: bytes | None


@dataclass(frozen=True, slots=True)
class NewReplay:
    """A new message made by an operator from an old one (``add_replay_message``).

    Attributes:
        old_msg_id: the message replayed; it keeps its state and history.
        message: the new message (its ``conversation_ref`` names the old MsgId); stored ``queued``.
        username: the operator.
        kind: ``rebuild`` or ``edit``.
        reason: the operator's reason.
        request_body: an edit's request JSON (personal data: kept here only, never in events).
    """

    old_msg_id: str
    message: NewMessage
    username: str
    kind: str
    reason: str
    request_body: bytes | None = None


class OperatorStore(StoreBase):
    """Accounts, tokens, the audit log and replay records."""

    # -- accounts --------------------------------------------------------------------------------

    def add_operator(
        self, username: str, *, display_name: str, role: str, password_hash: str
    ) -> OperatorRecord:
        """Store a new, enabled account.

        Raises:
            OperatorExists: the username is taken.
            StoreUnavailable: the database cannot be reached.
        """
        row = {
            "username": username,
            "display_name": display_name,
            "role": role,
            "password_hash": password_hash,
            "created_at": self._now(),
            "disabled": False,
            "session_epoch": 0,
            "logins_reset_at": None,
        }
        with translate_errors():
            try:
                with self._transaction() as conn:
                    taken = conn.execute(
                        sa.select(operators.c.username).where(operators.c.username == username)
                    )
                    if taken.first() is not None:
                        raise OperatorExists(username)
                    conn.execute(operators.insert(), [row])
            except exc.IntegrityError as error:  # raced with another insert of the same name
                raise OperatorExists(username) from error
        return _operator(row)

    def get_operator(self, username: str) -> OperatorRecord | None:
        """Return the account named ``username``, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(operators).where(operators.c.username == username)).first()
        return _operator(row._mapping) if row is not None else None

    def list_operators(self) -> list[OperatorRecord]:
        """Return every account, by username."""
        with self._read() as conn:
            found = conn.execute(sa.select(operators).order_by(operators.c.username))
            return [_operator(r._mapping) for r in found]

    def set_operator_disabled(self, username: str, disabled: bool) -> bool:
        """Disable or re-enable an account, ending its web sessions; return whether it exists."""
        return self._update_operator(username, end_sessions=True, disabled=disabled)

    def set_operator_role(self, username: str, role: str) -> bool:
        """Give an account another role, ending its web sessions; return whether it exists."""
        return self._update_operator(username, end_sessions=True, role=role)

    def set_password_hash(self, username: str, password_hash: str, *, end_sessions: bool = True) -> bool:
        """Replace an account's password hash; return whether it exists.

        Args:
            username: the account.
            password_hash: the new argon2 encoded hash.
            end_sessions: end the account's web sessions (a new password); False for a rehash of
                the same password at sign-in, which must not end the session it is starting.
        """
        return self._update_operator(username, end_sessions=end_sessions, password_hash=password_hash)

    def end_sessions(self, username: str) -> bool:
        """End every web session of an account (bump its session epoch); return whether it exists."""
        return self._update_operator(username, end_sessions=True)

    def reset_login_failures(self, username: str) -> bool:
        """Stamp the account's failed logins as cleared now; return whether it exists."""
        return self._update_operator(username, logins_reset_at=self._now())

    def _update_operator(self, username: str, *, end_sessions: bool = False, **values: Any) -> bool:
        if end_sessions:
            values["session_epoch"] = operators.c.session_epoch + 1
        with self._write() as conn:
            updated = conn.execute(
                operators.update().where(operators.c.username == username).values(**values)
            )
            return bool(updated.rowcount)

    # -- API tokens ------------------------------------------------------------------------------

    def add_api_token(self, username: str, *, label: str, token_hash: str, valid_for: timedelta) -> int:
        """Store the hash of a new token for ``username``, expiring ``valid_for`` from now; return its id."""
        now = self._now()
        row = {
            "username": username,
            "label": label,
            "token_hash": token_hash,
            "created_at": now,
            "expires_at": now + valid_for,
        }
        with self._write() as conn:
            return int(conn.execute(api_tokens.insert().returning(api_tokens.c.id), [row]).scalar_one())

    def use_api_token(self, token_hash: str) -> OperatorRecord | None:
        """Return the account of a live (not revoked, not expired) token, noting that it was used.

        ``last_used_at`` is rewritten only when it is older than ``LAST_USED_EVERY``, so a script
        calling many times a minute costs one indexed read per call and one write a minute.
        """
        now = self._now()
        query = (
            sa.select(operators, api_tokens.c.id.label("token_id"), api_tokens.c.last_used_at)
            .join(api_tokens, api_tokens.c.username == operators.c.username)
            .where(
                api_tokens.c.token_hash == token_hash,
                api_tokens.c.revoked_at.is_(None),
                api_tokens.c.expires_at > now,
            )
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        if row.last_used_at is None or row.last_used_at <= now - LAST_USED_EVERY:
            with self._write() as conn:
                conn.execute(
                    api_tokens.update().where(api_tokens.c.id == row.token_id).values(last_used_at=now)
                )
        return _operator(row._mapping)

    def list_api_tokens(self, username: str | None = None) -> list[TokenRecord]:
        """Return an account's tokens, or every account's when ``username`` is None (revoked too), oldest first."""
        query = sa.select(api_tokens).order_by(api_tokens.c.id)
        if username is not None:
            query = query.where(api_tokens.c.username == username)
        with self._read() as conn:
            return [_token(r._mapping) for r in conn.execute(query)]

    def get_api_token(self, token_id: int) -> TokenRecord | None:
        """Return the token with this id (without its hash), or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return _token(row._mapping) if row is not None else None

    def revoke_api_token(self, token_id: int) -> bool:
        """Revoke a token for good; return whether a live token was revoked."""
        with self._write() as conn:
            updated = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
            return bool(updated.rowcount)

    # -- the audit log ---------------------------------------------------------------------------

    def append_audit(self, entry: NewAuditEntry) -> AuditRecord:
        """Append one entry, stamped now; the message's request ref is added when a msg_id is named."""
        with self._write() as conn:
            request_ref = None
            if entry.msg_id is not None:
                request_ref = conn.execute(
                    sa.select(messages.c.request_ref).where(messages.c.msg_id == entry.msg_id)
                ).scalar_one_or_none()
            row: dict[str, Any] = {
                "at": self._now(),
                "username": entry.username,
                "action": entry.action,
                "msg_id": entry.msg_id,
                "request_ref": request_ref,
                "patient_ref": entry.patient_ref,
                "reason": entry.reason,
                "details": dict(entry.details) if entry.details is not None else None,
            }
            row_id = conn.execute(audit_log.insert().returning(audit_log.c.id), [row]).scalar_one()
        return AuditRecord(id=int(row_id), **row)

    def search_audit(
        self,
        *,
        username: str | None = None,
        msg_id: str | None = None,
        patient_ref: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Return the matching entries, newest first (every condition given must hold)."""
        query = sa.select(audit_log)
        for column, value in (
            (audit_log.c.username, username),
            (audit_log.c.msg_id, msg_id),
            (audit_log.c.patient_ref, patient_ref),
            (audit_log.c.action, action),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(audit_log.c.at >= rows.aware(since, "since"))
        query = query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [AuditRecord(**dict(r._mapping)) for r in conn.execute(query)]

    # -- replays ---------------------------------------------------------------------------------

    def add_replay_message(self, replay: NewReplay, *, actor: str) -> None:
        """Store a replay's new message (``queued``) under the old message's request, in one transaction.

        Writes the message, its first event (``None → queued``, saying whose replay of what), an
        event on the old message pointing at the new one (its state unchanged), and the replay row.

        Raises:
            MessageNotFound: the old message is not stored.
            MessageAlreadyReplaced: the request already has a message for this receiver that continues
                the old MsgId.
            StoreUnavailable: the database cannot be reached.
        """
        query = sa.select(messages.c.request_ref, messages.c.state).where(
            messages.c.msg_id == replay.old_msg_id
        )
        with translate_errors():
            try:
                with self._transaction() as conn:
                    old = conn.execute(query).first()
                    if old is None:
                        raise MessageNotFound(replay.old_msg_id)
                    self._insert_replay(conn, replay, old.request_ref, MessageState(old.state), actor)
            except exc.IntegrityError as error:  # receiver_key raced: one continuation per (receiver, MsgId)
                raise MessageAlreadyReplaced(replay.old_msg_id) from error

    def _insert_replay(
        self, conn: sa.Connection, replay: NewReplay, request_ref: str, old_state: MessageState, actor: str
    ) -> None:
        now = self._now()
        new = replay.message
        key = rows.message_row(new, request_ref, now)["receiver_key"]
        taken = conn.execute(
            sa.select(messages.c.msg_id).where(
                messages.c.request_ref == request_ref, messages.c.receiver_key == key
            )
        ).first()
        if taken is not None:
            raise MessageAlreadyReplaced(replay.old_msg_id)
        conn.execute(messages.insert(), [rows.message_row(new, request_ref, now)])
        said = f"replay of {replay.old_msg_id} by {actor} ({replay.kind}): {replay.reason}"
        details = {"replay": replay.kind, "old_msg_id": replay.old_msg_id, "new_msg_id": new.msg_id}
        new_details = {**details, **(rows.creation_details(new) or {})}
        conn.execute(
            events.insert(),
            [
                rows.event_row(
                    request_ref=request_ref,
                    msg_id=new.msg_id,
                    from_state=None,
                    to_state=MessageState.QUEUED.value,
                    at=now,
                    actor=actor,
                    reason=said,
                    details=new_details,
                ),
                rows.event_row(
                    request_ref=request_ref,
                    msg_id=replay.old_msg_id,
                    from_state=None,
                    to_state=old_state.value,
                    at=now,
                    actor=actor,
                    reason=f"continued by {new.msg_id} ({replay.kind} by {actor}: {replay.reason})",
                    details=details,
                ),
            ],
        )
        conn.execute(
            replays.insert(),
            [
                {
                    "at": now,
                    "username": replay.username,
                    "kind": replay.kind,
                    "old_msg_id": replay.old_msg_id,
                    "new_msg_id": new.msg_id,
                    "reason": replay.reason,
                    "request_body": replay.request_body,
                }
            ],
        )

    def replay_that_made(self, msg_id: str) -> ReplayRecord | None:
        """Return the replay whose new message is ``msg_id``, or None when a worker built it."""
        return self._one_replay(replays.c.new_msg_id == msg_id)

    def replays_of(self, msg_id: str) -> list[ReplayRecord]:
        """Return the replays made from ``msg_id``, oldest first."""
        query = sa.select(replays).where(replays.c.old_msg_id == msg_id).order_by(replays.c.id)
        with self._read() as conn:
            return [_replay(r._mapping) for r in conn.execute(query)]

    def _one_replay(self, where: sa.ColumnElement[bool]) -> ReplayRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(replays).where(where)).first()
        return _replay(row._mapping) if row is not None else None


def _operator(m: Mapping[Any, Any]) -> OperatorRecord:
    return OperatorRecord(
        username=m["username"],
        display_name=m["display_name"],
        role=m["role"],
        password_hash=m["password_hash"],
        created_at=m["created_at"],
        disabled=bool(m["disabled"]),
        session_epoch=int(m["session_epoch"]),
        logins_reset_at=m["logins_reset_at"],
    )


def _token(m: Mapping[Any, Any]) -> TokenRecord:
    return TokenRecord(
        id=m["id"],
        username=m["username"],
        label=m["label"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
        expires_at=m["expires_at"],
    )


def _replay(m: Mapping[Any, Any]) -> ReplayRecord:
    body = m["request_body"]
    return ReplayRecord(
        id=m["id"],
        at=m["at"],
        username=m["username"],
        kind=m["kind"],
        old_msg_id=m["old_msg_id"],
        new_msg_id=m["new_msg_id"],
        reason=m["reason"],
        request_body=bytes(body) if body is not None else None,
    )
