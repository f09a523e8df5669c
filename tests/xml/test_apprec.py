"""Tests for edi_gateway.xml.apprec: reading AppRec v1.0/v1.1 and building AppRec v1.1.

The samples are real published AppRecs (see tests/data/samples/SOURCES.md); the parties built here are
the synthetic ones of the testdata registers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from edi_gateway.domain.apprec import (
    KODEVERK_ERROR,
    AppRec,
    AppRecError,
    AppRecParty,
    AppRecStatus,
    PartyId,
)
from edi_gateway.errors import XmlRejected
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.apprec import (
    ERROR_TEXTS,
    MIG_VERSION,
    STATUS_TEXTS,
    AppRecInvalid,
    AppRecSpec,
    apprec_error,
    build_apprec,
    parse_apprec,
    read_apprec,
)
from edi_gateway.xml.msghead import to_bytes
from edi_gateway.xml.safe import UnreadableIdentifier, parse_xml
from edi_gateway.xml.schemas import SchemaInvalid, validate_apprec
from tests.id_spellings import NOT_A_HER_ID, NOT_AN_ID, SAME_VALUE, Spelling, respelled

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
MSGHEAD_SAMPLE = (
    SAMPLES / "dialogmelding" / "v1.1" / "sarepta_Helsefaglig_dialog_angi_profesjon_hos_mottaker.xml"
)
WRAPPED = SAMPLES / "wrapped" / "isdialogmelding_apprecErrorUkjentMottaker.xml"
UNKNOWN_STATUS = "v1.0/fiks_unknown-status.xml"
KODEVERK_LOM = "2.16.578.1.12.4.1.1.8223"

HOSPITAL = PartyId("8100001", "HER")
UNIT = PartyId("8100002", "HER")
PORSGRUNN = PartyId("8100005", "HER")
KREFTKOORDINATOR = PartyId("8100006", "HER")


@dataclass(frozen=True)
class Expected:
    """What a sample AppRec says, read by hand from the file."""

    version: str
    status: AppRecStatus
    error_codes: tuple[str, ...]
    original_msg_id: str
    sender_inst_id: str


OK, AVVIST, DELMELDING = AppRecStatus.OK, AppRecStatus.AVVIST, AppRecStatus.OK_FEIL_I_DELMELDING

EXPECTED: dict[str, Expected] = {
    "v1.0/fiks_all-data.xml": Expected("1.0", OK, (), "36bbe907-5c2a-4ca9-be92-c7e9c5f2e4d6", "8142987"),
    "v1.0/fiks_example-avvist.xml": Expected(
        "1.0", AVVIST, ("E21",), "a6967e6a-8c0a-4be4-a647-c921d3086423", "56704"
    ),
    "v1.0/fiks_example-ok-feil-i-delmelding.xml": Expected(
        "1.0", DELMELDING, ("07", "16"), "37de51e0-33a9-11de-a4cb-0002a5d5c51b", "974760924"
    ),
    "v1.0/fiks_example-ok.xml": Expected("1.0", OK, (), "a6967e6a-8c0a-4be4-a647-c921d3086423", "56704"),
    "v1.0/helsenorge_MetadataTests_Apprec10.xml": Expected(
        "1.0", OK, (), "de1a95c0-4d0c-11e7-9598-0800200c9a66", "59"
    ),
    "v1.0/sarepta_npr-bkm_apprec-eksempel.xml": Expected(
        "1.0",
        DELMELDING,
        ("53", "1239", "531", "53", "531"),
        "1b08b3f5-76c1-4560-ae4e-90e04cb0bc70",
        "889640782",
    ),
    "v1.1/fiks_all-data.xml": Expected("1.1", OK, (), "5d79bd68-a58c-4599-a4e7-9db28ea20099", "8142987"),
    "v1.1/fiks_example-avvist.xml": Expected(
        "1.1", AVVIST, ("E21",), "e0e21a90-5ec8-11e1-b86c-0800200c9a66", "56704"
    ),
    "v1.1/fiks_example-ok.xml": Expected("1.1", OK, (), "4c793d90-c41b-11e0-962b-0800200c9a66", "56704"),
    "v1.1/helsenorge_MetadataTests_Apprec11.xml": Expected(
        "1.1", OK, (), "de1a95c0-4d0c-11e7-9598-0800200c9a66", "56704"
    ),
}


def _sample(relative: str) -> bytes:
    return (SAMPLES / "apprec" / relative).read_bytes()


def _sample_names(base: Path) -> set[str]:
    return {path.relative_to(base / "apprec").as_posix() for path in (base / "apprec").rglob("*.xml")}


Edit = Callable[[etree._Element, dict[str, str]], None]


def _edited(relative: str, edit: Edit) -> bytes:
    """A sample with ``edit(root, {"ar": its namespace})`` applied, serialised again."""
    root = parse_xml(_sample(relative))
    edit(root, {"ar": etree.QName(root).namespace or ""})
    return etree.tostring(root)


def _invalid(data: bytes) -> AppRecInvalid:
    with pytest.raises(AppRecInvalid) as caught:
        read_apprec(data)
    assert caught.value.code == "X99"
    return caught.value


def kommune_spec(**changes: object) -> AppRecSpec:
    """Porsgrunn kommune's kreftkoordinator answering a message from Sykehuset Telemark's unit."""
    spec = AppRecSpec(
        id="7f1c2b9e-6a0d-4e53-9b8f-1d2c3b4a5e6f",
        gen_date=datetime(2026, 11, 2, 10, 20, 5),
        status=AppRecStatus.OK,
        sender=AppRecParty(PORSGRUNN, "Porsgrunn kommune", dept=KREFTKOORDINATOR),
        receiver=AppRecParty(HOSPITAL, "Sykehuset Telemark HF", dept=UNIT),
        original_msg_id="0b6f0f0e-4f7a-4c1e-9d4b-0c1d2e3f4a5b",
        original_msg_type="DIALOG_HELSEFAGLIG",
        original_msg_type_text="Helsefaglig dialog",
        original_issue_date=datetime(2026, 11, 2, 10, 15, 30),
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def round_trip(spec: AppRecSpec) -> AppRec:
    root = parse_xml(to_bytes(build_apprec(spec)))
    validate_apprec(root)
    return parse_apprec(root)


# --- the published samples ----------------------------------------------------------------------


def test_every_apprec_sample_has_an_expectation() -> None:
    """The expectation table covers every AppRec sample in the repository, and nothing else."""
    covered = set(EXPECTED) | {UNKNOWN_STATUS}
    assert _sample_names(SAMPLES) == covered


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_sample_reads_as_expected(relative: str) -> None:
    """Each sample AppRec reads into its version, status, error codes, original MsgId and sender."""
    apprec = read_apprec(_sample(relative))
    expected = EXPECTED[relative]
    assert apprec.version == expected.version
    assert apprec.status is expected.status
    assert tuple(error.code for error in apprec.errors) == expected.error_codes
    assert apprec.original_msg_id == expected.original_msg_id
    assert apprec.sender.inst.id == expected.sender_inst_id


def test_unknown_status_sample_is_refused_by_the_semantic_check() -> None:
    """The schema-valid sample with Status 73 is refused with X99, naming the kodeverk, not the value."""
    data = _sample(UNKNOWN_STATUS)
    validate_apprec(parse_xml(data))  # the schema has nothing against it
    error = _invalid(data)
    assert "8258" in str(error)
    assert "73" not in str(error)


def test_all_data_sample_reads_every_party_field() -> None:
    """Institution (name, id, type), the first Dept and the first HCPerson are read for both parties."""
    apprec = read_apprec(_sample("v1.1/fiks_all-data.xml"))
    assert apprec.sender == AppRecParty(
        inst=PartyId("8142987", "HER"),
        inst_name="KS-DIGITALE FELLESTJENESTER AS",
        dept=PartyId("8143060", "HER"),
        person=PartyId("123456", "HER"),
    )
    assert apprec.receiver.her_ids == {998877, 555111, 9512}
    assert apprec.id == "f6d24037-a43f-4509-8dfa-88b578554858"
    assert apprec.gen_date == "2025-05-26T00:00:00"
    assert apprec.original_msg_type == "DIALOG_HELSEFAGLIG"
    assert apprec.original_issue_date == "2025-05-25T00:00:00"


def test_avvist_sample_reads_error_text_kodeverk_and_role() -> None:
    """An Error's V, DN, S and OT are kept, the Role is read, and a padded TypeId V is collapsed."""
    apprec = read_apprec(_sample("v1.0/fiks_example-avvist.xml"))
    assert apprec.errors == (AppRecError("E21", "Mottaker finnes ikke", KODEVERK_ERROR, "Legen har sluttet"),)
    assert apprec.sender.role == "REQ"
    assert apprec.receiver.role == "RECEIVER"
    assert apprec.sender.inst == PartyId("56704", "HER")  # written V=" HER"
    assert apprec.sender.her_ids == {56704, 258521}


