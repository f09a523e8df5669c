"""The kommune's pathway worklist: :class:`PathwayDesk` is its one entry point (worker, CLI and web).

What it does, and who calls it:

* ``apply_received`` (the kommune worker): every received behovskartlegging still ``pending`` opens the
  patient's pathway or continues it (``domain.pathway``); the message moves to ``applied``,
  ``conflict`` (its diagnosis date needs an operator: the pathway is unchanged, an event and an alert
  say so) or ``ignored`` (not a behovskartlegging the worklist can read; the log says why, by MsgId).
* ``sweep`` (the kommune worker, one at a time): the calendar moves points (due, overdue), and each
  due-soon and overdue alert is raised once.
* ``worklist``, ``show``, ``summary`` (anyone signed in): the points of every current course, one
  pathway with its history and notes, the dashboard's counts.
* ``assign``, ``mark``, ``restart`` (an operator): written to the pathway's history and the audit log in
  the same transaction; ``mark(..., "done", note=...)`` also asks for a note to the fastlege (a
  ``pathway_notes`` row the note sender picks up).

Every write is optimistic: the pathway is loaded, changed by the pure domain and saved under its
``version``; a writer that lost the race loads and applies again (a few times, then
:class:`~edi_gateway.store.pathways.PathwayChanged` reaches the caller: try again).

The intake of received messages is :mod:`edi_gateway.services.pathway_intake`, the views the desk
returns are in :mod:`edi_gateway.services.pathway_views`; callers need only this module.

Errors: :class:`PathwayNotFound`, :class:`MoveUnknown`, :class:`NoteRefused` (here),
``PathwayError`` for an unknown point and ``TransitionRefused`` for a move the rules forbid
(``domain.pathway``), ``AccessDenied`` for a viewer's move: all permanent, each with a plain message.
Nothing here logs personal data: ids, HER-ids, states and outcomes only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edi_gateway.domain.events import alert_json
from edi_gateway.domain.pathway import (
    NAME_PATTERN,
    AlertKind,
    Pathway,
    PathwayError,
    PathwayModel,
    Performer,
    PointAlert,
    PointState,
    Trigger,
    alerts,
    assign,
    local_day,
    mark,
    restart_pathway,
    tick,
)
from edi_gateway.domain.pathway.document import from_document, parse_assignee
from edi_gateway.logging import get_logger
from edi_gateway.registers.base import Registers
from edi_gateway.services.access import Operator, Role, require
from edi_gateway.services.pathway_intake import (
    CONFLICT_ALERT,
    SAVE_ATTEMPTS,
    AlertSink,
    ReceivedIntake,
    pathway_change,
)
from edi_gateway.services.pathway_models import load_model, shipped_model
from edi_gateway.services.pathway_views import (
    MOVES,
    HistoryView,
    NoteView,
    PathwaySummary,
    PathwayView,
    PointView,
    SourceView,
    pathway_view,
    point_view,
)
from edi_gateway.settings import ConfigurationError
from edi_gateway.store import Store
from edi_gateway.store.operators import NewAuditEntry
from edi_gateway.store.pathways import AlertKey, NewPathwayNote, PathwayChanged, StoredPathway

if TYPE_CHECKING:
    from edi_gateway.services.context import Gateway

DEFAULT_DUE_SOON_DAYS: Final = 14
MAX_NOTE_CHARS: Final = 4000
SWEEP_PAGE: Final = 200
ALERT_KINDS: Final = {AlertKind.DUE_SOON: "pathway.due_soon", AlertKind.OVERDUE: "pathway.overdue"}

log = get_logger(__name__)

__all__ = [
    "ALERT_KINDS",
    "CONFLICT_ALERT",
    "DEFAULT_DUE_SOON_DAYS",
    "MAX_NOTE_CHARS",
    "MOVES",
    "HistoryView",
    "MoveUnknown",
    "NotKommune",
    "NoteRefused",
    "NoteView",
    "PathwayDesk",
    "PathwayNotFound",
    "PathwaySummary",
    "PathwayView",
    "PointView",
    "SourceView",
    "configured_model",
    "desk_for",
]


class PathwayNotFound(PathwayError):
    """No pathway has this id."""

    def __init__(self, pathway_id: int) -> None:
        self.pathway_id = pathway_id
        super().__init__(f"no pathway with id {pathway_id}")


class MoveUnknown(PathwayError):
    """The move asked for is not one of done, declined, not_reachable, reopen."""


class NoteRefused(PathwayError):
    """A note to the fastlege goes with ``done`` only, and must have text (at most MAX_NOTE_CHARS)."""


class NotKommune(ConfigurationError):
    """The pathway worklist belongs to the kommune role, and this gateway runs another."""


# --- the desk -------------------------------------------------------------------------------------


class PathwayDesk:
    """The kommune's pathway worklist (see the module docstring). Thread-safe as the store is.

    Args:
        store: the store.
        model: the model new pathways follow (a pathway keeps the points it was opened with).
        registers: the registers (the receiving virksomhet's kommunenummer).
        our_her_id: our virksomhet: messages addressed to another are ignored.
        due_soon_days: what ``summary`` counts as due soon.
    """

    def __init__(
        self,
        store: Store,
        model: PathwayModel,
        registers: Registers,
        *,
        our_her_id: int,
        due_soon_days: int = DEFAULT_DUE_SOON_DAYS,
    ) -> None:
        self._store = store
        self._due_soon_days = due_soon_days
        self._intake = ReceivedIntake(store, model, registers, our_her_id=our_her_id)

    # -- received messages -----------------------------------------------------------------------

    def apply_received(
        self, now: datetime, *, actor: str, limit: int = 100, on_alert: AlertSink | None = None
    ) -> int:
        """Take every pending received behovskartlegging (up to ``limit``) into the worklist.

        Idempotent: a message leaves ``pending`` in the same transaction as its pathway's change, so
        a second run (or a racing worker) finds nothing more to do.

        Args:
            now: the current time, timezone-aware (the calendar the pathway is brought up to).
            actor: who applies them (``worker:<name>``), as the history records it.
            limit: at most this many messages.
            on_alert: called after commit with each conflict's alert (``alert_json``, kind
                ``pathway.conflict``), e.g. to publish it on ``edi.events``; the alert is stored anyway.

        Returns:
            How many messages this call moved out of ``pending``.

        Raises:
            StoreUnavailable, RegisterUnavailable: try again later (what was done stays done).
            PathwayChanged: lost the race for one pathway SAVE_ATTEMPTS times; try again.
        """
        return self._intake.apply(now, actor=actor, limit=limit, on_alert=on_alert)

    # -- reading ---------------------------------------------------------------------------------

    def worklist(
        self, *, state: str | None = None, assigned_to: str | None = None, due_before: date | None = None
    ) -> list[PointView]:
        """Return one entry per point of every pathway's current course, by window start.

        Args:
            state: only points in this state (planned, due, overdue, done, declined, not_reachable).
            assigned_to: only pathways assigned to ``role:<name>`` or ``operator:<account>``.
            due_before: only points whose window opens before this day.

        Raises:
            PathwayError: ``state`` is not a point state.
        """
        if state is not None and state not in set(PointState):
            raise PathwayError(f"unknown point state {state!r}; choose: {', '.join(PointState)}")
        return [
            point_view(r)
            for r in self._store.pathway_worklist(state=state, assigned_to=assigned_to, due_before=due_before)
        ]

    def show(self, pathway_id: int) -> PathwayView:
        """Return one pathway with its points, allowed moves, history, notes and source messages.

        Raises:
            PathwayNotFound: no pathway has this id.
        """
        stored = self._load(pathway_id)
        return pathway_view(
            stored,
            from_document(stored.document),
            points=self._store.pathway_worklist(pathway_id=pathway_id),
            events=self._store.pathway_events_of(pathway_id),
            notes=self._store.pathway_notes_of(pathway_id),
            sources=self._store.received_for_patient(stored.patient_ref),
        )

    def summary(self, now: datetime) -> PathwaySummary:
        """Count the kommune's current points overdue, due and due within ``due_soon_days`` on ``now``'s day."""
        day = local_day(now)
        counts = self._store.pathway_point_counts(
            today=day,
            due_soon_until=day + timedelta(days=self._due_soon_days),
            performer=Performer.KOMMUNE.value,
        )
        return PathwaySummary(day, counts["overdue"], counts["due"], counts["due_soon"], self._due_soon_days)

    # -- operators ---------------------------------------------------------------------------------

    def assign(
        self, pathway_id: int, assignee: str, *, actor: Operator, reason: str, now: datetime
    ) -> PathwayView:
        """Assign the pathway to ``role:<name>`` or ``operator:<account>`` (the same again changes nothing).

        Raises:
            AccessDenied: ``actor`` is a viewer.
            PathwayNotFound: no such pathway.
            PathwayError: the assignee is not written ``role:…``/``operator:…``, or no reason.
        """
        operator = require(actor, Role.OPERATOR)
        who = parse_assignee(assignee)

        def change(pathway: Pathway) -> Pathway:
            return assign(tick(pathway, now), who, at=now, actor=operator.actor, reason=reason)

        details = {"pathway_id": pathway_id, "assigned_to": str(who)}
        self._operator_change(pathway_id, now, change, _audit(operator, "pathway_assign", reason, details))
        return self.show(pathway_id)

    def mark(
        self,
        pathway_id: int,
        samhandlingspunkt: int,
        wanted: str,
        *,
        actor: Operator,
        reason: str,
        now: datetime,
        on: date | None = None,
        note: str | None = None,
    ) -> PathwayView:
        """Record an operator's move on a point of the current course: done, declined, not_reachable, reopen.

        Args:
            pathway_id: the pathway.
            samhandlingspunkt: the point.
            wanted: ``done``, ``declined``, ``not_reachable`` or ``reopen``.
            actor: the operator (role operator or higher).
            reason: why (required).
            now: when it is recorded, timezone-aware.
            on: the day it happened (done, declined, not reachable); default the day of ``now``.
            note: with ``done`` only: a note to the patient's fastlege, sent by the note sender.

        Raises:
            AccessDenied: ``actor`` is a viewer.
            PathwayNotFound, MoveUnknown, NoteRefused: as named.
            PathwayError: the course has no such point.
            TransitionRefused: the rules do not allow the move, there is no reason, or ``on`` is later than today.
        """
        operator = require(actor, Role.OPERATOR)
        move = _move(wanted)
        text = _note_text(move, note)

        def change(pathway: Pathway) -> Pathway:
            ticked = tick(pathway, now)
            return mark(ticked, samhandlingspunkt, move, at=now, actor=operator.actor, reason=reason, on=on)

        def notes(pathway: Pathway) -> list[NewPathwayNote]:
            course = pathway.current.number
            return [] if text is None else [NewPathwayNote(course, samhandlingspunkt, operator.actor, text)]

        details = {
            "pathway_id": pathway_id,
            "samhandlingspunkt": samhandlingspunkt,
            "wanted": wanted,
            "on": None if on is None else on.isoformat(),
            "note": text is not None,
        }
        self._operator_change(
            pathway_id, now, change, _audit(operator, "pathway_mark", reason, details), notes
        )
        return self.show(pathway_id)

    def restart(
        self, pathway_id: int, diagnosis_date: date, *, actor: Operator, reason: str, now: datetime
    ) -> PathwayView:
        """Restart the pathway from a later diagnosis date: an operator's answer to a conflict.

        Raises:
            AccessDenied, PathwayNotFound: as named.
            DiagnosisConflict: the date is not after the current course's.
            TransitionRefused: no reason.
        """
        operator = require(actor, Role.OPERATOR)

        def change(pathway: Pathway) -> Pathway:
            return restart_pathway(
                pathway, diagnosis_date=diagnosis_date, at=now, actor=operator.actor, reason=reason
            )

        details = {"pathway_id": pathway_id}
        self._operator_change(pathway_id, now, change, _audit(operator, "pathway_restart", reason, details))
        return self.show(pathway_id)

    def _operator_change(
        self,
        pathway_id: int,
        now: datetime,
        change: Callable[[Pathway], Pathway],
        audit: NewAuditEntry,
        notes: Callable[[Pathway], list[NewPathwayNote]] | None = None,
    ) -> None:
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            stored = self._load(pathway_id)
            before = from_document(stored.document)
            after = change(before)
            entry = dataclasses.replace(audit, patient_ref=stored.patient_ref)
            asked = notes(after) if notes is not None else []
            try:
                self._store.save_pathway(pathway_change(stored, before, after, now, notes=asked, audit=entry))
                return
            except PathwayChanged:
                if attempt == SAVE_ATTEMPTS:
                    raise

    def _load(self, pathway_id: int) -> StoredPathway:
        stored = self._store.get_pathway(pathway_id)
        if stored is None:
            raise PathwayNotFound(pathway_id)
        return stored

    # -- the calendar ------------------------------------------------------------------------------

    def sweep(self, now: datetime, *, due_soon_days: int) -> list[dict[str, Any]]:
        """Move every pathway with open points by the calendar, and raise each new alert once.

        A pathway another writer changed meanwhile is left for the next sweep; one whose stored document
        cannot be read is logged (by id) and skipped.

        Returns:
            The alerts not raised before (``alert_json``; kinds ``pathway.due_soon`` and
            ``pathway.overdue``; pathway id, samhandlingspunkt, window and assignee, no patient data).

        Raises:
            ValueError: ``due_soon_days`` is negative, or ``now`` naive.
            StoreUnavailable: the database cannot be reached.
        """
        raised: list[dict[str, Any]] = []
        after_id = 0
        while page := self._store.pathways_with_open_points(after_id=after_id, limit=SWEEP_PAGE):
            found: dict[AlertKey, PointAlert] = {}
            for stored in page:
                try:
                    pathway = self._ticked(stored, now)
                except PathwayError as exc:  # a defect on one pathway holds up no other
                    log.error(
                        "pathway sweep failed for a pathway", pathway_id=stored.id, error=type(exc).__name__
                    )
                    continue
                for alert in alerts(pathway, now, due_soon_days=due_soon_days, performer=Performer.KOMMUNE):
                    found[AlertKey(stored.id, pathway.current.number, alert.number, alert.kind.value)] = alert
            for key in self._store.raise_pathway_alerts(list(found), at=now):
                raised.append(_alert_event(key, found[key], now))
            after_id = page[-1].id
        return raised

    def _ticked(self, stored: StoredPathway, now: datetime) -> Pathway:
        before = from_document(stored.document)
        after = tick(before, now)
        if after is not before:
            try:
                self._store.save_pathway(pathway_change(stored, before, after, now))
            except PathwayChanged:
                log.info("pathway sweep skipped a pathway changed meanwhile", pathway_id=stored.id)
        return after


# --- helpers --------------------------------------------------------------------------------------


def configured_model(setting: str) -> PathwayModel:
    """Return the model ``EDI_GATEWAY_PATHWAY_MODEL`` names: a shipped model's name, or a YAML file's path.

    Raises:
        UnknownPathwayModel, PathwayModelInvalid: no such shipped model, or the file is not a valid model.
    """
    if NAME_PATTERN.fullmatch(setting):
        return shipped_model(setting)
    return load_model(Path(setting).expanduser())


def desk_for(gateway: Gateway) -> PathwayDesk:
    """Return the desk of a kommune gateway, with the configured model and due-soon days.

    Raises:
        NotKommune: ``EDI_GATEWAY_ROLE`` is not ``kommune``.
        UnknownPathwayModel, PathwayModelInvalid: ``EDI_GATEWAY_PATHWAY_MODEL`` cannot be used.
    """
    settings = gateway.settings
    if settings.role != "kommune":
        raise NotKommune(
            f"the pathway worklist belongs to the kommune role; this gateway runs as {settings.role} "
            "(set EDI_GATEWAY_ROLE=kommune and EDI_GATEWAY_OUR_HER_ID to the kommune's virksomhet)"
        )
    return PathwayDesk(
        gateway.store,
        configured_model(settings.pathway_model),
        gateway.registers,
        our_her_id=settings.our_her_id,
        due_soon_days=settings.pathway_due_soon_days,
    )


def _move(wanted: str) -> PointState | Trigger:
    try:
        return MOVES[wanted]
    except KeyError:
        raise MoveUnknown(f"unknown move {wanted!r}; choose: {', '.join(MOVES)}") from None


def _note_text(move: PointState | Trigger, note: str | None) -> str | None:
    if note is None:
        return None
    if move is not PointState.DONE:
        raise NoteRefused(f"a note to the fastlege goes with done only, not with {move}")
    text = note.strip()
    if not text:
        raise NoteRefused("the note to the fastlege is empty")
    if len(text) > MAX_NOTE_CHARS:
        raise NoteRefused(f"the note to the fastlege is longer than {MAX_NOTE_CHARS} characters")
    return text


def _audit(operator: Operator, action: str, reason: str, details: dict[str, Any]) -> NewAuditEntry:
    return NewAuditEntry(username=operator.username, action=action, reason=reason, details=details)


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)


def _alert_event(key: AlertKey, alert: PointAlert, now: datetime) -> dict[str, Any]:
    return alert_json(
        ALERT_KINDS[alert.kind],
        alert.reason,
        now,
        pathway_id=key.pathway_id,
        samhandlingspunkt=alert.number,
        due_from=alert.window.due_from.isoformat(),
        due_to=None if alert.window.due_to is None else alert.window.due_to.isoformat(),
        assigned_to=_text(alert.assigned_to),
    )
