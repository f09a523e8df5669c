"""Value objects shared by the layers: register parties, receivers, and the spec of one outgoing message.

These are plain frozen dataclasses: the registers produce them, routing chooses among them, the XML
builders turn an ``OutboundMessage`` into a MsgHead, and the store records their identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Organisation:
    """A virksomhet (or a unit of one) in the Adresseregister."""

    her_id: int
    name: str
    org_number: str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """A tjeneste under a virksomhet, typed by kodeverk 8663 (e.g. KD0501 Tjenestekontoret)."""

    her_id: int
    name: str
    code: str


@dataclass(frozen=True, slots=True)
class ServiceChoice:
    """Which kommune service routing chose, and why (recorded with the message, shown to operators).

    Attributes:
        service: the service chosen.
        reason: why, in plain language (e.g. that no tjenestekontor is registered); no personal data.
        preference: the kodeverk 8663 preference that was in force, most preferred first.
        rule: where that preference comes from: ``default`` or ``kommune <kommunenummer>`` (an override).
    """

    service: Service
    reason: str
    preference: tuple[str, ...]
    rule: str = "default"

    @property
    def fallback(self) -> bool:
        """Whether a less preferred service was chosen because the first preference is not registered."""
        return not self.preference or self.service.code != self.preference[0]

    def as_details(self) -> dict[str, object]:
        """The choice as JSON-able values (for the message's first event)."""
        return {
            "service_code": self.service.code,
            "service_her_id": self.service.her_id,
            "service_name": self.service.name,
            "reason": self.reason,
            "fallback": self.fallback,
            "preference": list(self.preference),
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A person in the Adresseregister (here: a fastlege under a legekontor)."""

    her_id: int
    given_name: str
    family_name: str
    hpr: str | None = None


class ReceiverKind(StrEnum):
    """Why a receiver gets the message."""

    KOMMUNE = "kommune"
    FASTLEGE = "fastlege"


@dataclass(frozen=True, slots=True)
class Receiver:
    """One addressee of one MsgHead, per tjenestebasert adressering.

    Attributes:
        kind: kommune tjenestekontor or fastlege.
        organisation: the virksomhet (``Receiver/Organisation/Ident``).
        queue: the AMQP queue the register names for the receiving system (``<herId>_async``).
        service: the kommune service, addressed as the nested ``Organisation``.
        practitioner: the fastlege, addressed as ``HealthcareProfessional``.
        choice: how routing chose ``service`` and why, when routing chose it (a kommune receiver).
    """

    kind: ReceiverKind
    organisation: Organisation
    queue: str
    service: Service | None = None
    practitioner: Practitioner | None = None
    choice: ServiceChoice | None = None

    @property
    def addressed_her_id(self) -> int:
        """The most specific HER-id the message is addressed to (service, person, or virksomhet)."""
        if self.service is not None:
            return self.service.her_id
        if self.practitioner is not None:
            return self.practitioner.her_id
        return self.organisation.her_id

    @property
    def display_name(self) -> str:
        """Human-readable name for tables and the operator UI (no patient data)."""
        if self.service is not None:
            return f"{self.organisation.name} / {self.service.name}"
        if self.practitioner is not None:
            p = self.practitioner
            return f"{self.organisation.name} / {p.given_name} {p.family_name}"
        return self.organisation.name


@dataclass(frozen=True, slots=True)
class Sender:
    """Our own virksomhet and, optionally, the sending unit (nested ``Organisation``)."""

    organisation: Organisation
    unit: Organisation | None = None


@dataclass(frozen=True, slots=True)
class Patient:
    """The patient the message is about. Personal data: never log any field of this (hidden from repr)."""

    id: str = field(repr=False)
    id_type: str  # kodeverk 8116: FNR, DNR, HNR, FHN
    given_name: str = field(repr=False)
    family_name: str = field(repr=False)
    middle_name: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Contact:
    """The responsible person at the sender (``RollerRelatertNotat``)."""

    name: str
    role: str
    phone: str


@dataclass(frozen=True, slots=True)
class Coded:
    """A coded value: V (code), DN (display name) and S (kodeverk OID)."""

    v: str
    dn: str
    s: str


@dataclass(frozen=True, slots=True)
class ReceiverContact:
    """``Kontakt hos mottaker`` (9034 V=24): a named person or a profession at the receiver."""

    profession: Coded | None = None
    given_name: str | None = None
    family_name: str | None = None


@dataclass(frozen=True, slots=True)
class Notat:
    """The single ``Notat`` of a Dialogmelding v1.1 helsefaglig dialog."""

    tema_kodet: Coded
    tema: str
    text: str
    contact: Contact
    contact_role: Coded
    receiver_contact: ReceiverContact | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """Everything needed to build one MsgHead + Dialogmelding for one receiver.

    Attributes:
        msg_id: the MsgId (UUID string), minted once per (request, receiver) and stored.
        gen_date: when the message was generated (local time, as the standard's examples use).
        msg_type: ``MsgInfo/Type`` (e.g. DIALOG_HELSEFAGLIG, from the routing rules).
        conversation_ref: ``ConversationRef`` to an earlier message (replay/rebuild), if any.
    """

    msg_id: str
    gen_date: datetime
    msg_type: Coded
    sender: Sender
    receiver: Receiver
    patient: Patient
    notat: Notat
    conversation_ref: str | None = None
