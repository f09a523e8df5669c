"""The HelseID client key: PEM and JWK files load; unsafe, public-only, weak or odd keys are refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from edi_gateway.nhn.keys import ClientKey, jwk_thumbprint, load_client_key
from edi_gateway.settings import ConfigurationError

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _private_jwk(key: rsa.RSAPrivateKey, **extra: str) -> dict[str, str]:
    jwk: dict[str, str] = jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    jwk.update(extra)
    return jwk


def test_rfc7638_example_thumbprint() -> None:
    """The thumbprint of RFC 7638's example key is the one the RFC gives (section 3.1)."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRX"
        "jBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqz"
        "s8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-"
        "G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_pem_rsa_key_loads_with_ps256(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A PEM RSA key loads, signs with PS256, and its public JWK matches the key and holds nothing private."""
    key = load_client_key(_write(tmp_path / "key.pem", _pem(rsa_private_key)), kid="k1")
    assert (key.kid, key.alg) == ("k1", "PS256")
    assert not PRIVATE_MEMBERS & key.public_jwk.keys()
    expected = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_private_key.public_key(), as_dict=True)
    assert (key.public_jwk["n"], key.public_jwk["e"]) == (expected["n"], expected["e"])
    token = jwt.encode({"x": 1}, key.private_key, algorithm=key.alg)
    assert jwt.decode(token, rsa_private_key.public_key(), algorithms=["PS256"]) == {"x": 1}


