"""HelseID access tokens: client credentials with ``private_key_jwt``, bound to our key by DPoP.

How a token is fetched:

* A POST to the token endpoint with ``grant_type=client_credentials``, ``client_id``, ``scope`` and a
  client assertion: a JWT signed with the client key (header ``kid``, ``alg``), claims ``iss`` = ``sub``
  = the client id, ``aud`` = the HelseID issuer, a fresh ``jti``, and ``iat``/``nbf`` 5 s in the past
  (small clock skew) and ``exp`` 60 s from now.
* With DPoP (RFC 9449, the default) the request carries a proof signed with the same key, whose header
  holds the public JWK. HelseID first answers ``400 use_dpop_nonce`` with a ``DPoP-Nonce`` header; the
  request is then made once more (a new assertion, a new proof carrying the nonce).
* The answer (``access_token``, ``token_type`` ``DPoP``, ``expires_in``) is read up to 64 KiB.

The token is cached until ``refresh_margin_s`` before it expires (for a token shorter-lived than twice
the margin, until half its lifetime). Threads that need a token while one is being fetched wait for that
fetch and share its outcome, token or error: there is one fetch at a time. Each API request gets its
own proof (``htm``, ``htu`` without query and fragment, ``ath`` = the token's hash), from
:meth:`HelseIdClient.headers_for`.

Errors are :class:`~edi_gateway.errors.TokenUnavailable`, with ``kind``: ``timeout``, ``connect``,
``server_error`` (5xx), ``rate_limited`` (429), ``refused`` (any other 4xx, such as ``invalid_client``,
``invalid_scope``, ``unauthorized_client``, or a second nonce challenge) and ``malformed`` (an answer
that is not a token: not JSON, fields missing, an absurd ``expires_in``, over 64 KiB). A client whose
clock runs ahead of HelseID's by more than the server tolerates is refused (``refused``); nothing else
is done about it here.

The log says which client, which kind and which HTTP status, nothing more: never a token, an
assertion, a proof or a key.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt

from edi_gateway.errors import TokenUnavailable
from edi_gateway.logging import get_logger
from edi_gateway.nhn.keys import ClientKey, b64url
from edi_gateway.settings import ConfigurationError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
"""The ``client_assertion_type`` of ``private_key_jwt`` (RFC 7523)."""

MAX_RESPONSE_BYTES = 64 * 1024
"""The largest token endpoint answer read; a larger one is ``malformed``."""

ASSERTION_LIFETIME_S = 60
"""Seconds from now to the assertion's ``exp`` (HelseID accepts at most 60)."""

BACKDATE_S = 5
"""Seconds the assertion's ``iat`` and ``nbf`` lie in the past, for a server clock slightly behind ours."""

MAX_EXPIRES_IN_S = 24 * 3600
"""The longest token lifetime believed; ``expires_in`` above it (or not above 0) is ``malformed``."""

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]{1,8192}")  # visible ASCII: safe in a header, no spaces
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_NONCE = re.compile(r"[\x21-\x7e]{1,1024}")

_log = get_logger(__name__)


