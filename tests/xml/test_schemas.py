"""Tests for edi_gateway.xml.schemas and the vendored XSDs: drift check, samples, compile-once, errors."""

from __future__ import annotations

import hashlib
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from edi_gateway.errors import XmlRejected
from edi_gateway.resources import resource_dir
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml import schemas
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.schemas import SchemaInvalid, schema_for, validate_apprec, validate_msghead, warm_up
from tests.conftest import data_files

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
INVALID_MSGHEAD = "dialogmelding/v1.1/helsenorge_MetadataTestsDialogmelding11.xml"

# Published sha256 of every vendored schema file (schemas/SOURCES.md); any edit shows up here.
VENDORED_SHA256 = {
    "msghead-v1.2/MsgHead-v1_2.xsd": "3e26692d070eb2540e121ce80692f2cf0d78673191a05b61826faf72e846d609",
    "msghead-v1.2/kith-base64.xsd": "64cfbb8d2fe05374c2188a9c6a3e4f83d779aca5c9e9658f6309a2b7b5cfb6b7",
    "msghead-v1.2/xmldsig-core-schema.xsd": (
        "35cf8197da812c85e40d57891b35c94187569ed474a2dac813ce5090dafcd35c"
    ),
    "dialogmelding-v1.1/dialogmelding/2013-01-23/dialogmelding-v1.1.xsd": (
        "2e35a66e2a9c2b147b0ae714a6a81a89be21757d34552be394f4af3c1f133896"
    ),
    "dialogmelding-v1.1/felleskomponenter/kith.xsd": (
        "c7b77db37e82f0d8ff41a3fd63bc69a6661aa51cbc45b6bfef6b2e6c6628fee2"
    ),
    "dialogmelding-v1.1/felleskomponenter/felleskomponent1.xsd": (
        "30c1bc802200c48643765057c2fa61b63a913cb2b5c27cf6e2efdf8cdaf0a403"
    ),
    "dialogmelding-v1.0/dialogmelding.xsd": (
        "43bc6876807eb6232b629a351cbfca30c4ebdabef230bc876fa6204c7d03bd93"
    ),
    "dialogmelding-v1.0/kith.xsd": "c7b77db37e82f0d8ff41a3fd63bc69a6661aa51cbc45b6bfef6b2e6c6628fee2",
    "dialogmelding-v1.0/felleskomponent1.xsd": (
        "30c1bc802200c48643765057c2fa61b63a913cb2b5c27cf6e2efdf8cdaf0a403"
    ),
    "apprec-v1.0/AppRec-v1-2004-11-21.xsd": (
        "8afccd4aa87f9c30330d87cbfe2bd619c40b664afcf8035aafd2d8d83c8e068a"
    ),
    "apprec-v1.1/AppRec-v1.1.xsd": "c35159e6e99ee232746e220d9aeeba9f3e271d793778af6376df67a3ded7f0d4",
    "apprec-v1.1/kith.xsd": "c7b77db37e82f0d8ff41a3fd63bc69a6661aa51cbc45b6bfef6b2e6c6628fee2",
}


def _samples(kind: str) -> list[str]:
    return [str(p.relative_to(SAMPLES)) for p in data_files(SAMPLES / kind, "**/*.xml")]


VALID_MSGHEADS = [name for name in _samples("dialogmelding") if name != INVALID_MSGHEAD]
APPRECS = _samples("apprec")


def _load(name: str) -> etree._Element:
    return parse_xml((SAMPLES / name).read_bytes())


def _reparse_with(name: str, old: bytes, new: bytes) -> etree._Element:
    data = (SAMPLES / name).read_bytes()
    assert old in data
    return parse_xml(data.replace(old, new, 1))


# --- vendored files -----------------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(VENDORED_SHA256))
def test_vendored_schema_is_byte_identical_to_the_official_file(relative: str) -> None:
    """Each vendored XSD still has the sha256 of the official source blob."""
    digest = hashlib.sha256((resource_dir("schemas") / relative).read_bytes()).hexdigest()
    assert digest == VENDORED_SHA256[relative]


def test_no_unlisted_schema_file_is_vendored() -> None:
    """Every .xsd under schemas/ is in the drift table, so none can slip in unchecked."""
    found = {str(p.relative_to(resource_dir("schemas"))) for p in resource_dir("schemas").rglob("*.xsd")}
    assert found == set(VENDORED_SHA256)


def test_sources_md_lists_every_checksum() -> None:
    """schemas/SOURCES.md states the same sha256 for every vendored file as the drift table."""
    text = (resource_dir("schemas") / "SOURCES.md").read_text(encoding="utf-8")
    for relative, digest in VENDORED_SHA256.items():
        assert f"`{relative}`" in text and digest in text


