"""Registers backed by the JSON fixtures in ``fixtures/registers/`` (the embedded default set-up).

The fixtures are loaded once into dictionaries; lookups are O(1). Certificates are read from a
directory of ``<her_id>.cert.pem`` files (the generated test PKI) when one is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edi_gateway.domain.model import Organisation, Practitioner, Service
from edi_gateway.errors import RegisterUnavailable
from edi_gateway.registers.base import GpAssignment, Registers, Virksomhet


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as exc:
        raise RegisterUnavailable(f"register fixture {path.name} cannot be read: {exc}") from exc
    return data


def _virksomhet(entry: Mapping[str, Any]) -> Virksomhet:
    return Virksomhet(
        organisation=Organisation(entry["her_id"], entry["name"], entry.get("org_number")),
        kind=entry["kind"],
        kommunenummer=entry["kommunenummer"],
        queue=entry["queue"],
        services=tuple(Service(s["her_id"], s["name"], s["code"]) for s in entry.get("services", ())),
        units=tuple(Organisation(u["her_id"], u["name"]) for u in entry.get("units", ())),
        persons=tuple(
            Practitioner(p["her_id"], p["given_name"], p["family_name"], p.get("hpr"))
            for p in entry.get("persons", ())
        ),
    )


class FixtureAddressRegister:
    """Adresseregister over ``adresseregister.json``; certificates from ``cert_dir`` when given."""

    def __init__(self, virksomheter: tuple[Virksomhet, ...], cert_dir: Path | None = None) -> None:
        self._all = virksomheter
        self._by_her_id = {v.her_id: v for v in virksomheter}
        self._by_kommunenummer = {v.kommunenummer: v for v in virksomheter if v.kind == "kommune"}
        self._owner: dict[int, Virksomhet] = {}
        for v in virksomheter:
            for her_id in (
                v.her_id,
                *(s.her_id for s in v.services),
                *(u.her_id for u in v.units),
                *(p.her_id for p in v.persons),
            ):
                self._owner[her_id] = v
        self._cert_dir = cert_dir
        self._cert_cache: dict[int, bytes] = {}

    def kommune(self, kommunenummer: str) -> Virksomhet | None:
        """Return the kommune with this kommunenummer, or None."""
        return self._by_kommunenummer.get(kommunenummer)

    def virksomhet(self, her_id: int) -> Virksomhet | None:
        """Return the virksomhet with this HER-id, or None."""
        return self._by_her_id.get(her_id)

    def parent_of(self, her_id: int) -> Virksomhet | None:
        """Return the virksomhet owning ``her_id`` (itself, or the parent of a service/unit/person)."""
        return self._owner.get(her_id)

    def practitioner(self, her_id: int) -> tuple[Practitioner, Virksomhet] | None:
        """Return the person with this HER-id and the virksomhet they work at, or None."""
        owner = self._owner.get(her_id)
        if owner is None:
            return None
        for person in owner.persons:
            if person.her_id == her_id:
                return person, owner
        return None

    def certificate_pem(self, her_id: int) -> bytes | None:
        """Return the certificate of the virksomhet owning ``her_id`` from the certificate folder."""
        owner = self._owner.get(her_id)
        if owner is None or self._cert_dir is None:
            return None
        cached = self._cert_cache.get(owner.her_id)
        if cached is None:
            path = self._cert_dir / f"{owner.her_id}.cert.pem"
            if not path.is_file():
                return None
            cached = self._cert_cache[owner.her_id] = path.read_bytes()
        return cached

    def all_virksomheter(self) -> tuple[Virksomhet, ...]:
        """Every registered virksomhet."""
        return self._all


class FixturePopulationRegister:
    """Folkeregister over ``folkeregister.json``."""

    def __init__(self, bosted: Mapping[str, str]) -> None:
        self._bosted = dict(bosted)

    def bosted_kommune(self, person_id: str) -> str | None:
        """Return the person's kommunenummer, or None."""
        return self._bosted.get(person_id)


class FixtureFastlegeRegister:
    """Fastlegeregister over ``fastlegeregister.json``, resolved through the Adresseregister."""

    def __init__(self, assignments: Mapping[str, int], address: FixtureAddressRegister) -> None:
        self._assignments = dict(assignments)
        self._address = address

    def fastlege_for(self, person_id: str) -> GpAssignment | None:
        """Return the person's fastlege and legekontor, or None when none is registered."""
        gp_her_id = self._assignments.get(person_id)
        if gp_her_id is None:
            return None
        found = self._address.practitioner(gp_her_id)
        if found is None:
            return None
        return GpAssignment(practitioner=found[0], legekontor=found[1])


def load_fixture_registers(directory: Path, *, cert_dir: Path | None = None) -> Registers:
    """Load the three fixture registers from ``directory``.

    Raises:
        RegisterUnavailable: a fixture file is missing or malformed.
    """
    ar = _load(directory / "adresseregister.json")
    address = FixtureAddressRegister(tuple(_virksomhet(v) for v in ar["virksomheter"]), cert_dir)
    fr = _load(directory / "folkeregister.json")
    population = FixturePopulationRegister({p["id"]: p["kommunenummer"] for p in fr["persons"]})
    flr = _load(directory / "fastlegeregister.json")
    fastlege = FixtureFastlegeRegister({a["patient_id"]: a["gp_her_id"] for a in flr["assignments"]}, address)
    return Registers(population=population, address=address, fastlege=fastlege)
