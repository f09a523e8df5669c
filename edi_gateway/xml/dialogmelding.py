"""Read a received Dialogmelding: the first ``Notat`` (its Tema and text) and the MsgHead's patient.

The receiving side stores each business document exactly as it arrived, signature verified. The
kommune's pathway worklist and the fastlege note read two things back from it: what the hospital
wrote (``Notat/Tema`` and ``Notat/TekstNotatInnhold``) and who the patient is (``MsgInfo/Patient``).
Both Dialogmelding v1.1 (what we send) and v1.0 (still sent by older systems) are read.

Pure: the bytes are parsed with the hardened parser (:func:`edi_gateway.xml.safe.parse_xml`), and
nothing here logs or keeps a value. The patient is personal data: never log any of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lxml import etree

from edi_gateway.domain.model import Patient
from edi_gateway.xml import namespaces as ns
from edi_gateway.xml.safe import full_text, identifier_text, parse_xml

_NS: Final = {"mh": ns.MSGHEAD}
_DIALOG_NAMESPACES: Final = (ns.DIALOG_1_1, ns.DIALOG_1_0)


@dataclass(frozen=True, slots=True)
class NotatContent:
    """The first ``Notat`` of a Dialogmelding.

    Attributes:
        tema: ``Tema`` as written (trimmed); empty when absent.
        text: the full text of ``TekstNotatInnhold`` (line breaks kept, ends trimmed); empty when absent.
        tema_kodet: ``TemaKodet/@V`` (kodeverk 7322), when given.
    """

    tema: str
    text: str
    tema_kodet: str | None = None


def parse_message(data: bytes) -> etree._Element:
    """Parse a received MsgHead's bytes with the hardened parser.

    Raises:
        XmlRejected: the bytes are not well-formed or hostile (see :mod:`edi_gateway.xml.safe`).
    """
    return parse_xml(data)


def read_notat(root: etree._Element) -> NotatContent | None:
    """Return the first ``Notat`` of the first Dialogmelding in a MsgHead, or None when there is none.

    Args:
        root: the ``MsgHead`` element.
    """
    for namespace in _DIALOG_NAMESPACES:
        dialogmelding = root.find(f"mh:Document/mh:RefDoc/mh:Content/{_tag(namespace, 'Dialogmelding')}", _NS)
        if dialogmelding is None:
            continue
        first = dialogmelding.find(_tag(namespace, "Notat"))
        if first is None:
            return None
        return NotatContent(
            tema=_child_text(first, namespace, "Tema"),
            text=_child_text(first, namespace, "TekstNotatInnhold"),
            tema_kodet=_child_code(first, namespace, "TemaKodet"),
        )
    return None


def read_patient(root: etree._Element) -> Patient | None:
    """Return the patient of a MsgHead, or None when it names none (or no ``Ident/Id``).

    Raises:
        UnreadableIdentifier: the ``Id`` is not one clean token (see :func:`identifier_text`).
    """
    patient = root.find("mh:MsgInfo/mh:Patient", _NS)
    if patient is None:
        return None
    id_element = patient.find("mh:Ident/mh:Id", _NS)
    if id_element is None:
        return None
    person_id = identifier_text(id_element)
    if not person_id:
        return None
    type_id = patient.find("mh:Ident/mh:TypeId", _NS)
    return Patient(
        id=person_id,
        id_type=(type_id.get("V") or "") if type_id is not None else "",
        given_name=_mh_text(patient, "GivenName"),
        family_name=_mh_text(patient, "FamilyName"),
        middle_name=_mh_text(patient, "MiddleName") or None,
    )


def _tag(namespace: str, local: str) -> str:
    return ns.ns(namespace, local)


def _child_text(parent: etree._Element, namespace: str, local: str) -> str:
    child = parent.find(_tag(namespace, local))
    return "" if child is None else full_text(child)


def _child_code(parent: etree._Element, namespace: str, local: str) -> str | None:
    child = parent.find(_tag(namespace, local))
    value = None if child is None else child.get("V")
    return value.strip() if value else None


def _mh_text(parent: etree._Element, local: str) -> str:
    child = parent.find(f"mh:{local}", _NS)
    return "" if child is None else full_text(child)
