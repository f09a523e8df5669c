"""A HelseID-like token endpoint and the resource-server check of its DPoP-bound tokens.

For tests and the demo only: everything lives in memory. It checks what HelseID checks of a client
credentials request with ``private_key_jwt`` and DPoP, strictly, so that a client that passes here
builds its requests right:

Token endpoint (``POST /connect/token``), every refusal a 400 ``{"error", "error_description"}``:

* a form body with exactly one each of ``grant_type=client_credentials``, ``client_id``,
  ``client_assertion_type`` (the JWT bearer type), ``client_assertion`` and ``scope``
  (``invalid_request``);
* one DPoP proof: ``typ`` ``dpop+jwt``, an asymmetric ``alg``, a public ``jwk`` (no private member,
  RSA of 2048 bits or more), a valid signature, ``htm`` ``POST``, ``htu`` the endpoint's URL as this
  request reached it (scheme, host, port and path), ``iat`` within 60 s of now, a ``jti`` never seen
  (``invalid_dpop_proof``); with ``require_nonce`` a ``nonce`` it issued in the last five minutes, else
  ``use_dpop_nonce`` with a fresh ``DPoP-Nonce`` header;
* the client assertion: a registered client, a signature by its key (``kid`` must match when both
  name one), ``iss`` = ``sub`` = ``client_id``, ``aud`` the audience, ``exp`` in the future and at most
  120 s after ``iat``, ``iat`` and ``nbf`` at most 10 s in the future (``CLOCK_SKEW_S``: a client clock
  further ahead is refused), a ``jti`` never seen (``invalid_client``);
* the scopes all registered for the client (``invalid_scope``).

The token issued is an opaque random string, bound to the proof key's RFC 7638 thumbprint.

Resource server (:meth:`HelseIdStandIn.authorize`): ``Authorization: DPoP <token>`` with a token it
issued that has not expired (else 401 ``invalid_token``), one DPoP proof as above plus ``ath`` = the
token's hash and signed by the key the token is bound to, ``htm`` and ``htu`` this request's (else 401
``invalid_dpop_proof``, RFC 9449 section 7.1), and the scope granted (else 403 ``insufficient_scope``).
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import jwt
import jwt.algorithms
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from jwt.types import Options
from starlette.requests import Request

from edi_gateway.nhn.helseid import ASSERTION_TYPE, access_token_hash
from edi_gateway.nhn.keys import MIN_RSA_BITS, PRIVATE_JWK_MEMBERS, jwk_thumbprint

CLOCK_SKEW_S = 10
"""How far in the future an assertion's ``iat``/``nbf`` may lie (a client clock that runs ahead)."""

PROOF_WINDOW_S = 60
"""How far a DPoP proof's ``iat`` may lie from now, either way."""

MAX_ASSERTION_LIFETIME_S = 120
"""The longest ``exp - iat`` of a client assertion."""

NONCE_LIFETIME_S = 300
"""How long a ``DPoP-Nonce`` the stand-in handed out stays good."""

MAX_FORM_BYTES = 16 * 1024
"""The largest token request body read."""

ASYMMETRIC_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
"""The JWS algorithms accepted for assertions and proofs (never ``none`` or ``HS*``)."""

_EC_ALG_CURVE = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_TIME_CHECKS_OFF: Options = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}
_FORM_FIELDS = ("grant_type", "client_id", "client_assertion_type", "client_assertion", "scope")


@dataclass
class RegisteredClient:
    """A client HelseID knows.

    Attributes:
        client_id: its client id.
        public_jwk: the public JWK its assertions are signed with (a ``kid`` in it must match theirs).
        scopes: the scopes it may ask for.
    """

    client_id: str
    public_jwk: dict[str, Any]
    scopes: frozenset[str]


@dataclass
class _Grant:
    client_id: str
    scopes: frozenset[str]
    jkt: str
    expires_at: float


