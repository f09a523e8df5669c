"""The Adresseregister's REST answers as the gateway reads them, and their mapping onto our model.

The pydantic models follow the spec's ``components/schemas`` (``schemas/nhn/adresseregister-spec.json``)
as far as ``NhnAddressRegister`` reads them; fields it does not read are ignored. :func:`virksomhet_from`
turns an ``Organization`` party and the parties it lists into a ``Virksomhet`` with its ``Service``,
``Practitioner`` and unit entries.

The REST model is smaller than the fixture model, and the answers differ where it has nothing to say:

* Service types: ``serviceDetails.serviceType`` is an ``AdministrativeCode``; codes from code list S62
  "Tjenestebasert adressering" (NHN's name for it) or kodeverk 8663 (by number or OID) become
  ``Service.code``; a service typed from any other list is left out (routing chooses by 8663 only).
* Persons: the API gives one ``name``; the last word becomes ``family_name`` and the rest
  ``given_name``; ``hprNumber`` becomes ``hpr``.
* Units: an ``Organization`` party names no parent organisation, so a sub-organisation (a hospital
  department) cannot be traced to its owner: it answers as a virksomhet of its own. Only our own units,
  configured by HER-id (``own_unit_her_ids``), are attached to our virksomhet.
* ``kommunenummer``: the party has no municipality; a kommune gets it from the mapping, every other
  virksomhet gets ``""``.
* ``kind``: ``kommune`` for an organisation number in the mapping; otherwise by the business type
  (kodeverk 9040) through ``business_kinds``; ``virksomhet`` when the type is not mapped.
* ``queue``: the last path segment of ``amqpAddress.amqpAsyncQueue`` when present, else ``<herId>_async``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from edi_gateway.domain.model import Organisation, Practitioner, Service
from edi_gateway.logging import get_logger
from edi_gateway.registers.base import Virksomhet

__all__ = [
    "DEFAULT_BUSINESS_KINDS",
    "SERVICE_CODE_LISTS",
    "Certificate",
    "OrganizationDetails",
    "Party",
    "PartyList",
    "virksomhet_from",
]

# The AR client's log lines keep one logger name, whichever of its modules writes them.
log = get_logger("edi_gateway.registers.nhn_ar")

SERVICE_CODE_LISTS: Final = frozenset(
    {"S62", "8663", "2.16.578.1.12.4.1.1.8663", "urn:oid:2.16.578.1.12.4.1.1.8663"}
)
"""The ``serviceType.codeListId`` values read as kodeverk 8663 service types."""

DEFAULT_BUSINESS_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {"101": "sykehus", "102": "kommune", "103": "legekontor"}
)
"""Business type (kodeverk 9040, ``organizationDetails.businessType.value``) → ``Virksomhet.kind``.

Only 103 ("Privatpraktiserende autorisert helsepersonell", a fastlege office) is confirmed by NHN's
published samples; 101 and 102 must be checked against kodeverk 9040 before production use. A kommune
is recognised by its organisasjonsnummer in the configured mapping whatever its business type.
"""


# --- the answers, as far as the gateway reads them (spec: components/schemas) ---------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _AdministrativeCode(_Model):
    codeListId: str | None = None
    value: str | None = None
    name: str | None = None


class _ParentOrganization(_Model):
    herId: int
    name: str | None = None
    organizationNumber: str | None = None


class OrganizationDetails(_Model):
    organizationNumber: str | None = None
    businessType: _AdministrativeCode | None = None
    persons: list[int] | None = None
    services: list[int] | None = None


class _PersonDetails(_Model):
    hprNumber: int | None = None
    parentOrganization: _ParentOrganization


class _ServiceDetails(_Model):
    serviceType: _AdministrativeCode | None = None
    parentOrganization: _ParentOrganization


class _AmqpAddress(_Model):
    amqpAsyncQueue: str | None = None


class Party(_Model):
    herId: int
    name: str | None = None
    displayName: str | None = None
    type: Literal["Organization", "Person", "Service"]
    organizationDetails: OrganizationDetails | None = None
    personDetails: _PersonDetails | None = None
    serviceDetails: _ServiceDetails | None = None
    amqpAddress: _AmqpAddress | None = None

    @property
    def label(self) -> str:
        return self.name or self.displayName or ""


class PartyList(_Model):
    parties: list[Party]


class Certificate(_Model):
    thumbprint: str | None = None
    validTo: datetime | None = None
    certificateValue: str | None = None


# --- AR's representation → Virksomhet, Service, Practitioner ---------------------------------------


def virksomhet_from(
    party: Party,
    children: Mapping[int, Party],
    *,
    unit_ids: Sequence[int],
    kommunenummer: str | None,
    business_kinds: Mapping[str, str],
) -> Virksomhet:
    """Map an ``Organization`` party, with the parties it lists, onto a ``Virksomhet``.

    Args:
        party: the organisation.
        children: its services, persons and units by HER-id, as AR answered them (one AR does not
            know is left out).
        unit_ids: the units to attach (our own units, for our own virksomhet; otherwise none).
        kommunenummer: the kommune's number when the organisation is a kommune of the mapping, else None.
        business_kinds: business type code → ``Virksomhet.kind``.
    """
    details = party.organizationDetails or OrganizationDetails()
    service_ids = list(details.services or ())
    person_ids = list(details.persons or ())
    orgnr = details.organizationNumber or None
    if kommunenummer is not None:
        kind = "kommune"
    else:
        code = details.businessType.value if details.businessType else None
        kind = business_kinds.get(code or "", "virksomhet")
    return Virksomhet(
        organisation=Organisation(party.herId, party.label, orgnr),
        kind=kind,
        kommunenummer=kommunenummer or "",
        queue=_queue(party),
        services=tuple(s for i in service_ids if (s := _service(children.get(i), i)) is not None),
        units=tuple(
            Organisation(i, unit.label)
            for i in unit_ids
            if (unit := children.get(i)) is not None and unit.type == "Organization"
        ),
        persons=tuple(gp for i in person_ids if (gp := _person(children.get(i), i)) is not None),
    )


def _queue(party: Party) -> str:
    address = party.amqpAddress.amqpAsyncQueue if party.amqpAddress else None
    segment = address.strip().rstrip("/").rsplit("/", 1)[-1] if address else ""
    return segment or f"{party.herId}_async"


def _service(party: Party | None, her_id: int) -> Service | None:
    if party is None or party.type != "Service" or party.serviceDetails is None:
        log.info("AR lists a service that is not a service party", her_id=her_id)
        return None
    code = party.serviceDetails.serviceType
    if code is None or code.codeListId not in SERVICE_CODE_LISTS or not code.value:
        log.info("AR service without a kodeverk 8663 type left out", her_id=her_id)
        return None
    return Service(her_id, party.label, code.value)


def _person(party: Party | None, her_id: int) -> Practitioner | None:
    if party is None or party.type != "Person":
        log.info("AR lists a person that is not a person party", her_id=her_id)
        return None
    given, _, family = party.label.strip().rpartition(" ")
    hpr = party.personDetails.hprNumber if party.personDetails else None
    return Practitioner(her_id, given.strip(), family, str(hpr) if hpr is not None and hpr > 0 else None)
