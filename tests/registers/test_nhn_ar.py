"""NhnAddressRegister against the AR stand-in over real HTTP: the fixture registers' answers, and its faults."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, HTTPException
from starlette.requests import Request

from edi_gateway.dev.nhn_standin.helseid import HelseIdStandIn, RegisteredClient
from edi_gateway.dev.nhn_standin.registers import AddressRegisterStandIn
from edi_gateway.dev.nhn_standin.server import run_in_thread
from edi_gateway.errors import RegisterRefused, RegisterUnavailable, TokenUnavailable
from edi_gateway.nhn.helseid import HelseIdClient, HelseIdConfig
from edi_gateway.nhn.keys import ClientKey
from edi_gateway.pki import ensure_test_pki
from edi_gateway.registers.base import Registers, Virksomhet
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.registers.nhn_ar import AR_SCOPE, ArConfig, NhnAddressRegister, load_kommune_orgnr
from edi_gateway.resources import resource_dir
from edi_gateway.settings import ConfigurationError

OWN = 8100001  # Sykehuset Telemark HF
OWN_UNITS = (8100002, 8100003, 8100004)
CERTIFIED = {8100005: "Porsgrunn kommune", 8100082: "Skien legesenter 1"}
KOMMUNE_ORGNR_FILE = resource_dir("routing_rules") / "kommune-organisations.yaml"


@dataclass
class TokenGate:
    """The stand-in's access check: one valid token, which a test can revoke."""

    valid: str = "token-1"
    scopes_seen: list[str] = field(default_factory=list)

    def authorize(self, request: Request, scope: str) -> str:
        self.scopes_seen.append(scope)
        if request.headers.get("authorization") != f"DPoP {self.valid}":
            raise HTTPException(401, "invalid_token")
        return "test-client"


@dataclass
class Env:
    """The stand-in served on 127.0.0.1, its fixture registers and certificates."""

    url: str
    standin: AddressRegisterStandIn
    fixtures: Registers
    gate: TokenGate
    certificates: dict[int, bytes]

    def register(self, **changes: Any) -> NhnAddressRegister:
        """A register pointed at the stand-in, presenting the gate's current token."""
        config = ArConfig(
            self.url,
            timeout_s=changes.pop("timeout_s", 5.0),
            kommune_orgnr=load_kommune_orgnr(KOMMUNE_ORGNR_FILE),
            max_response_bytes=changes.pop("max_response_bytes", 4 * 1024 * 1024),
        )
        options: dict[str, Any] = {
            "auth": lambda method, url: {"Authorization": f"DPoP {self.gate.valid}"},
            "own_her_id": OWN,
            "own_unit_her_ids": OWN_UNITS,
        }
        options.update(changes)
        return NhnAddressRegister(config, **options)


@pytest.fixture(scope="module")
def fixtures() -> Registers:
    return load_fixture_registers(resource_dir("fixtures") / "registers")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[int, bytes]:
    pki = ensure_test_pki(tmp_path_factory.mktemp("pki"), CERTIFIED.items())
    return {her_id: pki.cert_pem(her_id) for her_id in CERTIFIED}


@pytest.fixture(scope="module")
def served(fixtures: Registers, certificates: dict[int, bytes]) -> Iterator[Env]:
    gate = TokenGate()
    standin = AddressRegisterStandIn(fixtures.address, authorize=gate.authorize, certificates=certificates)
    app = FastAPI()
    app.include_router(standin.router)
    with run_in_thread(app) as url:
        yield Env(url, standin, fixtures, gate, certificates)


@pytest.fixture
def env(served: Env) -> Iterator[Env]:
    """The served stand-in with no faults queued, a fresh call record and the first token valid."""
    served.standin.faults.clear()
    served.standin.reset_calls()
    served.standin.validator.reset()
    served.gate.valid = "token-1"
    yield served
    served.standin.faults.clear()


@pytest.fixture
def nhn(env: Env) -> Iterator[NhnAddressRegister]:
    with env.register() as register:
        yield register


def _kommuner(fixtures: Registers) -> list[Virksomhet]:
    return [v for v in fixtures.address.all_virksomheter() if v.kind == "kommune"]