class _Refusal(Exception):
    def __init__(self, error: str, description: str, *, nonce: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.nonce = nonce


class _BadProof(Exception):
    """A DPoP proof failed a check; the message says which."""


@dataclass
class _Seen:
    """Identifiers used once (``jti``), each remembered until it could no longer pass the time checks."""

    until: dict[str, float] = field(default_factory=dict)

    def first_use(self, value: str, *, now: float, keep_until: float) -> bool:
        for old in [k for k, t in self.until.items() if t < now]:
            del self.until[old]
        if value in self.until:
            return False
        self.until[value] = keep_until
        return True


class HelseIdStandIn:
    """An in-memory HelseID: issues DPoP-bound tokens to registered clients and checks them at an API.

    Attributes:
        router: the FastAPI router with ``POST /connect/token``; include it in the stand-in's app.
        issued: how many tokens were issued (tests assert refresh counts with it).
        issuer: the issuer name (also the default audience).
        audience: the ``aud`` client assertions must carry.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        clients: Sequence[RegisteredClient],
        clock: Callable[[], float] = time.time,
        require_nonce: bool = True,
        token_lifetime_s: int = 300,
    ) -> None:
        """Set up the stand-in.

        Args:
            issuer: the issuer name, e.g. ``https://helseid-sts.standin.local``.
            audience: the ``aud`` client assertions must carry (HelseID: the issuer).
            clients: the registered clients.
            clock: the current time in seconds since the epoch (tests pass a fake one).
            require_nonce: challenge token requests whose proof carries no nonce it issued (as HelseID).
            token_lifetime_s: the lifetime of issued tokens (``expires_in``).

        Raises:
            ValueError: a registered JWK is not a usable public key, or client ids repeat.
        """
        self.issuer = issuer
        self.audience = audience
        self._clients: dict[str, RegisteredClient] = {}
        for client in clients:
            if client.client_id in self._clients:
                raise ValueError(f"client {client.client_id!r} is registered twice")
            if PRIVATE_JWK_MEMBERS & client.public_jwk.keys():
                raise ValueError(f"client {client.client_id!r}: register the public JWK only")
            jwk_thumbprint(client.public_jwk)
            self._clients[client.client_id] = client
        self._clock = clock
        self._require_nonce = require_nonce
        self._token_lifetime_s = token_lifetime_s
        self._lock = threading.Lock()
        self._grants: dict[str, _Grant] = {}
        self._nonces: dict[str, float] = {}
        self._assertion_ids = _Seen()
        self._proof_ids = _Seen()
        self.issued = 0
        self.router = APIRouter()
        self.router.add_api_route(
            "/connect/token", self._token_endpoint, methods=["POST"], include_in_schema=False
        )

    def expire_all_tokens(self) -> None:
        """Make every token issued so far expired (test hook: expiry without waiting)."""
        with self._lock:
            for grant in self._grants.values():
                grant.expires_at = -math.inf

    def authorize(self, request: Request, scope: str) -> str:
        """Check an API request's DPoP-bound token and proof; return the client id it authenticates.

        Args:
            request: the API request.
            scope: the scope the API requires.

        Raises:
            HTTPException: 401 ``invalid_token`` (no, unknown or expired token), 401 ``invalid_dpop_proof``
                (no, bad, replayed or foreign-key proof), 403 ``insufficient_scope``.
        """
        now = self._clock()
        authorizations = request.headers.getlist("authorization")
        scheme, _, token = authorizations[0].partition(" ") if len(authorizations) == 1 else ("", "", "")
        if scheme.lower() != "dpop" or not token.strip():
            _deny(401, "invalid_token", "a DPoP access token is required (Authorization: DPoP <token>)")
        token = token.strip()
        with self._lock:
            grant = self._grants.get(token)
            if grant is None:
                _deny(401, "invalid_token", "the access token is not known")
            if grant.expires_at <= now:
                _deny(401, "invalid_token", "the access token has expired")
            try:
                _, jkt = self._check_proof(request, now=now, access_token=token)
            except _BadProof as exc:
                _deny(401, "invalid_dpop_proof", str(exc))
            if not hmac.compare_digest(jkt, grant.jkt):
                _deny(401, "invalid_dpop_proof", "the proof is not signed by the key the token is bound to")
            if scope not in grant.scopes:
                _deny(403, "insufficient_scope", f"the token does not grant {scope}")
            return grant.client_id

    # -- the token endpoint ---------------------------------------------------------------------------

    async def _token_endpoint(self, request: Request) -> JSONResponse:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return _refusal(_Refusal("invalid_request", "the request body is too large"))
        try:
            with self._lock:
                answer = self._grant(request, bytes(body))
        except _Refusal as refusal:
            return _refusal(refusal)
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _grant(self, request: Request, body: bytes) -> dict[str, Any]:
        now = self._clock()
        form = _form(request, body)
        if form["grant_type"] != "client_credentials":
            raise _Refusal("invalid_request", "grant_type must be client_credentials")
        if form["client_assertion_type"] != ASSERTION_TYPE:
            raise _Refusal("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        try:
            proof, jkt = self._check_proof(request, now=now, access_token=None)
        except _BadProof as exc:
            raise _Refusal("invalid_dpop_proof", str(exc)) from None
        if self._require_nonce and not self._nonce_good(proof.get("nonce"), now):
            nonce = secrets.token_urlsafe(24)
            self._nonces[nonce] = now + NONCE_LIFETIME_S
            raise _Refusal("use_dpop_nonce", "the DPoP proof must carry the server's nonce", nonce=nonce)
        client = self._clients.get(form["client_id"])
        if client is None:
            raise _Refusal("invalid_client", "the client is not known")
        self._check_assertion(form["client_assertion"], client, now)
        requested = form["scope"].split(" ")
        if any(not s for s in requested):
            raise _Refusal("invalid_scope", "scope must be scope names separated by single spaces")
        if not set(requested) <= client.scopes:
            raise _Refusal("invalid_scope", "a scope asked for is not granted to the client")
        token = secrets.token_urlsafe(32)
        self._grants = {t: g for t, g in self._grants.items() if g.expires_at > now}
        self._grants[token] = _Grant(
            client_id=client.client_id,
            scopes=frozenset(requested),
            jkt=jkt,
            expires_at=now + self._token_lifetime_s,
        )
        self.issued += 1
        return {
            "access_token": token,
            "token_type": "DPoP",
            "expires_in": self._token_lifetime_s,
            "scope": " ".join(sorted(set(requested))),
        }

    def _nonce_good(self, nonce: object, now: float) -> bool:
        self._nonces = {n: t for n, t in self._nonces.items() if t > now}
        return isinstance(nonce, str) and nonce in self._nonces

    def _check_assertion(self, assertion: str, client: RegisteredClient, now: float) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            raise _Refusal("invalid_client", "the client assertion is not a JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGS:
            raise _Refusal("invalid_client", "the client assertion's alg is not an asymmetric algorithm")
        registered_kid = client.public_jwk.get("kid")
        if registered_kid is not None and header.get("kid") is not None and header["kid"] != registered_kid:
            raise _Refusal("invalid_client", "the client assertion's kid is not the client's key")
        try:
            key = _public_key(client.public_jwk, alg)
            claims = jwt.decode(assertion, key, algorithms=[alg], options=_TIME_CHECKS_OFF)
        except (_BadProof, jwt.InvalidTokenError):
            raise _Refusal("invalid_client", "the client assertion's signature does not verify") from None
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise _Refusal("invalid_client", "the client assertion's iss and sub must be the client_id")
        audience = claims.get("aud")
        if not (audience == self.audience or (isinstance(audience, list) and self.audience in audience)):
            raise _Refusal("invalid_client", "the client assertion's aud is not this issuer")
        exp, iat, nbf = (_time(claims.get(name)) for name in ("exp", "iat", "nbf"))
        if exp is None or iat is None or (nbf is None and "nbf" in claims):
            raise _Refusal("invalid_client", "the client assertion needs numeric exp and iat (and nbf)")
        if exp <= now:
            raise _Refusal("invalid_client", "the client assertion has expired (check the clock)")
        if exp > iat + MAX_ASSERTION_LIFETIME_S:
            raise _Refusal("invalid_client", f"the client assertion lives over {MAX_ASSERTION_LIFETIME_S} s")
        if iat > now + CLOCK_SKEW_S or (nbf is not None and nbf > now + CLOCK_SKEW_S):
            raise _Refusal("invalid_client", "the client assertion is not yet valid (check the clock)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _Refusal("invalid_client", "the client assertion needs a jti")
        if not self._assertion_ids.first_use(f"{client.client_id}\x00{jti}", now=now, keep_until=exp):
            raise _Refusal("invalid_client", "the client assertion's jti was used before (replay)")

    # -- DPoP proofs ----------------------------------------------------------------------------------

    def _check_proof(
        self, request: Request, *, now: float, access_token: str | None
    ) -> tuple[dict[str, Any], str]:
        """Check the request's one DPoP proof; return its claims and its key's thumbprint."""
        proofs = request.headers.getlist("dpop")
        if len(proofs) != 1:
            raise _BadProof("exactly one DPoP header is required")
        proof = proofs[0]
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.InvalidTokenError:
            raise _BadProof("the DPoP proof is not a JWT") from None
        if header.get("typ") != "dpop+jwt":
            raise _BadProof("the DPoP proof's typ must be dpop+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGS:
            raise _BadProof("the DPoP proof's alg is not an asymmetric algorithm")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _BadProof("the DPoP proof's header has no jwk")
        if PRIVATE_JWK_MEMBERS & jwk.keys():
            raise _BadProof("the DPoP proof's jwk holds private key members")
        key = _public_key(jwk, alg)
        try:
            claims = jwt.decode(
                proof,
                key,
                algorithms=[alg],
                options={**_TIME_CHECKS_OFF, "require": ["jti", "htm", "htu", "iat"]},
            )
        except jwt.InvalidTokenError:
            raise _BadProof("the DPoP proof's signature does not verify, or a claim is missing") from None
        if claims["htm"] != request.method:
            raise _BadProof("the DPoP proof's htm is not this request's method")
        if not isinstance(claims["htu"], str) or _target(claims["htu"]) != _target(str(request.url)):
            raise _BadProof("the DPoP proof's htu is not this request's URL")
        iat = _time(claims["iat"])
        if iat is None or abs(now - iat) > PROOF_WINDOW_S:
            raise _BadProof(f"the DPoP proof's iat is not within {PROOF_WINDOW_S} s of now (check the clock)")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(access_token)):
                raise _BadProof("the DPoP proof's ath is not the hash of this access token")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise _BadProof("the DPoP proof needs a jti")
        thumbprint = jwk_thumbprint(jwk)
        if not self._proof_ids.first_use(
            f"{thumbprint}\x00{jti}", now=now, keep_until=now + 2 * PROOF_WINDOW_S
        ):
            raise _BadProof("the DPoP proof's jti was used before (replay)")
        return claims, thumbprint


def _public_key(jwk: Mapping[str, Any], alg: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The public key of ``jwk``, checked to fit ``alg`` and to be strong enough."""
    kty = jwk.get("kty")
    key: object
    try:
        if kty == "RSA" and alg[:2] in ("RS", "PS"):
            key = jwt.algorithms.RSAAlgorithm.from_jwk(dict(jwk))
        elif kty == "EC" and alg in _EC_ALG_CURVE:
            key = jwt.algorithms.ECAlgorithm.from_jwk(dict(jwk))
        else:
            raise _BadProof(f"a {kty} key cannot sign with {alg}")
    except (jwt.exceptions.InvalidKeyError, ValueError, KeyError, TypeError, UnsupportedAlgorithm):
        raise _BadProof("the jwk is not a readable public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise _BadProof(f"the jwk's RSA key is under {MIN_RSA_BITS} bits")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name != _EC_ALG_CURVE[alg]:
            raise _BadProof(f"the jwk's curve does not sign with {alg}")
        return key
    raise _BadProof("the jwk is not a public key")


def _target(url: str) -> tuple[str, str, int, str] | None:
    """Scheme, host, port and path of ``url`` (query and fragment ignored), or None when unreadable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), parts.path or "/"


def _time(value: object) -> float | None:
    """``value`` as a time (seconds since the epoch), or None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _form(request: Request, body: bytes) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _Refusal("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, strict_parsing=True, max_num_fields=20
        )
    except (UnicodeDecodeError, ValueError):
        raise _Refusal("invalid_request", "the body is not a readable form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _Refusal("invalid_request", f"{name} is given more than once")
        form[name] = value
    missing = [name for name in _FORM_FIELDS if not form.get(name)]
    if missing:
        raise _Refusal("invalid_request", f"missing: {', '.join(missing)}")
    return form


def _refusal(refusal: _Refusal) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if refusal.nonce is not None:
        headers["DPoP-Nonce"] = refusal.nonce
    return JSONResponse(
        {"error": refusal.error, "error_description": refusal.description}, status_code=400, headers=headers
    )


def _deny(status: int, error: str, description: str) -> NoReturn:
    raise HTTPException(
        status_code=status,
        detail=description,
        headers={"WWW-Authenticate": f'DPoP error="{error}", algs="{" ".join(sorted(ASYMMETRIC_ALGS))}"'},
    )
