"""Tests for edi_gateway.xml.signing: the enveloped XML-DSig profile, sign and verify.

Keys and certificates come from a test PKI generated for this session; nothing private is committed.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from edi_gateway.domain.model import (
    Coded,
    Contact,
    Notat,
    Organisation,
    OutboundMessage,
    Patient,
    Receiver,
    ReceiverKind,
    Sender,
    Service,
)
from edi_gateway.errors import SignatureInvalid, UnknownError, XmlRejected
from edi_gateway.pki import TestPki, ensure_test_pki
from edi_gateway.xml.msghead import build_msghead
from edi_gateway.xml.schemas import validate_apprec, validate_msghead
from edi_gateway.xml.signing import (
    DS_NS,
    ENVELOPED,
    EXC_C14N,
    Signer,
    VerifiedDocument,
    strip_signature,
    verify_signed,
)
from tests.conftest import SAMPLES

HOSPITAL = 8100001
KOMMUNE = 8200001
MSGHEAD_NS = "http://www.kith.no/xmlstds/msghead/2006-05-24"
NS = {"ds": DS_NS, "mh": MSGHEAD_NS}
DS = f"{{{DS_NS}}}"
MSGHEAD_SAMPLE = "dialogmelding/v1.1/sarepta_Helsefaglig_dialog_angi_profesjon_hos_mottaker.xml"
APPREC_SAMPLE = "apprec/v1.1/fiks_example-ok.xml"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A test PKI with the hospital and one kommune."""
    return ensure_test_pki(
        tmp_path_factory.mktemp("pki"), [(HOSPITAL, "Sykehus Test HF"), (KOMMUNE, "Testkommune")]
    )


@pytest.fixture(scope="session")
def signer(pki: TestPki) -> Signer:
    """The hospital's signer."""
    return Signer.from_files(pki.key_path(HOSPITAL), pki.cert_path(HOSPITAL))


@pytest.fixture(scope="session")
def hospital_cert(pki: TestPki) -> bytes:
    """The hospital's certificate, as the register would hold it."""
    return pki.cert_pem(HOSPITAL)


@pytest.fixture(scope="session")
def kommune_cert(pki: TestPki) -> bytes:
    """The kommune's certificate, as the register would hold it."""
    return pki.cert_pem(KOMMUNE)


def _sample_root(name: str) -> etree._Element:
    return etree.parse(str(SAMPLES / name)).getroot()


@pytest.fixture
def msghead() -> etree._Element:
    """An official MsgHead + Dialogmelding 1.1 sample (unsigned)."""
    return _sample_root(MSGHEAD_SAMPLE)


@pytest.fixture
def signed(signer: Signer, msghead: etree._Element) -> bytes:
    """The MsgHead sample signed by the hospital."""
    return signer.sign(msghead)


def _tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


def _bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _c14n(root: etree._Element) -> bytes:
    return etree.tostring(root, method="c14n", exclusive=True)


def _signature(root: etree._Element) -> etree._Element:
    found = root.find("ds:Signature", NS)
    assert found is not None
    return found


def _expect_invalid(data: bytes, cert_pem: bytes, reason_part: str) -> None:
    with pytest.raises(SignatureInvalid) as caught:
        verify_signed(data, cert_pem=cert_pem)
    assert reason_part in str(caught.value)


class _LegacySigner(XMLSigner):
    """signxml's signer with its SHA-1 refusal switched off, to forge legacy signatures in tests."""

    def check_deprecated_methods(self) -> None:
        return None


def _sign_with(
    root: etree._Element,
    pki: TestPki,
    *,
    signature_algorithm: SignatureMethod = SignatureMethod.RSA_SHA256,
    digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA256,
    c14n_algorithm: CanonicalizationMethod = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    her_id: int = HOSPITAL,
    **sign_kwargs: object,
) -> bytes:
    xml_signer = _LegacySigner(
        signature_algorithm=signature_algorithm,
        digest_algorithm=digest_algorithm,
        c14n_algorithm=c14n_algorithm,
    )
    signed = xml_signer.sign(
        root,
        key=pki.key_path(her_id).read_bytes(),
        cert=pki.cert_pem(her_id).decode(),
        **sign_kwargs,  # type: ignore[arg-type]
    )
    return _bytes(signed)