def test_feil_i_delmelding_sample_keeps_another_error_kodeverk() -> None:
    """Errors of another code list (LOM's 8223) keep that S, and OT points at the sub-message."""
    apprec = read_apprec(_sample("v1.0/fiks_example-ok-feil-i-delmelding.xml"))
    assert [(e.kodeverk, e.original_text) for e in apprec.errors] == [
        (KODEVERK_LOM, "93495"),
        (KODEVERK_LOM, "93498"),
    ]
    assert apprec.sender.inst == PartyId("974760924", "ENH")
    assert apprec.sender.her_ids == frozenset()
    assert apprec.receiver.person == PartyId("9144900", "HPR")


def test_empty_inst_and_dept_without_id_read_as_absent() -> None:
    """An empty Inst gives an empty institution id; a Dept with a name but no Id gives no dept."""
    apprec = read_apprec(_sample("v1.0/sarepta_npr-bkm_apprec-eksempel.xml"))
    assert apprec.receiver == AppRecParty(inst=PartyId("", None))
    assert apprec.sender.dept is None
    assert apprec.sender.inst_name == "ARBEIDS- OG VELFERDSETATEN"


def test_health_professional_outside_an_institution_is_read_as_person() -> None:
    """A party given as HCProf (no Inst) has an empty institution id and the professional as person."""

    def to_hcprof(root: etree._Element, nsmap: dict[str, str]) -> None:
        hcp = root.find("ar:Sender/ar:HCP", nsmap)
        assert hcp is not None
        hcp.clear()
        professional = etree.SubElement(hcp, ns.ns(nsmap["ar"], "HCProf"))
        etree.SubElement(professional, ns.ns(nsmap["ar"], "Name")).text = "Rita Lin"
        etree.SubElement(professional, ns.ns(nsmap["ar"], "Id")).text = "258521"
        etree.SubElement(professional, ns.ns(nsmap["ar"], "TypeId"), V="HER")

    apprec = read_apprec(_edited("v1.1/fiks_example-ok.xml", to_hcprof))
    expected = AppRecParty(inst=PartyId("", None), person=PartyId("258521", "HER"), role="PRIM")
    assert apprec.sender == expected
    assert apprec.sender.her_ids == {258521}


