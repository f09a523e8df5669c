"""NhnFastlegeRegister: NHN's real SOAP answers, the FLR stand-in over real HTTP, faults, no population register."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from lxml import etree
from starlette.requests import Request

from edi_gateway.dev.nhn_standin.registers import (
    FLR_PATH,
    AddressRegisterStandIn,
    FastlegeRegisterStandIn,
    FaultKind,
)
from edi_gateway.dev.nhn_standin.server import run_in_thread
from edi_gateway.domain.model import Organisation, Practitioner
from edi_gateway.errors import RegisterRefused, RegisterUnavailable, RequestRejected
from edi_gateway.logging import configure_logging
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.registers.cache import CachedAddressRegister, CachedFastlegeRegister
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.registers.nhn_ar import ArConfig, NhnAddressRegister, load_kommune_orgnr
from edi_gateway.registers.nhn_flr import (
    FLR_NS,
    SOAP11_NS,
    SOAP_ACTION_GET_PATIENT_GP,
    FlrAnswer,
    FlrConfig,
    NhnFastlegeRegister,
    NoPopulationRegister,
    build_get_patient_gp_request,
    parse_patient_gp_response,
)
from edi_gateway.resources import resource_dir
from edi_gateway.services.context import load_routing_rules
from edi_gateway.services.receivers import resolve_receivers
from edi_gateway.settings import ConfigurationError

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples" / "registers"
USER = "edi-gateway"
PASSWORD = "correct horse battery staple"
PATIENTS: list[str] = [
    p["id"]
    for p in json.loads((resource_dir("fixtures") / "registers" / "folkeregister.json").read_text("utf-8"))[
        "persons"
    ]
]
PERSON_NUMBER = re.compile(r"(?<!\d)\d{11}(?!\d)")


@dataclass
class Env:
    """AR and FLR stand-ins served on 127.0.0.1 over the fixture registers."""

    url: str
    flr: FastlegeRegisterStandIn
    ar: AddressRegisterStandIn
    fixtures: Registers

    def address(self) -> NhnAddressRegister:
        config = ArConfig(
            self.url,
            kommune_orgnr=load_kommune_orgnr(resource_dir("routing_rules") / "kommune-organisations.yaml"),
        )
        return NhnAddressRegister(config, auth=lambda method, url: {"Authorization": "DPoP ok"})

    def register(self, *, address: Any = None, **changes: Any) -> NhnFastlegeRegister:
        values: dict[str, Any] = {"endpoint": self.url + FLR_PATH, "username": USER, "password": PASSWORD}
        values.update(changes)
        return NhnFastlegeRegister(FlrConfig(**values), address if address is not None else self.address())


def _allow(request: Request, scope: str) -> str:
    return "test-client"


@pytest.fixture(scope="module")
def served() -> Iterator[Env]:
    fixtures = load_fixture_registers(resource_dir("fixtures") / "registers")
    flr = FastlegeRegisterStandIn(fixtures.fastlege, username=USER, password=PASSWORD)
    ar = AddressRegisterStandIn(fixtures.address, authorize=_allow)
    app = FastAPI()
    app.include_router(flr.router)
    app.include_router(ar.router)
    with run_in_thread(app) as url:
        yield Env(url, flr, ar, fixtures)


@pytest.fixture
def env(served: Env) -> Iterator[Env]:
    served.flr.faults.clear()
    served.ar.faults.clear()
    yield served
    served.flr.faults.clear()


@pytest.fixture
def log_output() -> Iterator[Callable[[], str]]:
    """Everything logged during the test (JSON lines, DEBUG and up)."""
    buffer = io.StringIO()
    configure_logging(stream=buffer, json=True, level="DEBUG")
    try:
        yield buffer.getvalue
    finally:
        configure_logging()


def _patient_with_gp(fixtures: Registers) -> str:
    return next(p for p in PATIENTS if fixtures.fastlege.fastlege_for(p) is not None)


# --- NHN's published answers ---------------------------------------------------------------------------


def test_the_real_gp_answer_gives_the_gp_her_id() -> None:
    """NHN's sample GetPatientGPDetails answer (SOAP 1.2) reads as GPHerId 4657988 and nothing else."""
    answer = parse_patient_gp_response((SAMPLES / "flr_get-patient-gp.xml").read_bytes())
    assert answer == FlrAnswer(gp_her_id=4657988)


