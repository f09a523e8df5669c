"""The readable text of a behovskartlegging: what the kommune nurse (or fastlege) reads and acts on.

It goes into the Dialogmelding's ``TekstNotatInnhold``. It is plain Norwegian text, deterministic for a
given request, with lines kept under 100 characters so it reads well in any EPR's message viewer.
The patient's name and person number are left out on purpose: the MsgHead carries the patient, and the
text may be shown or printed where the header is not.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from datetime import date

from edi_gateway.domain.request import Assessment, Diagnosis, Measure, RequestContact, RequestV1

WIDTH = 100
_INDENT = "  "

# Order and headings of the distress thermometer's problem areas.
_AREA_HEADINGS = {
    "praktisk": "Praktisk",
    "familie": "Familie",
    "emosjonell": "Emosjonell",
    "åndelig": "Åndelig",
    "fysisk": "Fysisk",
}
_RESPONSIBLE = {"sykehus": "Sykehus", "kommune": "Kommune", "fastlege": "Fastlege", "pasient": "Pasient"}


def render_assessment(request: RequestV1, *, kommune_name: str | None = None) -> str:
    """Render the assessment of ``request`` as plain text for ``TekstNotatInnhold``.

    Args:
        request: a validated request.
        kommune_name: the receiving kommune's name, shown when known (e.g. "Skien kommune").

    Returns:
        The text, sections separated by blank lines, ending with a newline.
    """
    sections = [
        _title(request.samhandlingspunkt, kommune_name),
        _diagnosis(request.diagnosis),
        _scores(request.assessment),
        _problems(request.assessment),
        _free_text("Hva er viktig for pasienten", request.assessment.important_to_patient),
        _free_text("Notater", request.assessment.notes),
        _measures(request.measures),
        _contact(request.sender.contact),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


def _title(samhandlingspunkt: int, kommune_name: str | None) -> list[str]:
    lines = [
        "Pakkeforløp hjem for pasienter med kreft — behovskartlegging "
        f"(samhandlingspunkt {samhandlingspunkt})"
    ]
    if kommune_name:
        lines += _wrapped(f"Bostedskommune: {kommune_name}")
    return lines


def _diagnosis(diagnosis: Diagnosis) -> list[str]:
    return [
        *_wrapped(f"Diagnose: {diagnosis.icd10} {diagnosis.text}"),
        f"Diagnosedato: {_norwegian_date(diagnosis.date)}",
        f"Residiv: {'ja' if diagnosis.relapse else 'nei'}",
        f"Intensjon: {diagnosis.intent}",
    ]


def _scores(assessment: Assessment) -> list[str]:
    return [
        f"Kartleggingsdato: {_norwegian_date(assessment.date)}",
        f"Distresstermometer: score {assessment.distress_score}/10",
    ]


def _problems(assessment: Assessment) -> list[str]:
    if not assessment.problems:
        return ["Problemområder: ingen registrert"]
    lines = ["Problemområder:"]
    for area, heading in _AREA_HEADINGS.items():
        items = [p.item for p in assessment.problems if p.area == area]
        if items:
            lines.append(f"{_INDENT}{heading}:")
            lines += _bullets(items, indent=_INDENT * 2)
    return lines


def _free_text(heading: str, text: str | None) -> list[str]:
    if text is None or not text.strip():
        return []
    lines = [f"{heading}:"]
    for paragraph in text.strip().splitlines():
        lines += _wrapped(paragraph, indent=_INDENT) if paragraph.strip() else [""]
    return lines


def _measures(measures: Iterable[Measure]) -> list[str]:
    entries = [f"{m.description} (ansvar: {_RESPONSIBLE[m.responsible]})" for m in measures]
    if not entries:
        return ["Tiltak: ingen registrert"]
    return ["Tiltak:", *_bullets(entries, indent=_INDENT)]


def _contact(contact: RequestContact) -> list[str]:
    return [
        "Kontakt på sykehuset:",
        *_wrapped(f"{contact.name}, {contact.role}", indent=_INDENT),
        f"{_INDENT}Telefon: {contact.phone}",
    ]


def _bullets(entries: Iterable[str], *, indent: str) -> list[str]:
    lines: list[str] = []
    for entry in entries:
        lines += textwrap.wrap(
            entry,
            WIDTH,
            initial_indent=f"{indent}- ",
            subsequent_indent=f"{indent}  ",
            break_on_hyphens=False,
        )
    return lines


def _wrapped(text: str, *, indent: str = "") -> list[str]:
    # break_on_hyphens=False keeps codes and compound words like "C50.9-relatert" in one piece.
    return textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    ) or [indent.rstrip()]


def _norwegian_date(day: date) -> str:
    return day.strftime("%d.%m.%Y")
