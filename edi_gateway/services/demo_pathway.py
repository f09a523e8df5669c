"""The demo's second half: the kommune side of pakkeforløp hjem, after the hospital's messages settled.

The kommune that received the "kommune-and-fastlege" behovskartlegging runs its own gateway (kommune
role, own database) in the demo. This part opens that gateway's store beside its running worker and
shows what its tjenestekontor sees: the patient's pathway with the due windows of samhandlingspunkt 2
and 3. Then the kreftkoordinator records the first open point done with a note to the fastlege; the
kommune's worker sends the note (Dialogmelding "Oppfølging - Pakkeforløp hjem for pasienter med
kreft") to the fastlege's legekontor, whose gateway answers with an AppRec, and the note's message
ends ``acked`` in the kommune's store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from edi_gateway.domain.model import ReceiverKind
from edi_gateway.domain.states import MessageState
from edi_gateway.services.access import Operator, Role
from edi_gateway.services.context import Gateway, open_gateway
from edi_gateway.services.kommune import kommune_settings
from edi_gateway.services.pathway_views import PathwayView
from edi_gateway.services.pathways import PathwayDesk, desk_for
from edi_gateway.settings import Settings
from edi_gateway.store.records import MessageRecord

Echo = Callable[[str], None]

CASE: Final = "kommune-and-fastlege"
NURSE: Final = Operator("kreftkoordinator", Role.OPERATOR, "Kreftkoordinator (demo)")
NOTE: Final = (
    "Samtale hjemme hos pasienten. Pasienten klarer seg godt, har fått hjelpemidler og ønsker "
    "ny samtale om et halvt år. Ta kontakt ved spørsmål."
)
POLL_S: Final = 0.2
_STATE_TEXT: Final = {
    "planned": "planlagt",
    "due": "aktuell nå",
    "overdue": "forfalt",
    "done": "utført",
    "declined": "takket nei",
    "not_reachable": "ikke nådd",
    "closed": "avsluttet",
}


def run_pathway_demo(
    hospital: Gateway,
    kommune_message: MessageRecord,
    receiver_settings: Settings,
    *,
    timeout: float,
    echo: Echo,
) -> bool:
    """Show the kommune's worklist for the message's patient, complete a point, follow the fastlege note.

    Args:
        hospital: the hospital's gateway (the message was sent from it).
        kommune_message: the behovskartlegging the kommune acknowledged.
        receiver_settings: the settings the kommune's gateway runs with (before the kommune role).
        timeout: longest wait for each step, in seconds.
        echo: where the demo writes.

    Returns:
        True when the note reached the fastlege and was acknowledged in time.
    """
    her_id = kommune_message.receiver_org_her_id
    kommune = open_gateway(kommune_settings(receiver_settings, her_id))
    try:
        desk = desk_for(kommune)
        view = _pathway_of(kommune, desk, hospital.settings.our_her_id, kommune_message.msg_id, timeout)
        if view is None:
            echo(f"the kommune ({her_id}) has no pathway for the message yet")
            return False
        echo("")
        echo(
            f"Kommunen ({kommune_message.receiver_name}, HER-id {her_id}) — oppfølgingsliste for pasient {view.patient}:"
        )
        echo(_points(view))
        return _complete_with_note(kommune, desk, view, timeout=timeout, echo=echo)
    finally:
        kommune.close()


def _pathway_of(
    kommune: Gateway, desk: PathwayDesk, hospital_her_id: int, msg_id: str, timeout: float
) -> PathwayView | None:
    """The pathway the received message opened or continued, once the kommune's worker has taken it in."""
    store = kommune.store
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = store.received_by_keys([(hospital_her_id, msg_id)]).get((hospital_her_id, msg_id))
        if received is not None and received.patient_ref and received.pathway_state not in (None, "pending"):
            stored = store.pathway_for_patient(received.patient_ref)
            return desk.show(stored.id) if stored is not None else None
        time.sleep(POLL_S)
    return None


def _points(view: PathwayView) -> str:
    lines = [f"  {'punkt':<6}{'hva':<42}{'vindu':<26}tilstand"]
    for point in view.points:
        window = f"{point.due_from.isoformat()} – {point.due_to.isoformat() if point.due_to else ''}"
        title = point.title if len(point.title) <= 40 else point.title[:39] + "…"
        state = _STATE_TEXT.get(point.state, point.state)
        lines.append(f"  {point.samhandlingspunkt:<6}{title:<42}{window:<26}{state}")
    return "\n".join(lines)


def _complete_with_note(
    kommune: Gateway, desk: PathwayDesk, view: PathwayView, *, timeout: float, echo: Echo
) -> bool:
    open_points = [n for n, moves in sorted(view.moves.items()) if "done" in moves and n > 1]
    if not open_points:
        echo(
            "every kommune point of this pathway is settled already (an earlier demo run); no note this time"
        )
        return True
    number = open_points[0]
    after = desk.mark(
        view.pathway_id,
        number,
        "done",
        actor=NURSE,
        reason="oppfølgingssamtale gjennomført (demo)",
        now=datetime.now(UTC),
        note=NOTE,
    )
    echo(f"kreftkoordinatoren registrerte samhandlingspunkt {number} som utført, med notat til fastlegen")
    note_id = max(n.id for n in after.notes)
    message = _note_message(kommune, desk, view.pathway_id, note_id, timeout)
    if message is None:
        echo("the note to the fastlege did not reach its final state in time")
        return False
    echo(
        f"notat til fastlegen: MsgId {message.msg_id} til {message.receiver_name} "
        f"(HER-id {message.receiver_her_id}) — {message.state}"
    )
    echo("")
    settings = kommune.settings
    echo("the same list from the command line, in the kommune gateway's settings:")
    echo(
        f"  EDI_GATEWAY_TEST_MODE=true EDI_GATEWAY_HOME={settings.home} EDI_GATEWAY_ROLE=kommune "
        f"EDI_GATEWAY_OUR_HER_ID={settings.our_her_id} EDI_GATEWAY_DATABASE_URL={settings.effective_database_url} "
        "edi-gateway pathway list"
    )
    return message.state == MessageState.ACKED


def _note_message(
    kommune: Gateway, desk: PathwayDesk, pathway_id: int, note_id: int, timeout: float
) -> MessageRecord | None:
    """The note's message once the fastlege's AppRec has settled it (acked, or refused)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        note = next((n for n in desk.show(pathway_id).notes if n.id == note_id), None)
        if note is not None and note.state == "failed":
            return None
        if note is not None and note.msg_id is not None:
            message = kommune.store.get_message(note.msg_id)
            if (
                message is not None
                and message.receiver_kind == ReceiverKind.FASTLEGE
                and message.state
                in (
                    MessageState.ACKED,
                    MessageState.ACKED_WITH_ERRORS,
                    MessageState.REJECTED_BY_RECEIVER,
                )
            ):
                return message
        time.sleep(POLL_S)
    return None
