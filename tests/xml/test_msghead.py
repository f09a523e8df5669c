"""Tests for edi_gateway.xml.msghead: building MsgHead + Dialogmelding v1.1 and reading it back.

All parties and persons are synthetic (the testdata registers; person numbers in the month+80 series).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from edi_gateway.domain.model import (
    Coded,
    Contact,
    Notat,
    Organisation,
    OutboundMessage,
    Patient,
    Practitioner,
    Receiver,
    ReceiverContact,
    ReceiverKind,
    Sender,
    Service,
)
from edi_gateway.errors import XmlRejected
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.msghead import (
    MsgHeadSummary,
    build_msghead,
    parse_msghead_summary,
    split_name,
    tel_uri,
    to_bytes,
)
from edi_gateway.xml.safe import parse_xml
from edi_gateway.xml.schemas import validate_msghead
from tests.id_spellings import NOT_A_HER_ID, SAME_VALUE, Spelling, respelled

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"

HOSPITAL = Organisation(8100001, "Sykehuset Telemark HF", "998369002")
UNIT = Organisation(8100002, "Kreftpoliklinikken Skien")
PORSGRUNN = Organisation(8100005, "Porsgrunn kommune", "960267737")
KREFTKOORDINATOR = Service(8100006, "Kreftkoordinator", "KX06")
LEGEKONTOR = Organisation(8100087, "Skien legesenter 2", "961034051")
FASTLEGE = Practitioner(8100089, "Kari", "Haugen", hpr="9700065")
PATIENT = Patient("23915700969", "FNR", "Knut", "Hansen")
HENVENDELSE = Coded("6", "Henvendelse om pasient", "2.16.578.1.12.4.1.1.7322")
FORLOPSKOORDINATOR = Coded("17", "Forløpskoordinator kreft", "2.16.578.1.12.4.1.1.9034")
HELSEFAGLIG = Coded("DIALOG_HELSEFAGLIG", "Helsefaglig dialog", "2.16.578.1.12.4.1.1.8279")
SYKEPLEIER = Coded("SP", "Sykepleier", "2.16.578.1.12.4.1.1.9060")

MH = {"mh": ns.MSGHEAD, "dia": ns.DIALOG_1_1, "fk1": ns.FK1}


def kommune_receiver() -> Receiver:
    return Receiver(ReceiverKind.KOMMUNE, PORSGRUNN, "8100005_async", service=KREFTKOORDINATOR)


def fastlege_receiver() -> Receiver:
    return Receiver(ReceiverKind.FASTLEGE, LEGEKONTOR, "8100087_async", practitioner=FASTLEGE)


def make_message(receiver: Receiver, **changes: object) -> OutboundMessage:
    notat = Notat(
        tema_kodet=HENVENDELSE,
        tema="Pakkeforløp hjem for pasienter med kreft – samhandlingspunkt 1",
        text="Behovskartlegging 2026-11-02\nDistresstermometer: 6 av 10\n",
        contact=Contact("Nina Kreftsykepleier", "Forløpskoordinator kreft", "+4735003500"),
        contact_role=FORLOPSKOORDINATOR,
    )
    message = OutboundMessage(
        msg_id="0b6f0f0e-4f7a-4c1e-9d4b-0c1d2e3f4a5b",
        gen_date=datetime(2026, 11, 2, 10, 15, 30),
        msg_type=HELSEFAGLIG,
        sender=Sender(HOSPITAL, UNIT),
        receiver=receiver,
        patient=PATIENT,
        notat=notat,
    )
    return dataclasses.replace(message, **changes)  # type: ignore[arg-type]


def with_notat(message: OutboundMessage, **changes: object) -> OutboundMessage:
    return dataclasses.replace(message, notat=dataclasses.replace(message.notat, **changes))  # type: ignore[arg-type]


def round_trip(message: OutboundMessage) -> etree._Element:
    """Build, serialise, parse with the hardened parser and validate: what a receiver would see."""
    root = parse_xml(to_bytes(build_msghead(message)))
    validate_msghead(root)
    return root


def attrs(element: etree._Element | None) -> dict[str, str]:
    """The attributes of an element that must exist."""
    assert element is not None
    return {str(k): str(v) for k, v in element.attrib.items()}


def idents(party: etree._Element) -> list[tuple[str | None, str | None]]:
    """(TypeId/@V, Id) of each MsgHead Ident directly under ``party``, in document order."""
    return [
        (ident.find("mh:TypeId", MH).get("V"), ident.findtext("mh:Id", namespaces=MH))  # type: ignore[union-attr]
        for ident in party.iterfind("mh:Ident", MH)
    ]


def notat_of(root: etree._Element) -> etree._Element:
    notat = root.find("mh:Document/mh:RefDoc/mh:Content/dia:Dialogmelding/dia:Notat", MH)
    assert notat is not None
    return notat


def text_of(root: etree._Element, path: str) -> str | None:
    element = root.find(path, MH)
    assert element is not None, path
    return element.text


# --- building for the two kinds of receiver -----------------------------------------------------


def test_kommune_message_is_schema_valid_and_addresses_the_service() -> None:
    """A message to a kommune service validates and puts the service under the virksomhet."""
    root = round_trip(make_message(kommune_receiver()))
    organisation = root.find("mh:MsgInfo/mh:Receiver/mh:Organisation", MH)
    assert organisation is not None
    assert text_of(organisation, "mh:Ident/mh:Id") == "8100005"
    assert text_of(organisation, "mh:Organisation/mh:OrganisationName") == "Kreftkoordinator"
    assert text_of(organisation, "mh:Organisation/mh:Ident/mh:Id") == "8100006"
    assert organisation.find("mh:HealthcareProfessional", MH) is None


def test_fastlege_message_is_schema_valid_and_addresses_the_gp() -> None:
    """A message to a fastlege validates and names the GP as HealthcareProfessional with HER-id and HPR."""
    root = round_trip(make_message(fastlege_receiver()))
    gp = root.find("mh:MsgInfo/mh:Receiver/mh:Organisation/mh:HealthcareProfessional", MH)
    assert gp is not None
    assert attrs(gp.find("mh:RoleToPatient", MH)) == {
        "V": "6",
        "DN": "Fastlege",
        "S": "2.16.578.1.12.4.1.1.9034",
    }
    assert idents(gp) == [("HER", "8100089"), ("HPR", "9700065")]
    assert text_of(gp, "mh:FamilyName") == "Haugen" and text_of(gp, "mh:GivenName") == "Kari"


@pytest.mark.parametrize("receiver", [kommune_receiver(), fastlege_receiver()], ids=["kommune", "fastlege"])
def test_summary_round_trips_the_built_message(receiver: Receiver) -> None:
    """parse_msghead_summary reads back exactly the identifiers the builder wrote."""
    message = make_message(receiver, conversation_ref="7d3c1a52-4b8e-4f57-a0c9-2e1f6d5b4a39")
    summary = parse_msghead_summary(round_trip(message))
    assert summary == MsgHeadSummary(
        msg_id=message.msg_id,
        msg_type="DIALOG_HELSEFAGLIG",
        gen_date="2026-11-02T10:15:30",
        sender_her_id=8100001,
        receiver_her_id=receiver.organisation.her_id,
        sender_unit_her_id=8100002,
        receiver_service_her_id=8100006 if receiver.service else None,
        receiver_person_her_id=8100089 if receiver.practitioner else None,
        conversation_ref="7d3c1a52-4b8e-4f57-a0c9-2e1f6d5b4a39",
        conversation_root="7d3c1a52-4b8e-4f57-a0c9-2e1f6d5b4a39",
        patient_id="23915700969",
        patient_id_type="FNR",
        payload_namespace=ns.DIALOG_1_1,
    )
    addressed = summary.receiver_service_her_id or summary.receiver_person_her_id
    assert addressed == receiver.addressed_her_id


def test_msg_info_follows_schema_order_and_fixed_values() -> None:
    """MsgInfo holds Type, MIGversion, GenDate, MsgId, ConversationRef, Sender, Receiver, Patient in order."""
    root = round_trip(
        make_message(kommune_receiver(), conversation_ref="c0ffee00-0000-4000-8000-000000000000")
    )
    info = root.find("mh:MsgInfo", MH)
    assert info is not None
    assert [etree.QName(child).localname for child in info] == [
        "Type", "MIGversion", "GenDate", "MsgId", "ConversationRef", "Sender", "Receiver", "Patient",
    ]  # fmt: skip
    assert attrs(info.find("mh:Type", MH)) == {"V": "DIALOG_HELSEFAGLIG", "DN": "Helsefaglig dialog"}
    assert text_of(info, "mh:MIGversion") == "v1.2 2006-05-24"


def test_without_conversation_ref_there_is_no_conversation_element() -> None:
    """A first message in a conversation carries no ConversationRef."""
    root = round_trip(make_message(kommune_receiver()))
    assert root.find("mh:MsgInfo/mh:ConversationRef", MH) is None
    assert parse_msghead_summary(root).conversation_ref is None


def test_sender_names_virksomhet_and_unit_with_her_ids() -> None:
    """The sender is the hospital (HER-id and organisation number) with the unit nested under it."""
    root = round_trip(make_message(kommune_receiver()))
    sender = root.find("mh:MsgInfo/mh:Sender/mh:Organisation", MH)
    assert sender is not None
    assert idents(sender) == [("HER", "8100001"), ("ENH", "998369002")]
    assert text_of(sender, "mh:Organisation/mh:OrganisationName") == "Kreftpoliklinikken Skien"


def test_sender_without_unit_has_no_nested_organisation() -> None:
    """Without a unit, the sender is just the virksomhet."""
    root = round_trip(make_message(kommune_receiver(), sender=Sender(HOSPITAL)))
    assert root.find("mh:MsgInfo/mh:Sender/mh:Organisation/mh:Organisation", MH) is None
    assert parse_msghead_summary(root).sender_unit_her_id is None


@pytest.mark.parametrize(
    ("id_type", "display"),
    [("FNR", "Fødselsnummer"), ("DNR", "D-nummer"), ("HNR", "H-nummer"), ("FHN", "FH-nummer")],
)
def test_patient_ident_is_typed_by_kodeverk_8116(id_type: str, display: str) -> None:
    """The patient's Ident carries the 8116 type code and display name for each identifier kind."""
    patient = dataclasses.replace(
        PATIENT, id="63915700969" if id_type == "DNR" else PATIENT.id, id_type=id_type
    )
    root = round_trip(make_message(kommune_receiver(), patient=patient))
    type_id = root.find("mh:MsgInfo/mh:Patient/mh:Ident/mh:TypeId", MH)
    assert type_id is not None
    assert attrs(type_id) == {"V": id_type, "DN": display, "S": "2.16.578.1.12.4.1.1.8116"}


