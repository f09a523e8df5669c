"""The registry look-up: a person, a kommune or a HER-id as routing would see it, in plain JSON."""

from __future__ import annotations

from typing import Any

from edi_gateway.domain.identifiers import is_valid_her_id, mask_person_id
from edi_gateway.domain.routing import RoutingRules
from edi_gateway.registers.base import Registers, Virksomhet


def registry_lookup(registers: Registers, rules: RoutingRules, query: str) -> dict[str, Any]:
    """Look a person number, kommunenummer or HER-id up in the registers, as routing would see it.

    * 11 digits, a person: the bosted kommune, the service routing would choose there, the fastlege.
    * 4 digits, a kommune: its services, the one chosen and why (a 4-digit HER-id is tried next).
    * other digits, a HER-id: the party and the virksomhet it belongs to.

    The answer is JSON-able, ``{"query_kind": ..., "found": bool, ...}``; a person shows masked.
    The look-up of a person is personal data processing: callers audit it.

    Raises:
        ValueError: the query is none of the three forms.
        RegisterUnavailable: a register cannot answer.
    """
    text = "".join(query.split())
    if not text.isdigit():
        raise ValueError("give a person number (11 digits), a kommunenummer (4 digits) or a HER-id")
    if len(text) == 11:
        return _person_lookup(registers, rules, text)
    if len(text) == 4:
        kommune = registers.address.kommune(text)
        if kommune is not None:
            return {"query_kind": "kommune", "found": True, **_kommune_view(kommune, rules)}
        if registers.address.parent_of(int(text)) is None:
            return {"query_kind": "kommune", "found": False, "kommunenummer": text}
    if not is_valid_her_id(text):
        raise ValueError("a HER-id is a number of at most 9 digits without a leading zero")
    return _her_id_lookup(registers, rules, int(text))


def _person_lookup(registers: Registers, rules: RoutingRules, person_id: str) -> dict[str, Any]:
    kommunenummer = registers.population.bosted_kommune(person_id)
    kommune = registers.address.kommune(kommunenummer) if kommunenummer is not None else None
    gp = registers.fastlege.fastlege_for(person_id)
    return {
        "query_kind": "person",
        "found": kommunenummer is not None or gp is not None,
        "patient_masked": mask_person_id(person_id),
        "bosted_kommunenummer": kommunenummer,
        "kommune": _kommune_view(kommune, rules) if kommune is not None else None,
        "fastlege": None
        if gp is None
        else {
            "her_id": gp.practitioner.her_id,
            "name": f"{gp.practitioner.given_name} {gp.practitioner.family_name}",
            "hpr": gp.practitioner.hpr,
            "legekontor": _party(gp.legekontor),
        },
    }


def _kommune_view(kommune: Virksomhet, rules: RoutingRules) -> dict[str, Any]:
    preference = rules.service_preference(kommune.kommunenummer)
    choice = rules.choose(kommune.kommunenummer, kommune.services)
    chosen = None if choice is None else choice.service
    return {
        **_party(kommune),
        "service_preference": list(preference),
        "routing_rule": rules.rule_name(kommune.kommunenummer),
        "services": [{"her_id": s.her_id, "name": s.name, "code": s.code} for s in kommune.services],
        "chosen_service": None
        if chosen is None
        else {"her_id": chosen.her_id, "name": chosen.name, "code": chosen.code},
        "chosen_reason": None if choice is None else choice.reason,
    }


def _party(v: Virksomhet) -> dict[str, Any]:
    return {
        "her_id": v.her_id,
        "name": v.organisation.name,
        "kind": v.kind,
        "org_number": v.organisation.org_number,
        "kommunenummer": v.kommunenummer,
        "queue": v.queue,
    }


def _her_id_lookup(registers: Registers, rules: RoutingRules, her_id: int) -> dict[str, Any]:
    owner = registers.address.parent_of(her_id)
    if owner is None:
        return {"query_kind": "her_id", "found": False, "her_id": her_id}
    owner_view = _kommune_view(owner, rules) if owner.kind == "kommune" else _party(owner)
    answer: dict[str, Any] = {
        "query_kind": "her_id",
        "found": True,
        "her_id": her_id,
        "virksomhet": owner_view,
    }
    if owner.her_id == her_id:
        return {**answer, "role": "virksomhet", "name": owner.organisation.name}
    for service in owner.services:
        if service.her_id == her_id:
            return {**answer, "role": "service", "name": service.name, "code": service.code}
    for unit in owner.units:
        if unit.her_id == her_id:
            return {**answer, "role": "unit", "name": unit.name}
    for person in owner.persons:
        if person.her_id == her_id:
            name = f"{person.given_name} {person.family_name}"
            return {**answer, "role": "person", "name": name, "hpr": person.hpr}
    return {**answer, "role": "unknown", "name": None}
