"""Parked AppRecs for operators: list, show, reveal the payload, resolve or dismiss, each as it is audited.

An AppRec the worker cannot apply (an unknown MsgId, a bad signature, the wrong sender ...) is parked
with a code and a reason. Operators work through them here; the CLI, the web pages and the REST API
all come through these functions:

* listing and showing need no more than a viewer: a view carries codes, ids, sizes and times, never
  the stored document;
* revealing the stored document needs the operator role and a reason, and writes an audit entry
  (``reveal_parked``), as revealing a message's request does;
* resolving ("handled": e.g. the kommune resent it) and dismissing ("nothing to do": e.g. a duplicate
  from a test system) need the operator role and a reason, happen once, and are audited
  (``resolve_parked``, ``dismiss_parked``). A second attempt is refused and says who did it when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from edi_gateway.errors import PermanentError
from edi_gateway.services.access import Operator, audit, check_reason
from edi_gateway.store import ParkedRecord, ParkedSummary, Store

MAX_PAGE = 500
"""The largest page ``list_parked`` returns; a bigger ``limit`` is cut to this."""


class ParkedNotFound(PermanentError):
    """No parked document has this id."""


class ParkedAlreadyResolved(PermanentError):
    """The parked document was resolved or dismissed before; it is done once."""


class ParkedAction(StrEnum):
    """What an operator decided about a parked document."""

    RESOLVE = "resolve"  # handled: something was done about it
    DISMISS = "dismiss"  # nothing to do: e.g. a duplicate or a test system's noise


_OUTCOME = {ParkedAction.RESOLVE: "resolved", ParkedAction.DISMISS: "dismissed"}


class ParkedState(StrEnum):
    """Which parked documents a list shows."""

    OPEN = "open"
    HANDLED = "handled"
    ALL = "all"


@dataclass(frozen=True)
class ParkedView:
    """A parked document as an operator sees it before any reveal: no payload.

    Attributes:
        id: the handle to show, reveal, resolve or dismiss it by.
        kind: what sort of document it is (``apprec``).
        code: why it was parked, e.g. ``apprec.unknown_message``, ``apprec.bad_signature``.
        reason: the same in plain language.
        size: the length of the document as received, in bytes.
        kept: how many of those bytes are stored (fewer when it was cut at the store's bound).
        sha256: the sha256 of the whole document, recorded when it was cut.
        truncated: whether the store holds only the beginning of the document.
        details: what the worker recorded (HER-ids, codes, fingerprints; never personal data).
        outcome: ``resolved`` or ``dismissed`` once an operator has decided; None while it waits.
        resolution: the operator's reason for the outcome.
    """

    id: int
    kind: str
    code: str
    reason: str
    received_at: datetime
    amqp_message_id: str | None
    apprec_id: str | None
    msg_id: str | None
    size: int
    kept: int
    sha256: str | None
    details: dict[str, Any] | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    resolution: str | None
    truncated: bool = False


@dataclass(frozen=True)
class ParkedPage:
    """A page of parked documents, newest first, and how many match in all."""

    rows: tuple[ParkedView, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class RevealedParked:
    """A parked document's stored bytes, revealed for a reason (the audit log has the entry)."""

    view: ParkedView
    payload: bytes


def list_parked(
    store: Store,
    *,
    state: ParkedState = ParkedState.OPEN,
    code: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> ParkedPage:
    """Return a page of parked documents, newest first, without their payloads.

    Raises:
        ValueError: a limit below 1 or a negative offset.
        StoreUnavailable: the database cannot be reached.
    """
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset not negative")
    limit = min(limit, MAX_PAGE)
    resolved = {ParkedState.OPEN: False, ParkedState.HANDLED: True, ParkedState.ALL: None}[ParkedState(state)]
    found, total = store.parked_page(resolved=resolved, code=code or None, limit=limit, offset=offset)
    return ParkedPage(tuple(_view(s) for s in found), total, limit, offset)


def show_parked(store: Store, parked_id: int) -> ParkedView:
    """Return one parked document without its payload.

    Raises:
        ParkedNotFound: no parked document has this id.
    """
    return _view(_record(store, parked_id))


def reveal_parked(store: Store, operator: Operator | None, parked_id: int, *, reason: str) -> RevealedParked:
    """Return a parked document with its stored bytes, and audit who asked and why.

    Raises:
        AccessDenied: the operator lacks the operator role.
        ReasonRequired: no reason was given.
        ParkedNotFound: no parked document has this id.
    """
    who, reason = check_reason(operator, reason)
    record = _record(store, parked_id)
    view = _view(record)
    audit(
        store,
        who,
        action="reveal_parked",
        reason=reason,
        msg_id=_our_msg_id(store, record.msg_id),
        details=_audit_details(view),
    )
    return RevealedParked(view, record.raw)


def decide_parked(
    store: Store, operator: Operator | None, parked_id: int, action: ParkedAction, *, reason: str
) -> ParkedView:
    """Resolve or dismiss a parked document, once, and audit it; return it as it now is.

    Raises:
        AccessDenied: the operator lacks the operator role.
        ReasonRequired: no reason was given.
        ParkedNotFound: no parked document has this id.
        ParkedAlreadyResolved: an operator resolved or dismissed it before.
    """
    who, reason = check_reason(operator, reason)
    action = ParkedAction(action)
    before = _view(_record(store, parked_id))
    _refuse_if_done(before)
    resolution = f"{_OUTCOME[action]}: {reason}"
    if not store.resolve_parked(parked_id, by=who.actor, resolution=resolution):
        _refuse_if_done(_view(_record(store, parked_id)))  # another operator was quicker
        raise ParkedNotFound(f"no parked document has id {parked_id}")
    audit(
        store,
        who,
        action=f"{action.value}_parked",
        reason=reason,
        msg_id=_our_msg_id(store, before.msg_id),
        details=_audit_details(before),
    )
    return _view(_record(store, parked_id))


def _refuse_if_done(view: ParkedView) -> None:
    if view.resolved_at is not None:
        raise ParkedAlreadyResolved(
            f"parked document {view.id} was {view.outcome} already, by {view.resolved_by} "
            f"at {view.resolved_at.isoformat(timespec='seconds')}"
        )


def _record(store: Store, parked_id: int) -> ParkedRecord:
    record = store.get_parked(parked_id)
    if record is None:
        raise ParkedNotFound(f"no parked document has id {parked_id}")
    return record


def _our_msg_id(store: Store, msg_id: str | None) -> str | None:
    """The MsgId a parked AppRec names, when it is one of our messages (the audit log keys by it)."""
    if msg_id is None:
        return None
    found = store.get_messages([msg_id]).get(msg_id)
    return found.msg_id if found is not None else None


def _audit_details(view: ParkedView) -> dict[str, Any]:
    return {"parked_id": view.id, "kind": view.kind, "code": view.code}


def _view(record: ParkedRecord | ParkedSummary) -> ParkedView:
    details = record.details
    kept = record.raw_kept if isinstance(record, ParkedSummary) else len(record.raw)
    size = details.get("raw_size") if details else None
    sha256 = details.get("raw_sha256") if details else None
    outcome = None
    if record.resolution is not None:
        head, sep, _ = record.resolution.partition(":")
        outcome = head if sep and head in _OUTCOME.values() else "resolved"
    return ParkedView(
        id=record.id,
        kind=record.kind.value,
        code=record.code,
        reason=record.reason,
        received_at=record.received_at,
        amqp_message_id=record.amqp_message_id,
        apprec_id=record.apprec_id,
        msg_id=record.msg_id,
        size=size if isinstance(size, int) else kept,
        kept=kept,
        sha256=sha256 if isinstance(sha256, str) else None,
        details=details,
        resolved_at=record.resolved_at,
        resolved_by=record.resolved_by,
        outcome=outcome,
        resolution=record.resolution,
        truncated=isinstance(size, int) and kept < size,
    )
