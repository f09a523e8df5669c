"""Readiness checks and their HTTP answer, without a broker: each check says what fails and why.

``ReadinessProbe`` runs the checks at most once per interval (the real broker count is in test_sessions).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from edi_gateway.errors import RegisterUnavailable
from edi_gateway.services.access import Role, create_operator, create_token
from edi_gateway.web import create_app, health
from edi_gateway.web.health import Check, ReadinessProbe, check_party_certificates, check_signing
from tests.services.conftest import make_settings

NOBODY_LISTENS = "amqp://guest:guest@127.0.0.1:1/%2F"


def _gateway_with_cert(not_before: datetime, not_after: datetime) -> Any:
    cert = SimpleNamespace(not_valid_before_utc=not_before, not_valid_after_utc=not_after)
    return SimpleNamespace(signer=SimpleNamespace(certificate=cert))


def test_signing_check_counts_days_to_expiry() -> None:
    """A valid certificate passes with the days left; one close to expiry says to renew it."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    fine = check_signing(_gateway_with_cert(now - timedelta(days=1), now + timedelta(days=200, hours=1)), now)
    assert fine.ok and fine.detail == "certificate expires in 200 days"
    soon = check_signing(_gateway_with_cert(now - timedelta(days=1), now + timedelta(days=5, hours=1)), now)
    assert soon.ok and "renew soon" in soon.detail


def test_signing_check_fails_on_an_expired_or_future_certificate() -> None:
    """An expired certificate, or one not valid yet, makes the gateway not ready."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    expired = check_signing(_gateway_with_cert(now - timedelta(days=400), now - timedelta(days=1)), now)
    assert not expired.ok and "expired" in expired.detail
    future = check_signing(_gateway_with_cert(now + timedelta(days=1), now + timedelta(days=400)), now)
    assert not future.ok and "not valid yet" in future.detail


def test_readyz_is_503_naming_the_broker_when_it_is_down(
    tmp_path: Path, pki_template: Path, sqlite_url: str
) -> None:
    """With no broker /readyz answers 503: "down" to anyone, naming the broker to a signed-in operator only."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=NOBODY_LISTENS, database_url=sqlite_url, queue_prefix="t."
    )
    app = create_app(settings)
    store = app.state.web.store
    store.migrate()
    create_operator(store, "viewer", "correct horse battery", Role.VIEWER)
    auth = {"Authorization": f"Bearer {create_token(store, 'viewer', label='monitoring')}"}
    with TestClient(app) as client:
        anonymous = client.get("/readyz")
        response = client.get("/readyz", headers=auth)
        assert client.get("/healthz").status_code == 200
    assert anonymous.status_code == 503 and anonymous.json() == {"status": "down"}
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down" and body["failing"] == ["broker"]
    assert "127.0.0.1:1" in body["checks"]["broker"]["detail"]
    assert "guest" not in response.text  # credentials never leave the process


def test_the_probe_answers_from_its_last_run_until_the_interval_is_over() -> None:
    """Calls within ttl_s get the first run's outcome; the first call after it runs the checks again."""
    runs: list[float] = []
    now = [0.0]
    probe = ReadinessProbe(ttl_s=5.0, clock=lambda: now[0])
    gateway = _gateway_with_cert(datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    gateway.settings = SimpleNamespace(transport="amqp")
    checks = (lambda gw: runs.append(now[0]) or Check("counted", True, "ok"),)
    with patch.object(health, "CHECKS", checks):
        for at in (0.0, 1.0, 4.9):
            now[0] = at
            assert [c.name for c in probe.checks(gateway)] == ["counted", "transport"]
        now[0] = 5.0
        probe.checks(gateway)
    assert runs == [0.0, 5.0]


def _pem_valid_until(not_after: datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "party")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - timedelta(days=700))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class _Address:
    """An address register holding one certificate per party, or failing like a register that is down."""

    def __init__(self, certificates: dict[int, bytes | None], *, down: bool = False) -> None:
        self._certificates = certificates
        self._down = down

    def all_virksomheter(self) -> tuple[Any, ...]:
        if self._down:
            raise RegisterUnavailable("Adresseregisteret timed out")
        return tuple(SimpleNamespace(her_id=h) for h in [8100001, *self._certificates])

    def certificate_pem(self, her_id: int) -> bytes | None:
        return self._certificates[her_id]


def _gateway_with_parties(address: _Address) -> Any:
    return SimpleNamespace(
        registers=SimpleNamespace(address=address), settings=SimpleNamespace(our_her_id=8100001)
    )


def test_party_certificates_close_to_expiry_or_expired_are_named_without_failing_readiness() -> None:
    """A party certificate expiring within 30 days, or already expired, is named by HER-id; the gateway stays ready."""
    now = datetime(2026, 12, 7, tzinfo=UTC)
    address = _Address(
        {
            8100005: _pem_valid_until(now + timedelta(days=300)),
            8100010: _pem_valid_until(now + timedelta(days=10)),
            8100015: _pem_valid_until(now - timedelta(days=1)),
            8100020: None,
        }
    )
    check = check_party_certificates(_gateway_with_parties(address), now)
    assert check.ok
    assert check.detail == (
        "4 parties; renew soon: HER-id 8100010; expired: HER-id 8100015 (their signed AppRecs are parked)"
    )


def test_party_certificates_check_fails_when_the_register_cannot_answer() -> None:
    """A register that is down makes the certificate check, and so readiness, fail with its words."""
    check = check_party_certificates(_gateway_with_parties(_Address({}, down=True)))
    assert not check.ok and "Adresseregisteret timed out" in check.detail
