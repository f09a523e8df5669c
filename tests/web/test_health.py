"""Readiness checks and their HTTP answer, without a broker: each check says what fails and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient

from edi_gateway.web import create_app
from edi_gateway.web.health import check_signing
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
    """With no broker at the configured address /readyz answers 503 and names the failing check only."""
    settings = make_settings(
        tmp_path, pki_template, amqp_url=NOBODY_LISTENS, database_url=sqlite_url, queue_prefix="t."
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert "127.0.0.1:1" in body["checks"]["broker"]["detail"]
    assert "guest" not in response.text  # credentials never leave the process
