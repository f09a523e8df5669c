"""Building one signed note to the fastlege, with the request row that records it; nothing is sent here.

The piece ``services.fastlege_note`` needs for a claimed note: the patient from the pathway's source
message (the signed MsgHead as received, verified at receipt), the fastlege and legekontor from the
Fastlegeregister, the text from ``domain.note_text``, then the MsgHead v1.2 + Dialogmelding v1.1
(``xml.msghead``), its schema validation and signature. Type, TemaKodet and the contact's role come
from the routing rules, as for the hospital's message; ``Tema`` is
:data:`~edi_gateway.domain.note_text.NOTE_TEMA`. The sender is our virksomhet with the service the
source message was addressed to nested; the receiver the legekontor with the GP as
``HealthcareProfessional``. A note that cannot be built raises :class:`NoteFailed` with a plain
reason (no personal data).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime

from edi_gateway.domain.model import (
    Contact,
    Notat,
    Organisation,
    OutboundMessage,
    Patient,
    Receiver,
    ReceiverKind,
    Sender,
)
from edi_gateway.domain.note_text import NOTE_CONTENT_TYPE, NOTE_TEMA, NoteContent, render_note
from edi_gateway.domain.pathway.document import from_document
from edi_gateway.domain.pathway.model import PathwayError
from edi_gateway.domain.pathway.months import local_day
from edi_gateway.domain.states import RequestState
from edi_gateway.errors import EdiGatewayError, PermanentError, RegisterRefused, XmlRejected
from edi_gateway.logging import get_logger
from edi_gateway.registers.base import GpAssignment, Virksomhet
from edi_gateway.services.context import Gateway
from edi_gateway.store import NewMessage, NewRequest, RequestOutcome
from edi_gateway.store.notes import NoteRecord, NoteSource
from edi_gateway.xml.dialogmelding import read_patient
from edi_gateway.xml.msghead import PERSON_ID_TYPES, build_msghead
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.schemas import validate_msghead

log = get_logger(__name__)

CONTACT_ROLE_TEXT = "Kontakt i kommunen"


class NoteFailed(PermanentError):
    """A note cannot be sent; the message says why, in plain language and without personal data."""


class NoteBuilder:
    """Builds, validates and signs notes to the fastlege for our own virksomhet (the kommune)."""

    def __init__(self, gateway: Gateway) -> None:
        """Look our virksomhet up once.

        Raises:
            EdiGatewayError: ``EDI_GATEWAY_OUR_HER_ID`` is not in the Adresseregister.
        """
        our = gateway.registers.address.virksomhet(gateway.settings.our_her_id)
        if our is None:
            raise EdiGatewayError(
                f"our HER-id {gateway.settings.our_her_id} (EDI_GATEWAY_OUR_HER_ID) is not in the Adresseregister"
            )
        self._g = gateway
        self.our: Virksomhet = our

    def build(self, note: NoteRecord, request_id: str, now: datetime) -> RequestOutcome:
        """Build the note's signed message (fresh MsgId) and the request row that records the note.

        Raises:
            NoteFailed: the pathway or its source message is missing or unreadable, the patient has
                no fastlege, the register refused the look-up, or the message is not schema-valid.
            RegisterUnavailable: the Fastlegeregister did not answer (try again later).
            StoreUnavailable: the database cannot be reached.
        """
        source = self._g.store.note_source(note)
        if source is None:
            raise NoteFailed(f"pathway {note.pathway_id} of the note is not in the store")
        patient = _patient(source)
        gp = self._fastlege(patient)
        unit = self._unit(source.addressed_her_id)
        content = NoteContent(
            samhandlingspunkt=note.number,
            point_title=source.point_title,
            carried_out_on=carried_out_on(note, source),
            text=note.text,
            service_name=(unit or self.our.organisation).name,
            kommune_name=self.our.organisation.name if unit is not None else None,
        )
        outbound = self._outbound(note, patient, gp, unit, render_note(content), now)
        message = self._signed(note, outbound, source.kommunenummer)
        return RequestOutcome(self._request(note, source, patient, unit, request_id, now), (message,))

    def _fastlege(self, patient: Patient) -> GpAssignment:
        try:
            gp = self._g.registers.fastlege.fastlege_for(patient.id)
        except RegisterRefused:
            # The register's own words may quote the identifier it refused: they stay out of the outcome.
            raise NoteFailed("the Fastlegeregister refused the look-up of the patient's fastlege") from None
        if gp is None:
            raise NoteFailed("the Fastlegeregister has no fastlege for the patient: no note was sent")
        return gp

    def _unit(self, addressed_her_id: int | None) -> Organisation | None:
        """The service (or unit) of ours the source message was addressed to: the note's sender."""
        for service in self.our.services:
            if service.her_id == addressed_her_id:
                return Organisation(service.her_id, service.name)
        return next((u for u in self.our.units if u.her_id == addressed_her_id), None)

    def _outbound(
        self,
        note: NoteRecord,
        patient: Patient,
        gp: GpAssignment,
        unit: Organisation | None,
        text: str,
        now: datetime,
    ) -> OutboundMessage:
        rules = self._g.rules.message
        return OutboundMessage(
            msg_id=str(uuid.uuid4()),
            gen_date=now,
            msg_type=rules.type.to_coded(),
            sender=Sender(self.our.organisation, unit),
            receiver=Receiver(
                ReceiverKind.FASTLEGE,
                gp.legekontor.organisation,
                gp.legekontor.queue,
                practitioner=gp.practitioner,
            ),
            patient=patient,
            notat=Notat(
                tema_kodet=rules.tema_kodet.to_coded(),
                tema=NOTE_TEMA,
                text=text,
                contact=Contact(self._nurse(note.asked_by), CONTACT_ROLE_TEXT, ""),
                contact_role=rules.contact_role.to_coded(),
            ),
        )

    def _signed(self, note: NoteRecord, message: OutboundMessage, kommunenummer: str | None) -> NewMessage:
        root = build_msghead(message)
        try:
            validate_msghead(root)
        except XmlRejected as exc:
            log.error(
                "built note failed schema validation", note_id=note.id, msg_id=message.msg_id, error=str(exc)
            )
            raise NoteFailed(
                "the gateway could not build a schema-valid message; an operator must look"
            ) from exc
        receiver = message.receiver
        return NewMessage(
            msg_id=message.msg_id,
            receiver_kind=receiver.kind.value,
            receiver_org_her_id=receiver.organisation.her_id,
            receiver_her_id=receiver.addressed_her_id,
            receiver_name=receiver.display_name,
            queue=self._g.names.prefixed(receiver.queue),
            kommunenummer=kommunenummer,
            signed_xml=self._g.signer.sign(root),
            msg_type=message.msg_type.v,
        )

    def _request(
        self,
        note: NoteRecord,
        source: NoteSource,
        patient: Patient,
        unit: Organisation | None,
        request_id: str,
        now: datetime,
    ) -> NewRequest:
        return NewRequest(
            ref=str(uuid.uuid4()),
            request_id=request_id,
            state=RequestState.ROUTED,
            received_at=now,
            content_type=NOTE_CONTENT_TYPE,
            body=note_json(note, source, patient),
            samhandlingspunkt=note.number,
            consent=None,
            send_to_fastlege=True,
            kommunenummer=source.kommunenummer,
            sender_unit_her_id=unit.her_id if unit is not None else None,
            problems=(),
            amqp_message_id=None,
            amqp_correlation_id=None,
            reason=f"note to the fastlege on samhandlingspunkt {note.number} (pathway note {note.id})",
        )

    def _nurse(self, asked_by: str) -> str:
        """The name of the nurse who asked for the note: the operator's display name, when known."""
        username = asked_by.removeprefix("operator:")
        account = self._g.store.get_operator(username)
        return account.display_name if account is not None and account.display_name.strip() else username


