"""signxml as an oracle for the gateway's own verifier (tests only).

Until the verifier in :mod:`edi_gateway.xml.signing` checked signatures itself, it handed the parsed
document to signxml after its profile check; that call is kept here, unchanged in what it asks of
signxml (the signature a child of the document element, one reference, the profile's algorithms, the
pinned certificate and no chain), so that the differential tests can put the same bytes to both.
signxml here gets the document without our profile check in front: where the two disagree, the
profile is stricter, and the tests say why case by case.
"""

from __future__ import annotations

import threading

from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import (
    InvalidCertificate,
    InvalidDigest,
    InvalidInput,
    InvalidSignature,
    SignXMLException,
)
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from edi_gateway.errors import SignatureInvalid, XmlRejected
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.signing import ACCEPTED_DIGEST_METHODS, ACCEPTED_SIGNATURE_METHODS

# location "./" = the signature must be a child of the document element.
EXPECT = SignatureConfiguration(
    require_x509=True,
    location="./",
    expect_references=1,
    signature_methods=frozenset(SignatureMethod(uri) for uri in ACCEPTED_SIGNATURE_METHODS),
    digest_algorithms=frozenset(DigestAlgorithm(uri) for uri in ACCEPTED_DIGEST_METHODS),
)

_thread_state = threading.local()


def signxml_signed_data(data: bytes, cert_pem: bytes) -> bytes | None:
    """The canonical bytes signxml says ``data``'s signature covers, or None when it refuses the document.

    The bytes are parsed as the gateway parses them (:func:`parse_xml`) before signxml sees the tree.
    """
    try:
        root = parse_xml(data)
        result = verify_with_signxml(root, x509.load_pem_x509_certificate(cert_pem))
    except (SignatureInvalid, XmlRejected):
        return None
    return result.signed_data


def verify_with_signxml(root: etree._Element, pinned: x509.Certificate) -> VerifyResult:
    """signxml's verification of ``root`` against the pinned certificate, its errors mapped as the gateway did.

    Raises:
        SignatureInvalid: whatever signxml refuses.
    """
    # A fresh XMLVerifier per call: verify() keeps per-call state on the object.
    try:
        result = XMLVerifier().verify(root, x509_cert=pinned, expect_config=EXPECT, parser=_parser())
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
    if not isinstance(result, VerifyResult) or result.signed_xml is None:
        raise SignatureInvalid("the signed content is not an XML document")
    if result.signed_xml.tag != root.tag:
        raise SignatureInvalid("the signed content is not the document element")
    return result


def _parser() -> etree.XMLParser:
    # signxml re-parses the document several times during verification; it gets a hardened parser of
    # this thread's own that reads text as parse_xml does, so no re-parse brings back a comment or a PI.
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