def test_nav_wrapped_apprec_reads_as_receiver_unknown() -> None:
    """The AppRec inside NAV's EI_fellesformat, cut out by namespace, reads as Avvist with E21."""
    wrapper = parse_xml(WRAPPED.read_bytes())
    inner = wrapper.find(ns.ns(ns.APPREC_1_0, "AppRec"))
    assert inner is not None
    apprec = read_apprec(etree.tostring(inner))
    assert apprec.status is AppRecStatus.AVVIST
    assert [error.code for error in apprec.errors] == ["E21"]
    assert apprec.errors[0].kodeverk == KODEVERK_ERROR  # no S written: 8221 is assumed
    assert apprec.sender.inst == PartyId("889640782", "ENH")
    assert apprec.original_msg_id == "b62016eb-6c2d-417a-8ecc-157b3c5ee2ca"


# --- semantic refusals (schema-valid, but against HIS 80415) ------------------------------------


def test_ok_with_an_error_is_refused() -> None:
    """Status 1 (OK) with an Error is refused with X99 without quoting the Error's texts."""

    def add_error(root: etree._Element, nsmap: dict[str, str]) -> None:
        status = root.find("ar:Status", nsmap)
        assert status is not None
        error = etree.Element(ns.ns(nsmap["ar"], "Error"), V="X99", DN="Annen feil", OT="23915700969")
        status.addnext(error)

    error = _invalid(_edited("v1.1/fiks_example-ok.xml", add_error))
    assert "23915700969" not in str(error)


