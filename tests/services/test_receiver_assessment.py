"""Tests for edi_gateway.services.receiver.assessment: the pure checks behind a receiver's AppRec.

No broker and no I/O beyond loading the synthetic fixture registers once per module; person numbers
are in the synthetic month+80 series.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.identifiers import InvalidIdentifier, PersonIdType, classify_person_id
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.resources import resource_dir
from edi_gateway.services.receiver import ReceiverBehaviour, Verdict, assess_message, is_uuid_like
from edi_gateway.xml.msghead import MsgHeadSummary

HOSPITAL = 8100001
UNIT = 8100002
PORSGRUNN = 8100005
PORSGRUNN_KREFTKOORDINATOR = 8100006
SKIEN = 8100010
SKIEN_KREFTKOORDINATOR = 8100011
SKIEN_LEGESENTER = 8100087
SKIEN_FASTLEGE = 8100089
PATIENT_ID = "07926217857"  # synthetic (month + 80)
BAD_CHECKSUM = "07926217858"

FIXTURE_REGISTERS = resource_dir("fixtures") / "registers"


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registers(pki_template: Path) -> Registers:
    """The fixture registers with the session test PKI's certificates."""
    return load_fixture_registers(FIXTURE_REGISTERS, cert_dir=pki_template)


def virksomhet(registers: Registers, her_id: int) -> Virksomhet:
    found = registers.address.virksomhet(her_id)
    assert found is not None
    return found


def with_check_digits(first_nine: str) -> str:
    """Complete nine digits to a person number with valid mod-11 check digits."""
    weights1, weights2 = (3, 7, 6, 1, 8, 9, 4, 5, 2), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    k1 = (11 - sum(w * int(d) for w, d in zip(weights1, first_nine, strict=True)) % 11) % 11
    ten = first_nine + str(k1)
    k2 = (11 - sum(w * int(d) for w, d in zip(weights2, ten, strict=True)) % 11) % 11
    assert k1 < 10 and k2 < 10, "pick other digits: no valid check digit"
    return ten + str(k2)