# --- signing -------------------------------------------------------------------------------------


def test_sign_then_verify_returns_the_signed_content(
    signed: bytes, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """A document signed by a party verifies with that party's certificate and yields the original content."""
    verified = verify_signed(signed, cert_pem=hospital_cert)
    assert isinstance(verified, VerifiedDocument)
    assert _c14n(verified.root) == _c14n(msghead)
    assert verified.root.find("ds:Signature", NS) is None
    assert x509.load_pem_x509_certificate(verified.signer_cert_pem) == x509.load_pem_x509_certificate(
        hospital_cert
    )


def test_a_document_with_comments_and_namespaced_content_signs_as_a_standard_verifier_expects(
    signer: Signer, msghead: etree._Element, hospital_cert: bytes, pki: TestPki
) -> None:
    """Comments are outside exclusive C14N: our signature equals signxml's for the same key and document."""
    commented = copy.deepcopy(msghead)
    first = next(commented.iter("{*}MsgId"))
    first.insert(0, etree.Comment(" a comment inside an id "))
    ours = signer.sign(commented)
    verify_signed(ours, cert_pem=hospital_cert)  # parses with comments dropped, as receivers do
    reference = _sign_with(copy.deepcopy(commented), pki)
    values = [
        (
            _signature(_tree(d)).findtext(".//ds:DigestValue", namespaces=NS),
            _signature(_tree(d)).findtext("ds:SignatureValue", namespaces=NS),
        )
        for d in (ours, reference)
    ]
    assert values[0][0] == values[1][0]  # the same digest over the same canonical document
    assert "".join(values[0][1].split()) == "".join(values[1][1].split())  # RSA PKCS#1 v1.5 is deterministic


def test_signed_output_is_utf8_with_declaration(signed: bytes) -> None:
    """The signed document is serialized as UTF-8 with an XML declaration."""
    assert signed.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_signature_is_the_last_child_of_the_document_element(signed: bytes) -> None:
    """The ds:Signature is appended as the last child of MsgHead."""
    root = _tree(signed)
    assert root[-1].tag == f"{DS}Signature"
    assert len(root.findall(".//ds:Signature", NS)) == 1


def test_signature_uses_the_profile_algorithms(signed: bytes, hospital_cert: bytes) -> None:
    """Exclusive C14N, RSA-SHA256, one whole-document reference, two transforms, SHA-256 and our cert."""
    signature = _signature(_tree(signed))
    signed_info = signature.find("ds:SignedInfo", NS)
    assert signed_info is not None
    assert signed_info.find("ds:CanonicalizationMethod", NS).get("Algorithm") == EXC_C14N  # type: ignore[union-attr]
    assert (
        signed_info.find("ds:SignatureMethod", NS).get("Algorithm")  # type: ignore[union-attr]
        == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    [reference] = signed_info.findall("ds:Reference", NS)
    assert reference.get("URI") == ""
    transforms = [t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", NS)]
    assert transforms == [ENVELOPED, EXC_C14N]
    assert (
        reference.find("ds:DigestMethod", NS).get("Algorithm")  # type: ignore[union-attr]
        == "http://www.w3.org/2001/04/xmlenc#sha256"
    )
    [cert_element] = signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    embedded = x509.load_der_x509_certificate(base64.b64decode(cert_element.text or ""))
    assert embedded == x509.load_pem_x509_certificate(hospital_cert)


def test_signed_msghead_is_schema_valid(signed: bytes) -> None:
    """A signed MsgHead validates against the MsgHead v1.2 XSD (its ds:Signature slot is at the end)."""
    validate_msghead(_tree(signed))


def test_built_msghead_signed_is_schema_valid_and_verifies(signer: Signer, hospital_cert: bytes) -> None:
    """A MsgHead from the project's builder, once signed, is schema-valid and verifies."""
    kodeverk = "2.16.578.1.12.4.1.1."
    message = OutboundMessage(
        msg_id="0b6f0f0e-4f7a-4c1e-9d4b-0c1d2e3f4a5b",
        gen_date=dt.datetime(2026, 11, 2, 10, 15, 30),
        msg_type=Coded("DIALOG_HELSEFAGLIG", "Helsefaglig dialog", kodeverk + "8279"),
        sender=Sender(Organisation(HOSPITAL, "Sykehus Test HF"), Organisation(8100002, "Kreftpoliklinikk")),
        receiver=Receiver(
            ReceiverKind.KOMMUNE,
            Organisation(KOMMUNE, "Testkommune"),
            f"{KOMMUNE}_async",
            service=Service(8200002, "Kreftkoordinator", "KX06"),
        ),
        patient=Patient("23915700969", "FNR", "Test", "Testesen"),
        notat=Notat(
            tema_kodet=Coded("6", "Henvendelse om pasient", kodeverk + "7322"),
            tema="Pakkeforløp hjem for pasienter med kreft – samhandlingspunkt 1",
            text="Distresstermometer: 6 av 10\nPraktisk: transport",
            contact=Contact("Nina Sykepleier", "Forløpskoordinator kreft", "+4735000000"),
            contact_role=Coded("17", "Forløpskoordinator kreft", kodeverk + "9034"),
        ),
    )
    unsigned = build_msghead(message)
    signed_bytes = signer.sign(unsigned)
    validate_msghead(_tree(signed_bytes))
    assert _c14n(verify_signed(signed_bytes, cert_pem=hospital_cert).root) == _c14n(unsigned)


def test_sign_leaves_the_input_tree_unchanged(signer: Signer, msghead: etree._Element) -> None:
    """Signing works on a copy: the caller's tree gets no signature."""
    before = _c14n(msghead)
    signer.sign(msghead)
    assert _c14n(msghead) == before


def test_sign_refuses_a_document_that_already_carries_a_signature(signer: Signer, signed: bytes) -> None:
    """Signing an already signed document is refused rather than producing two signatures."""
    with pytest.raises(SignatureInvalid, match="already carries"):
        signer.sign(_tree(signed))


def test_signer_refuses_a_certificate_of_another_key(pki: TestPki) -> None:
    """A key and a certificate that do not belong together are refused at load time."""
    with pytest.raises(ValueError, match="does not match"):
        Signer.from_pem(pki.key_path(HOSPITAL).read_bytes(), pki.cert_pem(KOMMUNE))


def test_signer_exposes_its_certificate(signer: Signer, hospital_cert: bytes) -> None:
    """The signer reports the certificate it signs with (for expiry checks)."""
    assert signer.certificate == x509.load_pem_x509_certificate(hospital_cert)
    assert signer.cert_pem == hospital_cert


# --- the nonRepudiation certificate --------------------------------------------------------------


def test_non_repudiation_only_certificate_verifies(signed: bytes, hospital_cert: bytes) -> None:
    """An enterprise certificate with nonRepudiation and without digitalSignature verifies when pinned."""
    usage = x509.load_pem_x509_certificate(hospital_cert).extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.content_commitment
    assert not usage.value.digital_signature
    assert verify_signed(signed, cert_pem=hospital_cert).root is not None


# --- tampering and the wrong certificate ---------------------------------------------------------


def test_tampered_text_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """Changing one text node of the signed content breaks the digest."""
    root = _tree(signed)
    msg_id = root.find("mh:MsgInfo/mh:MsgId", NS)
    assert msg_id is not None
    msg_id.text = "00000000-0000-0000-0000-000000000000"
    _expect_invalid(_bytes(root), hospital_cert, "altered")


def test_tampered_attribute_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """Changing an attribute of the signed content breaks the digest."""
    root = _tree(signed)
    msg_type = root.find("mh:MsgInfo/mh:Type", NS)
    assert msg_type is not None
    msg_type.set("V", "DIALOG_FORESPORSEL")
    _expect_invalid(_bytes(root), hospital_cert, "altered")


def test_added_element_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """Adding an element anywhere in the signed content breaks the digest."""
    root = _tree(signed)
    root.find("mh:MsgInfo", NS).append(etree.Element(f"{{{MSGHEAD_NS}}}Ack"))  # type: ignore[union-attr]
    _expect_invalid(_bytes(root), hospital_cert, "altered")


def test_tampered_signature_value_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """A changed SignatureValue does not verify."""
    root = _tree(signed)
    value = _signature(root).find("ds:SignatureValue", NS)
    assert value is not None
    raw = bytearray(base64.b64decode(value.text or ""))
    raw[10] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    _expect_invalid(_bytes(root), hospital_cert, "does not verify")


def test_verify_with_another_partys_certificate_is_rejected(signed: bytes, kommune_cert: bytes) -> None:
    """A document signed by the hospital does not verify when the kommune's certificate is pinned."""
    with pytest.raises(SignatureInvalid):
        verify_signed(signed, cert_pem=kommune_cert)


def test_certificate_of_another_party_in_key_info_is_rejected(
    signed: bytes, hospital_cert: bytes, kommune_cert: bytes
) -> None:
    """KeyInfo naming party B while verification is pinned to A is rejected, even though A signed."""
    root = _tree(signed)
    cert_element = _signature(root).find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    assert cert_element is not None
    cert_element.text = _der_b64(kommune_cert)
    _expect_invalid(_bytes(root), hospital_cert, "not the certificate registered")


def test_document_signed_by_b_with_b_cert_inside_is_rejected_when_pinned_to_a(
    pki: TestPki, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """A message signed by B, carrying B's certificate, is refused when the register says the sender is A."""
    forged = _sign_with(msghead, pki, her_id=KOMMUNE)
    _expect_invalid(forged, hospital_cert, "not the certificate registered")


def test_two_certificates_in_key_info_are_rejected(
    signed: bytes, hospital_cert: bytes, kommune_cert: bytes
) -> None:
    """KeyInfo with a second X509Certificate is refused: the identity must be unambiguous."""
    root = _tree(signed)
    x509_data = _signature(root).find("ds:KeyInfo/ds:X509Data", NS)
    assert x509_data is not None
    extra = etree.SubElement(x509_data, f"{DS}X509Certificate")
    extra.text = _der_b64(kommune_cert)
    _expect_invalid(_bytes(root), hospital_cert, "more than one X509Certificate")


def test_missing_key_info_still_verifies_against_the_pinned_certificate(
    signed: bytes, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """KeyInfo is not signed and not needed: without it the pinned certificate alone decides."""
    root = _tree(signed)
    signature = _signature(root)
    key_info = signature.find("ds:KeyInfo", NS)
    assert key_info is not None
    signature.remove(key_info)
    assert _c14n(verify_signed(_bytes(root), cert_pem=hospital_cert).root) == _c14n(msghead)


def test_key_value_of_another_key_is_rejected(signed: bytes, hospital_cert: bytes, pki: TestPki) -> None:
    """A KeyValue that disagrees with the pinned certificate is refused as inconsistent."""
    root = _tree(signed)
    key_info = _signature(root).find("ds:KeyInfo", NS)
    assert key_info is not None
    other_key = x509.load_pem_x509_certificate(pki.cert_pem(KOMMUNE)).public_key()
    assert isinstance(other_key, rsa.RSAPublicKey)
    numbers = other_key.public_numbers()
    rsa_value = etree.SubElement(etree.SubElement(key_info, f"{DS}KeyValue"), f"{DS}RSAKeyValue")
    etree.SubElement(rsa_value, f"{DS}Modulus").text = _b64_int(numbers.n)
    etree.SubElement(rsa_value, f"{DS}Exponent").text = _b64_int(numbers.e)
    _expect_invalid(_bytes(root), hospital_cert, "inconsistent")


def test_signer_can_be_shared_between_threads(
    signer: Signer, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """Signing and verifying from several threads at once gives valid signatures every time."""

    def round_trip(_: int) -> bytes:
        return _c14n(verify_signed(signer.sign(msghead), cert_pem=hospital_cert).root)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = set(pool.map(round_trip, range(24)))
    assert results == {_c14n(msghead)}


def test_expired_pinned_certificate_is_rejected(pki: TestPki, msghead: etree._Element) -> None:
    """A signature made with a certificate that has expired does not verify."""
    key = serialization.load_pem_private_key(pki.key_path(HOSPITAL).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    expired = _self_signed(key, not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    expired_pem = expired.public_bytes(serialization.Encoding.PEM)
    signed = Signer(key, expired).sign(msghead)
    _expect_invalid(signed, expired_pem, "not valid at this time")


def test_unreadable_pinned_certificate_is_an_operator_problem(signed: bytes) -> None:
    """A register certificate that is not PEM is no fault of the sender: UnknownError."""
    with pytest.raises(UnknownError):
        verify_signed(signed, cert_pem=b"not a certificate")


# --- the signature's presence and place ----------------------------------------------------------


def test_missing_signature_is_rejected(msghead: etree._Element, hospital_cert: bytes) -> None:
    """An unsigned document is refused."""
    _expect_invalid(_bytes(msghead), hospital_cert, "no ds:Signature")


def test_two_signatures_are_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """A second ds:Signature anywhere in the document is refused."""
    root = _tree(signed)
    root.find("mh:MsgInfo", NS).append(copy.deepcopy(_signature(root)))  # type: ignore[union-attr]
    _expect_invalid(_bytes(root), hospital_cert, "2 ds:Signature")


def test_signature_not_last_child_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """A signature moved to the front of the document element is refused."""
    root = _tree(signed)
    root.insert(0, _signature(root))
    _expect_invalid(_bytes(root), hospital_cert, "not the last child")


def test_element_after_signature_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """An element appended after the signature is refused even though the digest would catch it too."""
    root = _tree(signed)
    root.append(etree.Element(f"{{{MSGHEAD_NS}}}Document"))
    _expect_invalid(_bytes(root), hospital_cert, "not the last child")


@pytest.mark.parametrize("node", [etree.Comment("after"), etree.ProcessingInstruction("after", "x")])
def test_comment_or_pi_after_signature_is_dropped_by_the_parser(
    node: etree._Element, signed: bytes, hospital_cert: bytes
) -> None:
    """A comment or processing instruction after the signature never reaches the verifier: it verifies as signed."""
    root = _tree(signed)
    root.append(node)
    verified = verify_signed(_bytes(root), cert_pem=hospital_cert)
    assert _c14n(verified.root) == _c14n(verify_signed(signed, cert_pem=hospital_cert).root)
    assert not any(
        isinstance(n, (etree._Comment, etree._ProcessingInstruction)) for n in verified.root.iter()
    )


def test_signature_nested_deeper_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """A signature that is not a child of the document element is refused."""
    root = _tree(signed)
    root.find("mh:MsgInfo", NS).append(_signature(root))  # type: ignore[union-attr]
    _expect_invalid(_bytes(root), hospital_cert, "not a child of the document element")


def test_enveloping_signature_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """A document whose root is itself a ds:Signature (enveloping) is refused."""
    signature = _signature(_tree(signed))
    _expect_invalid(_bytes(signature), hospital_cert, "enveloping")


# --- signature wrapping --------------------------------------------------------------------------


def _forge(root: etree._Element) -> None:
    msg_id = root.find("mh:MsgInfo/mh:MsgId", NS)
    assert msg_id is not None
    msg_id.text = "11111111-1111-1111-1111-111111111111"


def _wrap_original_in_object(signed: bytes) -> bytes:
    """Forged content at the root; the original signed document hidden in a ds:Object in the signature."""
    forged = _tree(signed)
    original = _tree(signed)
    original.remove(_signature(original))
    _forge(forged)
    obj = etree.SubElement(_signature(forged), f"{DS}Object")
    obj.append(original)
    return _bytes(forged)


def _wrap_original_in_extra_element(signed: bytes) -> bytes:
    """Forged MsgInfo in place; the original MsgInfo moved into an extra element before it."""
    forged = _tree(signed)
    original_info = copy.deepcopy(forged.find("mh:MsgInfo", NS))
    _forge(forged)
    wrapper = etree.Element(f"{{{MSGHEAD_NS}}}Wrapper")
    wrapper.append(original_info)  # type: ignore[arg-type]
    forged.insert(0, wrapper)
    return _bytes(forged)


def _wrap_whole_document(signed: bytes) -> bytes:
    """The original signed document wrapped inside a new forged document element."""
    forged = _tree(signed)
    forged.remove(_signature(forged))
    _forge(forged)
    forged.append(_tree(signed))
    return _bytes(forged)


def _signature_moved_to_forged_root(signed: bytes) -> bytes:
    """The original signature attached to a forged document that holds the original as an extra child."""
    original = _tree(signed)
    signature = _signature(original)
    original.remove(signature)
    forged = copy.deepcopy(original)
    _forge(forged)
    forged.append(original)
    forged.append(signature)
    return _bytes(forged)


@pytest.mark.parametrize(
    "attack",
    [
        _wrap_original_in_object,
        _wrap_original_in_extra_element,
        _wrap_whole_document,
        _signature_moved_to_forged_root,
    ],
)
def test_signature_wrapping_is_rejected(
    attack: Callable[[bytes], bytes], signed: bytes, hospital_cert: bytes
) -> None:
    """Moving the signed content aside and putting forged content where a reader looks is refused."""
    with pytest.raises(SignatureInvalid):
        verify_signed(attack(signed), cert_pem=hospital_cert)


def test_comment_inserted_in_text_is_not_in_the_verified_content(signed: bytes, hospital_cert: bytes) -> None:
    """A comment (outside exclusive C14N) splitting a text still verifies but never reaches the reader."""
    root = _tree(signed)
    msg_id = root.find("mh:MsgInfo/mh:MsgId", NS)
    assert msg_id is not None
    original = msg_id.text or ""
    msg_id.text = original[:8]
    comment = etree.Comment("x")
    comment.tail = original[8:]
    msg_id.append(comment)
    verified = verify_signed(_bytes(root), cert_pem=hospital_cert)
    verified_msg_id = verified.root.find("mh:MsgInfo/mh:MsgId", NS)
    assert verified_msg_id is not None
    assert list(verified_msg_id) == []
    assert verified_msg_id.text == original


SIGNED_MSG_ID = b"<MsgId>d93cebe5-ac91-4022-8969-4f93300d8171</MsgId>"
# The same MsgId written so that a naive reader of element.text would see something else.
MSG_ID_SPELLINGS = {
    "comment": b"<MsgId>d93cebe5<!---->-ac91-4022-8969-4f93300d8171</MsgId>",
    "leading comment": b"<MsgId><!-- x -->d93cebe5-ac91-4022-8969-4f93300d8171</MsgId>",
    "cdata": b"<MsgId>d93cebe5-<![CDATA[ac91-4022]]>-8969-4f93300d8171</MsgId>",
    "character references": b"<MsgId>&#100;93cebe5-ac91-4022-&#x38;969-4f93300d8171</MsgId>",
}


@pytest.mark.parametrize("spelling", sorted(MSG_ID_SPELLINGS))
def test_one_reading_of_the_text_leaves_the_digest_unchanged(
    spelling: str, signed: bytes, hospital_cert: bytes
) -> None:
    """Comments, CDATA and character references added after signing change no digest, and the verified text is the one signed."""
    assert signed.count(SIGNED_MSG_ID) == 1
    respelled = signed.replace(SIGNED_MSG_ID, MSG_ID_SPELLINGS[spelling])
    verified = verify_signed(respelled, cert_pem=hospital_cert)
    msg_id = verified.root.find("mh:MsgInfo/mh:MsgId", NS)
    assert msg_id is not None and len(msg_id) == 0
    assert msg_id.text == "d93cebe5-ac91-4022-8969-4f93300d8171"


def test_a_document_signed_with_a_processing_instruction_inside_is_refused(
    signer: Signer, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """Exclusive C14N keeps processing instructions, so one signed inside the document fails once the parser drops it."""
    msghead.insert(0, etree.ProcessingInstruction("app", "data"))
    _expect_invalid(signer.sign(msghead), hospital_cert, "digest")


# --- algorithms and profile ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature_algorithm", "digest_algorithm"),
    [
        (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1),
        (SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA1),
        (SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA256),
    ],
)
def test_sha1_anywhere_is_rejected(
    signature_algorithm: SignatureMethod,
    digest_algorithm: DigestAlgorithm,
    pki: TestPki,
    msghead: etree._Element,
    hospital_cert: bytes,
) -> None:
    """A signature or digest built with SHA-1 is refused, even when it is cryptographically correct."""
    legacy = _sign_with(
        msghead, pki, signature_algorithm=signature_algorithm, digest_algorithm=digest_algorithm
    )
    _expect_invalid(legacy, hospital_cert, "not accepted")


def test_stronger_rsa_sha512_is_accepted(pki: TestPki, msghead: etree._Element, hospital_cert: bytes) -> None:
    """RSA-SHA512 with a SHA-512 digest is stronger than the profile and verifies."""
    strong = _sign_with(
        msghead, pki, signature_algorithm=SignatureMethod.RSA_SHA512, digest_algorithm=DigestAlgorithm.SHA512
    )
    assert _c14n(verify_signed(strong, cert_pem=hospital_cert).root) == _c14n(msghead)


@pytest.mark.parametrize(
    "c14n_algorithm",
    [
        CanonicalizationMethod.CANONICAL_XML_1_1,
        CanonicalizationMethod.CANONICAL_XML_1_0,
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS,
    ],
)
def test_other_canonicalization_is_rejected(
    c14n_algorithm: CanonicalizationMethod, pki: TestPki, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """Only exclusive C14N without comments is accepted."""
    other = _sign_with(msghead, pki, c14n_algorithm=c14n_algorithm)
    _expect_invalid(other, hospital_cert, "canonicalization method")


def test_reference_to_an_element_id_is_rejected(
    pki: TestPki, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """A reference to part of the document (URI="#id") is refused: the whole document must be signed."""
    msg_info = msghead.find("mh:MsgInfo", NS)
    assert msg_info is not None
    msg_info.set("Id", "info")
    partial = _sign_with(msghead, pki, reference_uri="#info")
    _expect_invalid(partial, hospital_cert, 'URI=""')


def test_missing_c14n_transform_is_rejected(
    pki: TestPki, msghead: etree._Element, hospital_cert: bytes
) -> None:
    """A reference whose transforms are only [enveloped-signature] is refused."""
    bare = _sign_with(msghead, pki, exclude_c14n_transform_element=True)
    _expect_invalid(bare, hospital_cert, "transforms must be exactly")


def test_unexpected_key_info_content_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """KeyInfo may hold X509Data, KeyValue or KeyName only (no RetrievalMethod and the like)."""
    root = _tree(signed)
    key_info = _signature(root).find("ds:KeyInfo", NS)
    assert key_info is not None
    etree.SubElement(key_info, f"{DS}RetrievalMethod", URI="http://example.invalid/cert")
    _expect_invalid(_bytes(root), hospital_cert, "unexpected element RetrievalMethod")


# --- hostile XML ---------------------------------------------------------------------------------


def test_document_with_doctype_is_rejected(signed: bytes, hospital_cert: bytes) -> None:
    """A DOCTYPE is refused before any signature work: the document is hostile XML."""
    body = signed.split(b"?>", 1)[1]
    hostile = b'<?xml version="1.0"?>\n<!DOCTYPE MsgHead [<!ENTITY x "y">]>' + body
    with pytest.raises(XmlRejected):
        verify_signed(hostile, cert_pem=hospital_cert)


def test_not_well_formed_document_is_rejected(hospital_cert: bytes) -> None:
    """Bytes that are not XML are refused as not well-formed (T01)."""
    with pytest.raises(XmlRejected) as caught:
        verify_signed(b"<MsgHead><unclosed></MsgHead>", cert_pem=hospital_cert)
    assert caught.value.code == "T01"


def test_rejection_reasons_never_carry_payload_values(signed: bytes, hospital_cert: bytes) -> None:
    """The reason in a SignatureInvalid names the rule, never the content that broke it."""
    root = _tree(signed)
    msg_id = root.find("mh:MsgInfo/mh:MsgId", NS)
    assert msg_id is not None
    msg_id.text = "13118012345"
    with pytest.raises(SignatureInvalid) as caught:
        verify_signed(_bytes(root), cert_pem=hospital_cert)
    assert "13118012345" not in str(caught.value)


# --- AppRec and strip_signature ------------------------------------------------------------------


def test_signed_apprec_verifies_and_strips_to_a_schema_valid_apprec(
    signer: Signer, hospital_cert: bytes
) -> None:
    """An AppRec carries the signature as its last child; verified or stripped, it is a valid AppRec again."""
    apprec = _sample_root(APPREC_SAMPLE)
    signed_apprec = signer.sign(apprec)
    received = _tree(signed_apprec)
    assert received[-1].tag == f"{DS}Signature"
    with pytest.raises(XmlRejected):
        validate_apprec(received)  # the AppRec XSD has no slot for the signature
    verified = verify_signed(signed_apprec, cert_pem=hospital_cert)
    validate_apprec(verified.root)
    stripped = strip_signature(received)
    validate_apprec(stripped)
    assert _c14n(stripped) == _c14n(apprec)
    assert received[-1].tag == f"{DS}Signature", "strip_signature must not change its input"


def test_strip_signature_leaves_an_unsigned_document_alone(msghead: etree._Element) -> None:
    """A document without a trailing signature comes back as an equal copy."""
    stripped = strip_signature(msghead)
    assert stripped is not msghead
    assert _c14n(stripped) == _c14n(msghead)


def test_strip_signature_keeps_text_after_the_signature(signed: bytes) -> None:
    """Whitespace that followed the signature stays in the document, as the enveloped transform keeps it."""
    root = _tree(signed)
    signature = _signature(root)
    signature.tail = "\n"
    before = signature.getprevious()
    assert before is not None
    stripped = strip_signature(root)
    assert stripped[-1].tail == (before.tail or "") + "\n"
    assert stripped.find("ds:Signature", NS) is None


# --- properties ----------------------------------------------------------------------------------

_xml_text = st.text(
    # XML 1.0 characters: no controls except tab and newline, no surrogates, no non-characters.
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"), include_characters="\t\n"),
    min_size=1,
    max_size=200,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(note=_xml_text)
def test_any_text_round_trips_through_sign_and_verify(
    note: str, signer: Signer, hospital_cert: bytes
) -> None:
    """Whatever text a document carries, the verified content returns it unchanged."""
    root = etree.Element(f"{{{MSGHEAD_NS}}}MsgHead")
    etree.SubElement(root, f"{{{MSGHEAD_NS}}}Note").text = note
    verified = verify_signed(signer.sign(root), cert_pem=hospital_cert)
    assert verified.root.findtext("mh:Note", namespaces=NS) == note


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(note=_xml_text, data=st.data())
def test_any_change_to_the_text_is_detected(
    note: str, data: st.DataObject, signer: Signer, hospital_cert: bytes
) -> None:
    """Replacing the signed text with any different text makes verification fail."""
    root = etree.Element(f"{{{MSGHEAD_NS}}}MsgHead")
    etree.SubElement(root, f"{{{MSGHEAD_NS}}}Note").text = note
    received = _tree(signer.sign(root))
    other = data.draw(_xml_text.filter(lambda text: text != note))
    received.find("mh:Note", NS).text = other  # type: ignore[union-attr]
    with pytest.raises(SignatureInvalid):
        verify_signed(_bytes(received), cert_pem=hospital_cert)


# --- helpers -------------------------------------------------------------------------------------


def _b64_int(value: int) -> str:
    """The base64 big-endian form of a positive integer, as ds:CryptoBinary carries it."""
    return base64.b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode()


def _der_b64(cert_pem: bytes) -> str:
    """The base64 DER form of a PEM certificate, as X509Certificate carries it."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


def _self_signed(key: rsa.RSAPrivateKey, *, not_after: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Expired Test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=30))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