def test_the_real_not_found_fault_means_no_fastlege() -> None:
    """NHN's fault for a person without a fastlege contract reads as None."""
    assert parse_patient_gp_response((SAMPLES / "flr_get-patient-gp-not-found.xml").read_bytes()) is None


def test_another_real_sender_fault_is_refused_naming_its_code_only() -> None:
    """A Sender fault that is not FLR's not-found (AR's InvalidHerIdSupplied) is RegisterRefused, code in the message."""
    data = (SAMPLES / "ar_get-communication-party-details-not-found-response.xml").read_bytes()
    with pytest.raises(RegisterRefused, match="InvalidHerIdSupplied") as caught:
        parse_patient_gp_response(data)
    assert "eksisterer" not in str(caught.value)


def _fault_11(code: str, text: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><s:Fault><faultcode>s:{code}</faultcode>'
        f"<faultstring>{text}</faultstring></s:Fault></s:Body></s:Envelope>"
    ).encode()


def test_server_faults_are_unavailable_in_both_soap_versions() -> None:
    """A SOAP 1.1 Server fault and a SOAP 1.2 Receiver fault are RegisterUnavailable."""
    with pytest.raises(RegisterUnavailable):
        parse_patient_gp_response(_fault_11("Server", "Timeout mot database"))
    soap12 = (SAMPLES / "flr_get-patient-gp-not-found.xml").read_bytes()
    soap12 = soap12.replace(b"s:Sender", b"s:Receiver").replace(b"ikke tilknyttet fastlegekontrakt", b"feil")
    with pytest.raises(RegisterUnavailable):
        parse_patient_gp_response(soap12)


def test_the_not_found_fault_in_soap_11_means_no_fastlege() -> None:
    """The not-found fault as the BasicHttp binding sends it (SOAP 1.1, Client) reads as None."""
    data = _fault_11("Client", "ArgumentException: Personen er ikke tilknyttet fastlegekontrakt")
    assert parse_patient_gp_response(data) is None


@pytest.mark.parametrize(
    "data",
    [
        b"not xml at all",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
        f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><Other/></s:Body></s:Envelope>'.encode(),
        b'<Envelope xmlns="urn:not-soap"><Body/></Envelope>',
        (
            f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><GetPatientGPDetailsResponse xmlns="{FLR_NS}">'
            "<GetPatientGPDetailsResult><GPHerId>81 00</GPHerId></GetPatientGPDetailsResult>"
            "</GetPatientGPDetailsResponse></s:Body></s:Envelope>"
        ).encode(),
    ],
)
def test_an_unreadable_answer_is_unavailable_and_says_malformed(data: bytes) -> None:
    """Not XML, a DTD, no expected body element, not SOAP, or an unreadable GPHerId: RegisterUnavailable, 'malformed'."""
    with pytest.raises(RegisterUnavailable, match="malformed"):
        parse_patient_gp_response(data)


def test_an_oversized_document_is_malformed() -> None:
    """A document over the size limit is refused before parsing."""
    data = (SAMPLES / "flr_get-patient-gp.xml").read_bytes()
    with pytest.raises(RegisterUnavailable, match="malformed"):
        parse_patient_gp_response(data, max_bytes=100)


def test_the_request_is_the_wsdls_soap_11_operation() -> None:
    """The envelope is SOAP 1.1 with GetPatientGPDetails/patientNin in the FLR namespace."""
    root = etree.fromstring(build_get_patient_gp_request("18897219545"))
    assert root.tag == f"{{{SOAP11_NS}}}Envelope"
    (nin,) = root.findall(f"{{{SOAP11_NS}}}Body/{{{FLR_NS}}}GetPatientGPDetails/{{{FLR_NS}}}patientNin")
    assert nin.text == "18897219545"


# --- against the stand-in: the same answers as the fixture registers ------------------------------