def test_patient_names_in_schema_order_with_middle_name() -> None:
    """FamilyName, MiddleName, GivenName appear in the schema's order when a middle name is given."""
    patient = dataclasses.replace(PATIENT, middle_name="Øyvind")
    root = round_trip(make_message(kommune_receiver(), patient=patient))
    element = root.find("mh:MsgInfo/mh:Patient", MH)
    assert element is not None
    assert [(etree.QName(c).localname, c.text) for c in element][:3] == [
        ("FamilyName", "Hansen"), ("MiddleName", "Øyvind"), ("GivenName", "Knut"),
    ]  # fmt: skip


def test_unknown_patient_id_type_is_a_programming_error() -> None:
    """An identifier type outside kodeverk 8116 raises ValueError without echoing the person number."""
    patient = dataclasses.replace(PATIENT, id_type="XYZ")
    with pytest.raises(ValueError, match="XYZ") as caught:
        build_msghead(make_message(kommune_receiver(), patient=patient))
    assert PATIENT.id not in str(caught.value)


# --- the Dialogmelding payload --------------------------------------------------------------------


def test_notat_carries_tema_text_and_responsible_contact() -> None:
    """The Notat has TemaKodet, Tema, the text and the nurse as RollerRelatertNotat with a tel: URI."""
    message = make_message(kommune_receiver())
    notat = notat_of(round_trip(message))
    assert attrs(notat.find("dia:TemaKodet", MH)) == {
        "V": "6",
        "DN": "Henvendelse om pasient",
        "S": "2.16.578.1.12.4.1.1.7322",
    }
    assert text_of(notat, "dia:Tema") == message.notat.tema
    assert text_of(notat, "dia:TekstNotatInnhold") == message.notat.text
    (roller,) = notat.findall("dia:RollerRelatertNotat", MH)
    assert roller.find("dia:RoleToPatient", MH).get("V") == "17"  # type: ignore[union-attr]
    person = roller.find("dia:HealthcareProfessional", MH)
    assert person is not None
    assert text_of(person, "dia:FamilyName") == "Kreftsykepleier"
    assert text_of(person, "dia:GivenName") == "Nina"
    assert person.find("dia:TeleCom/fk1:TeleAddress", MH).get("V") == "tel:+4735003500"  # type: ignore[union-attr]


