"""Building one signed MsgHead + Dialogmelding for one receiver from a validated request.

The piece both the outbound pipeline and operator replays (rebuild, edit) need: the sender from
our own virksomhet in the Adresseregister, the message from the routing rules' wording, then schema
validation and signing. Pure CPU work on long-lived parts; nothing is stored or published here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from edi_gateway.domain.model import Contact, Notat, OutboundMessage, Patient, Receiver, Sender
from edi_gateway.domain.request import RequestV1
from edi_gateway.domain.routing import RoutingRules
from edi_gateway.errors import EdiGatewayError, Problem, RequestRejected, XmlRejected
from edi_gateway.logging import get_logger
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.settings import Settings
from edi_gateway.store.records import NewMessage
from edi_gateway.transport.names import Names
from edi_gateway.xml.msghead import build_msghead
from edi_gateway.xml.schemas import validate_msghead
from edi_gateway.xml.signing import Signer

log = get_logger(__name__)

INVALID_MESSAGE = Problem(
    "message.invalid", "The gateway could not build a schema-valid message; an operator must look."
)


class MessageBuilder:
    """Builds, validates and signs messages for our own virksomhet."""

    def __init__(
        self,
        settings: Settings,
        registers: Registers,
        rules: RoutingRules,
        signer: Signer,
        names: Names,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Look our virksomhet up once.

        Raises:
            EdiGatewayError: ``EDI_GATEWAY_OUR_HER_ID`` is not in the Adresseregister.
        """
        our = registers.address.virksomhet(settings.our_her_id)
        if our is None:
            raise EdiGatewayError(
                f"our HER-id {settings.our_her_id} (EDI_GATEWAY_OUR_HER_ID) is not in the Adresseregister"
            )
        self._settings = settings
        self._rules = rules
        self._signer = signer
        self._names = names
        self._clock = clock
        self.our: Virksomhet = our

    def check_sender(self, request: RequestV1) -> None:
        """Refuse a request whose ``sender.unit_her_id`` is not us or one of our units.

        Raises:
            RequestRejected: code ``sender.unit_unknown``.
        """
        unit = request.sender.unit_her_id
        if unit is None or unit == self.our.her_id or any(u.her_id == unit for u in self.our.units):
            return
        raise RequestRejected(
            [
                Problem(
                    "sender.unit_unknown",
                    f"HER-id {unit} is not a unit of {self.our.organisation.name} in the Adresseregister.",
                    "sender.unit_her_id",
                )
            ]
        )

    def sender(self, request: RequestV1) -> Sender:
        """Our virksomhet, with the request's unit (or the default unit) nested."""
        unit_her_id = request.sender.unit_her_id or self._settings.default_unit_her_id
        unit = next((u for u in self.our.units if u.her_id == unit_her_id), None)
        return Sender(organisation=self.our.organisation, unit=unit)

    def build(
        self,
        request: RequestV1,
        receiver: Receiver,
        kommunenummer: str,
        text: str,
        *,
        conversation_ref: str | None = None,
    ) -> NewMessage:
        """Build, validate and sign the message for one receiver, with a fresh MsgId.

        Args:
            request: the validated request.
            receiver: who gets this message.
            kommunenummer: the kommune the request was routed by.
            text: the rendered assessment (once per request, shared by its receivers).
            conversation_ref: the MsgId this message continues (a replay), if any.

        Raises:
            RequestRejected: code ``message.invalid`` when our own builder made a schema-invalid
                message (a defect, logged with the MsgId only).
        """
        message = self._outbound(request, receiver, text, conversation_ref)
        root = build_msghead(message)
        try:
            validate_msghead(root)
        except XmlRejected as exc:
            log.error("built message failed schema validation", msg_id=message.msg_id, error=str(exc))
            raise RequestRejected([INVALID_MESSAGE]) from exc
        return NewMessage(
            msg_id=message.msg_id,
            receiver_kind=receiver.kind.value,
            receiver_org_her_id=receiver.organisation.her_id,
            receiver_her_id=receiver.addressed_her_id,
            receiver_name=receiver.display_name,
            queue=self._names.prefixed(receiver.queue),
            kommunenummer=kommunenummer,
            signed_xml=self._signer.sign(root),
            msg_type=message.msg_type.v,
            conversation_ref=conversation_ref,
            deadline_at=None,
            routing=receiver.choice.as_details() if receiver.choice is not None else None,
        )

    def _outbound(
        self, request: RequestV1, receiver: Receiver, text: str, conversation_ref: str | None
    ) -> OutboundMessage:
        rules, contact, patient = self._rules, request.sender.contact, request.patient
        return OutboundMessage(
            msg_id=str(uuid.uuid4()),
            gen_date=self._clock(),
            msg_type=rules.message.type.to_coded(),
            sender=self.sender(request),
            receiver=receiver,
            patient=Patient(
                id=patient.id,
                id_type=request.patient_id_type.value,
                given_name=patient.given_name,
                family_name=patient.family_name,
                middle_name=patient.middle_name,
            ),
            notat=Notat(
                tema_kodet=rules.message.tema_kodet.to_coded(),
                tema=rules.tema(request.samhandlingspunkt),
                text=text,
                contact=Contact(contact.name, contact.role, contact.phone),
                contact_role=rules.message.contact_role.to_coded(),
                receiver_contact=rules.contact_for_service(receiver.service.code)
                if receiver.service
                else None,
            ),
            conversation_ref=conversation_ref,
        )
