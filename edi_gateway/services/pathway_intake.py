"""Received behovskartlegging into the pathway worklist: the intake half of ``services.pathways``.

:class:`ReceivedIntake` does the work of ``PathwayDesk.apply_received`` (the desk is the entry point;
read its docstring). Each pending ``received_messages`` row is read (the first Notat's text, by
``xml.dialogmelding`` and ``domain.pathway.from_text``), then opens or continues the patient's pathway
(found by ``patient_ref``, the keyed hash of the person number), and leaves ``pending`` in the same
transaction as the pathway's change: ``applied``, ``conflict`` or ``ignored``.

Also here, for the desk: :func:`pathway_change`, the store write of one change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from edi_gateway.domain.events import alert_json
from edi_gateway.domain.pathway import (
    DiagnosisConflict,
    Pathway,
    PathwayError,
    PathwayModel,
    continue_pathway,
    open_from_message,
    tick,
)
from edi_gateway.domain.pathway.document import (
    EventKind,
    EventRow,
    event_rows,
    from_document,
    point_rows,
    to_document,
)
from edi_gateway.domain.pathway.from_text import AssessmentFacts, assessment_facts
from edi_gateway.errors import PermanentError
from edi_gateway.logging import get_logger
from edi_gateway.registers.base import Registers
from edi_gateway.store import Store
from edi_gateway.store.pathways import (
    AlertKey,
    PathwayChange,
    PathwayChanged,
    PathwayOpening,
    ReceivedForPathway,
    ReceivedNotPending,
    ReceivedState,
    StoredPathway,
)
from edi_gateway.xml.dialogmelding import parse_message, read_notat

SAVE_ATTEMPTS: Final = 4
"""How often a change is applied again after losing a race on the pathway's version."""
CONFLICT_ALERT: Final = "pathway.conflict"

AlertSink = Callable[[dict[str, Any]], None]

log = get_logger(__name__)