def test_receiver_contact_as_profession() -> None:
    """A wanted profession at the receiver becomes 'Kontakt hos mottaker' with TypeHealthcareProfessional."""
    message = with_notat(
        make_message(kommune_receiver()), receiver_contact=ReceiverContact(profession=SYKEPLEIER)
    )
    rollers = notat_of(round_trip(message)).findall("dia:RollerRelatertNotat", MH)
    assert len(rollers) == 2
    assert attrs(rollers[1].find("dia:RoleToPatient", MH)) == {
        "V": "24",
        "DN": "Kontakt hos mottaker",
        "S": "2.16.578.1.12.4.1.1.9034",
    }
    kind = rollers[1].find("dia:HealthcareProfessional/dia:TypeHealthcareProfessional", MH)
    assert attrs(kind) == {"V": "SP", "DN": "Sykepleier"}


def test_receiver_contact_as_named_person() -> None:
    """A named contact at the receiver is written with family and given name."""
    contact = ReceiverContact(given_name="Liv", family_name="Berg")
    message = with_notat(make_message(fastlege_receiver()), receiver_contact=contact)
    rollers = notat_of(round_trip(message)).findall("dia:RollerRelatertNotat", MH)
    person = rollers[1].find("dia:HealthcareProfessional", MH)
    assert person is not None
    assert [(etree.QName(c).localname, c.text) for c in person] == [
        ("FamilyName", "Berg"),
        ("GivenName", "Liv"),
    ]