def _legekontor(fixtures: Registers) -> list[Virksomhet]:
    return [v for v in fixtures.address.all_virksomheter() if v.kind == "legekontor"]


# --- the same answers as the fixture registers ----------------------------------------------------


def test_the_shipped_kommune_mapping_is_the_fixture_kommuner() -> None:
    """kommune-organisations.yaml maps each of the 17 Telemark kommuner to its fixture organisasjonsnummer."""
    fixtures = load_fixture_registers(resource_dir("fixtures") / "registers")
    expected = {v.kommunenummer: v.organisation.org_number for v in _kommuner(fixtures)}
    assert len(expected) == 17
    assert load_kommune_orgnr(KOMMUNE_ORGNR_FILE) == expected


def test_every_kommune_comes_back_as_the_fixture_register_has_it(env: Env, nhn: NhnAddressRegister) -> None:
    """kommune() answers each Telemark kommune exactly as the fixture register: services, queue, orgnr, kind."""
    for expected in _kommuner(env.fixtures):
        assert nhn.kommune(expected.kommunenummer) == expected
    assert env.standin.validator.violations == []
    assert env.standin.validator.response_violations == []


def test_a_kommune_outside_the_mapping_is_not_found(nhn: NhnAddressRegister, env: Env) -> None:
    """A kommunenummer the mapping lacks answers None without asking AR; a malformed one is refused."""
    assert nhn.kommune("9999") is None
    with pytest.raises(RegisterRefused):
        nhn.kommune("40a1")
    assert env.standin.calls == []


def test_virksomhet_answers_kommuner_and_legekontor_like_the_fixture_register(
    env: Env, nhn: NhnAddressRegister
) -> None:
    """virksomhet() matches the fixture register; a legekontor's kommunenummer is empty (AR has none)."""
    for expected in _kommuner(env.fixtures):
        assert nhn.virksomhet(expected.her_id) == expected
    for expected in _legekontor(env.fixtures):
        found = nhn.virksomhet(expected.her_id)
        assert found is not None and found.kommunenummer == ""
        assert replace(found, kommunenummer=expected.kommunenummer) == expected


def test_virksomhet_is_none_for_services_persons_and_unknown_ids(env: Env, nhn: NhnAddressRegister) -> None:
    """A service's or a person's HER-id is no virksomhet, as in the fixture register; neither is an unknown one."""
    porsgrunn = env.fixtures.address.kommune("4001")
    legekontor = _legekontor(env.fixtures)[0]
    assert porsgrunn is not None
    for her_id in (porsgrunn.services[0].her_id, legekontor.persons[0].her_id, 8199999):
        assert env.fixtures.address.virksomhet(her_id) is None
        assert nhn.virksomhet(her_id) is None


def test_parent_of_every_service_and_person_is_the_fixture_owner(env: Env, nhn: NhnAddressRegister) -> None:
    """parent_of() leads every service and fastlege HER-id back to the same virksomhet as the fixture register."""
    for owner in [*_kommuner(env.fixtures), *_legekontor(env.fixtures)]:
        for her_id in [owner.her_id, *(s.her_id for s in owner.services), *(p.her_id for p in owner.persons)]:
            found = nhn.parent_of(her_id)
            expected = env.fixtures.address.parent_of(her_id)
            assert found is not None and expected is not None
            assert found.her_id == expected.her_id
            assert replace(found, kommunenummer=expected.kommunenummer) == expected
    assert nhn.parent_of(8199999) is None


def test_our_own_virksomhet_carries_its_configured_units(env: Env, nhn: NhnAddressRegister) -> None:
    """Our virksomhet has the configured units; parent_of a unit is us; a unit is no virksomhet of its own."""
    expected = env.fixtures.address.virksomhet(OWN)
    own = nhn.virksomhet(OWN)
    assert expected is not None and own is not None
    assert own.units == expected.units
    assert (own.kind, own.queue, own.organisation) == (expected.kind, expected.queue, expected.organisation)
    for unit in OWN_UNITS:
        parent = nhn.parent_of(unit)
        assert parent is not None and parent.her_id == OWN
        assert nhn.virksomhet(unit) is None