class ReceivedIntake:
    """Takes pending received messages into the worklist (see ``PathwayDesk.apply_received``).

    Args:
        store: the store.
        model: the model new pathways follow.
        registers: the registers (the receiving virksomhet's kommunenummer).
        our_her_id: our virksomhet: a message addressed to another is ignored.
    """

    def __init__(self, store: Store, model: PathwayModel, registers: Registers, *, our_her_id: int) -> None:
        self._store = store
        self._model = model
        self._registers = registers
        self._our_her_id = our_her_id

    def apply(self, now: datetime, *, actor: str, limit: int, on_alert: AlertSink | None) -> int:
        """Apply up to ``limit`` pending messages; return how many left ``pending`` by this call."""
        handled = 0
        for row in self._store.pending_received(limit=limit):
            try:
                done, alert = self._apply_one(row, now, actor)
            except PermanentError as exc:
                # A defect (a stored pathway that cannot be read, say): the message stays pending for
                # an operator, and the messages after it are not held up.
                log.error("pathway intake failed for a message", msg_id=row.msg_id, error=type(exc).__name__)
                continue
            handled += done
            if alert is not None and on_alert is not None:
                on_alert(alert)
        return handled

    def _apply_one(
        self, row: ReceivedForPathway, now: datetime, actor: str
    ) -> tuple[bool, dict[str, Any] | None]:
        """Apply one message; (False, None) when another worker took it first, else its conflict alert."""
        facts = self._facts(row)
        if isinstance(facts, str):
            return self._ignore(row, facts), None
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                return self._take_in(row, facts, now, actor)
            except ReceivedNotPending:
                return False, None
            except PathwayChanged:
                if attempt == SAVE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _facts(self, row: ReceivedForPathway) -> AssessmentFacts | str:
        """The message's facts, or why the worklist ignores it (no personal data in the reason)."""
        if row.receiver_her_id != self._our_her_id:
            return f"addressed to HER-id {row.receiver_her_id}, not to our virksomhet {self._our_her_id}"
        if not row.patient_ref:
            return "the message names no patient the gateway could key"
        try:
            notat = read_notat(parse_message(row.body))
            facts = assessment_facts(notat.text) if notat is not None else None
        except PermanentError as exc:
            return str(exc)
        return facts if facts is not None else "not a behovskartlegging"

    def _ignore(self, row: ReceivedForPathway, why: str) -> bool:
        if self._store.set_received_state(row.id, ReceivedState.IGNORED):
            log.warning("pathway ignored a received message", msg_id=row.msg_id, reason=why)
            return True
        return False

    def _take_in(
        self, row: ReceivedForPathway, facts: AssessmentFacts, now: datetime, actor: str
    ) -> tuple[bool, dict[str, Any] | None]:
        assert row.patient_ref is not None  # checked by _facts
        message = facts.message(received_at=row.received_at, msg_id=row.msg_id)
        stored = self._store.pathway_for_patient(row.patient_ref)
        before = None if stored is None else from_document(stored.document)
        try:
            if before is None:
                after = open_from_message(self._model, message, patient_ref=row.patient_ref, actor=actor)
            else:
                # The calendar first, to the message's receipt: a point whose window had ended when
                # a relapse closes it is recorded overdue, then closed.
                after = continue_pathway(tick(before, message.received_at), message, actor=actor)
        except DiagnosisConflict as exc:
            assert stored is not None and before is not None  # only a stored pathway conflicts
            return True, self._conflict(row, stored, before, exc, facts, now, actor)
        except PathwayError as exc:  # the model has no such point, an assessment after its receipt ...
            return self._ignore(row, str(exc)), None
        after = tick(after, now)
        if stored is None or before is None:
            saved = self._store.save_pathway(self._opening(row, after, now))
            log.info("pathway opened", msg_id=row.msg_id, pathway_id=saved.id)
        else:
            self._continued(row, stored, before, after, now)
        return True, None

    def _continued(
        self, row: ReceivedForPathway, stored: StoredPathway, before: Pathway, after: Pathway, now: datetime
    ) -> None:
        restarted = len(after.courses) > len(before.courses)
        received = (row.id, ReceivedState.APPLIED)
        # A restart's message opened the current course: the pathway names it from now on.
        source = row.msg_id if restarted else None
        self._store.save_pathway(
            pathway_change(stored, before, after, now, received=received, source_msg_id=source)
        )
        log.info("pathway continued", msg_id=row.msg_id, pathway_id=stored.id, restarted=restarted)

    def _opening(self, row: ReceivedForPathway, pathway: Pathway, now: datetime) -> PathwayChange:
        virksomhet = self._registers.address.virksomhet(row.receiver_her_id)
        opening = PathwayOpening(
            patient_ref=pathway.patient_ref,
            patient_masked=row.patient_masked or "-",
            receiver_her_id=row.receiver_her_id,
            kommunenummer=virksomhet.kommunenummer if virksomhet is not None else None,
            model_name=pathway.model_name,
        )
        return PathwayChange(
            at=now,
            document=to_document(pathway),
            points=point_rows(pathway),
            events=event_rows(pathway.history, course=0),
            assigned_to=_text(pathway.assigned_to),
            opening=opening,
            source_msg_id=row.msg_id,
            received=(row.id, ReceivedState.APPLIED),
        )

    def _conflict(
        self,
        row: ReceivedForPathway,
        stored: StoredPathway,
        pathway: Pathway,
        conflict: DiagnosisConflict,
        facts: AssessmentFacts,
        now: datetime,
        actor: str,
    ) -> dict[str, Any]:
        course, number = pathway.current.number, facts.samhandlingspunkt
        details = {
            "msg_id": row.msg_id,
            "current": conflict.current.isoformat(),
            "stated": conflict.stated.isoformat(),
            "relapse": facts.relapse,
        }
        reason = f"{conflict} (MsgId {row.msg_id})"
        event = EventRow(now, actor, EventKind.CONFLICT, course, number, None, None, reason, details)
        change = pathway_change(
            stored,
            pathway,
            pathway,
            now,
            extra_events=[event],
            alerts=[AlertKey(stored.id, course, number, "conflict")],
            received=(row.id, ReceivedState.CONFLICT),
        )
        self._store.save_pathway(change)
        log.warning("pathway conflict", msg_id=row.msg_id, pathway_id=stored.id)
        return alert_json(
            CONFLICT_ALERT, reason, now, pathway_id=stored.id, samhandlingspunkt=number, msg_id=row.msg_id
        )


def pathway_change(
    stored: StoredPathway,
    before: Pathway,
    after: Pathway,
    now: datetime,
    *,
    extra_events: list[EventRow] | None = None,
    **extra: Any,
) -> PathwayChange:
    """The change from ``before`` (loaded without history) to ``after``, on ``stored``'s version."""
    events = event_rows(after.history[len(before.history) :], course=before.current.number)
    return PathwayChange(
        at=now,
        document=to_document(after),
        points=point_rows(after),
        events=[*events, *(extra_events or [])],
        assigned_to=_text(after.assigned_to),
        pathway_id=stored.id,
        expected_version=stored.version,
        **extra,
    )


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)