def test_empty_receiver_contact_adds_nothing() -> None:
    """A receiver contact with neither profession nor name adds no second RollerRelatertNotat."""
    message = with_notat(make_message(kommune_receiver()), receiver_contact=ReceiverContact())
    assert len(notat_of(round_trip(message)).findall("dia:RollerRelatertNotat", MH)) == 1


def test_contact_without_phone_digits_has_no_telecom() -> None:
    """A contact whose phone has no digits gets no TeleCom, and the message stays valid."""
    message = with_notat(
        make_message(kommune_receiver()), contact=Contact("Nina Kreftsykepleier", "x", "ukjent")
    )
    assert notat_of(round_trip(message)).find(".//dia:TeleCom", MH) is None


def test_xml_special_characters_and_norwegian_letters_survive() -> None:
    """<&>"' and æøå in Tema and text arrive unchanged, escaped by the serialiser."""
    tricky = "Smerter <5 & \"kvalme\" > 'før' – æøå ÆØÅ ]]> <!-- x --> &amp;"
    message = with_notat(make_message(kommune_receiver()), tema=tricky, text=tricky)
    data = to_bytes(build_msghead(message))
    assert b"<!-- x -->" not in data  # markup in text is escaped, never live
    notat = notat_of(round_trip(message))
    assert text_of(notat, "dia:Tema") == tricky
    assert text_of(notat, "dia:TekstNotatInnhold") == tricky


def test_line_breaks_in_text_are_preserved() -> None:
    """LF, CRLF and tab in the note text survive serialisation and parsing."""
    text = "Linje 1\nLinje 2\r\nLinje 3\r\tinnrykk\n\n"
    notat = notat_of(round_trip(with_notat(make_message(kommune_receiver()), text=text)))
    assert text_of(notat, "dia:TekstNotatInnhold") == text


def test_characters_xml_cannot_carry_are_dropped() -> None:
    """Control characters XML 1.0 forbids are removed instead of breaking the message."""
    message = with_notat(make_message(kommune_receiver()), text="a\x00b\x07c\x1fd\ufffee", tema="t\x0bx")
    notat = notat_of(round_trip(message))
    assert text_of(notat, "dia:TekstNotatInnhold") == "abcde"
    assert text_of(notat, "dia:Tema") == "tx"


def test_to_bytes_is_utf8_with_declaration() -> None:
    """to_bytes writes an XML declaration naming UTF-8 and encodes æøå as UTF-8."""
    data = to_bytes(build_msghead(make_message(kommune_receiver())))
    assert data.startswith(b"<?xml version=") and b"UTF-8" in data.split(b"?>", 1)[0]
    assert "Forløpskoordinator".encode() in data