def test_all_virksomheter_lists_the_mapped_kommuner_and_ourselves(env: Env, nhn: NhnAddressRegister) -> None:
    """all_virksomheter() is the 17 kommuner of the mapping, then our own virksomhet."""
    found = nhn.all_virksomheter()
    assert [v.her_id for v in found] == [v.her_id for v in _kommuner(env.fixtures)] + [OWN]


def test_a_sub_organisation_not_ours_answers_as_its_own_virksomhet(env: Env) -> None:
    """Without the own-unit configuration a unit cannot be traced to its owner: it is its own virksomhet."""
    with env.register(own_unit_her_ids=()) as register:
        found = register.parent_of(8100002)
    assert found is not None and found.her_id == 8100002 and found.units == ()


# --- certificates -----------------------------------------------------------------------------------


def test_the_signing_certificate_of_the_owner_is_returned_as_pem(env: Env, nhn: NhnAddressRegister) -> None:
    """certificate_pem of a virksomhet, its service or its fastlege is the owner's certificate, as PEM."""
    porsgrunn = env.fixtures.address.kommune("4001")
    legekontor = env.fixtures.address.virksomhet(8100082)
    assert porsgrunn is not None and legekontor is not None
    cases = {
        8100005: 8100005,
        porsgrunn.services[1].her_id: 8100005,
        8100082: 8100082,
        legekontor.persons[0].her_id: 8100082,
    }
    for asked, owner in cases.items():
        pem = nhn.certificate_pem(asked)
        assert pem is not None and pem.startswith(b"-----BEGIN CERTIFICATE-----")
        assert x509.load_pem_x509_certificate(pem) == x509.load_pem_x509_certificate(env.certificates[owner])


def test_certificate_not_after_is_the_certificates_expiry(env: Env, nhn: NhnAddressRegister) -> None:
    """certificate_not_after() gives the notAfter of the owner's signing certificate, and None without one."""
    expected = x509.load_pem_x509_certificate(env.certificates[8100005]).not_valid_after_utc
    assert nhn.certificate_not_after(8100006) == expected
    assert nhn.certificate_not_after(8100010) is None


def test_the_encryption_certificate_of_the_owner_is_read_from_its_own_endpoint(
    env: Env, nhn: NhnAddressRegister
) -> None:
    """encryption_certificate_pem asks AR's encryption endpoint for the owner; none for an unknown party."""
    pem = nhn.encryption_certificate_pem(8100006)  # Porsgrunn's Tjenestekontoret: Porsgrunn kommune's
    assert pem is not None
    assert x509.load_pem_x509_certificate(pem) == x509.load_pem_x509_certificate(env.certificates[8100005])
    assert "GET /api/v1/certificate/8100005/encryption" in env.standin.calls
    assert nhn.encryption_certificate_pem(8199999) is None


def test_a_party_without_a_certificate_or_unknown_gets_none(nhn: NhnAddressRegister) -> None:
    """certificate_pem is None for a virksomhet AR has no signing certificate for, and for an unknown HER-id."""
    assert nhn.certificate_pem(8100010) is None
    assert nhn.certificate_pem(8199999) is None


# --- faults ---------------------------------------------------------------------------------------------


def test_a_slow_register_times_out_as_unavailable(env: Env) -> None:
    """An answer later than the timeout is RegisterUnavailable."""
    env.standin.faults.inject("timeout", delay_s=1.0)
    with env.register(timeout_s=0.3) as register, pytest.raises(RegisterUnavailable, match="in time"):
        register.virksomhet(8100005)
    assert env.standin.faults.wait_idle()


def test_a_slow_answer_within_the_timeout_is_used(env: Env, nhn: NhnAddressRegister) -> None:
    """An answer that comes late but within the timeout is read as usual."""
    env.standin.faults.inject("timeout", delay_s=0.2)
    found = nhn.virksomhet(8100005)
    assert found is not None and found.her_id == 8100005


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_server_errors_and_rate_limits_are_unavailable(
    env: Env, nhn: NhnAddressRegister, status: int
) -> None:
    """5xx, 429 and 408 are RegisterUnavailable, and the next question is answered again."""
    env.standin.faults.inject("status", status=status)
    with pytest.raises(RegisterUnavailable, match=str(status)):
        nhn.kommune("4001")
    assert nhn.kommune("4001") is not None