@pytest.mark.parametrize(
    "relative", ["v1.1/fiks_example-avvist.xml", "v1.0/fiks_example-ok-feil-i-delmelding.xml"]
)
def test_avvist_or_feil_i_delmelding_without_error_is_refused(relative: str) -> None:
    """Status 2 or 3 without any Error is refused with X99."""

    def drop_errors(root: etree._Element, nsmap: dict[str, str]) -> None:
        for element in root.findall("ar:Error", nsmap):
            root.remove(element)

    _invalid(_edited(relative, drop_errors))


def test_error_without_code_is_refused() -> None:
    """An Error without V (the schema allows it) is refused with X99."""

    def drop_code(root: etree._Element, nsmap: dict[str, str]) -> None:
        error = root.find("ar:Error", nsmap)
        assert error is not None
        del error.attrib["V"]

    _invalid(_edited("v1.1/fiks_example-avvist.xml", drop_code))


def test_msg_type_other_than_apprec_is_refused() -> None:
    """A document whose MsgType is not APPREC is refused with X99."""

    def retype(root: etree._Element, nsmap: dict[str, str]) -> None:
        msg_type = root.find("ar:MsgType", nsmap)
        assert msg_type is not None
        msg_type.set("V", "DIALOG_HELSEFAGLIG")

    _invalid(_edited("v1.1/fiks_example-ok.xml", retype))


def test_status_code_is_compared_as_written() -> None:
    """Status V="01" is not kodeverk 8258's "1" and is refused; a padded " 1 " is a token and accepted."""

    def set_status(value: str) -> Edit:
        def edit(root: etree._Element, nsmap: dict[str, str]) -> None:
            status = root.find("ar:Status", nsmap)
            assert status is not None
            status.set("V", value)

        return edit

    _invalid(_edited("v1.1/fiks_example-ok.xml", set_status("01")))
    assert read_apprec(_edited("v1.1/fiks_example-ok.xml", set_status(" 1 "))).status is OK


def test_missing_element_in_unvalidated_tree_is_t02() -> None:
    """parse_apprec on a tree without OriginalMsgId (schema validation skipped) raises XmlRejected T02."""
    root = parse_xml(_sample("v1.1/fiks_example-ok.xml"))
    original = root.find(ns.ns(ns.APPREC_1_1, "OriginalMsgId"))
    assert original is not None
    root.remove(original)
    with pytest.raises(XmlRejected) as caught:
        parse_apprec(root)
    assert caught.value.code == "T02"
    assert not isinstance(caught.value, AppRecInvalid)
    assert str(caught.value) == "the AppRec has no OriginalMsgId"


def test_parse_apprec_refuses_a_root_that_is_not_an_apprec() -> None:
    """parse_apprec given a MsgHead element raises XmlRejected T02."""
    root = parse_xml(MSGHEAD_SAMPLE.read_bytes())
    with pytest.raises(XmlRejected) as caught:
        parse_apprec(root)
    assert caught.value.code == "T02"


# --- hostile and wrong input through read_apprec ------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'<!DOCTYPE AppRec [<!ENTITY x "y">]><AppRec xmlns="http://www.kith.no/xmlstds/apprec/2012-02-15">'
        b"&x;</AppRec>",
        b'<!DOCTYPE AppRec SYSTEM "file:///etc/passwd"><AppRec/>',
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><r>&b;</r>',
        b"<AppRec>&undeclared;</AppRec>",
        b"not xml at all",
    ],
)
def test_hostile_or_malformed_bytes_are_refused_with_t01(data: bytes) -> None:
    """DOCTYPEs, entities and non-XML are refused with T01 before any schema or semantic check."""
    with pytest.raises(XmlRejected) as caught:
        read_apprec(data)
    assert caught.value.code == "T01"


def test_oversized_document_is_refused_with_t01() -> None:
    """A document above max_bytes is refused with T01."""
    data = _sample("v1.1/fiks_example-ok.xml")
    with pytest.raises(XmlRejected) as caught:
        read_apprec(data, max_bytes=len(data) - 1)
    assert caught.value.code == "T01"


def test_msghead_given_to_read_apprec_is_refused_with_t02() -> None:
    """A MsgHead is not an AppRec: refused with T02."""
    with pytest.raises(XmlRejected) as caught:
        read_apprec(MSGHEAD_SAMPLE.read_bytes())
    assert caught.value.code == "T02"


