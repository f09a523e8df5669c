"""Enveloped XML-DSig signing and verification in the one profile we speak (DESIGN §2).

The profile: one ``ds:Signature``, the **last child** of the document element; one ``Reference`` with
``URI=""`` (the whole document); transforms exactly [enveloped-signature, exclusive C14N]; exclusive
C14N as CanonicalizationMethod; RSA-SHA256 signatures (RSA/ECDSA with SHA-384/512 accepted on
verification); SHA-256 digests or stronger; the signer's X.509 certificate in ``KeyInfo/X509Data``.
SHA-1 is refused everywhere, and so is everything else XML-DSig offers: :mod:`edi_gateway.xml.dsig_profile`
states the rules and checks them before any cryptography is spent.

Verification pins the certificate that the register holds for the claimed sender. The certificate
inside the message is never trusted for identity: when present it must be that very certificate. No
chain is built, so Norwegian enterprise certificates, which carry the nonRepudiation key usage and not
digitalSignature, verify as they should; the pinned certificate must be within its validity period.

Business data must be read only from :attr:`VerifiedDocument.root`, the content the signature covers
rebuilt from the canonical bytes that were digested; reading the received tree instead would open the
door to signature-wrapping attacks.

Received bytes are parsed by :func:`edi_gateway.xml.safe.parse_xml` (no DTD, no entities, no
network; comments and processing instructions dropped) before anything else looks at them, so the
signature is checked over the same reading of the text that every reader then uses.

Both directions are one pass, with lxml's exclusive canonicaliser and ``cryptography``. Signing: one
C14N of the document for the digest, one of ``SignedInfo`` for the RSA key. Verifying: one parse of the
received bytes; one C14N of ``SignedInfo`` where it stands, checked with the pinned key; the signature
taken out of that (private) tree as the enveloped transform does, one C14N of the document, its digest
compared in constant time; and those canonical bytes parsed once more into the tree the caller reads.

Pure: no file I/O except the :meth:`Signer.from_files` convenience, which only reads a key and a
certificate at start-up.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from edi_gateway.errors import SignatureInvalid, UnknownError
from edi_gateway.xml.dsig_profile import (
    ACCEPTED_DIGEST_METHODS,
    ACCEPTED_SIGNATURE_METHODS,
    DIGEST_METHODS,
    DS_NS,
    ENVELOPED,
    EXC_C14N,
    MALFORMED,
    RSA_SHA256,
    SHA256,
    SIGNATURE_METHODS,
    SIGNATURE_TAG,
    SignatureParts,
    check_profile,
    signature_parts,
)
from edi_gateway.xml.safe import parse_xml

__all__ = [
    "ACCEPTED_DIGEST_METHODS",
    "ACCEPTED_SIGNATURE_METHODS",
    "DS_NS",
    "ENVELOPED",
    "EXC_C14N",
    "Signer",
    "VerifiedDocument",
    "check_profile",
    "strip_signature",
    "verify_signed",
]


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """A document whose signature verified against the pinned certificate.

    Attributes:
        root: the document element exactly as covered by the signature, with the signature removed (the
            enveloped transform). Read business data from here and nowhere else.
        signer_cert_pem: the pinned certificate (PEM) the signature verified with.
    """

    root: etree._Element
    signer_cert_pem: bytes


class Signer:
    """Signs documents with one key and certificate, loaded once and reused for every message.

    A Signer may be shared between threads: signing keeps no state between calls.
    """

    __slots__ = ("_cert", "_cert_pem", "_key", "_key_info")

    def __init__(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        """Build a signer from loaded objects; prefer :meth:`from_pem` or :meth:`from_files`.

        Raises:
            ValueError: when the certificate does not belong to the key.
        """
        if _public_der(key.public_key()) != _public_der(cert.public_key()):
            raise ValueError("the signing certificate does not match the signing key")
        self._key = key
        self._cert = cert
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._key_info = _key_info_for(cert)

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes) -> Signer:
        """Build a signer from a PEM private key (unencrypted, RSA) and its PEM certificate.

        Raises:
            ValueError: when the key is not an RSA key, cannot be read, or does not match the certificate.
        """
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the signing key must be an RSA key (profile: RSA-SHA256)")
        return cls(key, x509.load_pem_x509_certificate(cert_pem))

    @classmethod
    def from_files(cls, key_path: Path, cert_path: Path) -> Signer:
        """Build a signer from a PEM key file and a PEM certificate file.

        Raises:
            OSError: when a file cannot be read.
            ValueError: as for :meth:`from_pem`.
        """
        return cls.from_pem(Path(key_path).read_bytes(), Path(cert_path).read_bytes())

    @property
    def certificate(self) -> x509.Certificate:
        """The signing certificate (for expiry checks in /readyz)."""
        return self._cert

    @property
    def cert_pem(self) -> bytes:
        """The signing certificate as PEM."""
        return self._cert_pem

    def sign(self, root: etree._Element) -> bytes:
        """Sign ``root`` and return the signed document (UTF-8, with XML declaration).

        ``root`` itself is left unchanged. One exclusive-C14N pass over the document gives the digest
        and one over ``SignedInfo`` the bytes the RSA key signs (lxml's canonicaliser, ``cryptography``'s
        RSA): the same signature signxml would make, without its serialise-and-reparse rounds. The tests
        check every signature made here with signxml's verifier as well as ours.

        Raises:
            SignatureInvalid: when ``root`` already carries a ``ds:Signature``.
        """
        if next(root.iter(SIGNATURE_TAG), None) is not None:
            raise SignatureInvalid("the document to sign already carries a ds:Signature")
        document = copy.deepcopy(root)
        # URI="" with the enveloped transform: the digest covers the document as it is before the
        # signature goes in (exclusive C14N, comments left out).
        digest = hashlib.sha256(
            etree.tostring(document, method="c14n", exclusive=True, with_comments=False)
        ).digest()
        signature = etree.SubElement(document, SIGNATURE_TAG, nsmap={"ds": DS_NS})
        signed_info = _signed_info(signature, base64.b64encode(digest).decode("ascii"))
        # Exclusive C14N renders only the namespaces SignedInfo uses, so it canonicalises the same
        # here as a verifier finds it inside the document.
        canonical = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
        value = self._key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
        etree.SubElement(signature, f"{{{DS_NS}}}SignatureValue").text = base64.b64encode(value).decode(
            "ascii"
        )
        signature.append(copy.deepcopy(self._key_info))
        return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


def _signed_info(signature: etree._Element, digest_value: str) -> etree._Element:
    """The profile's ``SignedInfo``: exclusive C14N, RSA-SHA256, one reference to the whole document."""
    signed_info = etree.SubElement(signature, f"{{{DS_NS}}}SignedInfo")
    etree.SubElement(signed_info, f"{{{DS_NS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, f"{{{DS_NS}}}SignatureMethod", Algorithm=RSA_SHA256)
    reference = etree.SubElement(signed_info, f"{{{DS_NS}}}Reference", URI="")
    transforms = etree.SubElement(reference, f"{{{DS_NS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, f"{{{DS_NS}}}DigestMethod", Algorithm=SHA256)
    etree.SubElement(reference, f"{{{DS_NS}}}DigestValue").text = digest_value
    return signed_info


def _key_info_for(cert: x509.Certificate) -> etree._Element:
    key_info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    x509_data = etree.SubElement(key_info, f"{{{DS_NS}}}X509Data")
    certificate = etree.SubElement(x509_data, f"{{{DS_NS}}}X509Certificate")
    certificate.text = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    return key_info


def _public_der(public_key: object) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("the signing certificate must hold an RSA public key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return public_key.public_bytes(serialization.Encoding.DER, spki)


# --- verification ------------------------------------------------------------------------------


def verify_signed(data: bytes, *, cert_pem: bytes) -> VerifiedDocument:
    """Verify the enveloped signature of ``data`` against the pinned certificate ``cert_pem``.

    Args:
        data: the received document.
        cert_pem: the certificate the register holds for the claimed sender (PEM).

    Returns:
        The signed content, signature removed, and the certificate it verified with.

    Raises:
        XmlRejected: when ``data`` is not well-formed or uses a forbidden XML feature (DOCTYPE, entities),
            or its signed content, canonicalised, is larger than the parser accepts.
        SignatureInvalid: when the signature is missing, breaks the profile, or does not verify.
        UnknownError: when ``cert_pem`` is not a certificate (a register problem, not the sender's).
    """
    pinned = _load_pinned(cert_pem)
    canonical = _signed_content(parse_xml(data), pinned)
    return VerifiedDocument(root=parse_xml(canonical), signer_cert_pem=pinned.pem)


def _signed_content(root: etree._Element, pinned: _Pinned) -> bytes:
    """Check ``root``'s signature and return the canonical bytes it covers (and nothing else).

    ``root`` must be a tree of the caller's own: the signature is taken out of it, not out of a copy.
    """
    parts: SignatureParts = signature_parts(root, pinned.der)
    pinned.check_valid_now()
    signed_info = _exc_c14n(parts.signed_info, None)
    _check_signature_value(pinned.public_key, parts.signature_method, parts.signature_value, signed_info)
    if any(not _is_key(numbers, pinned.public_key) for numbers in parts.rsa_key_values):
        raise SignatureInvalid(f"{MALFORMED}: a KeyValue is not the registered certificate's key")
    _remove_keeping_tail(parts.signature)
    canonical = _exc_c14n(root, parts.content_prefixes)
    digest = hashlib.new(DIGEST_METHODS[parts.digest_method], canonical).digest()
    if not hmac.compare_digest(digest, parts.digest_value):
        raise SignatureInvalid("the digest does not match: the signed content was altered")
    return canonical


def _exc_c14n(element: etree._Element, prefixes: list[str] | None) -> bytes:
    # SignedInfo is canonicalised where it stands: without a PrefixList (the profile allows none on
    # it), exclusive C14N renders only the namespaces it uses, whatever its ancestors declare.
    return etree.tostring(
        element, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes
    )


def _check_signature_value(
    public_key: CertificatePublicKeyTypes, method: str, value: bytes, signed_info: bytes
) -> None:
    kind, hash_algorithm = SIGNATURE_METHODS[method]
    try:
        if kind == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(value, signed_info, padding.PKCS1v15(), hash_algorithm)
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(_der_ecdsa(value, public_key.key_size), signed_info, ec.ECDSA(hash_algorithm))
        else:
            raise SignatureInvalid(f"{MALFORMED}: the signature method does not suit the registered key")
    except InvalidSignature as exc:
        raise SignatureInvalid("the signature value does not verify with the registered certificate") from exc


def _der_ecdsa(value: bytes, key_size: int) -> bytes:
    """XML-DSig's ECDSA value (r and s side by side, each the curve's size) as the DER that OpenSSL reads."""
    size = (key_size + 7) // 8
    if len(value) != 2 * size:
        raise InvalidSignature
    return encode_dss_signature(int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big"))


def _is_key(rsa_numbers: tuple[int, int], public_key: CertificatePublicKeyTypes) -> bool:
    """Whether an RSAKeyValue's (modulus, exponent) is ``public_key``."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    numbers = public_key.public_numbers()
    return rsa_numbers == (numbers.n, numbers.e)


def strip_signature(root: etree._Element) -> etree._Element:
    """Return a copy of ``root`` without its last-child ``ds:Signature`` (as the enveloped transform does).

    Use it to schema-validate a document whose signature was verified or is not required (AppRec XSDs
    have no slot for a signature). ``root`` itself is left unchanged; a document without a trailing
    signature comes back as an unchanged copy.
    """
    stripped = copy.deepcopy(root)
    last = stripped[-1] if len(stripped) else None
    if last is not None and last.tag == SIGNATURE_TAG:
        _remove_keeping_tail(last)
    return stripped


def _remove_keeping_tail(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


@dataclass(frozen=True, slots=True)
class _Pinned:
    """A registered certificate, read once: what verification needs of it."""

    pem: bytes
    der: bytes
    public_key: CertificatePublicKeyTypes
    not_before: dt.datetime
    not_after: dt.datetime

    def check_valid_now(self) -> None:
        """Raise SignatureInvalid unless the certificate is within its validity period now."""
        if not self.not_before <= dt.datetime.now(dt.UTC) <= self.not_after:
            raise SignatureInvalid("the pinned certificate is not valid at this time")


# A few hundred partners at most: the register's certificates are parsed once, not per message.
@lru_cache(maxsize=512)
def _load_pinned(cert_pem: bytes) -> _Pinned:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise UnknownError("the registered certificate is not a PEM X.509 certificate") from exc
    return _Pinned(
        pem=cert.public_bytes(serialization.Encoding.PEM),
        der=cert.public_bytes(serialization.Encoding.DER),
        public_key=cert.public_key(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
