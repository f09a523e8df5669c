"""The HelseID client's private key, loaded once from configuration, and its public JWK.

The same key signs the ``private_key_jwt`` client assertions and the DPoP proofs. It comes from one
file: a PEM private key (PKCS#8 or traditional, unencrypted) or a private JWK in JSON (as HelseID's
self-service hands it out, with its ``kid``). Nothing here generates keys: production uses the key that
is registered with HelseID, nothing else.

A key file is a secret for the account that runs the gateway alone. It is refused when

* it cannot be read, is not a regular file, or is larger than any key file (64 KiB);
* its group or others have any access to it (mode must be 0600 or 0400);
* it holds no private key (a public key, a certificate, a public JWK), an encrypted one, or one that
  cannot be parsed;
* the key is weak or of a kind HelseID does not take: RSA under 2048 bits, an elliptic curve other
  than P-256, P-384 or P-521, or any other key type.

Every refusal is a :class:`~edi_gateway.settings.ConfigurationError` naming the file and the reason,
never quoting the file's content. The mode is checked on the open file itself, so the file that was
checked is the file that is read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import jwt.algorithms
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from edi_gateway.settings import ConfigurationError

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The private key types a HelseID client key may be."""

PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
"""The matching public key types."""

MIN_RSA_BITS = 2048
"""The smallest RSA modulus accepted."""

MAX_KEY_FILE_BYTES = 64 * 1024
"""No key file is larger than this; a larger file is not a key."""

RSA_ALGS = frozenset({"PS256", "PS384", "PS512", "RS256", "RS384", "RS512"})
"""The JWS algorithms an RSA client key may sign with."""

DEFAULT_RSA_ALG = "PS256"
"""The algorithm an RSA key signs with unless its JWK or the caller names another."""

# cryptography's curve name -> (JWK crv, JWS alg, coordinate length in bytes).
_CURVES: Mapping[str, tuple[str, str, int]] = MappingProxyType(
    {
        "secp256r1": ("P-256", "ES256", 32),
        "secp384r1": ("P-384", "ES384", 48),
        "secp521r1": ("P-521", "ES512", 66),
    }
)

EC_ALGS = frozenset(alg for _, alg, _ in _CURVES.values())
"""The JWS algorithms an elliptic-curve client key may sign with (each bound to its curve)."""

PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
"""JWK members that only a private (or symmetric) key has; a public JWK carries none of them."""


class _KeyProblem(Exception):
    """Why a key cannot be used; the caller adds which file it came from."""