def test_gen_date_with_timezone_is_valid() -> None:
    """A timezone-aware gen_date is written with its offset and still validates."""
    aware = datetime.fromisoformat("2026-11-02T10:15:30+01:00")
    root = round_trip(make_message(kommune_receiver(), gen_date=aware))
    assert text_of(root, "mh:MsgInfo/mh:GenDate") == "2026-11-02T10:15:30+01:00"


# --- helpers: names and phone numbers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("Nina Kreftsykepleier", ("Nina", "Kreftsykepleier")),
        ("Anne Marie Berg", ("Anne Marie", "Berg")),
        ("  Ola   Nordmann ", ("Ola", "Nordmann")),
        ("Berg, Anne Marie", ("Anne Marie", "Berg")),
        ("Berg,", (None, "Berg")),
        ("Kreftkoordinatoren", (None, "Kreftkoordinatoren")),
        ("", (None, "")),
    ],
)
def test_split_name(full: str, expected: tuple[str | None, str]) -> None:
    """Names split into given names and family name the Norwegian way."""
    assert split_name(full) == expected


@pytest.mark.parametrize(
    ("phone", "uri"),
    [
        ("+4735003500", "tel:+4735003500"),
        ("+47 35 00 35 00", "tel:+4735003500"),
        ("35 00 35 00", "tel:35003500"),
        ("(+47) 350-03-500", "tel:4735003500"),
        ("ukjent", None),
        ("", None),
    ],
)
def test_tel_uri(phone: str, uri: str | None) -> None:
    """Phone numbers become tel: URIs of their digits, with a leading + kept."""
    assert tel_uri(phone) == uri


# --- property test ------------------------------------------------------------------------------

printable = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc", "Cn", "Co")) | st.sampled_from("\n\r\t"),
    max_size=200,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tema=printable, text=printable)
def test_any_printable_tema_and_text_build_a_valid_message(tema: str, text: str) -> None:
    """Random printable Tema and text always build a schema-valid message that reads back unchanged."""
    message = with_notat(make_message(kommune_receiver()), tema=tema, text=text)
    notat = notat_of(round_trip(message))
    assert (notat.findtext("dia:Tema", namespaces=MH) or "") == tema
    assert (notat.findtext("dia:TekstNotatInnhold", namespaces=MH) or "") == text


# --- reading official samples ---------------------------------------------------------------------


def _sample(name: str) -> etree._Element:
    return parse_xml((SAMPLES / name).read_bytes())


def test_summary_of_sample_with_gp_sender_and_service_receiver() -> None:
    """The Sarepta example from a fastlege to a hospital department is summarised correctly."""
    summary = parse_msghead_summary(
        _sample("dialogmelding/v1.1/sarepta_Helsefaglig_dialog_angi_profesjon_hos_mottaker.xml")
    )
    assert (summary.sender_her_id, summary.sender_person_her_id, summary.sender_unit_her_id) == (
        56704,
        258521,
        None,
    )
    assert (summary.receiver_her_id, summary.receiver_service_her_id, summary.receiver_person_her_id) == (
        59,
        90998,
        None,
    )
    assert summary.msg_id == "d93cebe5-ac91-4022-8969-4f93300d8171"
    assert summary.patient_id_type == "FNR"


def test_summary_of_sample_with_conversation_and_extra_idents() -> None:
    """HER-ids are found by TypeId even after other idents; both conversation refs are read."""
    summary = parse_msghead_summary(_sample("dialogmelding/v1.1/helsenorge_MetadataTestsDialogmelding11.xml"))
    assert summary.sender_her_id == 56704
    assert summary.conversation_ref == "d14ea2f3-d796-4d7b-8271-a4480d2b4035"
    assert summary.conversation_root == "a14ea2f3-d796-4d7b-8271-a4480d2b4037"


def test_summary_of_unit_sender_sample() -> None:
    """The NHN samsvar sample (service-addressed both ways) yields both units' HER-ids."""
    summary = parse_msghead_summary(_sample("dialogmelding/v1.1/fiks_samsvar-test-message.xml"))
    assert (summary.sender_her_id, summary.sender_unit_her_id) == (112374, 8094866)
    assert (summary.receiver_her_id, summary.receiver_service_her_id) == (8142987, 8143060)


