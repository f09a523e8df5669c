"""Enveloped XML-DSig signing and verification in the one profile we speak (DESIGN §2).

The profile: one ``ds:Signature``, the **last child** of the document element; one ``Reference`` with
``URI=""`` (the whole document); transforms exactly [enveloped-signature, exclusive C14N]; exclusive
C14N as CanonicalizationMethod; RSA-SHA256 signatures (RSA/ECDSA with SHA-384/512 accepted on
verification); SHA-256 digests or stronger; the signer's X.509 certificate in ``KeyInfo/X509Data``.
SHA-1 is refused everywhere.

Verification pins the certificate that the register holds for the claimed sender. The certificate
inside the message is never trusted for identity: when present it must be that very certificate. With a
pinned certificate signxml does not build a chain, so Norwegian enterprise certificates, which carry the
nonRepudiation key usage and not digitalSignature, verify as they should.

Business data must be read only from :attr:`VerifiedDocument.root`, the content the signature covers as
signxml rebuilt it from the canonical bytes; reading the received tree instead would open the door to
signature-wrapping attacks.

Received bytes are parsed by :func:`edi_gateway.xml.safe.parse_xml` (no DTD, no entities, no
network; comments and processing instructions dropped) before anything else looks at them, so the
signature is checked over the same reading of the text that every reader then uses.

Pure: no file I/O except the :meth:`Signer.from_files` convenience, which only reads a key and a
certificate at start-up.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import (
    InvalidCertificate,
    InvalidDigest,
    InvalidInput,
    InvalidSignature,
    SignXMLException,
)
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from edi_gateway.errors import SignatureInvalid, UnknownError
from edi_gateway.xml.namespaces import XMLDSIG
from edi_gateway.xml.safe import parse_xml

DS_NS: Final = XMLDSIG
ENVELOPED: Final = SignatureConstructionMethod.enveloped.value
EXC_C14N: Final = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value

#: Signature methods accepted on verification. We sign with RSA-SHA256 only.
ACCEPTED_SIGNATURE_METHODS: Final = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
#: Digest methods accepted on verification. We digest with SHA-256 only.
ACCEPTED_DIGEST_METHODS: Final = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)

_SIGNATURE_TAG: Final = f"{{{DS_NS}}}Signature"
_SIGNATURE_CHILDREN: Final = frozenset({"SignedInfo", "SignatureValue", "KeyInfo"})
_KEY_INFO_CHILDREN: Final = frozenset({"X509Data", "KeyValue", "KeyName"})
_NS: Final = {"ds": DS_NS}

# signxml checks what it can (algorithms, one reference, the signature's place); our own profile check
# before it covers the rest. location "./" = the signature must be a child of the document element.
_EXPECT: Final = SignatureConfiguration(
    require_x509=True,
    location="./",
    expect_references=1,
    signature_methods=frozenset(ACCEPTED_SIGNATURE_METHODS),
    digest_algorithms=frozenset(ACCEPTED_DIGEST_METHODS),
)


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
        RSA): the same signature signxml would make, without its serialise-and-reparse rounds. The
        signxml-based verifier checks every signature made here in the tests.

        Raises:
            SignatureInvalid: when ``root`` already carries a ``ds:Signature``.
        """
        if next(root.iter(_SIGNATURE_TAG), None) is not None:
            raise SignatureInvalid("the document to sign already carries a ds:Signature")
        document = copy.deepcopy(root)
        # URI="" with the enveloped transform: the digest covers the document as it is before the
        # signature goes in (exclusive C14N, comments left out).
        digest = hashlib.sha256(
            etree.tostring(document, method="c14n", exclusive=True, with_comments=False)
        ).digest()
        signature = etree.SubElement(document, _SIGNATURE_TAG, nsmap={"ds": DS_NS})
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
    etree.SubElement(signed_info, f"{{{DS_NS}}}SignatureMethod", Algorithm=SignatureMethod.RSA_SHA256.value)
    reference = etree.SubElement(signed_info, f"{{{DS_NS}}}Reference", URI="")
    transforms = etree.SubElement(reference, f"{{{DS_NS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, f"{{{DS_NS}}}Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, f"{{{DS_NS}}}DigestMethod", Algorithm=DigestAlgorithm.SHA256.value)
    etree.SubElement(reference, f"{{{DS_NS}}}DigestValue").text = digest_value
    return signed_info


