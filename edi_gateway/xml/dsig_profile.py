"""The one XML-DSig profile we accept, as rules on the received tree: :func:`check_profile`.

:mod:`edi_gateway.xml.signing` signs in this profile and verifies signatures cryptographically; this
module says what a signature may look like before any cryptography is spent on it, and hands the
verifier the few values it needs (:class:`SignatureParts`).

The check is a small schema of its own. Every element, attribute and text inside ``ds:Signature`` must
be one the profile names, in the order XML-DSig gives them, so nothing outside it is ever processed:
no HMAC, no SHA-1, no XPath, XSLT or base64 transform, no reference but ``URI=""``, no ``ds:Object``
or ``Manifest``, no key named by the message (no ``RetrievalMethod``, ``DEREncodedKeyValue`` and the
like; a ``KeyValue`` may only name an RSA key, which the verifier then compares with the pinned one).
The one parameter accepted is an ``ec:InclusiveNamespaces`` ``PrefixList`` on the reference's
exclusive-C14N transform, which XML-DSig allows and some signers write; on ``SignedInfo``'s
``CanonicalizationMethod`` it is refused, as the signxml-based verifier before this one refused it.

Messages name the rule broken and the profile's own element names, never a value from the document.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree

from edi_gateway.errors import SignatureInvalid
from edi_gateway.xml.namespaces import XMLDSIG

DS_NS: Final = XMLDSIG
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
"""Exclusive XML canonicalisation 1.0 without comments; also the namespace of ``InclusiveNamespaces``."""
ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"

_MORE: Final = "http://www.w3.org/2001/04/xmldsig-more#"
#: Signature method URI → (key type, hash). We sign with RSA-SHA256 only; SHA-1 is not here.
SIGNATURE_METHODS: Final[dict[str, tuple[Literal["rsa", "ecdsa"], hashes.HashAlgorithm]]] = {
    RSA_SHA256: ("rsa", hashes.SHA256()),
    _MORE + "rsa-sha384": ("rsa", hashes.SHA384()),
    _MORE + "rsa-sha512": ("rsa", hashes.SHA512()),
    _MORE + "ecdsa-sha256": ("ecdsa", hashes.SHA256()),
    _MORE + "ecdsa-sha384": ("ecdsa", hashes.SHA384()),
    _MORE + "ecdsa-sha512": ("ecdsa", hashes.SHA512()),
}
#: Digest method URI → hashlib name. We digest with SHA-256 only; SHA-1 is not here.
DIGEST_METHODS: Final = {
    SHA256: "sha256",
    _MORE + "sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}

ACCEPTED_SIGNATURE_METHODS: Final = frozenset(SIGNATURE_METHODS)
"""Signature method URIs accepted on verification (RSA PKCS#1 v1.5 or ECDSA, SHA-256/384/512)."""
ACCEPTED_DIGEST_METHODS: Final = frozenset(DIGEST_METHODS)
"""Digest method URIs accepted on verification (SHA-256/384/512)."""

SIGNATURE_TAG: Final = f"{{{DS_NS}}}Signature"
MALFORMED: Final = "the ds:Signature is malformed or inconsistent"
"""How every message about a signature that breaks XML-DSig's own rules (or names another key) begins."""

_SIGNATURE_CHILDREN: Final = frozenset({"SignedInfo", "SignatureValue", "KeyInfo"})
_KEY_INFO_CHILDREN: Final = frozenset({"X509Data", "KeyValue", "KeyName"})
_NS: Final = {"ds": DS_NS, "ec": EXC_C14N}
_XML_SPACE: Final = " \t\r\n"
_NCNAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")


def check_profile(root: etree._Element, pinned: x509.Certificate) -> None:
    """Check that ``root`` carries exactly one signature in our profile, made with ``pinned``'s certificate.

    This checks the structure only; the cryptographic check is
    :func:`edi_gateway.xml.signing.verify_signed`'s, which makes this check first.

    Raises:
        SignatureInvalid: naming the first rule broken.
    """
    signature_parts(root, pinned.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True, slots=True)
class SignatureParts:
    """What the cryptographic check needs from a signature that passed the structural check.

    Attributes:
        signature: the ``ds:Signature`` element, still in the received tree.
        signed_info: its ``SignedInfo``, the element the signature value covers.
        signature_method: the signature method URI (one of :data:`ACCEPTED_SIGNATURE_METHODS`).
        signature_value: the decoded ``SignatureValue``.
        content_prefixes: the PrefixList of the reference's canonicalisation, or None.
        digest_method: the digest method URI (one of :data:`ACCEPTED_DIGEST_METHODS`).
        digest_value: the decoded ``DigestValue``.
        rsa_key_values: (modulus, exponent) of every ``KeyValue`` in ``KeyInfo``.
    """

    signature: etree._Element
    signed_info: etree._Element
    signature_method: str
    signature_value: bytes
    content_prefixes: list[str] | None
    digest_method: str
    digest_value: bytes
    rsa_key_values: list[tuple[int, int]]


def signature_parts(root: etree._Element, pinned_der: bytes) -> SignatureParts:
    """Check ``root``'s signature as :func:`check_profile` does and return what verification needs of it.

    Args:
        root: the received document element.
        pinned_der: the pinned certificate (DER) that an ``X509Certificate`` in ``KeyInfo`` must be.

    Raises:
        SignatureInvalid: naming the first rule broken.
    """
    signature = _the_signature(root)
    signed_info = _only_child(signature, "SignedInfo")
    _check_signature_children(signature)
    _checked_algorithm(signed_info, "CanonicalizationMethod", {EXC_C14N}, "canonicalization method")
    signature_method = _checked_algorithm(
        signed_info, "SignatureMethod", ACCEPTED_SIGNATURE_METHODS, "signature method"
    )
    reference, content_c14n = _checked_reference(signed_info)
    _check_key_info(signature, pinned_der)
    _check_shape(signature)
    # The shape check has made every base64 text below readable.
    return SignatureParts(
        signature=signature,
        signed_info=signed_info,
        signature_method=signature_method.get("Algorithm", ""),
        signature_value=_base64(_only_child(signature, "SignatureValue")) or b"",
        content_prefixes=_inclusive_prefixes(content_c14n),
        digest_method=_only_child(reference, "DigestMethod").get("Algorithm", ""),
        digest_value=_base64(_only_child(reference, "DigestValue")) or b"",
        rsa_key_values=[_rsa_numbers(value) for value in _all(signature, "KeyInfo/KeyValue/RSAKeyValue")],
    )


def _rsa_numbers(rsa_key_value: etree._Element) -> tuple[int, int]:
    """The modulus and the exponent a well-formed RSAKeyValue names."""
    modulus, exponent = (_base64(_only_child(rsa_key_value, name)) or b"" for name in ("Modulus", "Exponent"))
    return int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")


def _the_signature(root: etree._Element) -> etree._Element:
    if root.tag == SIGNATURE_TAG:
        raise SignatureInvalid("the document element is a ds:Signature (enveloping signatures are refused)")
    signatures = list(root.iter(SIGNATURE_TAG))
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


def _checked_reference(signed_info: etree._Element) -> tuple[etree._Element, etree._Element]:
    """The one Reference and its exclusive-C14N Transform."""
    references = _all(signed_info, "Reference")
    if len(references) != 1:
        raise SignatureInvalid(f"SignedInfo holds {len(references)} references, expected one")
    reference = references[0]
    if reference.get("URI") != "":
        raise SignatureInvalid('the reference must cover the whole document (URI="")')
    transforms = _all(reference, "Transforms/Transform")
    if [t.get("Algorithm") for t in transforms] != [ENVELOPED, EXC_C14N]:
        raise SignatureInvalid("the transforms must be exactly [enveloped-signature, exclusive C14N]")
    if len(transforms[0]):
        raise SignatureInvalid(f"{MALFORMED}: the enveloped-signature transform takes no parameters")
    _checked_algorithm(reference, "DigestMethod", ACCEPTED_DIGEST_METHODS, "digest method")
    return reference, transforms[1]


def _checked_algorithm(
    parent: etree._Element, name: str, accepted: frozenset[str] | set[str], what: str
) -> etree._Element:
    element = _only_child(parent, name)
    algorithm = element.get("Algorithm")
    if algorithm not in accepted:
        # The algorithm URI is protocol metadata, never payload, so it may be named.
        raise SignatureInvalid(f"{what} {algorithm!r} is not accepted")
    return element


def _check_key_info(signature: etree._Element, pinned_der: bytes) -> None:
    key_info = _first(signature, "KeyInfo")
    if key_info is None:
        return
    for child in key_info.iterchildren("*"):
        name = etree.QName(child)
        if name.namespace != DS_NS or name.localname not in _KEY_INFO_CHILDREN:
            raise SignatureInvalid(f"KeyInfo holds an unexpected element {name.localname}")
    certificates = _all(key_info, "X509Data/X509Certificate")
    if len(certificates) > 1:
        raise SignatureInvalid("KeyInfo holds more than one X509Certificate")
    if certificates and _embedded_der(certificates[0], pinned_der) != pinned_der:
        raise SignatureInvalid("the certificate in KeyInfo is not the certificate registered for the sender")


def _embedded_der(element: etree._Element, pinned_der: bytes) -> bytes:
    der = _base64(element)
    if der == pinned_der:
        return der
    try:
        if der is None:
            raise ValueError("not base64")
        # Re-encoded, so that a certificate spelled in some other DER-compatible way compares by content.
        return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise SignatureInvalid("the X509Certificate in KeyInfo cannot be read") from exc


def _only_child(parent: etree._Element, name: str) -> etree._Element:
    found = _all(parent, name)
    if len(found) != 1:
        raise SignatureInvalid(f"expected one ds:{name}, found {len(found)}")
    return found[0]


def _inclusive_prefixes(method: etree._Element) -> list[str] | None:
    inclusive = _first(method, "ec:InclusiveNamespaces")
    if inclusive is None:
        return None
    prefixes = [p for p in re.split(r"[ \t\r\n]+", inclusive.get("PrefixList") or "") if p]
    if not all(p == "#default" or _NCNAME.fullmatch(p) for p in prefixes):
        raise SignatureInvalid(f"{MALFORMED}: an InclusiveNamespaces PrefixList entry is not a prefix")
    return prefixes


# --- the shape of ds:Signature, element by element ------------------------------------------------


def _any_text(_text: str) -> bool:
    return True


def _is_base64(text: str) -> bool:
    return _decoded(text) is not None


def _is_integer(text: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", text.strip(_XML_SPACE)) is not None


@dataclass(frozen=True, slots=True)
class _Shape:
    """What one element of the profile may hold.

    Attributes:
        children: the element's child elements as a pattern over their names joined by spaces; None
            for an element that holds text only.
        attributes: the attributes it may carry.
        required: those it must carry.
        text: for a text-only element, the test its text must pass.
    """

    children: re.Pattern[str] | None
    attributes: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    text: Callable[[str], bool] = _any_text


def _elements(pattern: str, attributes: frozenset[str] = frozenset(), *, required: bool = False) -> _Shape:
    return _Shape(re.compile(pattern), attributes, attributes if required else frozenset())


def _text(test: Callable[[str], bool], attributes: frozenset[str] = frozenset()) -> _Shape:
    return _Shape(None, attributes, frozenset(), test)


_ID: Final = frozenset({"Id"})
_ALGORITHM: Final = frozenset({"Algorithm"})
_X509_ITEM: Final = "(X509IssuerSerial|X509SKI|X509SubjectName|X509Certificate)"
_KEY_INFO_ITEM: Final = "(X509Data|KeyValue|KeyName)"
# Names are written as in XML-DSig, ds: left out, ec: for exclusive C14N's InclusiveNamespaces.
_SHAPES: Final = {
    "Signature": _elements("SignedInfo SignatureValue( KeyInfo)?", _ID),
    "SignedInfo": _elements("CanonicalizationMethod SignatureMethod Reference", _ID),
    "CanonicalizationMethod": _elements("", _ALGORITHM, required=True),
    "SignatureMethod": _elements("", _ALGORITHM, required=True),
    "Reference": _elements("Transforms DigestMethod DigestValue", frozenset({"Id", "URI"})),
    "Transforms": _elements("Transform Transform"),
    "Transform": _elements("(ec:InclusiveNamespaces)?", _ALGORITHM, required=True),
    "DigestMethod": _elements("", _ALGORITHM, required=True),
    "DigestValue": _text(_is_base64),
    "SignatureValue": _text(_is_base64, _ID),
    "ec:InclusiveNamespaces": _elements("", frozenset({"PrefixList"}), required=True),
    "KeyInfo": _elements(f"{_KEY_INFO_ITEM}( {_KEY_INFO_ITEM})*", _ID),
    "KeyName": _text(_any_text),
    "KeyValue": _elements("RSAKeyValue"),
    "RSAKeyValue": _elements("Modulus Exponent"),
    "Modulus": _text(_is_base64),
    "Exponent": _text(_is_base64),
    "X509Data": _elements(f"{_X509_ITEM}( {_X509_ITEM})*"),
    "X509IssuerSerial": _elements("X509IssuerName X509SerialNumber"),
    "X509IssuerName": _text(_any_text),
    "X509SerialNumber": _text(_is_integer),
    "X509SubjectName": _text(_any_text),
    "X509SKI": _text(_is_base64),
    "X509Certificate": _text(_any_text),  # read, strictly, by _check_key_info
}


def _clark(name: str) -> str:
    prefix, _, localname = name.rpartition(":")
    return f"{{{_NS[prefix or 'ds']}}}{localname}"


_TAGS: Final = {name: _clark(name) for name in _SHAPES}
_NAMES: Final = {tag: name for name, tag in _TAGS.items()}


def _check_shape(signature: etree._Element) -> None:
    """Check every element under ``signature`` against :data:`_SHAPES` (names only ours, never the sender's)."""
    ids: set[str] = set()
    for element in signature.iter("*"):
        # The root is a ds:Signature, and every other element was named in its parent's pattern.
        name = _NAMES[element.tag]
        shape = _SHAPES[name]
        keys = element.keys()
        if keys or shape.required:
            _check_attributes(element, name, shape, set(keys), ids)
        if shape.children is None:
            if len(element):
                raise SignatureInvalid(f"{MALFORMED}: {name} holds markup where text belongs")
            if not shape.text(element.text or ""):
                raise SignatureInvalid(f"{MALFORMED}: the text of {name} is not of its type")
        elif not shape.children.fullmatch(_content(element, name)):
            raise SignatureInvalid(f"{MALFORMED}: {name} does not hold what XML-DSig and the profile allow")


def _content(element: etree._Element, name: str) -> str:
    """The names of ``element``'s children joined by spaces; raises when text stands between them."""
    names = []
    blank = _blank(element.text)
    for child in element:
        blank = blank and _blank(child.tail)
        if isinstance(child.tag, str):
            names.append(_NAMES.get(child.tag, "?"))
    if not blank:
        raise SignatureInvalid(f"{MALFORMED}: {name} holds text")
    return " ".join(names)


def _check_attributes(
    element: etree._Element, name: str, shape: _Shape, keys: set[str | bytes], ids: set[str]
) -> None:
    if not keys <= shape.attributes or not shape.required <= keys:
        raise SignatureInvalid(f"{MALFORMED}: the attributes of {name} are not those of the profile")
    identifier = element.get("Id")
    if identifier is not None:
        # xsd:ID: a name, unique (within the signature, all a schema check of it would see).
        if not _NCNAME.fullmatch(identifier) or identifier in ids:
            raise SignatureInvalid(f"{MALFORMED}: an Id attribute is not a unique name")
        ids.add(identifier)


def _all(parent: etree._Element, path: str) -> list[etree._Element]:
    """The elements at ``path`` below ``parent`` (names as in :data:`_SHAPES`, joined by ``/``)."""
    # iterchildren with a tag filters in C; ElementPath's find costs several times more per call.
    if "/" not in path:
        return list(parent.iterchildren(_TAGS[path]))
    found = [parent]
    for name in path.split("/"):
        found = [child for element in found for child in element.iterchildren(_TAGS[name])]
    return found


def _first(parent: etree._Element, path: str) -> etree._Element | None:
    found = _all(parent, path)
    return found[0] if found else None


def _blank(text: str | None) -> bool:
    return not text or not text.strip(_XML_SPACE)


def _base64(element: etree._Element) -> bytes | None:
    return _decoded(element.text or "")


def _decoded(text: str) -> bytes | None:
    """Strict base64 (the alphabet and padding only), with XML whitespace anywhere ignored."""
    try:
        return base64.b64decode(text.encode("ascii").translate(None, b" \t\r\n"), validate=True)
    except ValueError:  # UnicodeEncodeError, binascii.Error
        return None