@pytest.mark.parametrize("status", [400, 422])
def test_a_bad_request_is_refused(env: Env, nhn: NhnAddressRegister, status: int) -> None:
    """400 (and other 4xx the API means for the question) is RegisterRefused."""
    env.standin.faults.inject("status", status=status)
    with pytest.raises(RegisterRefused):
        nhn.virksomhet(8100005)


def test_a_forbidden_client_is_unavailable_not_refused(env: Env, nhn: NhnAddressRegister) -> None:
    """403 (our client lacks access) is RegisterUnavailable: the question itself is fine."""
    env.standin.faults.inject("status", status=403)
    with pytest.raises(RegisterUnavailable, match="403"):
        nhn.virksomhet(8100005)


def test_garbage_is_unavailable_and_says_malformed(env: Env, nhn: NhnAddressRegister) -> None:
    """An answer that is not JSON is RegisterUnavailable with 'malformed' in its message."""
    env.standin.faults.inject("garbage")
    with pytest.raises(RegisterUnavailable, match="malformed"):
        nhn.virksomhet(8100005)


def test_an_oversized_answer_is_unavailable_and_says_malformed(env: Env) -> None:
    """An answer over max_response_bytes is RegisterUnavailable with 'malformed' in its message."""
    env.standin.faults.inject("oversized", size_bytes=256 * 1024)
    with (
        env.register(max_response_bytes=64 * 1024) as register,
        pytest.raises(RegisterUnavailable, match="malformed"),
    ):
        register.virksomhet(8100005)