def test_test_samples_cover_the_expected_set() -> None:
    """The copied samples are the 11 valid MsgHeads, the known invalid one and 11 AppRecs."""
    assert len(VALID_MSGHEADS) == 11
    assert (SAMPLES / INVALID_MSGHEAD).is_file()
    assert len(APPRECS) == 11


# --- MsgHead --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID_MSGHEADS)
def test_official_msghead_samples_are_valid(name: str) -> None:
    """Every official MsgHead + Dialogmelding 1.1/1.0 sample passes strict validation, payload included."""
    validate_msghead(_load(name))


def test_known_invalid_sample_is_rejected_with_t02() -> None:
    """The Helsenorge sample with a misspelt xsi namespace on its attachments is rejected with T02."""
    with pytest.raises(SchemaInvalid) as caught:
        validate_msghead(_load(INVALID_MSGHEAD))
    error = caught.value
    assert isinstance(error, XmlRejected) and error.code == "T02"
    assert {e.element for e in error.errors} == {ns.ns(ns.BASE64, "Base64Container")}
    assert [e.line for e in error.errors] == [98, 121]
    assert "13116900216" not in str(error)  # the sample's (fictitious) fødselsnummer


def test_invalid_payload_is_caught_inside_content() -> None:
    """MsgHead's Content is validated strictly: a Notat without TemaKodet is refused."""
    name = "dialogmelding/v1.1/sarepta_Helsefaglig_dialog_angi_profesjon_hos_mottaker.xml"
    root = _load(name)
    tema_kodet = root.find(f".//{{{ns.DIALOG_1_1}}}TemaKodet")
    assert tema_kodet is not None
    tema_kodet.getparent().remove(tema_kodet)  # type: ignore[union-attr]
    with pytest.raises(SchemaInvalid) as caught:
        validate_msghead(root)
    assert caught.value.errors[0].element == ns.ns(ns.DIALOG_1_1, "Tema")


def test_unknown_payload_namespace_is_refused() -> None:
    """A payload in a namespace with no loaded schema fails the strict wildcard."""
    name = "dialogmelding/v1.1/sarepta_Helsefaglig_dialog_angi_profesjon_hos_mottaker.xml"
    root = _reparse_with(
        name,
        b'<Dialogmelding xmlns="http://www.kith.no/xmlstds/dialog/2013-01-23"',
        b'<Dialogmelding xmlns="urn:unknown"',
    )
    with pytest.raises(SchemaInvalid):
        validate_msghead(root)


def test_error_messages_never_quote_values() -> None:
    """Values (here a person number in GenDate and MIGversion) are blanked out of the error text."""
    name = "dialogmelding/v1.1/sarepta_Helsefaglig_dialog_angi_profesjon_hos_mottaker.xml"
    root = _reparse_with(name, b"<GenDate>2019-03-08T10:32:12</GenDate>", b"<GenDate>01017012345</GenDate>")
    root.find(f".//{{{ns.MSGHEAD}}}MIGversion").text = "Kari Nordmann"  # type: ignore[union-attr]
    with pytest.raises(SchemaInvalid) as caught:
        validate_msghead(root)
    message = str(caught.value)
    assert "01017012345" not in message and "Nordmann" not in message
    assert "xs:dateTime" in message and "MIGversion" in message
    lines = {e.element: e.line for e in caught.value.errors}
    assert lines[ns.ns(ns.MSGHEAD, "GenDate")] == 7
    assert all(e.path and e.path.startswith("/") for e in caught.value.errors)


def test_at_most_three_errors_are_spelt_out() -> None:
    """The message names the first three violations and counts the rest."""
    root = etree.fromstring(f"<MsgHead xmlns='{ns.MSGHEAD}'><A/><B/><C/><D/></MsgHead>".encode())
    root_errors = schema_for(ns.MSGHEAD).errors(root)
    assert root_errors
    many = SchemaInvalid("msghead", root_errors * 5)
    assert str(many).count("line ") == 3
    assert f"and {len(root_errors) * 5 - 3} more" in str(many)


def test_non_msghead_root_is_refused_by_validate_msghead() -> None:
    """validate_msghead refuses an AppRec (or anything not MsgHead) with T02."""
    with pytest.raises(XmlRejected) as caught:
        validate_msghead(_load(APPRECS[0]))
    assert caught.value.code == "T02"


# --- AppRec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", APPRECS)
def test_official_apprec_samples_are_valid(name: str) -> None:
    """Every official AppRec 1.0 and 1.1 sample passes validate_apprec."""
    validate_apprec(_load(name))


@pytest.mark.parametrize(
    ("name", "schema_name"),
    [("apprec/v1.0/fiks_example-ok.xml", "apprec-1.0"), ("apprec/v1.1/fiks_example-ok.xml", "apprec-1.1")],
)
def test_apprec_version_is_chosen_by_namespace(name: str, schema_name: str) -> None:
    """The root's namespace picks the AppRec 1.0 or 1.1 schema."""
    root = _load(name)
    assert schema_for(etree.QName(root).namespace or "").name == schema_name