def test_every_fixture_patient_gets_the_fixture_fastlege(env: Env) -> None:
    """fastlege_for answers each fixture patient exactly as the fixture register, legekontor and GP alike."""
    with env.register() as register:
        for patient in PATIENTS:
            assert register.fastlege_for(patient) == env.fixtures.fastlege.fastlege_for(patient)
    assert any(env.fixtures.fastlege.fastlege_for(p) is None for p in PATIENTS)
    assert env.ar.validator.violations == [] and env.ar.validator.response_violations == []


def test_through_the_caches_the_answer_is_the_same_and_asked_once(env: Env) -> None:
    """With both caches in front, the answer equals the fixture one and a repeat does not reach FLR."""
    patient = _patient_with_gp(env.fixtures)
    address = CachedAddressRegister(env.address())
    with env.register(address=address) as flr:
        cached = CachedFastlegeRegister(flr)
        before = len(env.flr.calls)
        assert cached.fastlege_for(patient) == env.fixtures.fastlege.fastlege_for(patient)
        assert cached.fastlege_for(patient) == env.fixtures.fastlege.fastlege_for(patient)
    assert len(env.flr.calls) == before + 1
    assert cached.stats().hits == 1


def test_the_request_carries_basic_auth_and_the_wsdl_soap_action(env: Env) -> None:
    """The stand-in only answers HTTP Basic with the configured user and the exact SOAPAction of the WSDL."""
    body = build_get_patient_gp_request(_patient_with_gp(env.fixtures))
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION_GET_PATIENT_GP}"'}
    with httpx.Client(base_url=env.url) as client:
        assert client.post(FLR_PATH, content=body, headers=headers, auth=(USER, PASSWORD)).status_code == 200
        assert client.post(FLR_PATH, content=body, headers=headers, auth=(USER, "wrong")).status_code == 401
        wrong_action = {**headers, "SOAPAction": '"http://schemas.nhn.no/reg/flr/IFlrReadOperations/Other"'}
        refused = client.post(FLR_PATH, content=body, headers=wrong_action, auth=(USER, PASSWORD))
    assert refused.status_code == 500 and b"ActionNotSupported" in refused.content


def test_wrong_credentials_are_unavailable(env: Env) -> None:
    """FLR's 401 to our Basic credentials is RegisterUnavailable (an operator must fix the password)."""
    with env.register(password="wrong") as register, pytest.raises(RegisterUnavailable, match="401"):
        register.fastlege_for(_patient_with_gp(env.fixtures))


def test_a_person_number_of_the_wrong_shape_is_refused_before_asking(env: Env) -> None:
    """A person number that is not 11 digits is RegisterRefused and FLR is not asked."""
    before = len(env.flr.calls)
    with env.register() as register:
        for bad in ("1889721954", "1889721954x", " 18897219545"):
            with pytest.raises(RegisterRefused):
                register.fastlege_for(bad)
    assert len(env.flr.calls) == before


# --- faults ---------------------------------------------------------------------------------------------


def test_a_slow_register_times_out_as_unavailable(env: Env) -> None:
    """An answer later than the timeout is RegisterUnavailable."""
    env.flr.faults.inject("timeout", delay_s=1.0)
    with env.register(timeout_s=0.3) as register, pytest.raises(RegisterUnavailable, match="in time"):
        register.fastlege_for(_patient_with_gp(env.fixtures))
    assert env.flr.faults.wait_idle()


@pytest.mark.parametrize("status", [500, 502, 503, 429, 404, 403])
def test_statuses_without_a_fault_are_unavailable(env: Env, status: int) -> None:
    """5xx without a SOAP fault, 429, 404 (a wrong endpoint URL) and 403 are RegisterUnavailable."""
    env.flr.faults.inject("status", status=status)
    with env.register() as register, pytest.raises(RegisterUnavailable, match=str(status)):
        register.fastlege_for(_patient_with_gp(env.fixtures))


def test_a_bad_request_is_refused(env: Env) -> None:
    """HTTP 400 from FLR is RegisterRefused."""
    env.flr.faults.inject("status", status=400)
    with env.register() as register, pytest.raises(RegisterRefused):
        register.fastlege_for(_patient_with_gp(env.fixtures))


