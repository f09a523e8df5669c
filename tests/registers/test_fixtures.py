"""The fixture registers answer like the real ones would, from the shipped fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edi_gateway.errors import RegisterUnavailable
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from tests.conftest import REGISTER_SOURCE


@pytest.fixture(scope="module")
def registers():  # type: ignore[no-untyped-def]
    return load_fixture_registers(resource_dir("fixtures") / "registers")


def test_every_telemark_kommune_is_registered_with_its_services(registers) -> None:
    """All 17 kommuner of the register data are in the Adresseregister with the same services."""
    source = json.loads(REGISTER_SOURCE.read_text(encoding="utf-8"))
    for kommune in source["kommuner"]:
        found = registers.address.kommune(kommune["kommunenummer"])
        assert found is not None
        assert found.her_id == kommune["her_id"]
        assert [(s.her_id, s.code) for s in found.services] == [
            (s["her_id"], s["code"]) for s in kommune["services"]
        ]
        assert found.queue == f"{kommune['her_id']}_async"


def test_population_register_gives_bosted_kommune(registers) -> None:
    """Every register patient's bosted kommune comes back from the population register."""
    source = json.loads(REGISTER_SOURCE.read_text(encoding="utf-8"))
    for patient in source["patients"]:
        assert registers.population.bosted_kommune(patient["id"]) == patient["kommunenummer"]
    assert registers.population.bosted_kommune("00000000000") is None


def test_fastlege_register_resolves_gp_and_legekontor(registers) -> None:
    """A patient with a fastlege gets the GP's person HER-id and the legekontor they work at."""
    source = json.loads(REGISTER_SOURCE.read_text(encoding="utf-8"))
    offices = {p["her_id"]: office for office in source["legekontor"] for p in office["fastleger"]}
    for patient in source["patients"]:
        gp = registers.fastlege.fastlege_for(patient["id"])
        if patient["fastlege_her_id"] is None:
            assert gp is None
        else:
            assert gp is not None
            assert gp.practitioner.her_id == patient["fastlege_her_id"]
            assert gp.legekontor.her_id == offices[patient["fastlege_her_id"]]["her_id"]


def test_parent_of_finds_the_virksomhet_of_services_and_persons(registers) -> None:
    """A service's or a GP's HER-id leads back to its virksomhet (needed to check AppRec senders)."""
    assert registers.address.parent_of(8100011).her_id == 8100010  # Skien kreftkoordinator
    assert registers.address.parent_of(8100083).her_id == 8100082  # a GP at Skien legesenter 1
    assert registers.address.parent_of(8100002).her_id == 8100001  # a hospital unit
    assert registers.address.parent_of(1) is None


def test_certificates_come_from_the_cert_folder(tmp_path: Path) -> None:
    """The register hands out the certificate filed for the virksomhet owning a HER-id, or None."""
    (tmp_path / "8100010.cert.pem").write_bytes(b"PEM")
    registers = load_fixture_registers(resource_dir("fixtures") / "registers", cert_dir=tmp_path)
    assert registers.address.certificate_pem(8100011) == b"PEM"
    assert registers.address.certificate_pem(8100005) is None


def test_missing_fixture_is_register_unavailable(tmp_path: Path) -> None:
    """A register that cannot be read is a transient register fault, named clearly."""
    with pytest.raises(RegisterUnavailable, match=r"adresseregister\.json"):
        load_fixture_registers(tmp_path)