def summary(**changes: object) -> MsgHeadSummary:
    base = MsgHeadSummary(
        msg_id="0b6f0f0e-4f7a-4c1e-9d4b-0c1d2e3f4a5b",
        msg_type="DIALOG_HELSEFAGLIG",
        gen_date="2026-11-02T10:15:30",
        sender_her_id=HOSPITAL,
        receiver_her_id=PORSGRUNN,
        sender_unit_her_id=UNIT,
        receiver_service_her_id=PORSGRUNN_KREFTKOORDINATOR,
        patient_id=PATIENT_ID,
        patient_id_type="FNR",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def codes(verdict: Verdict) -> list[str]:
    return [e.code for e in verdict.errors]


def _expected_patient_codes(patient_id: str) -> list[str]:
    """The one right error list for a message whose only fault may be ``patient_id`` (test mode)."""
    if not patient_id:
        return ["E30"]
    try:
        kind = classify_person_id(patient_id, test_mode=True)
    except InvalidIdentifier:
        return ["E31"]
    return [] if kind in (PersonIdType.FNR, PersonIdType.DNR) else ["E31"]


# --- assess_message (pure) ----------------------------------------------------------------------

OK, AVVIST = AppRecStatus.OK, AppRecStatus.AVVIST

ASSESSMENT_CASES: list[tuple[str, dict[str, object], dict[str, object], AppRecStatus, list[str]]] = [
    ("a well-formed message to our service", {}, {}, OK, []),
    ("MsgId in upper case with braces", {"msg_id": "{37340D30-FE14-42B5-985F-A8FF8FFA0CB5}"}, {}, OK, []),
    ("MsgId not a UUID", {"msg_id": "melding-1"}, {}, AVVIST, ["E10"]),
    ("empty MsgId", {"msg_id": ""}, {}, AVVIST, ["E10"]),
    ("another virksomhet", {"receiver_her_id": SKIEN}, {}, AVVIST, ["E21"]),
    ("another kommune's service", {"receiver_service_her_id": SKIEN_KREFTKOORDINATOR}, {}, AVVIST, ["E21"]),
    ("no service addressed", {"receiver_service_her_id": None}, {}, AVVIST, ["E21"]),
    ("a person not registered here", {"receiver_person_her_id": SKIEN_FASTLEGE}, {}, AVVIST, ["E21"]),
    ("no patient id", {"patient_id": None}, {}, AVVIST, ["E30"]),
    ("bad checksum", {"patient_id": BAD_CHECKSUM}, {}, AVVIST, ["E31"]),
    ("not 11 digits", {"patient_id": "0792621785"}, {}, AVVIST, ["E31"]),
    ("an FH-nummer", {"patient_id": with_check_digits("812345679")}, {}, AVVIST, ["E31"]),
    ("a synthetic D-nummer", {"patient_id": with_check_digits("479262178")}, {}, OK, []),
    ("synthetic outside test mode", {}, {"test_mode": False}, AVVIST, ["E31"]),
    ("reject option", {}, {"behaviour": ReceiverBehaviour(reject="E35")}, AVVIST, ["E35"]),
    ("reject option, other code", {}, {"behaviour": ReceiverBehaviour(reject="E36")}, AVVIST, ["E36"]),
    ("every 2nd, message 1", {}, {"behaviour": ReceiverBehaviour(reject_every=2), "sequence": 1}, OK, []),
    (
        "every 2nd, message 2",
        {},
        {"behaviour": ReceiverBehaviour(reject_every=2), "sequence": 2},
        AVVIST,
        ["E35"],
    ),
    (
        "real findings win over the simulation",
        {"patient_id": BAD_CHECKSUM},
        {"behaviour": ReceiverBehaviour(reject="E35")},
        AVVIST,
        ["E31"],
    ),
    (
        "every finding is reported",
        {"msg_id": "x", "receiver_her_id": SKIEN, "patient_id": BAD_CHECKSUM},
        {},
        AVVIST,
        ["E10", "E21", "E31"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "options", "status", "expected"),
    [case[1:] for case in ASSESSMENT_CASES],
    ids=[case[0] for case in ASSESSMENT_CASES],
)
def test_assess_message_decides_status_and_codes(
    registers: Registers,
    changes: dict[str, object],
    options: dict[str, object],
    status: AppRecStatus,
    expected: list[str],
) -> None:
    """Each message is answered with the status and kodeverk 8221 codes its findings call for."""
    kwargs: dict[str, object] = {"test_mode": True, **options}
    verdict = assess_message(summary(**changes), virksomhet(registers, PORSGRUNN), **kwargs)  # type: ignore[arg-type]
    assert verdict.status == status
    assert codes(verdict) == expected
    assert all(e.text for e in verdict.errors), "every error carries its kodeverk text"


def test_assess_message_accepts_a_gp_registered_at_the_legekontor(registers: Registers) -> None:
    """A message to a legekontor addressed to one of its fastleger is OK."""
    to_gp = summary(
        receiver_her_id=SKIEN_LEGESENTER, receiver_service_her_id=None, receiver_person_her_id=SKIEN_FASTLEGE
    )
    assert assess_message(to_gp, virksomhet(registers, SKIEN_LEGESENTER), test_mode=True) == (
        AppRecStatus.OK,
        (),
    )


def test_error_details_never_quote_the_patient_id(registers: Registers) -> None:
    """The free text (OT) of an E31 names the failed check, never the person number."""
    verdict = assess_message(
        summary(patient_id=BAD_CHECKSUM), virksomhet(registers, PORSGRUNN), test_mode=True
    )
    assert all(BAD_CHECKSUM not in (e.original_text or "") for e in verdict.errors)


@given(st.text(max_size=14) | st.from_regex(r"[0-9]{11}", fullmatch=True))
@hypothesis_settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_patient_id_is_accepted_or_answered_e30_e31(registers: Registers, patient_id: str) -> None:
    """An empty id is E30, one the identifier rules refuse or that is no FNR/DNR is E31, else OK; never quoted."""
    verdict = assess_message(summary(patient_id=patient_id), virksomhet(registers, PORSGRUNN), test_mode=True)
    assert codes(verdict) == _expected_patient_codes(patient_id)
    assert (verdict.status == OK) == (codes(verdict) == [])
    if any(ch.isdigit() for ch in patient_id):  # the details hold no digits; words may match by chance
        assert all(patient_id not in (e.original_text or "") for e in verdict.errors)


@pytest.mark.parametrize(
    "options", [{"reject": "Z99"}, {"reject_every": -1}, {"delay_s": -0.5}], ids=["code", "every", "delay"]
)
def test_behaviour_refuses_nonsense(options: dict[str, object]) -> None:
    """A behaviour with an unknown 8221 code, a negative count or a negative delay is refused."""
    with pytest.raises(ValueError):
        ReceiverBehaviour(**options)  # type: ignore[arg-type]


def test_uuid_like_accepts_uuids_only() -> None:
    """MsgIds are UUIDs in any case, braces allowed; anything else is not."""
    assert is_uuid_like(str(uuid.uuid4()))
    assert is_uuid_like("37340D30-FE14-42B5-985F-A8FF8FFA0CB5")
    assert not is_uuid_like("37340D30FE1442B5985FA8FF8FFA0CB5x")
    assert not is_uuid_like("")
    assert not is_uuid_like(None)