@pytest.mark.parametrize("kind", ["garbage", "oversized"])
def test_garbage_or_an_oversized_answer_is_malformed(env: Env, kind: FaultKind) -> None:
    """A 200 that is not XML, or is over max_response_bytes, is RegisterUnavailable, 'malformed'."""
    env.flr.faults.inject(kind, size_bytes=2 * 1024 * 1024)
    with env.register() as register, pytest.raises(RegisterUnavailable, match="malformed"):
        register.fastlege_for(_patient_with_gp(env.fixtures))


def test_an_address_register_fault_reaches_the_caller(env: Env) -> None:
    """When AR fails while FLR answered, the AR fault (RegisterUnavailable) is what the caller gets."""
    env.ar.faults.inject("status", status=503)
    with env.register() as register, pytest.raises(RegisterUnavailable, match="AR"):
        register.fastlege_for(_patient_with_gp(env.fixtures))


# --- answers AR cannot complete ------------------------------------------------------------------------


class FixedAddress:
    """An AddressRegister answering parent_of from a dict (the rest is not asked by the FLR register)."""

    def __init__(self, parents: dict[int, Virksomhet]) -> None:
        self.parents = parents

    def kommune(self, kommunenummer: str) -> Virksomhet | None:
        raise AssertionError("not asked")

    def virksomhet(self, her_id: int) -> Virksomhet | None:
        raise AssertionError("not asked")

    def parent_of(self, her_id: int) -> Virksomhet | None:
        return self.parents.get(her_id)

    def certificate_pem(self, her_id: int) -> bytes | None:
        raise AssertionError("not asked")

    def all_virksomheter(self) -> tuple[Virksomhet, ...]:
        raise AssertionError("not asked")


