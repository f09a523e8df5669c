"""The register interfaces the gateway routes with.

Three registers answer three questions:

* ``PopulationRegister`` (Folkeregisteret): in which kommune does this person live?
* ``AddressRegister`` (NHN Adresseregisteret): who is this HER-id, which services does a kommune offer,
  which queue reaches a communication party, which certificate does it sign with?
* ``FastlegeRegister`` (Fastlegeregisteret): who is this person's fastlege?

The fixture-backed implementation lives in ``registers.fixtures``; NHN's SOAP registers can stand behind
the same interfaces later. Implementations raise ``RegisterUnavailable`` when they cannot answer, and
return ``None`` when the register has no such entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edi_gateway.domain.model import Organisation, Practitioner, Service


@dataclass(frozen=True, slots=True)
class Virksomhet:
    """A communication party at the top level of the Adresseregister.

    Attributes:
        organisation: HER-id, name and organisasjonsnummer.
        kind: ``sykehus``, ``kommune`` or ``legekontor``.
        kommunenummer: where it is located (for a kommune: the kommune itself).
        queue: the AMQP queue of its receiving system (NHN ``<herId>_async`` naming).
        services: its tjenester with kodeverk 8663 codes.
        units: organisational units (a hospital's departments).
        persons: persons registered under it (a legekontor's fastleger).
    """

    organisation: Organisation
    kind: str
    kommunenummer: str
    queue: str
    services: tuple[Service, ...] = ()
    units: tuple[Organisation, ...] = ()
    persons: tuple[Practitioner, ...] = ()

    @property
    def her_id(self) -> int:
        """The virksomhet's HER-id."""
        return self.organisation.her_id

    @property
    def all_her_ids(self) -> tuple[int, ...]:
        """Every HER-id a message to it may be addressed to: itself, its services, units and persons."""
        parts = (
            (self.her_id,),
            (s.her_id for s in self.services),
            (u.her_id for u in self.units),
            (p.her_id for p in self.persons),
        )
        return tuple(dict.fromkeys(her_id for part in parts for her_id in part))


@dataclass(frozen=True, slots=True)
class GpAssignment:
    """A person's fastlege: the GP and the legekontor the GP works at."""

    practitioner: Practitioner
    legekontor: Virksomhet


class PopulationRegister(Protocol):
    """Folkeregisteret: person → bosted kommune."""

    def bosted_kommune(self, person_id: str) -> str | None:
        """Return the kommunenummer the person lives in, or None when the person is unknown."""
        ...


class AddressRegister(Protocol):
    """Adresseregisteret: communication parties, their services, queues and certificates."""

    def kommune(self, kommunenummer: str) -> Virksomhet | None:
        """Return the kommune virksomhet with this kommunenummer, or None when it is not registered."""
        ...

    def virksomhet(self, her_id: int) -> Virksomhet | None:
        """Return the virksomhet with this HER-id, or None."""
        ...

    def parent_of(self, her_id: int) -> Virksomhet | None:
        """Return the virksomhet owning ``her_id``: itself, or the parent of a service, unit or person."""
        ...

    def certificate_pem(self, her_id: int) -> bytes | None:
        """Return the signing certificate registered for the virksomhet owning ``her_id``, or None."""
        ...

    def all_virksomheter(self) -> tuple[Virksomhet, ...]:
        """Every registered virksomhet (for declaring queues and generating the test PKI)."""
        ...


class FastlegeRegister(Protocol):
    """Fastlegeregisteret: person → fastlege."""

    def fastlege_for(self, person_id: str) -> GpAssignment | None:
        """Return the person's fastlege and legekontor, or None when the person has none."""
        ...


@dataclass(frozen=True, slots=True)
class Registers:
    """The three registers, passed around together."""

    population: PopulationRegister
    address: AddressRegister
    fastlege: FastlegeRegister