def test_schema_invalid_apprec_is_refused_with_t02() -> None:
    """An AppRec missing its Status is refused by the schema with T02 (not by the semantic check)."""

    def drop_status(root: etree._Element, nsmap: dict[str, str]) -> None:
        status = root.find("ar:Status", nsmap)
        assert status is not None
        root.remove(status)

    with pytest.raises(SchemaInvalid):
        read_apprec(_edited("v1.1/fiks_example-ok.xml", drop_status))


def test_signed_apprec_is_not_read_unverified() -> None:
    """An AppRec carrying a ds:Signature fails read_apprec's schema check: signed ones go via the verifier."""

    def sign(root: etree._Element, nsmap: dict[str, str]) -> None:
        etree.SubElement(root, ns.ns(ns.XMLDSIG, "Signature"))

    with pytest.raises(XmlRejected) as caught:
        read_apprec(_edited("v1.1/fiks_example-ok.xml", sign))
    assert caught.value.code == "T02"


# --- building -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["T02", "S01", "E21"])
def test_built_avvist_validates_against_v11(code: str) -> None:
    """An Avvist AppRec with error T02, S01 or E21 is valid AppRec v1.1 carrying 8221's text."""
    spec = kommune_spec(status=AVVIST, errors=(apprec_error(code, detail="Se logg hos mottaker"),))
    root = parse_xml(to_bytes(build_apprec(spec)))
    validate_apprec(root)
    error = root.find(ns.ns(ns.APPREC_1_1, "Error"))
    assert error is not None
    assert dict(error.items()) == {
        "V": code,
        "S": KODEVERK_ERROR,
        "DN": ERROR_TEXTS[code],
        "OT": "Se logg hos mottaker",
    }
    status = root.find(ns.ns(ns.APPREC_1_1, "Status"))
    assert status is not None
    assert dict(status.items()) == {"V": "2", "DN": "Avvist"}


def test_built_apprec_has_the_v11_header() -> None:
    """MsgType APPREC "Applikasjonskvittering", MIGversion v1.1 2012-02-15, GenDate to the second."""
    root = build_apprec(kommune_spec(gen_date=datetime(2026, 11, 2, 10, 20, 5, 123456)))
    assert etree.QName(root).namespace == ns.APPREC_1_1
    ar = {"ar": ns.APPREC_1_1}
    msg_type = root.find("ar:MsgType", ar)
    assert msg_type is not None
    assert dict(msg_type.items()) == {"V": "APPREC", "DN": "Applikasjonskvittering"}
    assert root.findtext("ar:MIGversion", namespaces=ar) == MIG_VERSION == "v1.1 2012-02-15"
    assert root.findtext("ar:GenDate", namespaces=ar) == "2026-11-02T10:20:05"
    type_id = root.find("ar:Sender/ar:HCP/ar:Inst/ar:TypeId", ar)
    assert type_id is not None
    assert dict(type_id.items()) == {"V": "HER", "DN": "HER-id"}


@pytest.mark.parametrize("status", list(AppRecStatus))
def test_status_carries_the_8258_text(status: AppRecStatus) -> None:
    """Each status is written with its kodeverk 8258 DN."""
    errors = () if status is OK else (apprec_error("E35"),)
    root = build_apprec(kommune_spec(status=status, errors=errors))
    element = root.find(ns.ns(ns.APPREC_1_1, "Status"))
    assert element is not None
    assert element.get("DN") == STATUS_TEXTS[status]
    assert STATUS_TEXTS == {OK: "OK", AVVIST: "Avvist", DELMELDING: "OK, feil i delmelding"}


def test_fastlege_answer_names_the_gp_as_hcperson() -> None:
    """A fastlege's AppRec names the legekontor as Inst and the GP as HCPerson, and round-trips."""
    sender = AppRecParty(PartyId("8100087", "HER"), "Skien legesenter 2", person=PartyId("8100089", "HER"))
    apprec = round_trip(kommune_spec(sender=sender))
    assert apprec.sender == sender
    assert apprec.sender.her_ids == {8100087, 8100089}
    assert apprec.receiver.her_ids == {8100001, 8100002}


def test_empty_error_text_is_filled_from_8221() -> None:
    """An 8221 error given without text gets the official DN; another kodeverk's code is left bare."""
    errors = (AppRecError("E31"), AppRecError("07", kodeverk=KODEVERK_LOM))
    apprec = round_trip(kommune_spec(status=DELMELDING, errors=errors))
    assert [error.text for error in apprec.errors] == ["Pasientens fødselsnummer er feil", ""]