def _mock_flr(answer: bytes, address: FixedAddress) -> NhnFastlegeRegister:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer, headers={"Content-Type": "text/xml; charset=utf-8"})

    config = FlrConfig("https://ws-web.test.nhn.no/v2/flr/Basic", USER, PASSWORD)
    return NhnFastlegeRegister(config, address, client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_a_gp_unknown_to_ar_means_no_fastlege(log_output: Callable[[], str]) -> None:
    """When AR has no person for FLR's GPHerId, the answer is None and a warning names the GP's HER-id only."""
    register = _mock_flr((SAMPLES / "flr_get-patient-gp.xml").read_bytes(), FixedAddress({}))
    assert register.fastlege_for("18897219545") is None
    output = log_output()
    assert "4657988" in output and "18897219545" not in output and "12345678999" not in output


def test_a_contract_without_a_gp_her_id_means_no_fastlege() -> None:
    """An FLR answer naming no GPHerId cannot be addressed to a fastlege: None."""
    answer = (
        f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><GetPatientGPDetailsResponse xmlns="{FLR_NS}">'
        "<GetPatientGPDetailsResult><GPContract><GPOfficeOrganizationNumber>903886366"
        "</GPOfficeOrganizationNumber></GPContract><PatientNIN>18897219545</PatientNIN>"
        "</GetPatientGPDetailsResult></GetPatientGPDetailsResponse></s:Body></s:Envelope>"
    ).encode()
    assert _mock_flr(answer, FixedAddress({})).fastlege_for("18897219545") is None
    assert parse_patient_gp_response(answer) == FlrAnswer(gp_her_id=None, office_org_number="903886366")


def test_the_contracts_municipality_fills_a_missing_kommunenummer() -> None:
    """AR names no municipality; the FLR contract's Municipality becomes the legekontor's kommunenummer."""
    answer = (
        f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><GetPatientGPDetailsResponse xmlns="{FLR_NS}">'
        '<GetPatientGPDetailsResult><GPContract><Municipality xmlns:b="http://register.nhn.no/Common">'
        "<b:CodeValue>4003</b:CodeValue></Municipality></GPContract><GPHerId>8100083</GPHerId>"
        "</GetPatientGPDetailsResult></GetPatientGPDetailsResponse></s:Body></s:Envelope>"
    ).encode()
    gp = Practitioner(8100083, "Tone", "Hansen", "7449309")
    office = Virksomhet(
        Organisation(8100082, "Skien legesenter 1", "903886366"),
        "legekontor",
        "",
        "8100082_async",
        persons=(gp,),
    )
    found = _mock_flr(answer, FixedAddress({8100083: office})).fastlege_for("18897219545")
    assert found is not None
    assert found.practitioner == gp and found.legekontor.kommunenummer == "4003"


# --- privacy and configuration -----------------------------------------------------------------------------


def test_no_person_number_or_password_reaches_logs_or_errors(env: Env, log_output: Callable[[], str]) -> None:
    """Answers, not-found and faults log no person number, name or password, and their errors quote none."""
    messages: list[str] = []
    with env.register() as register:
        for patient in PATIENTS:
            register.fastlege_for(patient)
        faults: list[tuple[FaultKind, int]] = [("status", 500), ("garbage", 200), ("status", 400)]
        for kind, status in faults:
            env.flr.faults.inject(kind, status=status)
            try:
                register.fastlege_for(PATIENTS[0])
            except (RegisterUnavailable, RegisterRefused) as exc:
                messages.append(str(exc))
    text = log_output() + "\n".join(messages)
    assert len(messages) == 3
    assert PERSON_NUMBER.search(text) is None
    assert PASSWORD not in text
    gps = [g for p in PATIENTS if (g := env.fixtures.fastlege.fastlege_for(p)) is not None]
    assert not any(g.practitioner.family_name in text for g in gps)


def test_the_password_is_not_in_the_config_repr() -> None:
    """repr(FlrConfig) shows the user but never the password."""
    config = FlrConfig("https://ws-web.test.nhn.no/v2/flr/Basic", USER, PASSWORD)
    assert USER in repr(config) and PASSWORD not in repr(config)


@pytest.mark.parametrize(
    "changes",
    [
        {"endpoint": "http://ws-web.test.nhn.no/v2/flr/Basic"},
        {"password": ""},
        {"username": ""},
        {"timeout_s": -1},
        {"max_response_bytes": 0},
    ],
)
def test_a_config_that_cannot_work_is_refused(changes: dict[str, Any]) -> None:
    """Plain HTTP off loopback, missing credentials and non-positive limits are refused."""
    values: dict[str, Any] = {
        "endpoint": "https://ws-web.test.nhn.no/v2/flr/Basic",
        "username": USER,
        "password": PASSWORD,
    }
    values.update(changes)
    with pytest.raises(ConfigurationError):
        FlrConfig(**values)


# --- no population register ----------------------------------------------------------------------------


def test_without_a_population_register_routing_needs_the_kommunenummer() -> None:
    """NoPopulationRegister knows no one: without a kommunenummer routing rejects with routing.bosted_unknown."""
    fixtures = load_fixture_registers(resource_dir("fixtures") / "registers")
    registers = Registers(
        population=NoPopulationRegister(), address=fixtures.address, fastlege=fixtures.fastlege
    )
    rules = load_routing_rules(resource_dir("routing_rules"))
    assert NoPopulationRegister().bosted_kommune(PATIENTS[0]) is None
    with pytest.raises(RequestRejected) as caught:
        resolve_receivers(
            person_id=PATIENTS[0],
            kommunenummer=None,
            send_to_fastlege=False,
            registers=registers,
            rules=rules,
        )
    assert caught.value.codes == ["routing.bosted_unknown"]
    resolved = resolve_receivers(
        person_id=PATIENTS[0], kommunenummer="4001", send_to_fastlege=False, registers=registers, rules=rules
    )
    assert resolved.receivers[0].organisation.her_id == 8100005


def test_an_unmapped_kommune_is_rejected_as_unknown_by_routing(env: Env) -> None:
    """With the NHN AR, a kommunenummer missing from the mapping is routing.kommune_unknown."""
    with env.address() as address:
        registers = Registers(NoPopulationRegister(), address, env.fixtures.fastlege)
        with pytest.raises(RequestRejected) as caught:
            resolve_receivers(
                person_id=PATIENTS[0],
                kommunenummer="0301",
                send_to_fastlege=False,
                registers=registers,
                rules=load_routing_rules(resource_dir("routing_rules")),
            )
    assert caught.value.codes == ["routing.kommune_unknown"]
