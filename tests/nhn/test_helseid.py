"""The HelseID client against the HelseID stand-in (real HTTP), and its handling of every fault.

The stand-in runs in a real uvicorn server; a tiny API route calls ``standin.authorize`` the way the
message-service stand-in does. Faults that are purely the client's business (what it makes of a 500, a
429, a body that is not a token) use ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request, Response

from edi_gateway.dev.nhn_standin.helseid import HelseIdStandIn, RegisteredClient
from edi_gateway.dev.nhn_standin.server import run_in_thread
from edi_gateway.errors import TokenUnavailable
from edi_gateway.logging import configure_logging
from edi_gateway.nhn.helseid import (
    ASSERTION_TYPE,
    HelseIdClient,
    HelseIdConfig,
    access_token_hash,
    build_client_assertion,
    build_dpop_proof,
)
from edi_gateway.nhn.keys import ClientKey
from edi_gateway.settings import ConfigurationError
from tests.nhn.conftest import FakeClock

SCOPE = "nhn:msh/api"
ISSUER = "https://helseid-sts.standin.local"
CLIENT_ID = "edi-gateway-test"
MOCK_ENDPOINT = "https://helseid-sts.test.invalid/connect/token"


# --- the stand-in behind a real server ------------------------------------------------------------


def make_app(standin: HelseIdStandIn, *, token_delay_s: float = 0.0) -> FastAPI:
    """The stand-in's token endpoint plus two API routes that authorise through it."""
    app = FastAPI()
    app.include_router(standin.router)

    @app.api_route("/api/messages", methods=["GET", "POST"])
    def messages(request: Request) -> dict[str, str]:
        return {"client_id": standin.authorize(request, SCOPE)}

    @app.get("/api/other")
    def other(request: Request) -> dict[str, str]:
        return {"client_id": standin.authorize(request, "nhn:other/api")}

    if token_delay_s:

        @app.middleware("http")
        async def slow_token_endpoint(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            if request.url.path == "/connect/token":
                await asyncio.sleep(token_delay_s)
            return await call_next(request)

    return app


@dataclass
class Env:
    """A running stand-in and what the tests need around it."""

    standin: HelseIdStandIn
    base: str
    clock: FakeClock
    key: ClientKey
    token_statuses: list[int] = field(default_factory=list)
    https: list[httpx.Client] = field(default_factory=list)

    @property
    def token_url(self) -> str:
        return f"{self.base}/connect/token"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/messages"

    def config(self, **changes: Any) -> HelseIdConfig:
        values: dict[str, Any] = {
            "token_endpoint": self.token_url,
            "client_id": CLIENT_ID,
            "key": self.key,
            "scopes": (SCOPE,),
            "audience": ISSUER,
        }
        values.update(changes)
        return HelseIdConfig(**values)

    def client(self, *, clock: Callable[[], float] | None = None, **changes: Any) -> HelseIdClient:
        """A client on the same fake clock as the stand-in (unless told), recording token answers."""

        def record(response: httpx.Response) -> None:
            if response.request.url.path == "/connect/token":
                self.token_statuses.append(response.status_code)

        http = httpx.Client(event_hooks={"response": [record]})
        self.https.append(http)
        return HelseIdClient(self.config(**changes), http=http, clock=clock or self.clock)

    def call_api(
        self, headers: dict[str, str], *, method: str = "GET", url: str | None = None
    ) -> httpx.Response:
        return httpx.request(method, url or self.api_url, headers=headers)


def _standin(key: ClientKey, clock: FakeClock, **options: Any) -> HelseIdStandIn:
    client = RegisteredClient(client_id=CLIENT_ID, public_jwk=dict(key.public_jwk), scopes=frozenset({SCOPE}))
    return HelseIdStandIn(issuer=ISSUER, audience=ISSUER, clients=[client], clock=clock, **options)


@pytest.fixture
def start_env(serve_app: Callable[[Any], str], client_key: ClientKey) -> Iterator[Callable[..., Env]]:
    """``start_env(key=None, token_delay_s=0, **standin_options) -> Env``: a stand-in served on 127.0.0.1."""
    made: list[Env] = []

    def start(*, key: ClientKey | None = None, token_delay_s: float = 0.0, **options: Any) -> Env:
        clock = FakeClock()
        key = key or client_key
        standin = _standin(key, clock, **options)
        env = Env(standin, serve_app(make_app(standin, token_delay_s=token_delay_s)), clock, key)
        made.append(env)
        return env

    yield start
    for env in made:
        for http in env.https:
            http.close()


@pytest.fixture
def env(start_env: Callable[..., Env]) -> Env:
    """A stand-in that asks for a DPoP nonce, as HelseID does."""
    return start_env()


def _token_of(headers: dict[str, str]) -> str:
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "DPoP"
    return token


# --- tokens from the stand-in --------------------------------------------------------------------


def test_token_is_fetched_after_the_nonce_challenge_and_authorises_api_calls(env: Env) -> None:
    """A token is fetched with a signed assertion and a DPoP proof, after one nonce challenge, and works."""
    client = env.client()
    headers = client.headers_for("GET", env.api_url)
    assert env.token_statuses == [400, 200]
    assert env.standin.issued == 1
    assert client.refreshes == 1
    assert set(headers) == {"Authorization", "DPoP"}
    answer = env.call_api(headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"client_id": CLIENT_ID}


def test_post_and_url_with_query_are_authorised(env: Env) -> None:
    """A POST proof, and a proof for a URL with a query (htu leaves the query out), pass ``authorize``."""
    client = env.client()
    assert env.call_api(client.headers_for("POST", env.api_url), method="POST").status_code == 200
    url = f"{env.api_url}?messagesToFetch=10&herId=8100001"
    assert env.call_api(client.headers_for("GET", url), url=url).status_code == 200


def test_cached_token_is_reused(env: Env) -> None:
    """Many API calls within the token's lifetime use one token, each with a fresh proof."""
    client = env.client()
    seen = [client.headers_for("GET", env.api_url) for _ in range(20)]
    assert env.standin.issued == 1
    assert client.refreshes == 1
    assert len({h["Authorization"] for h in seen}) == 1
    assert len({h["DPoP"] for h in seen}) == 20
    assert all(env.call_api(h).status_code == 200 for h in seen[:5])


def test_token_is_refreshed_shortly_before_expiry(env: Env) -> None:
    """A 300 s token is reused for 240 s (the 60 s margin) and replaced after that."""
    client = env.client()
    first = client.headers_for("GET", env.api_url)["Authorization"]
    env.clock.advance(239)
    assert client.headers_for("GET", env.api_url)["Authorization"] == first
    assert env.standin.issued == 1
    env.clock.advance(2)
    second = client.headers_for("GET", env.api_url)
    assert second["Authorization"] != first
    assert env.standin.issued == 2
    assert client.refreshes == 2
    assert env.call_api(second).status_code == 200


def test_short_lived_token_is_kept_for_half_its_life(start_env: Callable[..., Env]) -> None:
    """A token shorter-lived than twice the margin is reused for half its lifetime, not fetched every call."""
    env = start_env(token_lifetime_s=60)
    client = env.client()
    client.headers_for("GET", env.api_url)
    env.clock.advance(29)
    client.headers_for("GET", env.api_url)
    assert env.standin.issued == 1
    env.clock.advance(2)
    client.headers_for("GET", env.api_url)
    assert env.standin.issued == 2


def test_ten_threads_needing_a_token_cause_one_fetch(start_env: Callable[..., Env]) -> None:
    """Ten threads asking for headers at once, while the token endpoint is slow, share one fetch."""
    env = start_env(token_delay_s=0.3)
    client = env.client()
    barrier = threading.Barrier(10)
    results: list[dict[str, str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            results.append(client.headers_for("GET", env.api_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(results) == 10
    assert env.standin.issued == 1
    assert client.refreshes == 1
    assert env.token_statuses == [400, 200]
    assert len({h["Authorization"] for h in results}) == 1
    assert all(env.call_api(h).status_code == 200 for h in results)


def test_invalidate_causes_one_new_fetch(env: Env) -> None:
    """After invalidate() the next request fetches one new token, which later requests reuse."""
    client = env.client()
    old = client.headers_for("GET", env.api_url)
    client.invalidate()
    new = [client.headers_for("GET", env.api_url) for _ in range(5)]
    assert env.standin.issued == 2
    assert client.refreshes == 2
    assert {h["Authorization"] for h in new} == {new[0]["Authorization"]} != {old["Authorization"]}


def test_invalidate_with_an_old_tokens_headers_keeps_the_new_token(env: Env) -> None:
    """A late 401 for a token already replaced does not drop the replacement."""
    client = env.client()
    old = client.headers_for("GET", env.api_url)
    client.invalidate(used=old)
    current = client.headers_for("GET", env.api_url)
    client.invalidate(used=old)
    assert client.headers_for("GET", env.api_url)["Authorization"] == current["Authorization"]
    assert env.standin.issued == 2


def test_check_fetches_once_and_then_uses_the_cache(env: Env) -> None:
    """check() gets a token when there is none and reuses a cached one after that."""
    client = env.client()
    client.check()
    client.check()
    assert env.standin.issued == 1
    assert client.refreshes == 1


def test_expired_token_is_refused_and_a_new_one_works(env: Env) -> None:
    """A token the stand-in expired is refused with 401 invalid_token; after invalidate() a new one works."""
    client = env.client()
    client.check()
    env.standin.expire_all_tokens()
    refused = env.call_api(client.headers_for("GET", env.api_url))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "expired" in refused.json()["detail"]
    client.invalidate()
    assert env.call_api(client.headers_for("GET", env.api_url)).status_code == 200
    assert env.standin.issued == 2


def test_token_past_its_lifetime_is_refused(env: Env) -> None:
    """A token used after its 300 s lifetime (the client told to keep it) is refused as expired."""
    client = env.client(refresh_margin_s=0)
    headers = client.headers_for("GET", env.api_url)
    env.clock.advance(301)
    proof = build_dpop_proof(env.key, "GET", env.api_url, now=env.clock(), access_token=_token_of(headers))
    refused = env.call_api({"Authorization": headers["Authorization"], "DPoP": proof})
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]


def test_wrong_key_is_refused(env: Env, other_rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A client signing with a key HelseID does not know for it gets TokenUnavailable(kind="refused")."""
    stranger = ClientKey.from_private_key(other_rsa_private_key, kid="test-client-key")
    client = env.client(key=stranger)
    with pytest.raises(TokenUnavailable) as caught:
        client.headers_for("GET", env.api_url)
    assert caught.value.kind == "refused"
    assert "invalid_client" in str(caught.value)
    assert env.standin.issued == 0
    assert client.refreshes == 0


def test_scope_not_registered_is_refused(env: Env) -> None:
    """Asking for a scope the client is not registered for is refused (invalid_scope)."""
    client = env.client(scopes=(SCOPE, "nhn:other/api"))
    with pytest.raises(TokenUnavailable) as caught:
        client.check()
    assert caught.value.kind == "refused"
    assert "invalid_scope" in str(caught.value)


def test_api_scope_not_granted_is_forbidden(env: Env) -> None:
    """A valid token without the scope an API route needs gets 403 insufficient_scope."""
    client = env.client()
    url = f"{env.base}/api/other"
    refused = env.call_api(client.headers_for("GET", url), url=url)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]


def test_ec_key_gets_a_token(
    start_env: Callable[..., Env], ec_private_key: ec.EllipticCurvePrivateKey
) -> None:
    """A P-256 client key (ES256 assertions and proofs) gets a token that works at the API."""
    env = start_env(key=ClientKey.from_private_key(ec_private_key, kid="ec-key"))
    headers = env.client().headers_for("GET", env.api_url)
    assert jwt.get_unverified_header(headers["DPoP"])["alg"] == "ES256"
    assert env.call_api(headers).status_code == 200


# --- clock skew ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset_s", "works"),
    [(+8, True), (+14, True), (+30, False), (-30, True), (-55, True), (-70, False)],
)
def test_client_clock_skew(env: Env, offset_s: int, works: bool) -> None:
    """The stand-in takes a client clock up to 15 s ahead (10 s skew + 5 s back-dating) or 60 s behind, not more."""
    client_clock = FakeClock(env.clock.now + offset_s)
    client = env.client(clock=client_clock)
    if works:
        assert env.call_api(client.headers_for("GET", env.api_url)).status_code == 200
        return
    with pytest.raises(TokenUnavailable) as caught:
        client.check()
    assert caught.value.kind == "refused"
    assert "check the clock" in str(caught.value)


# --- the stand-in's token endpoint refuses what HelseID refuses ----------------------------------


def _form(config: HelseIdConfig, assertion: str, **changes: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": config.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": SCOPE,
    }
    form.update(changes)
    return form


def _nonce(env: Env) -> str:
    proof = build_dpop_proof(env.key, "POST", env.token_url, now=env.clock())
    answer = httpx.post(
        env.token_url,
        data=_form(env.config(), build_client_assertion(env.config(), now=env.clock())),
        headers={"DPoP": proof},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "use_dpop_nonce"
    return answer.headers["DPoP-Nonce"]


def _post_token(env: Env, form: dict[str, str], *, nonce: str, proof: str | None = None) -> httpx.Response:
    proof = proof or build_dpop_proof(env.key, "POST", env.token_url, now=env.clock(), nonce=nonce)
    return httpx.post(env.token_url, data=form, headers={"DPoP": proof})


def test_replayed_assertion_jti_is_refused(env: Env) -> None:
    """An assertion used once is refused the second time (same jti), even with a fresh DPoP proof."""
    config = env.config()
    nonce = _nonce(env)
    assertion = build_client_assertion(config, now=env.clock())
    first = _post_token(env, _form(config, assertion), nonce=nonce)
    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "DPoP"
    again = _post_token(env, _form(config, assertion), nonce=nonce)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_client"
    assert "replay" in again.json()["error_description"]
    assert env.standin.issued == 1


def test_replayed_token_request_proof_is_refused(env: Env) -> None:
    """A DPoP proof used once at the token endpoint is refused the second time."""
    config = env.config()
    nonce = _nonce(env)
    proof = build_dpop_proof(env.key, "POST", env.token_url, now=env.clock(), nonce=nonce)
    first = _post_token(
        env, _form(config, build_client_assertion(config, now=env.clock())), nonce=nonce, proof=proof
    )
    assert first.status_code == 200
    again = _post_token(
        env, _form(config, build_client_assertion(config, now=env.clock())), nonce=nonce, proof=proof
    )
    assert again.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "the DPoP proof's jti was used before (replay)",
    }


def _crafted_assertion(env: Env, **changes: Any) -> str:
    now = int(env.clock())
    claims: dict[str, Any] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": f"jti-{time.monotonic_ns()}",
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, env.key.private_key, algorithm=env.key.alg, headers={"kid": env.key.kid})


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        ({"aud": "https://elsewhere.invalid"}, "invalid_client", "aud"),
        ({"iss": "someone-else"}, "invalid_client", "iss and sub"),
        ({"sub": "someone-else"}, "invalid_client", "iss and sub"),
        ({"exp": "later"}, "invalid_client", "numeric exp"),
        ({"exp": 0}, "invalid_client", "expired"),
        ({"exp": int(time.time()) + 600}, "invalid_client", "lives over 120 s"),
        ({"jti": None}, "invalid_client", "needs a jti"),
    ],
)
def test_bad_assertion_is_refused(env: Env, changes: dict[str, Any], error: str, reason: str) -> None:
    """An assertion with a wrong audience, issuer, subject, lifetime or no jti is refused."""
    answer = _post_token(env, _form(env.config(), _crafted_assertion(env, **changes)), nonce=_nonce(env))
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert reason in answer.json()["error_description"]


@pytest.mark.parametrize(
    ("changes", "error", "reason"),
    [
        ({"grant_type": "password"}, "invalid_request", "client_credentials"),
        ({"client_assertion_type": "urn:other"}, "invalid_request", "client_assertion_type"),
        ({"scope": ""}, "invalid_request", "scope"),
        ({"client_id": "stranger"}, "invalid_client", "not known"),
        ({"client_assertion": "not.a.jwt"}, "invalid_client", "not a JWT"),
    ],
)
def test_bad_token_request_is_refused(env: Env, changes: dict[str, str], error: str, reason: str) -> None:
    """A token request with a wrong grant, assertion type, scope, client or assertion is refused."""
    form = _form(env.config(), build_client_assertion(env.config(), now=env.clock()), **changes)
    answer = _post_token(env, form, nonce=_nonce(env))
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert reason in answer.json()["error_description"]


def test_token_request_proof_for_another_url_or_method_is_refused(env: Env) -> None:
    """A token request whose proof names another URL or method is refused as invalid_dpop_proof."""
    nonce = _nonce(env)
    config = env.config()
    for method, url, reason in [
        ("POST", f"{env.base}/other/token", "htu"),
        ("POST", "http://example.invalid/connect/token", "htu"),
        ("GET", env.token_url, "htm"),
    ]:
        proof = build_dpop_proof(env.key, method, url, now=env.clock(), nonce=nonce)
        answer = _post_token(
            env, _form(config, build_client_assertion(config, now=env.clock())), nonce=nonce, proof=proof
        )
        assert answer.json()["error"] == "invalid_dpop_proof"
        assert reason in answer.json()["error_description"]


def test_token_request_without_proof_is_refused(env: Env) -> None:
    """A token request without a DPoP header is refused as invalid_dpop_proof."""
    config = env.config()
    answer = httpx.post(env.token_url, data=_form(config, build_client_assertion(config, now=env.clock())))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_dpop_proof"


def test_stand_in_without_nonce_issues_at_once(start_env: Callable[..., Env]) -> None:
    """With require_nonce off the first token request is answered with a token."""
    env = start_env(require_nonce=False)
    env.client().check()
    assert env.token_statuses == [200]


# --- the stand-in's authorize refuses bad proofs -------------------------------------------------


def _proof_claims(env: Env, token: str, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "jti": f"p-{time.monotonic_ns()}",
        "htm": "GET",
        "htu": env.api_url,
        "iat": int(env.clock()),
        "ath": access_token_hash(token),
    }
    claims.update(changes)
    return claims


def _public_jwk(key: ClientKey) -> dict[str, str]:
    return dict(key.public_jwk)


@pytest.mark.parametrize(
    ("make_proof", "reason"),
    [
        (
            lambda env, token: build_dpop_proof(
                env.key, "POST", env.api_url, now=env.clock(), access_token=token
            ),
            "htm",
        ),
        (
            lambda env, token: build_dpop_proof(
                env.key, "GET", f"{env.base}/api/other", now=env.clock(), access_token=token
            ),
            "htu",
        ),
        (
            lambda env, token: build_dpop_proof(
                env.key,
                "GET",
                env.api_url.replace("127.0.0.1", "localhost"),
                now=env.clock(),
                access_token=token,
            ),
            "htu",
        ),
        (
            lambda env, token: build_dpop_proof(
                env.key, "GET", env.api_url, now=env.clock(), access_token="other"
            ),
            "ath",
        ),
        (lambda env, token: build_dpop_proof(env.key, "GET", env.api_url, now=env.clock()), "ath"),
        (
            lambda env, token: build_dpop_proof(
                env.key, "GET", env.api_url, now=env.clock() - 120, access_token=token
            ),
            "iat",
        ),
        (
            lambda env, token: jwt.encode(
                _proof_claims(env, token),
                env.key.private_key,
                algorithm="PS256",
                headers={
                    "typ": "dpop+jwt",
                    "jwk": jwt.algorithms.RSAAlgorithm.to_jwk(env.key.private_key, as_dict=True),
                },
            ),
            "private key members",
        ),
        (
            lambda env, token: jwt.encode(
                _proof_claims(env, token),
                env.key.private_key,
                algorithm="PS256",
                headers={"typ": "JWT", "jwk": _public_jwk(env.key)},
            ),
            "typ",
        ),
        (
            lambda env, token: jwt.encode(
                _proof_claims(env, token),
                "",
                algorithm="none",
                headers={"typ": "dpop+jwt", "jwk": _public_jwk(env.key)},
            ),
            "asymmetric",
        ),
        (
            lambda env, token: jwt.encode(
                _proof_claims(env, token),
                "k" * 32,
                algorithm="HS256",
                headers={"typ": "dpop+jwt", "jwk": _public_jwk(env.key)},
            ),
            "asymmetric",
        ),
        (
            lambda env, token: jwt.encode(
                _proof_claims(env, token), env.key.private_key, algorithm="PS256", headers={"typ": "dpop+jwt"}
            ),
            "no jwk",
        ),
        (lambda env, token: "not-a-jwt", "not a JWT"),
    ],
    ids=[
        "wrong-htm",
        "wrong-path",
        "wrong-host",
        "wrong-ath",
        "no-ath",
        "stale-iat",
        "private-jwk",
        "wrong-typ",
        "alg-none",
        "alg-hs256",
        "no-jwk",
        "garbage",
    ],
)
def test_authorize_refuses_bad_proofs(env: Env, make_proof: Callable[[Env, str], str], reason: str) -> None:
    """A proof with the wrong htm, htu, ath, iat, typ or alg, a private jwk or none is refused with 401."""
    headers = env.client().headers_for("GET", env.api_url)
    token = _token_of(headers)
    refused = env.call_api({"Authorization": headers["Authorization"], "DPoP": make_proof(env, token)})
    assert refused.status_code == 401
    assert 'error="invalid_dpop_proof"' in refused.headers["WWW-Authenticate"]
    assert reason in refused.json()["detail"]
    assert env.call_api(headers).status_code == 200  # the token itself is fine


def test_authorize_refuses_a_proof_by_another_key(env: Env, other_rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A well-formed proof signed by a key other than the one the token is bound to is refused."""
    headers = env.client().headers_for("GET", env.api_url)
    stranger = ClientKey.from_private_key(other_rsa_private_key, kid="x")
    proof = build_dpop_proof(stranger, "GET", env.api_url, now=env.clock(), access_token=_token_of(headers))
    refused = env.call_api({"Authorization": headers["Authorization"], "DPoP": proof})
    assert refused.status_code == 401
    assert "bound to" in refused.json()["detail"]


def test_authorize_refuses_a_replayed_proof(env: Env) -> None:
    """The same API proof sent twice is accepted once and refused the second time."""
    headers = env.client().headers_for("GET", env.api_url)
    assert env.call_api(headers).status_code == 200
    again = env.call_api(headers)
    assert again.status_code == 401
    assert "replay" in again.json()["detail"]


@pytest.mark.parametrize(
    "make_headers",
    [
        lambda headers: {"DPoP": headers["DPoP"]},
        lambda headers: {
            "Authorization": headers["Authorization"].replace("DPoP ", "Bearer "),
            "DPoP": headers["DPoP"],
        },
        lambda headers: {"Authorization": "DPoP unknown-token", "DPoP": headers["DPoP"]},
    ],
    ids=["no-authorization", "bearer-scheme", "unknown-token"],
)
def test_authorize_refuses_missing_or_unknown_tokens(
    env: Env, make_headers: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    """No token, a Bearer token, or a token never issued is refused with 401 invalid_token."""
    headers = env.client().headers_for("GET", env.api_url)
    refused = env.call_api(make_headers(headers))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_authorize_refuses_a_request_without_proof(env: Env) -> None:
    """A DPoP token sent without a DPoP proof is refused as invalid_dpop_proof."""
    headers = env.client().headers_for("GET", env.api_url)
    refused = env.call_api({"Authorization": headers["Authorization"]})
    assert refused.status_code == 401
    assert 'error="invalid_dpop_proof"' in refused.headers["WWW-Authenticate"]


# --- faults of the token endpoint ----------------------------------------------------------------


def test_token_endpoint_down_is_connect(client_key: ClientKey) -> None:
    """A token endpoint nobody listens on gives TokenUnavailable(kind="connect")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = HelseIdConfig(
        token_endpoint=f"http://127.0.0.1:{port}/connect/token",
        client_id=CLIENT_ID,
        key=client_key,
        scopes=(SCOPE,),
        audience=ISSUER,
        timeout_s=2,
    )
    with HelseIdClient(config) as client, pytest.raises(TokenUnavailable) as caught:
        client.check()
    assert caught.value.kind == "connect"


def _mock_client(
    key: ClientKey,
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    clock: Callable[[], float] = time.time,
    **changes: Any,
) -> HelseIdClient:
    values: dict[str, Any] = {
        "token_endpoint": MOCK_ENDPOINT,
        "client_id": CLIENT_ID,
        "key": key,
        "scopes": (SCOPE,),
        "audience": ISSUER,
    }
    values.update(changes)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return HelseIdClient(HelseIdConfig(**values), http=http, clock=clock)


def _token_answer(**changes: Any) -> httpx.Response:
    payload: dict[str, Any] = {"access_token": "tok-123", "token_type": "DPoP", "expires_in": 300}
    payload.update(changes)
    return httpx.Response(200, json={k: v for k, v in payload.items() if v is not None})


def _fails_with(key: ClientKey, answer: httpx.Response | Exception, **changes: Any) -> TokenUnavailable:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = _mock_client(key, handler, **changes)
    with pytest.raises(TokenUnavailable) as caught:
        client.headers_for("GET", "https://api.example.invalid/messages")
    assert client.refreshes == 0
    return caught.value


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (httpx.Response(500, text="boom"), "server_error"),
        (httpx.Response(503, json={"error": "temporarily_unavailable"}), "server_error"),
        (httpx.Response(429, headers={"Retry-After": "5"}), "rate_limited"),
        (httpx.Response(400, json={"error": "invalid_client", "error_description": "bad key"}), "refused"),
        (httpx.Response(400, json={"error": "invalid_scope"}), "refused"),
        (httpx.Response(400, json={"error": "unauthorized_client"}), "refused"),
        (httpx.Response(401, json={"error": "invalid_client"}), "refused"),
        (httpx.Response(403, text="<html>forbidden</html>"), "refused"),
        (httpx.Response(302, headers={"Location": "https://elsewhere.invalid/"}), "malformed"),
        (httpx.Response(200, text="<html>not json</html>"), "malformed"),
        (httpx.Response(200, json=["access_token"]), "malformed"),
        (_token_answer(access_token=None), "malformed"),
        (_token_answer(access_token=""), "malformed"),
        (_token_answer(access_token="has space"), "malformed"),
        (_token_answer(token_type="Bearer"), "malformed"),
        (_token_answer(expires_in=None), "malformed"),
        (_token_answer(expires_in="300"), "malformed"),
        (_token_answer(expires_in=0), "malformed"),
        (_token_answer(expires_in=-5), "malformed"),
        (_token_answer(expires_in=True), "malformed"),
        (_token_answer(expires_in=10**9), "malformed"),
        (httpx.Response(200, content=b'{"access_token": "' + b"a" * 70_000 + b'"}'), "malformed"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ConnectError("refused"), "connect"),
        (httpx.RemoteProtocolError("closed"), "connect"),
    ],
)
def test_token_endpoint_faults_map_to_kinds(
    client_key: ClientKey, answer: httpx.Response | Exception, kind: str
) -> None:
    """Each kind of failed token request is TokenUnavailable with the right kind, and no token is kept."""
    assert _fails_with(client_key, answer).kind == kind


def test_oversized_answer_without_length_is_malformed(client_key: ClientKey) -> None:
    """A streamed answer without Content-Length is read only up to 64 KiB, then refused as malformed."""
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):
            sent.append(1)
            yield b" " * 1024

    error = _fails_with(client_key, httpx.Response(200, content=chunks()))
    assert error.kind == "malformed"
    assert len(sent) < 100


def test_refusal_names_the_error_code_not_the_answer(client_key: ClientKey) -> None:
    """A refusal carries HelseID's error code and a short printable description."""
    error = _fails_with(
        client_key,
        httpx.Response(
            400,
            json={
                "error": "invalid_client",
                "error_description": "The client assertion expired\n" + "x" * 500,
            },
        ),
    )
    assert "invalid_client" in str(error)
    assert "\n" not in str(error)
    assert len(str(error)) < 400


def test_token_request_is_built_as_helseid_expects(client_key: ClientKey) -> None:
    """The token request carries the form fields, an assertion as HelseID wants it and a token-endpoint proof."""
    now = 1_800_000_000.0
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return _token_answer()

    client = _mock_client(client_key, handler, clock=lambda: now, scopes=(SCOPE, "nhn:cp-api/access-v2-dpop"))
    client.check()
    client.invalidate()
    client.check()
    assert len(requests) == 2
    request = requests[0]
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == CLIENT_ID
    assert form["client_assertion_type"] == ASSERTION_TYPE
    assert form["scope"] == f"{SCOPE} nhn:cp-api/access-v2-dpop"
    public = client_key.private_key.public_key()
    header = jwt.get_unverified_header(form["client_assertion"])
    assert (header["kid"], header["alg"]) == ("test-client-key", "PS256")
    claims = jwt.decode(
        form["client_assertion"],
        public,
        algorithms=["PS256"],
        audience=ISSUER,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["iat"] == claims["nbf"] == int(now) - 5
    assert claims["exp"] == int(now) + 60
    other = dict(httpx.QueryParams(requests[1].content.decode()))
    assert jwt.decode(other["client_assertion"], options={"verify_signature": False})["jti"] != claims["jti"]
    proof = request.headers["DPoP"]
    proof_header = jwt.get_unverified_header(proof)
    assert proof_header["typ"] == "dpop+jwt"
    assert proof_header["jwk"]["n"] == client_key.public_jwk["n"]
    assert "d" not in proof_header["jwk"]
    proof_claims = jwt.decode(proof, public, algorithms=["PS256"], options={"verify_iat": False})
    assert (proof_claims["htm"], proof_claims["htu"], proof_claims["iat"]) == (
        "POST",
        MOCK_ENDPOINT,
        int(now),
    )
    assert "ath" not in proof_claims and "nonce" not in proof_claims


def test_api_proof_carries_ath_and_htu_without_query(client_key: ClientKey) -> None:
    """An API proof names the method, the URL without query and fragment, and the token's hash."""
    client = _mock_client(client_key, lambda request: _token_answer(access_token="tok-abc"))
    headers = client.headers_for("get", "https://API.example.invalid:8443/messages/1?x=1#frag")
    assert headers["Authorization"] == "DPoP tok-abc"
    claims = jwt.decode(
        headers["DPoP"],
        client_key.private_key.public_key(),
        algorithms=["PS256"],
        options={"verify_iat": False},
    )
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://api.example.invalid:8443/messages/1"
    assert claims["ath"] == access_token_hash("tok-abc")


def test_second_nonce_challenge_is_refused(client_key: ClientKey) -> None:
    """The client answers one nonce challenge; a second one is a refusal, after exactly two requests."""
    nonces: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        claims = jwt.decode(request.headers["DPoP"], options={"verify_signature": False})
        nonces.append(claims.get("nonce"))
        return httpx.Response(
            400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": f"n{len(nonces)}"}
        )

    error = _fails_with_handler(client_key, handler)
    assert error.kind == "refused"
    assert "use_dpop_nonce" in str(error)
    assert nonces == [None, "n1"]


def _fails_with_handler(
    key: ClientKey, handler: Callable[[httpx.Request], httpx.Response]
) -> TokenUnavailable:
    client = _mock_client(key, handler)
    with pytest.raises(TokenUnavailable) as caught:
        client.check()
    return caught.value


def test_without_dpop_the_token_is_a_bearer_token(client_key: ClientKey) -> None:
    """With use_dpop off no proof is sent and API requests carry a Bearer token only."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return _token_answer(token_type="Bearer")

    client = _mock_client(client_key, handler, use_dpop=False)
    assert client.headers_for("GET", "https://api.example.invalid/x") == {"Authorization": "Bearer tok-123"}
    assert "DPoP" not in requests[0].headers


def test_waiting_threads_share_a_failed_fetch(client_key: ClientKey) -> None:
    """Ten threads waiting on one failing fetch all get TokenUnavailable; the endpoint is asked once."""
    calls: list[int] = []
    barrier = threading.Barrier(10)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        time.sleep(0.3)
        raise httpx.ConnectError("down")

    client = _mock_client(client_key, handler)
    kinds: list[str] = []

    def work() -> None:
        barrier.wait()
        try:
            client.check()
        except TokenUnavailable as exc:
            kinds.append(exc.kind)

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert kinds == ["connect"] * 10
    assert len(calls) == 1


def test_a_failed_fetch_is_tried_again_next_time(client_key: ClientKey) -> None:
    """After a failed fetch the next request tries again (nothing failed is cached)."""
    answers = [httpx.Response(503), _token_answer()]
    client = _mock_client(client_key, lambda request: answers.pop(0))
    with pytest.raises(TokenUnavailable):
        client.check()
    client.check()
    assert client.refreshes == 1
    assert answers == []


def test_logs_name_client_kind_and_status_only(client_key: ClientKey) -> None:
    """The log lines of a fetch and a failure hold the client id, kind and status, never a token or JWT."""
    answers = [
        _token_answer(access_token="secret-token-value"),
        httpx.Response(400, json={"error": "invalid_client"}),
    ]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content.decode())
        seen.append(request.headers["DPoP"])
        return answers.pop(0)

    buffer = io.StringIO()
    configure_logging(stream=buffer, json=True, level="DEBUG")
    try:
        client = _mock_client(client_key, handler)
        client.check()
        client.invalidate()
        with pytest.raises(TokenUnavailable):
            client.check()
    finally:
        configure_logging()
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    ours = [line for line in lines if str(line.get("event", "")).startswith("helseid.")]
    assert [line["event"] for line in ours] == ["helseid.token_fetched", "helseid.token_unavailable"]
    assert ours[1]["kind"] == "refused" and ours[1]["status"] == 400
    for line in ours:
        assert set(line) <= {"event", "level", "timestamp", "client_id", "kind", "status"}
        assert line["client_id"] == CLIENT_ID
    text = buffer.getvalue()
    assert "secret-token-value" not in text
    assert all(part not in text for part in seen)


def test_passed_in_http_client_is_left_open(client_key: ClientKey) -> None:
    """close() leaves an HTTP client it was given open for its owner."""
    http = httpx.Client(transport=httpx.MockTransport(lambda request: _token_answer()))
    config = HelseIdConfig(
        token_endpoint=MOCK_ENDPOINT, client_id=CLIENT_ID, key=client_key, scopes=(SCOPE,), audience=ISSUER
    )
    HelseIdClient(config, http=http).close()
    assert not http.is_closed
    http.close()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"token_endpoint": "http://helseid-sts.nhn.no/connect/token"}, "https"),
        ({"token_endpoint": "ftp://helseid-sts.nhn.no/connect/token"}, "https"),
        ({"token_endpoint": "https://helseid-sts.nhn.no/connect/token?x=1"}, "query"),
        ({"scopes": ()}, "scopes"),
        ({"scopes": ("a b",)}, "scopes"),
        ({"client_id": " "}, "client id"),
        ({"audience": ""}, "audience"),
        ({"timeout_s": 0}, "timeout"),
        ({"refresh_margin_s": -1}, "margin"),
    ],
)
def test_unusable_config_is_refused(client_key: ClientKey, changes: dict[str, Any], reason: str) -> None:
    """A plain-http endpoint off loopback, no scopes, an empty id or a zero timeout is a ConfigurationError."""
    values: dict[str, Any] = {
        "token_endpoint": "https://helseid-sts.nhn.no/connect/token",
        "client_id": CLIENT_ID,
        "key": client_key,
        "scopes": (SCOPE,),
        "audience": ISSUER,
    }
    values.update(changes)
    with pytest.raises(ConfigurationError, match=reason):
        HelseIdConfig(**values)


def test_server_runner_refuses_a_taken_port_and_frees_its_own() -> None:
    """run_in_thread raises when its port is taken, and its own port is closed once the block ends."""
    app = FastAPI()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with (
            pytest.raises(RuntimeError, match="did not start"),
            run_in_thread(app, port=taken.getsockname()[1]),
        ):
            pass
    with run_in_thread(app) as base:
        assert httpx.get(f"{base}/docs").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/docs")