def test_invalid_apprec_is_rejected_with_t02() -> None:
    """An AppRec whose Status element is removed is refused with T02."""
    root = _load("apprec/v1.1/fiks_example-ok.xml")
    status = root.find(f"{{{ns.APPREC_1_1}}}Status")
    assert status is not None
    root.remove(status)
    with pytest.raises(SchemaInvalid) as caught:
        validate_apprec(root)
    assert caught.value.code == "T02"


def test_non_apprec_root_is_refused_by_validate_apprec() -> None:
    """validate_apprec refuses a MsgHead with T02."""
    with pytest.raises(XmlRejected) as caught:
        validate_apprec(_load(VALID_MSGHEADS[0]))
    assert caught.value.code == "T02"


# --- the registry ---------------------------------------------------------------------------------


def test_schemas_compile_once_and_are_reused() -> None:
    """warm_up compiles each schema once; later look-ups return the very same compiled objects."""
    assert warm_up() == ("msghead", "apprec-1.0", "apprec-1.1")
    before = {n: schema_for(n) for n in (ns.MSGHEAD, ns.APPREC_1_0, ns.APPREC_1_1)}
    assert warm_up() == ("msghead", "apprec-1.0", "apprec-1.1")
    for namespace, compiled in before.items():
        assert schema_for(namespace) is compiled
        assert schema_for(namespace).xmlschema is compiled.xmlschema


def test_payload_namespaces_share_the_msghead_driver() -> None:
    """Dialogmelding 1.1/1.0 and Base64Container are served by the one MsgHead driver schema."""
    driver = schema_for(ns.MSGHEAD)
    for namespace in (ns.DIALOG_1_1, ns.DIALOG_1_0, ns.BASE64):
        assert schema_for(namespace) is driver
    assert schemas.supported_namespaces() >= {ns.MSGHEAD, ns.APPREC_1_0, ns.APPREC_1_1}


def test_compilation_is_not_repeated_under_concurrent_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many threads asking for a not-yet-compiled schema at once cause exactly one compilation."""
    calls: list[int] = []
    real = schemas._COMPILERS["apprec-1.1"]

    def counting() -> etree.XMLSchema:
        calls.append(1)
        return real()

    monkeypatch.setitem(schemas._COMPILERS, "apprec-1.1", counting)
    monkeypatch.setattr(schemas, "_registry", {})
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: schema_for(ns.APPREC_1_1), range(32)))
    assert len(calls) == 1
    assert all(r is results[0] for r in results)


def test_unknown_namespace_has_no_schema() -> None:
    """schema_for refuses a namespace with no vendored schema with T02."""
    with pytest.raises(XmlRejected) as caught:
        schema_for("urn:not-a-standard")
    assert caught.value.code == "T02"


def test_concurrent_validation_gives_consistent_answers() -> None:
    """Validating valid and invalid documents from many threads gives each the right verdict."""
    good = _load(VALID_MSGHEADS[0])
    bad = _load(INVALID_MSGHEAD)
    compiled = schema_for(ns.MSGHEAD)

    def verdict(i: int) -> tuple[bool, int]:
        found = compiled.errors(bad if i % 2 else good)
        return (not found, len(found))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(verdict, range(200)))
    assert results == [(True, 0) if i % 2 == 0 else (False, 2) for i in range(200)]


def test_remote_schema_locations_are_never_fetched() -> None:
    """A schema importing an unmapped http location fails to compile, and no connection is attempted."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        xs = "http://www.w3.org/2001/XMLSchema"
        driver = (
            f'<xs:schema xmlns:xs="{xs}" targetNamespace="urn:t">'
            f'<xs:import namespace="urn:remote" schemaLocation="http://127.0.0.1:{port}/remote.xsd"/>'
            "</xs:schema>"
        )
        document = etree.fromstring(driver.encode(), schemas._schema_parser())
        with pytest.raises(etree.XMLSchemaParseError):
            etree.XMLSchema(document)
        # A connection attempt would sit completed in the listen backlog; there must be none.
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_the_official_remote_locations_are_served_locally() -> None:
    """The resolver maps the two remote schemaLocations of the official files to vendored copies."""
    for local in schemas.REMOTE_LOCATIONS.values():
        assert (resource_dir("schemas") / local).is_file()
    # MsgHead's ds:Signature slot comes from the locally served XML-DSig schema.
    signature = f"{{{ns.XMLDSIG}}}Signature"
    assert schema_for(ns.MSGHEAD).xmlschema is not None
    bad_signature = _load(VALID_MSGHEADS[0])
    etree.SubElement(bad_signature, signature)
    with pytest.raises(SchemaInvalid) as caught:
        validate_msghead(bad_signature)
    assert caught.value.errors[0].element == signature