def _key_info_for(cert: x509.Certificate) -> etree._Element:
    key_info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    x509_data = etree.SubElement(key_info, f"{{{DS_NS}}}X509Data")
    certificate = etree.SubElement(x509_data, f"{{{DS_NS}}}X509Certificate")
    certificate.text = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    return key_info


def verify_signed(data: bytes, *, cert_pem: bytes) -> VerifiedDocument:
    """Verify the enveloped signature of ``data`` against the pinned certificate ``cert_pem``.

    Args:
        data: the received document.
        cert_pem: the certificate the register holds for the claimed sender (PEM).

    Returns:
        The signed content, signature removed, and the certificate it verified with.

    Raises:
        XmlRejected: when ``data`` is not well-formed or uses a forbidden XML feature (DOCTYPE, entities).
        SignatureInvalid: when the signature is missing, breaks the profile, or does not verify.
        UnknownError: when ``cert_pem`` is not a certificate (a register problem, not the sender's).
    """
    pinned = _load_pinned(cert_pem)
    root = parse_xml(data)
    check_profile(root, pinned.cert)
    signed_root = _verify_with_signxml(root, pinned.cert)
    if signed_root.tag != root.tag:
        raise SignatureInvalid("the signed content is not the document element")
    return VerifiedDocument(root=signed_root, signer_cert_pem=pinned.pem)


def check_profile(root: etree._Element, pinned: x509.Certificate) -> None:
    """Check that ``root`` carries exactly one signature in our profile, made with ``pinned``'s certificate.

    This checks the structure only; the cryptographic check is :func:`verify_signed`'s.

    Raises:
        SignatureInvalid: naming the first rule broken.
    """
    signature = _the_signature(root)
    signed_info = _only_child(signature, "SignedInfo")
    _check_signature_children(signature)
    _check_algorithm(signed_info, "CanonicalizationMethod", {EXC_C14N}, "canonicalization method")
    _check_algorithm(
        signed_info, "SignatureMethod", {m.value for m in ACCEPTED_SIGNATURE_METHODS}, "signature method"
    )
    _check_reference(signed_info)
    _check_key_info(signature, pinned)


def strip_signature(root: etree._Element) -> etree._Element:
    """Return a copy of ``root`` without its last-child ``ds:Signature`` (as the enveloped transform does).

    Use it to schema-validate a document whose signature was verified or is not required (AppRec XSDs
    have no slot for a signature). ``root`` itself is left unchanged; a document without a trailing
    signature comes back as an unchanged copy.
    """
    stripped = copy.deepcopy(root)
    last = stripped[-1] if len(stripped) else None
    if last is not None and last.tag == _SIGNATURE_TAG:
        _remove_keeping_tail(last)
    return stripped


def _the_signature(root: etree._Element) -> etree._Element:
    if root.tag == _SIGNATURE_TAG:
        raise SignatureInvalid("the document element is a ds:Signature (enveloping signatures are refused)")
    signatures = list(root.iter(_SIGNATURE_TAG))
    if not signatures:
        raise SignatureInvalid("the document carries no ds:Signature")
    if len(signatures) > 1:
        raise SignatureInvalid(f"the document carries {len(signatures)} ds:Signature elements, expected one")
    signature = signatures[0]
    if signature.getparent() is not root:
        raise SignatureInvalid("the ds:Signature is not a child of the document element")
    # itersiblings also yields comments and processing instructions: nothing at all may follow.
    if next(signature.itersiblings(), None) is not None:
        raise SignatureInvalid("the ds:Signature is not the last child of the document element")
    return signature


def _check_signature_children(signature: etree._Element) -> None:
    for child in signature.iterchildren("*"):
        name = etree.QName(child)
        if name.namespace != DS_NS or name.localname not in _SIGNATURE_CHILDREN:
            raise SignatureInvalid(f"the ds:Signature holds an unexpected element {name.localname}")


