"""A test PKI generated on first use: one CA and one enterprise certificate per party (HER-id).

Norwegian enterprise certificates (virksomhetssertifikater) used for signing carry the
**nonRepudiation** key usage and not digitalSignature; the generated certificates do the same, so the
demo and the tests exercise exactly what production sees.

Layout of the folder (all PEM):

    ca.cert.pem, ca.key.pem               the test CA
    <her_id>.cert.pem, <her_id>.key.pem   one pair per party; keys are mode 0600

Party certificate subject: ``CN=<name>, O=<name>, serialNumber=<her_id>, C=NO``. The HER-id sits in
``serialNumber`` (where real enterprise certificates put the organisation number) so a person reading
the certificate sees which party it belongs to.

This is an I/O module: it writes files. Every file is written to a temporary name and moved into
place atomically (``edi_gateway.private_files``), keys owner-only whatever the umask, and the whole
generation runs under an exclusive lock on ``.pki.lock``, so two processes starting at once end up
with one CA and one key per party. Private keys exist only
where this module generates them; none is ever committed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from edi_gateway.private_files import private_dir, write_atomically

CA_NAME = "edi_gateway test CA"
KEY_BITS = 2048
PARTY_VALIDITY = dt.timedelta(days=730)
CA_VALIDITY = dt.timedelta(days=3650)
# Backdating absorbs clock skew between the machine that generates and the one that verifies.
_BACKDATE = dt.timedelta(hours=1)
_LOCK_NAME = ".pki.lock"
_MAX_KEYGEN_THREADS = 8


@dataclass(frozen=True, slots=True)
class TestPki:
    """Where a generated test PKI lives, and how to find each party's files in it.

    Attributes:
        directory: the folder holding the CA and every party's key and certificate.
    """

    __test__ = False  # not a pytest test class, despite the name

    directory: Path

    @property
    def ca_cert_path(self) -> Path:
        """The CA certificate (PEM)."""
        return self.directory / "ca.cert.pem"

    @property
    def ca_key_path(self) -> Path:
        """The CA private key (PEM, mode 0600)."""
        return self.directory / "ca.key.pem"

    def key_path(self, her_id: int) -> Path:
        """Return the path of the private key (PEM, mode 0600) of the party ``her_id``."""
        return self.directory / f"{her_id}.key.pem"

    def cert_path(self, her_id: int) -> Path:
        """Return the path of the certificate (PEM) of the party ``her_id``."""
        return self.directory / f"{her_id}.cert.pem"

    def cert_pem(self, her_id: int) -> bytes:
        """Return the PEM certificate of the party ``her_id``.

        Raises:
            FileNotFoundError: when the PKI has no certificate for ``her_id``.
        """
        return self.cert_path(her_id).read_bytes()

    def has(self, her_id: int) -> bool:
        """Return True when both the key and the certificate of ``her_id`` exist."""
        return self.key_path(her_id).is_file() and self.cert_path(her_id).is_file()


@dataclass(frozen=True, slots=True)
class _Ca:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate


def ensure_test_pki(directory: Path, parties: Iterable[tuple[int, str]]) -> TestPki:
    """Create, where missing, the test CA and a key and certificate for every party.

    Idempotent: files already present are reused untouched, so a second call with more parties only
    adds the new ones. Safe when several processes call it at once.

    Args:
        directory: the PKI folder; created (mode 0700) when absent.
        parties: ``(her_id, name)`` pairs; the name goes into the certificate subject.

    Returns:
        The PKI, with every requested party present.

    Raises:
        ValueError: when a HER-id is not positive or a name is empty.
    """
    wanted = _checked_parties(parties)
    pki = TestPki(directory)
    private_dir(directory)
    with _exclusive_lock(directory / _LOCK_NAME):
        ca = _load_or_create_ca(pki)
        missing = {her_id: name for her_id, name in wanted.items() if not pki.has(her_id)}
        _issue_all(pki, ca, missing)
    return pki


def _checked_parties(parties: Iterable[tuple[int, str]]) -> dict[int, str]:
    wanted: dict[int, str] = {}
    for her_id, name in parties:
        if her_id <= 0:
            raise ValueError(f"HER-id must be a positive integer, got {her_id}")
        if not name.strip():
            raise ValueError(f"party {her_id} has an empty name")
        wanted[her_id] = name.strip()
    return wanted


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    # flock is released by the kernel when the process dies, so a crashed run never leaves a stale lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _load_or_create_ca(pki: TestPki) -> _Ca:
    if pki.ca_cert_path.is_file() and pki.ca_key_path.is_file():
        key = serialization.load_pem_private_key(pki.ca_key_path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the test CA key is not an RSA key")
        return _Ca(key, x509.load_pem_x509_certificate(pki.ca_cert_path.read_bytes()))
    ca = _new_ca()
    write_atomically(pki.ca_key_path, _key_pem(ca.key), mode=0o600)
    write_atomically(pki.ca_cert_path, ca.cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return ca


def _issue_all(pki: TestPki, ca: _Ca, parties: dict[int, str]) -> None:
    if not parties:
        return
    # RSA key generation dominates and releases the GIL, so a few threads cut the wall time well.
    workers = min(_MAX_KEYGEN_THREADS, len(parties))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        keys = list(pool.map(lambda _: _new_key(), parties))
    for (her_id, name), key in zip(parties.items(), keys, strict=True):
        cert = _party_cert(ca, key, her_id, name)
        # The key goes first: a party counts as present only once its certificate exists too.
        write_atomically(pki.key_path(her_id), _key_pem(key), mode=0o600)
        write_atomically(pki.cert_path(her_id), cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _new_ca() -> _Ca:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edi_gateway test PKI"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Ca(key, cert)


def party_subject(her_id: int, name: str) -> x509.Name:
    """Return the certificate subject used for the party ``her_id`` called ``name``."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, str(her_id)),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _party_cert(ca: _Ca, key: rsa.RSAPrivateKey, her_id: int, name: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(party_subject(her_id, name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + PARTY_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(non_repudiation=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def _key_usage(*, non_repudiation: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=non_repudiation,  # the X.509 name of nonRepudiation
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