def test_summary_of_dialogmelding_1_0_sample_names_its_payload() -> None:
    """A Dialogmelding 1.0 message reports the 1.0 payload namespace."""
    summary = parse_msghead_summary(_sample("dialogmelding/v1.0/sarepta_Dialogmelding_avvik_v1-0.xml"))
    assert summary.payload_namespace == ns.DIALOG_1_0


def test_summary_repr_hides_the_patient_id() -> None:
    """A summary logged by mistake does not print the person number."""
    summary = parse_msghead_summary(round_trip(make_message(kommune_receiver())))
    assert PATIENT.id not in repr(summary)
    assert summary.patient_id == PATIENT.id


def test_summary_refuses_a_non_msghead() -> None:
    """parse_msghead_summary refuses another root element with T02."""
    with pytest.raises(XmlRejected) as caught:
        parse_msghead_summary(etree.fromstring(b"<AppRec/>"))
    assert caught.value.code == "T02"


def test_summary_refuses_a_sender_without_her_id() -> None:
    """A sender virksomhet that carries no HER-id cannot be correlated: T99."""
    root = build_msghead(make_message(kommune_receiver()))
    sender_type = root.find("mh:MsgInfo/mh:Sender/mh:Organisation/mh:Ident/mh:TypeId", MH)
    assert sender_type is not None
    sender_type.set("V", "XYZ")
    with pytest.raises(XmlRejected) as caught:
        parse_msghead_summary(root)
    assert caught.value.code == "T99"


def test_summary_refuses_a_non_numeric_her_id() -> None:
    """A HER-id that is not a number is refused with T99, without echoing it."""
    root = build_msghead(make_message(kommune_receiver()))
    sender_id = root.find("mh:MsgInfo/mh:Receiver/mh:Organisation/mh:Ident/mh:Id", MH)
    assert sender_id is not None
    sender_id.text = "81OOO05"
    with pytest.raises(XmlRejected) as caught:
        parse_msghead_summary(root)
    assert caught.value.code == "T99" and "81OOO05" not in str(caught.value)


def _summary_of(data: bytes) -> MsgHeadSummary:
    return parse_msghead_summary(parse_xml(data))


@pytest.mark.parametrize("spelling", list(SAME_VALUE.values()), ids=list(SAME_VALUE))
def test_summary_reads_each_her_id_once_however_it_is_written(spelling: Spelling) -> None:
    """Comments, CDATA, character references and whitespace in a HER-id give the one plain value."""
    data = to_bytes(round_trip(make_message(kommune_receiver())))
    summary = _summary_of(respelled(data, 8100005, spelling))
    assert summary.receiver_her_id == 8100005


@pytest.mark.parametrize("spelling", list(NOT_A_HER_ID.values()), ids=list(NOT_A_HER_ID))
def test_summary_refuses_a_her_id_that_is_not_one_rather_than_shortening_it(spelling: Spelling) -> None:
    """A HER-id text that is not 1 to 9 ASCII digits is T99, never read as another number."""
    data = to_bytes(round_trip(make_message(kommune_receiver())))
    with pytest.raises(XmlRejected) as caught:
        _summary_of(respelled(data, 8100005, spelling))
    assert caught.value.code == "T99"


def test_summary_refuses_a_party_with_two_different_her_ids() -> None:
    """One organisation naming two HER-ids has no one identity: T99."""
    data = to_bytes(round_trip(make_message(kommune_receiver())))
    ident = b"<Ident><Id>8100005</Id>"
    start = data.index(ident)
    end = data.index(b"</Ident>", start) + len(b"</Ident>")
    second = data[start:end].replace(b"8100005", b"8100010")
    with pytest.raises(XmlRejected) as caught:
        _summary_of(data[:end] + second + data[end:])
    assert caught.value.code == "T99"


def test_summary_msg_id_is_read_as_one_clean_token() -> None:
    """A MsgId with a comment inside reads as the plain MsgId; one with inner whitespace is refused."""
    message = make_message(kommune_receiver())
    data = to_bytes(round_trip(message))
    plain = f"<MsgId>{message.msg_id}</MsgId>".encode()
    commented = f"<MsgId>{message.msg_id[:4]}<!---->{message.msg_id[4:]}</MsgId>".encode()
    assert _summary_of(data.replace(plain, commented)).msg_id == message.msg_id
    spaced = f"<MsgId>{message.msg_id[:4]} {message.msg_id[4:]}</MsgId>".encode()
    with pytest.raises(XmlRejected):
        _summary_of(data.replace(plain, spaced))
