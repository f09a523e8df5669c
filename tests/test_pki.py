"""Tests for edi_gateway.pki: the test PKI generated on first use."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import stat
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from edi_gateway.pki import TestPki, ensure_test_pki

PARTIES = [(8100001, "Sykehus Test HF"), (8200001, "Testkommune"), (8300001, "Testlegekontor")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A PKI generated once for the read-only tests of this module."""
    return ensure_test_pki(tmp_path_factory.mktemp("pki"), PARTIES)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.glob("*.pem")}


def test_creates_a_ca_and_a_key_and_certificate_per_party(pki: TestPki) -> None:
    """Every requested party gets a key and a certificate, beside one CA."""
    assert pki.ca_cert_path.is_file()
    for her_id, _ in PARTIES:
        assert pki.has(her_id)
        assert pki.key_path(her_id).name == f"{her_id}.key.pem"
        assert pki.cert_path(her_id).name == f"{her_id}.cert.pem"
    assert sorted(p.name for p in pki.directory.glob("*.pem")) == sorted(
        ["ca.cert.pem", "ca.key.pem"] + [f"{h}.{kind}.pem" for h, _ in PARTIES for kind in ("key", "cert")]
    )


def test_party_subject_carries_name_and_her_id(pki: TestPki) -> None:
    """The subject names the party (CN, O) and carries its HER-id in serialNumber."""
    subject = _cert(pki.cert_path(8200001)).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Testkommune"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Testkommune"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "8200001"


def test_party_certificate_has_non_repudiation_and_not_digital_signature(pki: TestPki) -> None:
    """Like a virksomhetssertifikat: nonRepudiation (critical), no digitalSignature, not a CA."""
    cert = _cert(pki.cert_path(8100001))
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.content_commitment
    assert not usage.value.digital_signature
    assert not usage.value.key_cert_sign
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca


def test_party_certificate_is_issued_by_the_ca_and_valid_two_years(pki: TestPki) -> None:
    """Each party certificate is signed by the test CA and is valid now and for about two years."""
    ca = _cert(pki.ca_cert_path)
    cert = _cert(pki.cert_path(8300001))
    cert.verify_directly_issued_by(ca)
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    assert dt.timedelta(days=700) < cert.not_valid_after_utc - now < dt.timedelta(days=740)


def test_party_key_is_2048_bit_rsa_matching_its_certificate(pki: TestPki) -> None:
    """The private key is 2048-bit RSA and belongs to the certificate."""
    key = serialization.load_pem_private_key(pki.key_path(8100001).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert key.public_key() == _cert(pki.cert_path(8100001)).public_key()


def test_private_keys_are_readable_by_the_owner_only(pki: TestPki) -> None:
    """Every private key file, the CA's too, has mode 0600."""
    for path in [pki.ca_key_path, *(pki.key_path(h) for h, _ in PARTIES)]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cert_pem_and_has_for_an_unknown_party(pki: TestPki) -> None:
    """An unknown HER-id is reported absent, and asking for its certificate raises FileNotFoundError."""
    assert not pki.has(9999999)
    with pytest.raises(FileNotFoundError):
        pki.cert_pem(9999999)
    assert pki.cert_pem(8100001) == pki.cert_path(8100001).read_bytes()


def test_second_call_changes_nothing(tmp_path: Path) -> None:
    """Calling again with the same parties leaves every file byte-for-byte and untouched."""
    ensure_test_pki(tmp_path, PARTIES)
    before = _snapshot(tmp_path)
    again = ensure_test_pki(tmp_path, PARTIES)
    assert _snapshot(tmp_path) == before
    assert again.directory == tmp_path


def test_second_call_adds_only_new_parties(tmp_path: Path) -> None:
    """A call with more parties issues certificates for the new ones and reuses the rest."""
    ensure_test_pki(tmp_path, PARTIES[:1])
    before = _snapshot(tmp_path)
    pki = ensure_test_pki(tmp_path, PARTIES)
    after = _snapshot(tmp_path)
    assert {name: after[name] for name in before} == before
    assert all(pki.has(her_id) for her_id, _ in PARTIES)
    _cert(pki.cert_path(8300001)).verify_directly_issued_by(_cert(pki.ca_cert_path))


def test_a_party_left_half_written_is_issued_again(tmp_path: Path) -> None:
    """A key without its certificate (an interrupted run) counts as absent and gets a fresh pair."""
    pki = ensure_test_pki(tmp_path, PARTIES[:1])
    pki.cert_path(8100001).unlink()
    ensure_test_pki(tmp_path, PARTIES[:1])
    key = serialization.load_pem_private_key(pki.key_path(8100001).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.public_key() == _cert(pki.cert_path(8100001)).public_key()


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    """Only the PEM files and the lock file remain after generation."""
    ensure_test_pki(tmp_path, PARTIES)
    assert {p.name for p in tmp_path.iterdir() if not p.name.endswith(".pem")} == {".pki.lock"}


def test_directory_is_created_private(tmp_path: Path) -> None:
    """A missing PKI folder is created, readable by the owner only."""
    directory = tmp_path / "home" / "pki"
    ensure_test_pki(directory, PARTIES[:1])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_keys_and_folder_are_owner_only_under_umask_000(tmp_path: Path) -> None:
    """With umask 000 the folder is still 0700, every key 0600, and certificates 0644."""
    old = os.umask(0)
    try:
        pki = ensure_test_pki(tmp_path / "pki", PARTIES[:1])
    finally:
        os.umask(old)
    her_id = PARTIES[0][0]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (pki.ca_key_path, pki.key_path(her_id))}
    assert modes == {"ca.key.pem": 0o600, f"{her_id}.key.pem": 0o600}
    assert stat.S_IMODE(pki.cert_path(her_id).stat().st_mode) == 0o644
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((pki.directory / ".pki.lock").stat().st_mode) == 0o600


@pytest.mark.parametrize("party", [(0, "Zero"), (-5, "Negative"), (8100001, "  ")])
def test_invalid_party_is_refused(party: tuple[int, str], tmp_path: Path) -> None:
    """A HER-id that is not positive, or an empty name, is refused before anything is written."""
    with pytest.raises(ValueError):
        ensure_test_pki(tmp_path / "pki", [party])
    assert not (tmp_path / "pki").exists()


def _ensure_in_child(directory: str, first: int, count: int, barrier: Barrier) -> None:
    barrier.wait()
    ensure_test_pki(Path(directory), [(first + i, f"Party {first + i}") for i in range(count)])


def test_concurrent_processes_produce_one_ca(tmp_path: Path) -> None:
    """Two processes generating at the same moment end with one CA that issued every party certificate."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    # Overlapping HER-id ranges: both processes want 8100005..8100009.
    children = [
        context.Process(target=_ensure_in_child, args=(str(tmp_path), first, 10, barrier))
        for first in (8100000, 8100005)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    ca = _cert(tmp_path / "ca.cert.pem")
    certs = sorted(tmp_path.glob("81*.cert.pem"))
    assert len(certs) == 15
    for path in certs:
        _cert(path).verify_directly_issued_by(ca)
    pki = TestPki(tmp_path)
    for her_id in range(8100000, 8100015):
        key = serialization.load_pem_private_key(pki.key_path(her_id).read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.public_key() == _cert(pki.cert_path(her_id)).public_key()