@dataclass(frozen=True, eq=False)
class ClientKey:
    """The HelseID client's key pair, ready to sign assertions and DPoP proofs.

    Build one with :func:`load_client_key` (from configuration) or :meth:`from_private_key`.

    Attributes:
        private_key: the private key object (never printed: it is left out of ``repr``).
        kid: the key id HelseID knows the key by; the assertion's header carries it.
        alg: the JWS algorithm the key signs with (``PS256`` for RSA by default, ``ES256`` for P-256).
        public_jwk: the public JWK (``kty`` and the public members, ``kid``, ``alg``, ``use``), read-only;
            never holds a private member.
    """

    private_key: PrivateKey = field(repr=False)
    kid: str
    alg: str
    public_jwk: Mapping[str, str]

    @classmethod
    def from_private_key(
        cls, private_key: object, *, kid: str | None = None, alg: str | None = None
    ) -> ClientKey:
        """Wrap a private key object, checking it as :func:`load_client_key` checks a file's key.

        Args:
            private_key: an RSA (at least 2048 bits) or P-256/P-384/P-521 private key.
            kid: the key id; default: the key's RFC 7638 thumbprint.
            alg: the JWS algorithm; default ``PS256`` for RSA, the curve's ``ES*`` for EC.

        Raises:
            ConfigurationError: the key is public only, weak, of another type, or does not fit ``alg``.
        """
        try:
            return _client_key(private_key, kid=kid, alg=alg)
        except _KeyProblem as exc:
            raise ConfigurationError(f"HelseID client key: {exc}") from None

    def jwk_thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint of the public key, base64url without padding."""
        return jwk_thumbprint(self.public_jwk)


def load_client_key(path: Path, *, kid: str | None = None, alg: str | None = None) -> ClientKey:
    """Load the HelseID client key from ``path``: a PEM private key or a private JWK (JSON).

    Args:
        path: the key file; owner-only (mode 0600 or 0400).
        kid: the key id. A JWK names its own (``kid`` is required there; when given here too it must
            match); for a PEM file the default is the key's RFC 7638 thumbprint.
        alg: the JWS algorithm. Default: the JWK's ``alg`` when it has one, else ``PS256`` for RSA and
            the curve's algorithm for EC (``ES256`` for P-256).

    Raises:
        ConfigurationError: the file is missing, unreadable, not owner-only, not a private key, or the
            key is weak or unsupported. The message names the file, never its content.
    """
    try:
        data = _read_owner_only(path)
        if data.lstrip().startswith(b"{"):
            return _from_jwk(data, kid=kid, alg=alg)
        if b"-----BEGIN" in data:
            return _from_pem(data, kid=kid, alg=alg)
        raise _KeyProblem("is neither a PEM private key nor a JWK (JSON)")
    except _KeyProblem as exc:
        raise ConfigurationError(f"HelseID client key file {path}: {exc}") from None


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of an RSA or EC JWK, base64url without padding.

    Only the required public members count (``e``, ``kty``, ``n`` for RSA; ``crv``, ``kty``, ``x``,
    ``y`` for EC), so a public and a private JWK of one key have the same thumbprint.

    Raises:
        ValueError: the JWK is of another type or lacks a required member.
    """
    kty = jwk.get("kty")
    if kty == "RSA":
        names: tuple[str, ...] = ("e", "kty", "n")
    elif kty == "EC":
        names = ("crv", "kty", "x", "y")
    else:
        raise ValueError("JWK thumbprint: kty must be RSA or EC")
    members = {}
    for name in names:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"JWK thumbprint: member {name!r} is missing")
        members[name] = value
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(key: PublicKey | PrivateKey) -> dict[str, str]:
    """Return the public JWK members (``kty`` and the key's public numbers) of an RSA or EC key.

    Raises:
        ValueError: the key is of another type or on an unsupported curve.
    """
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _b64_uint(numbers.n), "e": _b64_uint(numbers.e)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        curve = _CURVES.get(public.curve.name)
        if curve is None:
            raise ValueError(f"elliptic curve {public.curve.name} is not supported")
        crv, _, size = curve
        point = public.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64url(point.x.to_bytes(size, "big")),
            "y": b64url(point.y.to_bytes(size, "big")),
        }
    raise ValueError("only RSA and EC keys are supported")


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_uint(value: int) -> str:
    return b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _read_owner_only(path: Path) -> bytes:
    # O_NONBLOCK: opening a FIFO put in the key's place must not hang start-up (a regular file ignores it).
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _KeyProblem("does not exist") from None
    except OSError as exc:
        raise _KeyProblem(f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _KeyProblem("is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise _KeyProblem(
                f"is open to group or others (mode {mode:04o}); a private key must be owner-only: chmod 600"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise _KeyProblem(f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise _KeyProblem(f"is larger than {MAX_KEY_FILE_BYTES} bytes, which no key file is")
    if not data.strip():
        raise _KeyProblem("is empty")
    return data


def _from_pem(data: bytes, *, kid: str | None, alg: str | None) -> ClientKey:
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError when the key is encrypted and no password was given.
        raise _KeyProblem("holds an encrypted private key; store it unencrypted, owner-only") from None
    except UnsupportedAlgorithm:
        raise _KeyProblem("holds a key of a type that is not supported (use RSA or EC)") from None
    except ValueError:
        if b"PUBLIC KEY-----" in data or b"CERTIFICATE-----" in data:
            raise _KeyProblem("holds a public key or certificate only, no private key") from None
        raise _KeyProblem("is not a readable PEM private key") from None
    return _client_key(key, kid=kid, alg=alg)


def _from_jwk(data: bytes, *, kid: str | None, alg: str | None) -> ClientKey:
    try:
        jwk = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _KeyProblem("is not valid JSON") from None
    if not isinstance(jwk, dict):
        raise _KeyProblem("is not a JWK (a JSON object)")
    if "keys" in jwk:
        raise _KeyProblem("is a JWK set; give the one private JWK of the client")
    kty = jwk.get("kty")
    if kty not in ("RSA", "EC"):
        raise _KeyProblem("is a JWK of a type that is not supported (kty must be RSA or EC)")
    if "d" not in jwk:
        raise _KeyProblem("holds a public JWK only, no private key")
    jwk_kid = jwk.get("kid")
    if not isinstance(jwk_kid, str) or not jwk_kid.strip():
        raise _KeyProblem("is a JWK without a kid; HelseID finds the key by its kid")
    if kid is not None and kid != jwk_kid:
        raise _KeyProblem("names another kid than the one configured")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise _KeyProblem("is a JWK not meant for signing (use is not sig)")
    jwk_alg = jwk.get("alg")
    if jwk_alg is not None:
        if not isinstance(jwk_alg, str):
            raise _KeyProblem("is a JWK with an alg that is not a string")
        if alg is not None and alg != jwk_alg:
            raise _KeyProblem("names another alg than the one configured")
        alg = jwk_alg
    key: object
    try:
        if kty == "RSA":
            key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
        else:
            key = jwt.algorithms.ECAlgorithm.from_jwk(jwk)
    except (jwt.exceptions.InvalidKeyError, ValueError, KeyError, TypeError, UnsupportedAlgorithm):
        raise _KeyProblem("is a JWK whose key cannot be read") from None
    return _client_key(key, kid=jwk_kid, alg=alg)


def _client_key(key: object, *, kid: str | None, alg: str | None) -> ClientKey:
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise _KeyProblem("holds a public key only, no private key")
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise _KeyProblem(
                f"holds a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
            )
        chosen = alg or DEFAULT_RSA_ALG
        if chosen not in RSA_ALGS:
            raise _KeyProblem(f"holds an RSA key, which cannot sign with {chosen}")
        private: PrivateKey = key
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        curve = _CURVES.get(key.curve.name)
        if curve is None:
            raise _KeyProblem(f"holds a key on curve {key.curve.name}; use P-256, P-384 or P-521")
        chosen = alg or curve[1]
        if chosen != curve[1]:
            raise _KeyProblem(f"holds a {curve[0]} key, which signs with {curve[1]}, not {chosen}")
        private = key
    else:
        raise _KeyProblem("holds a key of a type that is not supported (use RSA or EC)")
    members = public_jwk(private)
    key_id = kid if kid is not None else jwk_thumbprint(members)
    if not key_id.strip():
        raise _KeyProblem("has an empty kid")
    members.update({"kid": key_id, "alg": chosen, "use": "sig"})
    return ClientKey(private_key=private, kid=key_id, alg=chosen, public_jwk=MappingProxyType(members))