def test_xml_special_characters_are_escaped() -> None:
    """Names, ids and error details with <&>"' and æøå come back exactly as given."""
    sender = AppRecParty(PORSGRUNN, 'Bø & Sauherad <"tjenester">', dept=KREFTKOORDINATOR)
    errors = (apprec_error("X99", detail="Feil i <Notat> & 'Tema': æøå ÆØÅ\nlinje 2"),)
    apprec = round_trip(kommune_spec(sender=sender, status=AVVIST, errors=errors))
    assert apprec.sender.inst_name == 'Bø & Sauherad <"tjenester">'
    assert apprec.errors == errors


def test_issue_date_may_be_given_as_written() -> None:
    """original_issue_date given as text is written unchanged."""
    apprec = round_trip(kommune_spec(original_issue_date="2026-11-02T10:15:30.123+01:00"))
    assert apprec.original_issue_date == "2026-11-02T10:15:30.123+01:00"


@pytest.mark.parametrize(
    ("status", "errors"),
    [(AVVIST, ()), (DELMELDING, ()), (OK, (AppRecError("X99", "Annen feil"),))],
)
def test_builder_refuses_status_and_errors_that_disagree(
    status: AppRecStatus, errors: tuple[AppRecError, ...]
) -> None:
    """Avvist/feil i delmelding without errors, or OK with errors, is a ValueError at build time."""
    with pytest.raises(ValueError, match="status"):
        build_apprec(kommune_spec(status=status, errors=errors))


def test_builder_refuses_error_without_code() -> None:
    """An error without a code is a ValueError."""
    with pytest.raises(ValueError, match="code"):
        build_apprec(kommune_spec(status=AVVIST, errors=(AppRecError(" "),)))


def test_builder_refuses_a_party_without_institution_id() -> None:
    """The answering receiver must name its virksomhet."""
    with pytest.raises(ValueError, match="sender"):
        build_apprec(kommune_spec(sender=AppRecParty(PartyId("", None))))


def test_apprec_error_knows_the_8221_texts() -> None:
    """apprec_error gives the official text of a known code and refuses an unknown one."""
    assert apprec_error("E21") == AppRecError("E21", "Mottaker finnes ikke", KODEVERK_ERROR, None)
    for code in ("T01", "T02", "T99", "S01", "E10", "E20", "E21", "E31", "E35", "X99"):
        assert ERROR_TEXTS[code]
    with pytest.raises(ValueError):
        apprec_error("Q42")


# --- property: build → bytes → parse → validate → read ------------------------------------------

