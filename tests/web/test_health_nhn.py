"""``/readyz`` and ``/metrics`` of a web app on the ``nhn`` transport, against the NHN stand-in.

Each test builds its own app (the readiness outcome is cached per app for ``READY_CACHE_S``), on the
real RabbitMQ (the broker check) and an own SQLite file, with a signed-in viewer to see the checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from edi_gateway.dev.nhn_standin.msh import Fault
from edi_gateway.dev.nhn_standin.world import Party, StandIn, party_of, run_standin
from edi_gateway.registers.fixtures import load_fixture_registers
from edi_gateway.services.access import Role, create_operator, create_token
from edi_gateway.settings import Settings
from edi_gateway.settings_nhn import MSH_SCOPE
from edi_gateway.web import create_app
from tests.services.conftest import make_settings

pytestmark = pytest.mark.rabbitmq

PASSWORD = "correct horse battery"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Prometheus samples by metric name and sorted labels."""


@dataclass
class Nhn:
    """The running stand-in, our party in it, and the settings of a gateway on the ``amqp`` transport."""

    standin: StandIn
    party: Party
    base: Settings

    def settings(self, party: Party | None = None) -> Settings:
        """The base settings on the ``nhn`` transport, acting as ``party`` (default: our own)."""
        return self.standin.settings_for(self.base, party or self.party)


@pytest.fixture
def nhn(tmp_path: Path, pki_template: Path, amqp_url: str, sqlite_url: str) -> Iterator[Nhn]:
    """The stand-in, serving our own HER-id's HelseID client (keyed with the test PKI's key)."""
    base = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=sqlite_url, queue_prefix="unused."
    )
    registers = load_fixture_registers(base.effective_registers_dir)
    (ours,) = [v for v in registers.address.all_virksomheter() if v.her_id == base.our_her_id]
    party = party_of(ours, base.pki_dir / f"{ours.her_id}.key.pem")
    with run_standin([party], registers, certificates_dir=base.pki_dir) as standin:
        yield Nhn(standin, party, base)


def _app(settings: Settings) -> tuple[FastAPI, dict[str, str]]:
    """A fresh web app on ``settings`` (so a fresh readiness cache) and a viewer's bearer header."""
    app = create_app(settings)
    store = app.state.web.store
    store.migrate()
    create_operator(store, "viewer", PASSWORD, Role.VIEWER)
    return app, {"Authorization": f"Bearer {create_token(store, 'viewer', label='monitoring')}"}


def _readyz(settings: Settings) -> tuple[int, dict[str, Any]]:
    """The status and body of one signed-in ``/readyz`` on a fresh app."""
    app, auth = _app(settings)
    with TestClient(app) as client:
        response = client.get("/readyz", headers=auth)
    return response.status_code, response.json()


def _stranger_key(folder: Path) -> Path:
    """A fresh RSA key no HelseID client is registered with, in an owner-only PEM file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "stranger.key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(path, 0o600)
    return path


def test_readyz_on_nhn_is_up_with_a_token_and_a_message_service_answer(nhn: Nhn) -> None:
    """With the stand-in answering, an operator's /readyz is 200 up with token_endpoint and transport ok."""
    status, body = _readyz(nhn.settings())
    assert status == 200, body
    assert body["status"] == "up" and body["failing"] == []
    token, transport = body["checks"]["token_endpoint"], body["checks"]["transport"]
    assert token["ok"] and "token in hand" in token["detail"]
    assert transport["ok"] and transport["detail"] == f"nhn: {nhn.standin.base_url} answers"
    assert nhn.standin.helseid.issued == 1
    assert nhn.standin.violations() == []


def test_readyz_on_nhn_is_down_when_helseid_refuses_our_client(nhn: Nhn, tmp_path: Path) -> None:
    """A client key HelseID does not know gets no token: /readyz is 503 down, failing token_endpoint."""
    stranger = Party(nhn.party.client_id, _stranger_key(tmp_path), nhn.party.her_ids)
    status, body = _readyz(nhn.settings(stranger))
    assert status == 503, body
    assert body["status"] == "down" and body["failing"] == ["token_endpoint"]
    detail = body["checks"]["token_endpoint"]["detail"]
    assert not body["checks"]["token_endpoint"]["ok"] and "refused" in detail
    assert "transport" not in body["checks"]  # no message service call without a token
    assert nhn.standin.helseid.issued == 0
    assert nhn.standin.msh.faults.pending("GetMessages") == 0


def test_readyz_on_nhn_fails_transport_when_the_message_service_answers_500(nhn: Nhn) -> None:
    """A 500 from GetMessages fails the transport check (naming the fault kind) while the token is fine."""
    nhn.standin.msh.faults.queue("GetMessages", Fault.server_error())
    status, body = _readyz(nhn.settings())
    assert status == 503, body
    assert body["status"] == "down" and body["failing"] == ["transport"]
    assert body["checks"]["token_endpoint"]["ok"]
    transport = body["checks"]["transport"]
    assert not transport["ok"] and "server_error" in transport["detail"]
    assert nhn.standin.msh.faults.pending("GetMessages") == 0  # the fault was used by the ping


def test_readyz_on_nhn_keeps_its_token_and_renews_it_when_the_service_says_expired(nhn: Nhn) -> None:
    """Readiness reuses its cached token between runs; a token the service calls expired is replaced once."""
    app, auth = _app(nhn.settings())
    app.state.web.readiness.ttl_s = 0  # every request runs the checks
    with TestClient(app) as client:
        first = client.get("/readyz", headers=auth)
        second = client.get("/readyz", headers=auth)
        issued_before_expiry = nhn.standin.helseid.issued
        nhn.standin.helseid.expire_all_tokens()
        third = client.get("/readyz", headers=auth)
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200], third.json()
    assert issued_before_expiry == 1
    assert nhn.standin.helseid.issued == 2


def test_readyz_on_amqp_reports_the_amqp_transport(
    tmp_path: Path, pki_template: Path, amqp_url: str, sqlite_url: str
) -> None:
    """On the amqp transport /readyz is up and its transport check says amqp."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=amqp_url, database_url=sqlite_url, queue_prefix="unused."
    )
    assert settings.transport == "amqp"
    status, body = _readyz(settings)
    assert status == 200, body
    assert "token_endpoint" not in body["checks"]
    transport = body["checks"]["transport"]
    assert transport["ok"] and transport["detail"].startswith("amqp:")


def _samples(client: TestClient) -> Samples:
    """Every sample of /metrics by name and labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_after_a_readyz_on_nhn_count_the_api_call_and_the_token(nhn: Nhn) -> None:
    """/metrics shows the readiness ping as a GetMessages call and its HelseID token as a refresh."""
    app, auth = _app(nhn.settings())
    calls = "edi_gateway_nhn_api_seconds_count"
    refreshes = "edi_gateway_helseid_token_refreshes_total"
    with TestClient(app) as client:
        # The counters belong to the process: earlier tests may have moved them already.
        before = _samples(client)
        assert client.get("/readyz", headers=auth).status_code == 200
        after = _samples(client)
    pings_before = _value(before, calls, operation="GetMessages")
    pings_after = _value(after, calls, operation="GetMessages")
    assert pings_after > 0 and pings_after == pings_before + 1
    assert (refreshes, (("scope", MSH_SCOPE),)) in after
    assert _value(after, refreshes, scope=MSH_SCOPE) == _value(before, refreshes, scope=MSH_SCOPE) + 1
    assert "edi_gateway_messages" in {name for name, _ in after}  # the store's figures are still there