def _check_reference(signed_info: etree._Element) -> None:
    references = signed_info.findall("ds:Reference", _NS)
    if len(references) != 1:
        raise SignatureInvalid(f"SignedInfo holds {len(references)} references, expected one")
    reference = references[0]
    if reference.get("URI") != "":
        raise SignatureInvalid('the reference must cover the whole document (URI="")')
    transforms = [t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", _NS)]
    if transforms != [ENVELOPED, EXC_C14N]:
        raise SignatureInvalid("the transforms must be exactly [enveloped-signature, exclusive C14N]")
    _check_algorithm(reference, "DigestMethod", {d.value for d in ACCEPTED_DIGEST_METHODS}, "digest method")


def _check_algorithm(parent: etree._Element, name: str, accepted: set[str], what: str) -> None:
    algorithm = _only_child(parent, name).get("Algorithm")
    if algorithm not in accepted:
        # The algorithm URI is protocol metadata, never payload, so it may be named.
        raise SignatureInvalid(f"{what} {algorithm!r} is not accepted")


def _check_key_info(signature: etree._Element, pinned: x509.Certificate) -> None:
    key_info = signature.find("ds:KeyInfo", _NS)
    if key_info is None:
        return
    for child in key_info.iterchildren("*"):
        name = etree.QName(child)
        if name.namespace != DS_NS or name.localname not in _KEY_INFO_CHILDREN:
            raise SignatureInvalid(f"KeyInfo holds an unexpected element {name.localname}")
    certificates = key_info.findall("ds:X509Data/ds:X509Certificate", _NS)
    if len(certificates) > 1:
        raise SignatureInvalid("KeyInfo holds more than one X509Certificate")
    if certificates and _embedded_certificate(certificates[0]) != pinned:
        raise SignatureInvalid("the certificate in KeyInfo is not the certificate registered for the sender")


def _embedded_certificate(element: etree._Element) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode(element.text or "", validate=False))
    except (ValueError, binascii.Error) as exc:
        raise SignatureInvalid("the X509Certificate in KeyInfo cannot be read") from exc


def _only_child(parent: etree._Element, name: str) -> etree._Element:
    found = parent.findall(f"ds:{name}", _NS)
    if len(found) != 1:
        raise SignatureInvalid(f"expected one ds:{name}, found {len(found)}")
    return found[0]


def _verify_with_signxml(root: etree._Element, pinned: x509.Certificate) -> etree._Element:
    # A fresh XMLVerifier per call: verify() keeps per-call state on the object.
    try:
        result = XMLVerifier().verify(root, x509_cert=pinned, expect_config=_EXPECT, parser=_signxml_parser())
    except InvalidDigest as exc:
        raise SignatureInvalid("the digest does not match: the signed content was altered") from exc
    except InvalidCertificate as exc:
        raise SignatureInvalid("the pinned certificate is not valid at this time") from exc
    except InvalidSignature as exc:
        raise SignatureInvalid("the signature value does not verify with the registered certificate") from exc
    except (InvalidInput, SignXMLException, etree.DocumentInvalid) as exc:
        raise SignatureInvalid(
            "the ds:Signature is malformed or inconsistent (XML-DSig schema, KeyValue)"
        ) from exc
    # expect_references=1 makes signxml return a single result, never a list.
    signed_xml = result.signed_xml if isinstance(result, VerifyResult) else None
    if signed_xml is None:
        raise SignatureInvalid("the signed content is not an XML document")
    return signed_xml


@dataclass(frozen=True, slots=True)
class _Pinned:
    cert: x509.Certificate
    pem: bytes


# A few hundred partners at most: the register's certificates are parsed once, not per message.
@lru_cache(maxsize=512)
def _load_pinned(cert_pem: bytes) -> _Pinned:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise UnknownError("the registered certificate is not a PEM X.509 certificate") from exc
    return _Pinned(cert, cert.public_bytes(serialization.Encoding.PEM))


def _public_der(public_key: object) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("the signing certificate must hold an RSA public key")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return public_key.public_bytes(serialization.Encoding.DER, spki)


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


_thread_state = threading.local()


def _signxml_parser() -> etree.XMLParser:
    # signxml re-parses the document several times during verification; hand it a hardened parser of
    # this thread's own (lxml parsers must not be shared between threads, and building one per call
    # costs more than the parse). It reads text as parse_xml does, so no re-parse can bring back a
    # comment or a processing instruction.
    parser: etree.XMLParser | None = getattr(_thread_state, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        _thread_state.parser = parser
    return parser