def test_an_unreachable_register_is_unavailable() -> None:
    """Nothing listening at the URL is RegisterUnavailable, not an httpx error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ArConfig(f"http://127.0.0.1:{port}", timeout_s=1.0)
    with (
        NhnAddressRegister(config, auth=lambda m, u: {}) as register,
        pytest.raises(RegisterUnavailable) as caught,
    ):
        register.virksomhet(8100005)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_401_calls_on_unauthorized_and_retries_once(env: Env) -> None:
    """After a 401 the register calls on_unauthorized, asks again with new headers, and gets the answer."""
    env.gate.valid = "token-2"
    tokens = iter(["token-1", "token-2"])
    current = {"token": next(tokens)}
    refreshed: list[int] = []

    def on_unauthorized() -> None:
        refreshed.append(1)
        current["token"] = next(tokens)

    with env.register(
        auth=lambda method, url: {"Authorization": f"DPoP {current['token']}"},
        on_unauthorized=on_unauthorized,
    ) as register:
        found = register.virksomhet(8100005)
    assert found is not None and found.her_id == 8100005
    assert refreshed == [1]
    assert env.standin.calls[:2] == ["GET /api/v1/communicationparty/8100005"] * 2


def test_a_second_401_is_unavailable(env: Env) -> None:
    """When the retried request is refused too, the register raises RegisterUnavailable after one retry."""
    refreshed: list[int] = []
    with (
        env.register(
            auth=lambda method, url: {"Authorization": "DPoP revoked"},
            on_unauthorized=lambda: refreshed.append(1),
        ) as register,
        pytest.raises(RegisterUnavailable, match="401"),
    ):
        register.virksomhet(8100005)
    assert refreshed == [1]
    assert len(env.standin.calls) == 2


def test_no_token_is_unavailable(env: Env) -> None:
    """A TokenUnavailable from the auth callable becomes RegisterUnavailable, and nothing is sent."""

    def no_token(method: str, url: str) -> dict[str, str]:
        raise TokenUnavailable("HelseID is down", kind="connect")

    with env.register(auth=no_token) as register, pytest.raises(RegisterUnavailable, match="token"):
        register.virksomhet(8100005)
    assert env.standin.calls == []


@pytest.mark.parametrize("her_id", [0, -5, 2**31, True])
def test_an_impossible_her_id_is_refused_before_asking(
    env: Env, nhn: NhnAddressRegister, her_id: int
) -> None:
    """A HER-id that cannot be one (not a positive int32) is RegisterRefused, and AR is not asked."""
    for question in (nhn.virksomhet, nhn.parent_of, nhn.certificate_pem):
        with pytest.raises(RegisterRefused):
            question(her_id)
    assert env.standin.calls == []


def _mock_register(handler: Callable[[httpx.Request], httpx.Response]) -> NhnAddressRegister:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    config = ArConfig("https://cpapi.test.grunndata.nhn.no", kommune_orgnr={"4001": "960267737"})
    return NhnAddressRegister(config, auth=lambda m, u: {}, client=client)


@pytest.mark.parametrize(
    "answer",
    [
        {"herId": "not a number", "type": "Organization", "amqpTransportStatus": "Enabled"},
        {"herId": 8100005, "type": "Municipality", "amqpTransportStatus": "Enabled"},
        {"herId": 8100999, "type": "Organization", "amqpTransportStatus": "Enabled"},
        [1, 2, 3],
    ],
)
def test_json_of_the_wrong_shape_is_malformed(answer: object) -> None:
    """Well-formed JSON that is not the asked-for CommunicationParty is RegisterUnavailable, 'malformed'."""
    register = _mock_register(lambda request: httpx.Response(200, json=answer))
    with pytest.raises(RegisterUnavailable, match="malformed"):
        register.virksomhet(8100005)


def test_a_service_of_another_code_list_is_left_out() -> None:
    """Services typed from a code list other than S62/8663 are not offered to routing."""
    parties = {
        8100005: {
            "herId": 8100005,
            "name": "Porsgrunn kommune",
            "type": "Organization",
            "amqpTransportStatus": "Enabled",
            "organizationDetails": {"organizationNumber": "960267737", "services": [1, 2], "persons": []},
        },
        1: {
            "herId": 1,
            "name": "Tjenestekontoret",
            "type": "Service",
            "amqpTransportStatus": "Inherited",
            "serviceDetails": {
                "serviceType": {"codeListId": "8663", "value": "KD0501"},
                "parentOrganization": {"herId": 8100005, "name": "Porsgrunn kommune"},
            },
        },
        2: {
            "herId": 2,
            "name": "Other",
            "type": "Service",
            "amqpTransportStatus": "Inherited",
            "serviceDetails": {
                "serviceType": {"codeListId": "9999", "value": "X"},
                "parentOrganization": {"herId": 8100005, "name": "Porsgrunn kommune"},
            },
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=[parties[1], parties[2]])
        return httpx.Response(200, json=parties[8100005])

    found = _mock_register(handler).kommune("4001")
    assert found is not None
    assert [(s.her_id, s.code) for s in found.services] == [(1, "KD0501")]
    assert found.queue == "8100005_async"


def test_the_queue_is_the_last_segment_of_the_amqp_address() -> None:
    """Virksomhet.queue is the last path segment of amqpAddress.amqpAsyncQueue, whatever the HER-id."""
    party = {
        "herId": 8100005,
        "name": "Porsgrunn kommune",
        "type": "Organization",
        "amqpTransportStatus": "Enabled",
        "amqpAddress": {"amqpAsyncQueue": "sb.test.nhn.no/DigitalDialog/91468_async"},
        "organizationDetails": {"organizationNumber": "960267737", "services": [], "persons": []},
    }
    found = _mock_register(lambda request: httpx.Response(200, json=party)).virksomhet(8100005)
    assert found is not None and found.queue == "91468_async"


@pytest.mark.parametrize(
    "error", [httpx.ReadError("reset"), httpx.RemoteProtocolError("bad"), httpx.ConnectTimeout("slow")]
)
def test_no_httpx_error_escapes(error: httpx.HTTPError) -> None:
    """Transport-level httpx errors all become RegisterUnavailable."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(RegisterUnavailable) as caught:
        _mock_register(handler).virksomhet(8100005)
    assert isinstance(caught.value.__cause__, httpx.HTTPError)