def test_pem_key_without_kid_is_named_by_its_thumbprint(
    tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    """A PEM key given no kid gets its RFC 7638 thumbprint as kid."""
    key = load_client_key(_write(tmp_path / "key.pem", _pem(rsa_private_key)))
    assert key.kid == key.jwk_thumbprint()
    assert len(key.kid) == 43


def test_pem_ec_p256_key_loads_with_es256(tmp_path: Path, ec_private_key: ec.EllipticCurvePrivateKey) -> None:
    """A PEM P-256 key loads and signs with ES256; its JWK has full-length coordinates."""
    key = load_client_key(_write(tmp_path / "key.pem", _pem(ec_private_key)), kid="ec")
    assert key.alg == "ES256"
    assert key.public_jwk["crv"] == "P-256"
    assert len(key.public_jwk["x"]) == len(key.public_jwk["y"]) == 43
    assert "d" not in key.public_jwk
    expected = jwt.algorithms.ECAlgorithm.to_jwk(ec_private_key.public_key(), as_dict=True)
    assert key.jwk_thumbprint() == jwk_thumbprint(expected)


def test_jwk_rsa_key_loads_with_its_kid_and_alg(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A private RSA JWK loads with the kid and alg it names; the thumbprint is that of its public part."""
    jwk = _private_jwk(rsa_private_key, kid="helseid-2026", alg="RS256")
    key = load_client_key(_write(tmp_path / "key.json", json.dumps(jwk).encode()))
    assert (key.kid, key.alg) == ("helseid-2026", "RS256")
    assert not PRIVATE_MEMBERS & key.public_jwk.keys()
    assert key.jwk_thumbprint() == jwk_thumbprint({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    assert key.private_key.private_numbers() == rsa_private_key.private_numbers()


def test_jwk_without_alg_signs_with_ps256(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A private RSA JWK without alg signs with the default PS256."""
    jwk = _private_jwk(rsa_private_key, kid="k")
    assert load_client_key(_write(tmp_path / "key.json", json.dumps(jwk).encode())).alg == "PS256"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_open_to_group_or_others_is_refused(
    tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey, mode: int
) -> None:
    """A key file that its group or others may read or write is refused, naming the file and the mode."""
    path = _write(tmp_path / "key.pem", _pem(rsa_private_key), mode)
    with pytest.raises(ConfigurationError, match="owner-only") as caught:
        load_client_key(path)
    assert str(path) in str(caught.value)
    assert f"{mode:04o}" in str(caught.value)


def test_owner_read_only_key_file_loads(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A key file with mode 0400 is owner-only and loads."""
    assert load_client_key(_write(tmp_path / "key.pem", _pem(rsa_private_key), 0o400)).alg == "PS256"


def test_public_only_pem_is_refused(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A PEM public key is refused as public-only."""
    public = rsa_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigurationError, match="public key or certificate only"):
        load_client_key(_write(tmp_path / "pub.pem", public))


def test_public_only_jwk_is_refused(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A public JWK (no ``d``) is refused as public-only."""
    public = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_private_key.public_key(), as_dict=True)
    public["kid"] = "k"
    with pytest.raises(ConfigurationError, match="public JWK only"):
        load_client_key(_write(tmp_path / "pub.json", json.dumps(public).encode()))


@pytest.fixture(scope="module")
def weak() -> rsa.RSAPrivateKey:
    """A 1024-bit RSA key: weak on purpose, to be refused."""
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def test_rsa_1024_key_is_refused(tmp_path: Path, weak: rsa.RSAPrivateKey) -> None:
    """An RSA key under 2048 bits is refused as weak, from a file and as an object."""
    with pytest.raises(ConfigurationError, match="1024-bit RSA key; at least 2048"):
        load_client_key(_write(tmp_path / "weak.pem", _pem(weak)))
    with pytest.raises(ConfigurationError, match="1024-bit"):
        ClientKey.from_private_key(weak)


def test_refusal_never_quotes_the_key(tmp_path: Path, weak: rsa.RSAPrivateKey) -> None:
    """The refusal of a weak key names the file but holds no part of the key material."""
    pem = _pem(weak)
    with pytest.raises(ConfigurationError) as caught:
        load_client_key(_write(tmp_path / "weak.pem", pem))
    body_lines = [line for line in pem.decode().splitlines() if "-----" not in line]
    assert all(line not in str(caught.value) for line in body_lines)
    assert "weak.pem" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty"),
        (b"not a key at all", "neither a PEM private key nor a JWK"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a readable PEM private key"),
        (b"{not json", "not valid JSON"),
        (b'{"keys": []}', "JWK set"),
        (b'{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}', "kty must be RSA or EC"),
        (b'{"kty": "RSA", "d": "AQAB", "kid": "x"}', "cannot be read"),
    ],
)
def test_unreadable_key_content_is_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    """Content that is no usable private key is refused with the reason and the file's name."""
    with pytest.raises(ConfigurationError, match=reason) as caught:
        load_client_key(_write(tmp_path / "bad.key", content))
    assert "bad.key" in str(caught.value)


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    """A missing key file and a folder in its place are refused, naming the path."""
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_client_key(tmp_path / "nowhere.pem")
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_client_key(folder)


def test_fifo_in_place_of_the_key_is_refused_without_hanging(tmp_path: Path) -> None:
    """A named pipe where the key file should be is refused at once, not waited on."""
    fifo = tmp_path / "key.pem"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_client_key(fifo)


def test_oversized_file_is_refused(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A file larger than 64 KiB is refused as no key file."""
    with pytest.raises(ConfigurationError, match="larger than 65536 bytes"):
        load_client_key(_write(tmp_path / "big.pem", _pem(rsa_private_key) + b"\n" * 70_000))


def test_encrypted_pem_is_refused(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """An encrypted PEM key is refused (the gateway has no password for it)."""
    pem = rsa_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(ConfigurationError, match="encrypted"):
        load_client_key(_write(tmp_path / "enc.pem", pem))


def test_jwk_without_kid_is_refused(tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey) -> None:
    """A private JWK without a kid is refused: HelseID finds the key by it."""
    with pytest.raises(ConfigurationError, match="without a kid"):
        load_client_key(_write(tmp_path / "k.json", json.dumps(_private_jwk(rsa_private_key)).encode()))


def test_jwk_kid_or_alg_other_than_configured_is_refused(
    tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey
) -> None:
    """A JWK whose kid or alg contradicts the configured one is refused."""
    path = _write(
        tmp_path / "k.json", json.dumps(_private_jwk(rsa_private_key, kid="a", alg="PS256")).encode()
    )
    with pytest.raises(ConfigurationError, match="another kid"):
        load_client_key(path, kid="b")
    with pytest.raises(ConfigurationError, match="another alg"):
        load_client_key(path, alg="PS512")


@pytest.mark.parametrize("alg", ["ES256", "HS256", "none"])
def test_rsa_key_with_an_alg_it_cannot_use_is_refused(
    tmp_path: Path, rsa_private_key: rsa.RSAPrivateKey, alg: str
) -> None:
    """An RSA key configured to sign with a non-RSA algorithm is refused."""
    with pytest.raises(ConfigurationError, match=f"cannot sign with {alg}"):
        load_client_key(_write(tmp_path / "k.pem", _pem(rsa_private_key)), alg=alg)


def test_ec_key_bound_to_its_curves_algorithm(
    tmp_path: Path, ec_private_key: ec.EllipticCurvePrivateKey
) -> None:
    """A P-256 key configured for ES384 is refused (each curve signs with its own algorithm)."""
    with pytest.raises(ConfigurationError, match="signs with ES256, not ES384"):
        load_client_key(_write(tmp_path / "k.pem", _pem(ec_private_key)), alg="ES384")


def test_unsupported_curve_and_key_type_are_refused(tmp_path: Path) -> None:
    """A secp256k1 key and an Ed25519 key are refused as unsupported."""
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(ConfigurationError, match="curve secp256k1"):
        load_client_key(_write(tmp_path / "k1.pem", _pem(k1)))
    with pytest.raises(ConfigurationError, match="not supported"):
        load_client_key(_write(tmp_path / "ed.pem", _pem(ed25519.Ed25519PrivateKey.generate())))


def test_client_key_repr_hides_the_private_key(client_key: ClientKey) -> None:
    """The repr of a ClientKey shows kid and alg, never the private key object."""
    shown = repr(client_key)
    assert "test-client-key" in shown
    assert "private_key" not in shown
    assert "RSAPrivateKey" not in shown


def test_public_jwk_is_read_only(client_key: ClientKey) -> None:
    """The public JWK of a ClientKey cannot be changed in place."""
    with pytest.raises(TypeError):
        client_key.public_jwk["kid"] = "other"  # type: ignore[index]