@dataclass(frozen=True)
class HelseIdConfig:
    """How to reach HelseID and who we are there.

    Attributes:
        token_endpoint: the token endpoint URL, ``https://<issuer>/connect/token`` (plain ``http`` is
            accepted for a loopback host only, for the local stand-in).
        client_id: our client id in HelseID.
        key: our client key: signs the client assertions and the DPoP proofs.
        scopes: the scopes asked for, e.g. ``("nhn:msh/api",)``; sent space-separated.
        audience: the client assertion's ``aud``: the HelseID issuer, e.g. ``https://helseid-sts.nhn.no``.
        use_dpop: bind tokens to our key with DPoP proofs (HelseID requires this for the EDI 2.0 API).
        timeout_s: the longest wait for one token endpoint answer, in seconds.
        refresh_margin_s: a cached token is replaced this many seconds before it expires.

    Raises:
        ConfigurationError: a field cannot work (an ``http`` endpoint off loopback, no scopes, ...).
    """

    token_endpoint: str
    client_id: str
    key: ClientKey
    scopes: tuple[str, ...]
    audience: str
    use_dpop: bool = True
    timeout_s: float = 10.0
    refresh_margin_s: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", tuple(self.scopes))
        parts = urlsplit(self.token_endpoint)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)
        if not parts.hostname or not secure:
            raise ConfigurationError(
                "HelseID token endpoint must be an https URL (http only on a loopback host)"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError("HelseID token endpoint must have no query or fragment")
        if not self.client_id.strip():
            raise ConfigurationError("HelseID client id is empty")
        if not self.audience.strip():
            raise ConfigurationError("HelseID audience (the issuer) is empty")
        if not self.scopes or any(not s or any(c.isspace() for c in s) for s in self.scopes):
            raise ConfigurationError("HelseID scopes must be one or more names without spaces")
        if not self.timeout_s > 0:
            raise ConfigurationError("HelseID timeout must be more than 0 s")
        if not self.refresh_margin_s >= 0:
            raise ConfigurationError("HelseID refresh margin must not be negative")


def dpop_htu(url: str) -> str:
    """The ``htu`` of a DPoP proof for ``url``: scheme, host, port and path; no user, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))


def access_token_hash(access_token: str) -> str:
    """The DPoP ``ath`` of a token: base64url of its SHA-256 (RFC 9449 section 4.2)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def build_client_assertion(config: HelseIdConfig, *, now: float) -> str:
    """Return a fresh signed client assertion (``private_key_jwt``) for one token request.

    Args:
        config: the client's settings (id, key, audience).
        now: the current time, in seconds since the epoch.
    """
    issued = int(now) - BACKDATE_S
    claims: dict[str, Any] = {
        "iss": config.client_id,
        "sub": config.client_id,
        "aud": config.audience,
        "iat": issued,
        "nbf": issued,
        "exp": int(now) + ASSERTION_LIFETIME_S,
        "jti": str(uuid.uuid4()),
    }
    headers = {"typ": "JWT", "kid": config.key.kid}
    return jwt.encode(claims, config.key.private_key, algorithm=config.key.alg, headers=headers)


def build_dpop_proof(
    key: ClientKey,
    method: str,
    url: str,
    *,
    now: float,
    access_token: str | None = None,
    nonce: str | None = None,
) -> str:
    """Return a fresh DPoP proof (RFC 9449) for one HTTP request.

    Args:
        key: the client key; the proof carries its public JWK and is signed with it.
        method: the request's HTTP method.
        url: the request's URL; ``htu`` is it without query and fragment.
        now: the current time, in seconds since the epoch (``iat``).
        access_token: the token the request carries, for ``ath`` (API requests only).
        nonce: the server's ``DPoP-Nonce``, when it asked for one.
    """
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "htm": method.upper(),
        "htu": dpop_htu(url),
        "iat": int(now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    headers = {"typ": "dpop+jwt", "jwk": dict(key.public_jwk)}
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=headers)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = ""
    scheme: str = "DPoP"
    refresh_at: float = 0.0

    def __repr__(self) -> str:
        return f"_Token(scheme={self.scheme!r}, refresh_at={self.refresh_at!r})"


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    nonce: str | None
    body: bytes


class HelseIdClient:
    """Fetches, caches and refreshes HelseID access tokens; makes the headers of each API request.

    Safe to share between threads. Close it (or use it as a context manager) when done; an ``http``
    client passed in is left open for its owner.
    """

    def __init__(
        self,
        config: HelseIdConfig,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        on_refresh: Callable[[], None] | None = None,
    ) -> None:
        """Prepare the client; nothing is fetched until a token is needed.

        Args:
            config: where HelseID is and who we are.
            http: the HTTP client to use (default: a new one, closed by :meth:`close`).
            clock: the current time in seconds since the epoch (tests pass a fake one).
            on_refresh: called once for every token fetched (metrics).
        """
        self._on_refresh = on_refresh or (lambda: None)
        self._config = config
        self._http = http if http is not None else httpx.Client(timeout=config.timeout_s)
        self._owns_http = http is None
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._inflight: Future[_Token] | None = None
        self._refreshes = 0

    @property
    def refreshes(self) -> int:
        """How many tokens were fetched so far (for metrics)."""
        return self._refreshes

    def headers_for(self, method: str, url: str) -> dict[str, str]:
        """Return the headers that authorise one API request: ``Authorization`` and, with DPoP, ``DPoP``.

        A cached token is used when it is not due for refresh; else one is fetched first. Each call
        makes a new proof, so call it once per request (a retried request calls it again).

        Args:
            method: the request's HTTP method.
            url: the request's full URL.

        Raises:
            TokenUnavailable: no token could be had.
        """
        token = self._current()
        if token.scheme == "Bearer":
            return {"Authorization": f"Bearer {token.value}"}
        proof = build_dpop_proof(self._config.key, method, url, now=self._clock(), access_token=token.value)
        return {"Authorization": f"DPoP {token.value}", "DPoP": proof}

    def invalidate(self, *, used: Mapping[str, str] | None = None) -> None:
        """Drop the cached token, so that the next request fetches a new one (the API answered 401).

        Args:
            used: the headers the refused request carried (from :meth:`headers_for`). When given, the
                token is dropped only if it is still the cached one: of many requests refused with one
                old token, only the first causes a new fetch.
        """
        with self._lock:
            token = self._token
            if token is None:
                return
            if used is not None:
                sent = used.get("Authorization") or used.get("authorization")
                if sent != f"{token.scheme} {token.value}":
                    return
            self._token = None

    def check(self) -> None:
        """Make sure a token is at hand now (for readiness): the cached one, or a fetched one.

        Raises:
            TokenUnavailable: no token could be had.
        """
        self._current()

    def close(self) -> None:
        """Close the HTTP client if this client made it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> HelseIdClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the cache ------------------------------------------------------------------------------------

    def _current(self) -> _Token:
        with self._lock:
            token = self._token
            if token is not None and self._clock() < token.refresh_at:
                return token
            flight = self._inflight
            leading = flight is None
            if flight is None:
                flight = self._inflight = Future()
        if not leading:
            try:
                return flight.result()
            except TokenUnavailable as exc:
                # Each waiter raises its own error object (one object raised in many threads would
                # collect all their tracebacks).
                raise TokenUnavailable(str(exc), kind=exc.kind) from exc
        try:
            token = self._fetch()
        except BaseException as exc:
            with self._lock:
                self._inflight = None
            flight.set_exception(exc)
            raise
        with self._lock:
            self._token = token
            self._refreshes += 1
            self._inflight = None
        self._on_refresh()
        flight.set_result(token)
        return token

    # -- the token endpoint ---------------------------------------------------------------------------

    def _fetch(self) -> _Token:
        answer = self._post(nonce=None)
        challenged = answer.status == 400 and _oauth_error(answer.body)[0] == "use_dpop_nonce"
        if self._config.use_dpop and challenged and answer.nonce is not None:
            answer = self._post(nonce=answer.nonce)
        token = self._token_from(answer)
        _log.info("helseid.token_fetched", client_id=self._config.client_id, status=answer.status)
        return token

    def _post(self, *, nonce: str | None) -> _Answer:
        config = self._config
        now = self._clock()
        form = {
            "grant_type": "client_credentials",
            "client_id": config.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": build_client_assertion(config, now=now),
            "scope": " ".join(config.scopes),
        }
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if config.use_dpop:
            headers["DPoP"] = build_dpop_proof(
                config.key, "POST", config.token_endpoint, now=now, nonce=nonce
            )
        deadline = time.monotonic() + config.timeout_s
        try:
            with self._http.stream(
                "POST", config.token_endpoint, data=form, headers=headers, timeout=config.timeout_s
            ) as response:
                status = response.status_code
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                    raise self._failure("malformed", f"an answer of {declared} bytes", status)
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise self._failure("malformed", f"an answer over {MAX_RESPONSE_BYTES} bytes", status)
                    if time.monotonic() > deadline:
                        raise self._failure("timeout", f"no whole answer within {config.timeout_s} s", status)
                challenge = response.headers.get("DPoP-Nonce")
        except httpx.TimeoutException:
            raise self._failure("timeout", f"no answer within {config.timeout_s} s") from None
        except httpx.DecodingError:
            raise self._failure("malformed", "an answer that cannot be decoded") from None
        except httpx.RequestError as exc:
            raise self._failure("connect", f"no connection ({type(exc).__name__})") from None
        if challenge is not None and not _NONCE.fullmatch(challenge):
            raise self._failure("malformed", "a DPoP-Nonce that is not a nonce", status)
        return _Answer(status=status, nonce=challenge, body=bytes(body))

    def _token_from(self, answer: _Answer) -> _Token:
        status = answer.status
        if status == 429:
            raise self._failure("rate_limited", "too many requests (429)", status)
        if status >= 500:
            raise self._failure("server_error", f"a server error ({status})", status)
        if 400 <= status < 500:
            error, description = _oauth_error(answer.body)
            said = f"{error}: {description}" if description else error
            raise self._failure("refused", f"a refusal ({status} {said})", status)
        if not 200 <= status < 300:
            raise self._failure("malformed", f"an unexpected status ({status})", status)
        payload = _json_object(answer.body)
        if payload is None:
            raise self._failure("malformed", "an answer that is not a JSON object", status)
        value = payload.get("access_token")
        if not isinstance(value, str) or not _TOKEN_CHARS.fullmatch(value):
            raise self._failure("malformed", "an answer without a usable access_token", status)
        expected = "DPoP" if self._config.use_dpop else "Bearer"
        token_type = payload.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != expected.lower():
            raise self._failure("malformed", f"an answer whose token_type is not {expected}", status)
        lifetime = payload.get("expires_in")
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not 0 < lifetime <= MAX_EXPIRES_IN_S
        ):
            raise self._failure("malformed", "an answer without a believable expires_in", status)
        margin = min(self._config.refresh_margin_s, lifetime / 2)
        return _Token(value=value, scheme=expected, refresh_at=self._clock() + lifetime - margin)

    def _failure(self, kind: str, what: str, status: int | None = None) -> TokenUnavailable:
        _log.warning("helseid.token_unavailable", client_id=self._config.client_id, kind=kind, status=status)
        return TokenUnavailable(f"HelseID gave client {self._config.client_id} no token: {what}", kind=kind)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _oauth_error(body: bytes) -> tuple[str, str]:
    """The ``error`` code and a printable, short ``error_description`` of an OAuth error answer."""
    payload = _json_object(body) or {}
    error = payload.get("error")
    code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else "unreadable error"
    described = payload.get("error_description")
    text = described if isinstance(described, str) else ""
    text = "".join(c for c in text if c.isprintable())[:200]
    return code, text