# --- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"base_url": "http://cpapi.test.grunndata.nhn.no"},
        {"base_url": "ftp://127.0.0.1"},
        {"timeout_s": 0},
        {"max_response_bytes": 0},
        {"kommune_orgnr": {"401": "960267737"}},
        {"kommune_orgnr": {"4001": "960267738"}},
        {"kommune_orgnr": {"4001": "960267737", "4003": "960267737"}},
    ],
)
def test_a_config_that_cannot_work_is_refused(changes: dict[str, Any]) -> None:
    """Plain HTTP off loopback, non-positive limits and bad kommune entries are refused at start-up."""
    values: dict[str, Any] = {"base_url": "https://cpapi.test.grunndata.nhn.no"}
    values.update(changes)
    with pytest.raises(ConfigurationError):
        ArConfig(**values)


def test_a_kommune_file_with_a_bad_entry_is_refused(tmp_path: Path) -> None:
    """load_kommune_orgnr refuses an unquoted (integer) kommunenummer and a file that is not a mapping."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({4001: "960267737"}), encoding="utf-8")
    with pytest.raises(ConfigurationError):
        load_kommune_orgnr(bad)
    bad.write_text("- 4001\n", encoding="utf-8")
    with pytest.raises(ConfigurationError):
        load_kommune_orgnr(bad)


# --- the stand-in itself -------------------------------------------------------------------------------


def test_the_standin_checks_the_token_with_the_ar_scope_then_the_spec(env: Env) -> None:
    """A request without the token is 401; an invalid one is 400 and recorded; the scope asked is AR's."""
    with httpx.Client(base_url=env.url) as client:
        assert client.get("/api/v1/communicationparty/8100005").status_code == 401
        good = {"Authorization": f"DPoP {env.gate.valid}"}
        assert client.get("/api/v1/organization/12", headers=good).status_code == 400
        assert client.get("/api/v1/communicationparty/abc", headers=good).status_code == 400
        assert client.get("/api/v1/communicationparty/8100005", headers=good).status_code == 200
    assert len(env.standin.validator.violations) == 2
    assert set(env.gate.scopes_seen) == {AR_SCOPE}


def test_the_standin_search_finds_services_by_type(env: Env) -> None:
    """POST /communicationparty/search by service type finds every fixture tjenestekontor (KD0501)."""
    expected = sorted(s.her_id for v in _kommuner(env.fixtures) for s in v.services if s.code == "KD0501")
    with httpx.Client(base_url=env.url, headers={"Authorization": f"DPoP {env.gate.valid}"}) as client:
        answer = client.post(
            "/api/v1/communicationparty/search",
            params={"Page": 1, "Size": 100},
            json={
                "serviceSearchParameters": {"serviceTypeCodeListId": "S62", "serviceTypeCodeValue": "KD0501"}
            },
        )
    assert answer.status_code == 200
    assert sorted(p["herId"] for p in answer.json()["communicationParties"]) == expected
    assert env.standin.validator.response_violations == []


# --- with the HelseID stand-in and client ----------------------------------------------------------------


def test_with_helseid_an_expired_token_is_replaced_and_the_question_answered(fixtures: Registers) -> None:
    """Through the HelseID stand-in and client: DPoP headers pass, and an expired token is renewed after the 401."""
    key = ClientKey.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid="ar")
    helseid = HelseIdStandIn(
        issuer="http://127.0.0.1",
        audience="http://127.0.0.1",
        clients=[RegisteredClient("ar-client", dict(key.public_jwk), frozenset({AR_SCOPE}))],
    )
    standin = AddressRegisterStandIn(fixtures.address, authorize=helseid.authorize)
    app = FastAPI()
    app.include_router(helseid.router)
    app.include_router(standin.router)
    with run_in_thread(app) as url:
        config = HelseIdConfig(
            token_endpoint=f"{url}/connect/token",
            client_id="ar-client",
            key=key,
            scopes=(AR_SCOPE,),
            audience="http://127.0.0.1",
        )
        with HelseIdClient(config) as tokens:
            ar_config = ArConfig(url, kommune_orgnr=load_kommune_orgnr(KOMMUNE_ORGNR_FILE))
            with NhnAddressRegister(
                ar_config, auth=tokens.headers_for, on_unauthorized=tokens.invalidate
            ) as register:
                assert register.kommune("4001") == fixtures.address.kommune("4001")
                helseid.expire_all_tokens()
                assert register.virksomhet(8100082) is not None
    assert helseid.issued == 2
    assert standin.validator.violations == []
