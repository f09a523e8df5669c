"""Fixtures for the NHN client tests: test keys made at test time, a fake clock, real local servers.

Keys are generated here, never read from the repository. Stand-in apps run in a real uvicorn server on
127.0.0.1 (``serve_app``), so the clients under test speak real HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.types import ASGIApp

from edi_gateway.dev.nhn_standin.server import run_in_thread
from edi_gateway.nhn.keys import ClientKey


class FakeClock:
    """A clock that stands still until a test moves it; starts at the real time."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead."""
        self.now += seconds


@pytest.fixture
def serve_app() -> Iterator[Callable[[ASGIApp], str]]:
    """``serve_app(app) -> base_url``: serve ``app`` on a free port of 127.0.0.1 until the test ends."""
    with ExitStack() as stack:

        def serve(app: ASGIApp) -> str:
            return stack.enter_context(run_in_thread(app))

        yield serve


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, made once per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_private_key() -> rsa.RSAPrivateKey:
    """A second 2048-bit RSA key (a key HelseID does not know)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_private_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def client_key(rsa_private_key: rsa.RSAPrivateKey) -> ClientKey:
    """The test client's key (RSA, PS256)."""
    return ClientKey.from_private_key(rsa_private_key, kid="test-client-key")