def _patient(source: NoteSource) -> Patient:
    if source.received_body is None:
        raise NoteFailed(
            f"the message the pathway was opened from ({source.source_msg_id}) is not among the "
            "received messages, so the patient is unknown"
        )
    try:
        patient = read_patient(parse_xml(source.received_body))
    except XmlRejected as exc:
        raise NoteFailed(
            f"the pathway's source message {source.source_msg_id} cannot be read: {exc}"
        ) from None
    if patient is None or patient.id_type not in PERSON_ID_TYPES:
        raise NoteFailed(f"the pathway's source message {source.source_msg_id} names no usable patient id")
    return patient


def carried_out_on(note: NoteRecord, source: NoteSource) -> date:
    """The day the point was carried out: as the pathway records it, else the day it was recorded done."""
    try:
        pathway = from_document(source.document or {})
        course = next(c for c in pathway.courses if c.number == note.course)
        settled_on = course.point(note.number).settled_on
    except (PathwayError, StopIteration):
        settled_on = None
    if settled_on is not None:
        return settled_on
    if source.point_state == "done" and source.point_changed_at is not None:
        return local_day(source.point_changed_at)
    return local_day(note.asked_at)


def note_json(note: NoteRecord, source: NoteSource, patient: Patient) -> bytes:
    """The note as its request row keeps it: what was asked, by whom, about which patient and point.

    The patient's id is kept as every request keeps it, so operators' lists show the patient masked
    and audited look-ups find it; the names are in the signed message only.
    """
    body = {
        "kind": "pathway_note",
        "note_id": note.id,
        "pathway_id": note.pathway_id,
        "course": note.course,
        "samhandlingspunkt": note.number,
        "text": note.text,
        "asked_at": note.asked_at.isoformat(),
        "asked_by": note.asked_by,
        "source_msg_id": source.source_msg_id,
        "patient": {"id": patient.id, "id_type": patient.id_type},
    }
    return json.dumps(body, ensure_ascii=False).encode()