_SPECIAL = "æøåÆØÅ<>&\"'"
_chars = st.characters(exclude_categories=("Cs", "Cc", "Cn")) | st.sampled_from(_SPECIAL)
texts = st.text(_chars, min_size=1, max_size=30).map(str.strip).filter(bool)
free_texts = st.text(_chars | st.sampled_from("\n\t "), max_size=40)
# Identifiers are single tokens: no whitespace, control or format characters (see xml.safe).
_id_chars = st.characters(
    exclude_categories=("Cs", "Cc", "Cn", "Cf", "Co", "Zs", "Zl", "Zp")
) | st.sampled_from(_SPECIAL)
identifiers = st.text(_id_chars, min_size=1, max_size=30)
her_ids = st.integers(1, 999_999_999).map(lambda n: PartyId(str(n), "HER"))
party_ids = her_ids | st.builds(PartyId, identifiers, st.sampled_from([None, "ENH", "HPR"]))
parties = st.builds(
    AppRecParty,
    inst=party_ids,
    inst_name=st.just("") | texts,
    dept=st.none() | party_ids,
    person=st.none() | party_ids,
    role=st.sampled_from([None, "PRIM", "AVS", "COP"]),
)
error_codes = st.sampled_from(sorted(ERROR_TEXTS)) | st.from_regex(r"[A-Z][0-9]{2}", fullmatch=True)
errors = st.builds(
    AppRecError,
    code=error_codes,
    text=st.just("") | free_texts,
    kodeverk=st.sampled_from([KODEVERK_ERROR, KODEVERK_LOM]),
    original_text=st.none() | free_texts,
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
_earliest, _latest = datetime(1900, 1, 1), datetime(2200, 1, 1)
moments = st.datetimes(_earliest, _latest) | st.datetimes(_earliest, _latest, timezones=offsets)


@st.composite
def specs(draw: st.DrawFn) -> AppRecSpec:
    status = draw(st.sampled_from(list(AppRecStatus)))
    count = 0 if status is OK else draw(st.integers(1, 3))
    return AppRecSpec(
        id=draw(identifiers),
        gen_date=draw(moments),
        status=status,
        errors=tuple(draw(errors) for _ in range(count)),
        sender=draw(parties),
        receiver=draw(parties),
        original_msg_id=draw(identifiers),
        original_msg_type=draw(st.sampled_from(["DIALOG_HELSEFAGLIG", "DIALOG_NOTAT", "EPIKRISE"])),
        original_msg_type_text=draw(st.none() | texts),
        original_issue_date=draw(moments | st.just("2026-11-02T10:15:30.5Z")),
    )


def _expected(spec: AppRecSpec) -> AppRec:
    filled = tuple(
        dataclasses.replace(e, text=ERROR_TEXTS.get(e.code, ""))
        if not e.text and e.kodeverk == KODEVERK_ERROR
        else e
        for e in spec.errors
    )
    issue = spec.original_issue_date
    return AppRec(
        version="1.1",
        id=spec.id,
        gen_date=spec.gen_date.isoformat(timespec="seconds"),
        status=spec.status,
        sender=spec.sender,
        receiver=spec.receiver,
        original_msg_id=spec.original_msg_id,
        original_msg_type=spec.original_msg_type,
        original_issue_date=issue if isinstance(issue, str) else issue.isoformat(timespec="seconds"),
        errors=filled,
    )


@settings(deadline=None)
@given(specs())
def test_build_then_read_round_trips(spec: AppRecSpec) -> None:
    """Any consistent spec builds a schema-valid AppRec v1.1 that reads back to the same facts."""
    assert round_trip(spec) == _expected(spec)


def test_additional_ids_count_as_the_party_her_ids() -> None:
    """NAV's AppRec names its HER-id only in AdditionalId; the parsed sender still carries it."""
    wrapped = etree.parse(str(WRAPPED))
    inner = next(e for e in wrapped.iter() if isinstance(e.tag, str) and etree.QName(e).localname == "AppRec")
    apprec = read_apprec(etree.tostring(inner))
    for party in (apprec.sender, apprec.receiver):
        assert all(a.id for a in party.additional)
        typed_her = {int(a.id) for a in party.additional if a.type == "HER" and a.id.isdigit()}
        assert typed_her <= party.her_ids
    assert any(party.additional for party in (apprec.sender, apprec.receiver))


# --- one reading of every identifier ------------------------------------------------------------

# Every id of kommune_spec(), each written once in the document.
SPEC_IDS = {
    "AppRec Id": "7f1c2b9e-6a0d-4e53-9b8f-1d2c3b4a5e6f",
    "OriginalMsgId Id": "0b6f0f0e-4f7a-4c1e-9d4b-0c1d2e3f4a5b",
    "Sender Inst Id": PORSGRUNN.id,
    "Sender Dept Id": KREFTKOORDINATOR.id,
    "Receiver Inst Id": HOSPITAL.id,
    "Receiver Dept Id": UNIT.id,
}
HER_IDS = [name for name in SPEC_IDS if name.startswith(("Sender", "Receiver"))]


def _written(value: str, spelling: Spelling, data: bytes | None = None) -> bytes:
    """kommune_spec()'s AppRec (or ``data``) with the one ``<Id>value</Id>`` written as ``spelling`` says."""
    return respelled(data if data is not None else to_bytes(build_apprec(kommune_spec())), value, spelling)


def _with_additional_id(value: str, id_type: str = "HER") -> bytes:
    """kommune_spec()'s AppRec whose Sender Inst carries an AdditionalId (after Dept, as the schema orders)."""
    root = build_apprec(kommune_spec())
    dept = root.find("ar:Sender/ar:HCP/ar:Inst/ar:Dept", {"ar": ns.APPREC_1_1})
    assert dept is not None
    additional = etree.Element(ns.ns(ns.APPREC_1_1, "AdditionalId"))
    etree.SubElement(additional, ns.ns(ns.APPREC_1_1, "Id")).text = value
    etree.SubElement(additional, ns.ns(ns.APPREC_1_1, "Type"), V=id_type)
    dept.addnext(additional)
    return to_bytes(root)


@pytest.mark.parametrize("spelling", sorted(SAME_VALUE))
@pytest.mark.parametrize("where", sorted(SPEC_IDS))
def test_every_id_has_one_reading_however_it_is_written(where: str, spelling: str) -> None:
    """Comments, PIs, CDATA, character references and surrounding whitespace in any id read as the plain id."""
    data = _written(SPEC_IDS[where], SAME_VALUE[spelling])
    assert read_apprec(data) == read_apprec(to_bytes(build_apprec(kommune_spec())))


@pytest.mark.parametrize("spelling", sorted(SAME_VALUE))
def test_an_additional_id_has_one_reading_however_it_is_written(spelling: str) -> None:
    """An AdditionalId's Id is read like every other id: its full value, whatever splits its text."""
    data = _written("8100007", SAME_VALUE[spelling], _with_additional_id("8100007"))
    apprec = read_apprec(data)
    assert apprec.sender.additional == (PartyId("8100007", "HER"),)
    assert apprec.sender.her_ids == {8100005, 8100006, 8100007}


@pytest.mark.parametrize("spelling", sorted(NOT_A_HER_ID))
@pytest.mark.parametrize("where", HER_IDS)
def test_a_her_id_that_is_not_one_is_unreadable_not_shortened(where: str, spelling: str) -> None:
    """A HER-typed party id that is not 1 to 9 ASCII digits is refused (T99) instead of read as some number."""
    with pytest.raises(UnreadableIdentifier) as caught:
        read_apprec(_written(SPEC_IDS[where], NOT_A_HER_ID[spelling]))
    assert caught.value.code == "T99"


@pytest.mark.parametrize("spelling", sorted(NOT_AN_ID))
@pytest.mark.parametrize("where", ["AppRec Id", "OriginalMsgId Id"])
def test_a_message_id_with_whitespace_or_invisible_characters_is_unreadable(
    where: str, spelling: str
) -> None:
    """The AppRec's own Id and OriginalMsgId must be one clean token; anything inside them is refused."""
    with pytest.raises(UnreadableIdentifier):
        read_apprec(_written(SPEC_IDS[where], NOT_AN_ID[spelling]))


@pytest.mark.parametrize("spelling", sorted(NOT_A_HER_ID))
def test_an_additional_her_id_that_is_not_one_is_unreadable(spelling: str) -> None:
    """An AdditionalId typed HER is checked like Inst/Id: the issue's ``8100010<!---->999`` is refused."""
    first = _with_additional_id("8100010")
    with pytest.raises(UnreadableIdentifier):
        read_apprec(_written("8100010", NOT_A_HER_ID[spelling], first))


def test_the_reported_forgery_does_not_read_as_another_sender() -> None:
    """``<Id><!---->8100005</Id>`` with an AdditionalId ``8100010<!---->999`` is unreadable, never Skien."""
    data = _written("8100005", SAME_VALUE["empty comment first"], _with_additional_id("8100010999"))
    data = data.replace(b"<Id>8100010999</Id>", b"<Id>8100010<!---->999</Id>")
    with pytest.raises(UnreadableIdentifier):
        read_apprec(data)


def test_an_additional_id_of_another_type_is_not_checked_as_a_her_id() -> None:
    """An organisation number in AdditionalId is kept as written and names no HER-id."""
    apprec = read_apprec(_with_additional_id("960267737", "ENH"))
    assert apprec.sender.additional == (PartyId("960267737", "ENH"),)
    assert apprec.sender.her_ids == {8100005, 8100006}


@pytest.mark.parametrize("element", ["Dept", "HCPerson"])
def test_a_party_naming_two_departments_or_persons_is_refused(element: str) -> None:
    """A second Dept or HCPerson (one would go unread) makes the AppRec invalid (X99)."""
    root = build_apprec(kommune_spec(sender=AppRecParty(PORSGRUNN, dept=KREFTKOORDINATOR, person=HOSPITAL)))
    found = root.find(f"ar:Sender/ar:HCP/ar:Inst/ar:{element}", {"ar": ns.APPREC_1_1})
    assert found is not None
    second = etree.fromstring(etree.tostring(found))
    second.find(ns.ns(ns.APPREC_1_1, "Id")).text = "8100011"  # type: ignore[union-attr]
    found.addnext(second)
    _invalid(to_bytes(root))
