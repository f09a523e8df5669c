"""A received Dialogmelding's first Notat and its MsgHead's patient are read back as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from edi_gateway.domain.model import Patient
from edi_gateway.errors import XmlRejected
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.dialogmelding import (
    NotatContent,
    parse_message,
    read_notat,
    read_patient,
)
from edi_gateway.xml.msghead import build_msghead, to_bytes
from edi_gateway.xml.safe import UnreadableIdentifier
from tests.conftest import SAMPLES
from tests.xml.test_msghead import HENVENDELSE, kommune_receiver, make_message, with_notat

TEXT = "Pakkeforløp hjem — behovskartlegging (samhandlingspunkt 1)\n\nDiagnosedato: 12.10.2026\n  <&> æøå\n"


def built(**notat: object) -> bytes:
    message = (
        with_notat(make_message(kommune_receiver()), **notat) if notat else make_message(kommune_receiver())
    )
    return to_bytes(build_msghead(message))


def test_the_first_notat_is_read_with_tema_code_and_text_line_by_line() -> None:
    """Tema, TemaKodet and the whole text (line breaks, escaped characters, Norwegian letters) come back."""
    root = parse_message(built(text=TEXT, tema="Pakkeforløp hjem – samhandlingspunkt 1"))
    assert read_notat(root) == NotatContent(
        "Pakkeforløp hjem – samhandlingspunkt 1", TEXT.strip(), HENVENDELSE.v
    )


def test_the_patient_is_read_with_id_type_and_names() -> None:
    """MsgInfo/Patient gives the person number, its 8116 type and the names."""
    message = make_message(
        kommune_receiver(), patient=Patient("07926217857", "FNR", "Per", "Sørensen", "Ola")
    )
    patient = read_patient(parse_message(to_bytes(build_msghead(message))))
    assert patient == Patient("07926217857", "FNR", "Per", "Sørensen", "Ola")
    assert patient is not None and "07926217857" not in repr(patient) and "Sørensen" not in repr(patient)


def test_a_signed_message_reads_the_same() -> None:
    """The enveloped signature as MsgHead's last child changes nothing the readers see."""
    data = built(text=TEXT)
    signed = data.replace(
        b"</MsgHead>",
        f'<ds:Signature xmlns:ds="{ns.XMLDSIG}"><ds:SignedInfo/></ds:Signature></MsgHead>'.encode(),
    )
    assert read_notat(parse_message(signed)) == read_notat(parse_message(data))


def test_dialogmelding_1_0_is_read_too() -> None:
    """An official v1.0 sample gives its first Notat's code and text."""
    sample = SAMPLES / "dialogmelding" / "v1.0" / "fiks_dialog-notat-webmed-test.xml"
    notat = read_notat(parse_message(sample.read_bytes()))
    assert notat is not None
    assert notat.tema_kodet == "99"
    assert notat.text.startswith("Lege svarer med notat.")
    assert notat.tema == ""


@pytest.mark.parametrize(
    "sample",
    sorted((SAMPLES / "dialogmelding" / "v1.1").glob("*.xml")),
    ids=lambda p: p.stem,
)
def test_official_v1_1_samples_read_without_error(sample: Path) -> None:
    """Every official v1.1 sample reads (a Notat or None, and a patient) without raising."""
    root = parse_message(sample.read_bytes())
    notat = read_notat(root)
    assert notat is None or isinstance(notat.text, str)
    patient = read_patient(root)
    assert patient is None or patient.id


def test_a_message_without_dialogmelding_or_notat_has_none() -> None:
    """No Dialogmelding in Content, or one without a Notat, reads as None."""
    root = parse_message(built())
    content = root.find(f"{{{ns.MSGHEAD}}}Document/{{{ns.MSGHEAD}}}RefDoc/{{{ns.MSGHEAD}}}Content")
    assert content is not None
    dialogmelding = content[0]
    for child in list(dialogmelding):
        dialogmelding.remove(child)
    assert read_notat(root) is None
    content.remove(dialogmelding)
    assert read_notat(root) is None


def test_a_message_without_patient_has_none_and_a_dirty_id_is_refused() -> None:
    """No Patient reads as None; an Id with inner whitespace is refused, not repaired."""
    root = parse_message(built())
    patient = root.find(f"{{{ns.MSGHEAD}}}MsgInfo/{{{ns.MSGHEAD}}}Patient")
    assert patient is not None
    id_element = patient.find(f"{{{ns.MSGHEAD}}}Ident/{{{ns.MSGHEAD}}}Id")
    assert id_element is not None
    id_element.text = "239157 00969"
    with pytest.raises(UnreadableIdentifier):
        read_patient(root)
    patient.getparent().remove(patient)  # type: ignore[union-attr]
    assert read_patient(root) is None


def test_hostile_bytes_are_refused_by_the_hardened_parser() -> None:
    """A DOCTYPE is refused (T01) before anything is read."""
    with pytest.raises(XmlRejected):
        parse_message(b'<!DOCTYPE x [<!ENTITY a "b">]><MsgHead>&a;</MsgHead>')


def test_the_notat_text_is_whole_when_it_holds_elements() -> None:
    """Mixed content inside TekstNotatInnhold (allowed by v1.1) is read as its full text."""
    data = built(text="første linje")
    data = data.replace(b"f\xc3\xb8rste linje", b"f\xc3\xb8rste <b>fet</b> linje")
    notat = read_notat(parse_message(data))
    assert notat is not None and notat.text == "første fet linje"
