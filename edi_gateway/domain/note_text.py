"""The readable text of a kommune's note to the fastlege after a completed samhandlingspunkt.

It goes into the Dialogmelding's ``TekstNotatInnhold`` of the message "Oppfølging - Pakkeforløp hjem
for pasienter med kreft": which point was carried out and when, what the kommune nurse wrote, and
whom to contact in the kommune. Plain Norwegian text, deterministic for its input, lines of at most
100 characters, like the hospital's assessment text (``domain.assessment_text``).

The patient's name and person number are left out on purpose: the MsgHead carries the patient, and
the text may be shown or printed where the header is not. The nurse's free text is kept as written,
except that anything shaped like a person number (11 digits, optionally split 6 + 5) is replaced,
so a number typed into the note by habit does not travel in the text.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from datetime import date
from typing import Final

WIDTH: Final = 100
NOTE_TEMA: Final = "Oppfølging - Pakkeforløp hjem for pasienter med kreft"
"""``Notat/Tema`` of every note to the fastlege, exactly as the kommune's routine names the message."""

NOTE_CONTENT_TYPE: Final = "application/vnd.edi-gateway.pathway-note+json"
"""The content type the store records for a note's request row (its body is the note as JSON)."""

PERSON_NUMBER_REMOVED: Final = "[personnummer fjernet]"

_INDENT: Final = "  "
_PERSON_NUMBER = re.compile(r"(?<!\d)\d{6}[ \t]?\d{5}(?!\d)")


@dataclass(frozen=True, slots=True)
class NoteContent:
    """What a note to the fastlege says.

    Attributes:
        samhandlingspunkt: the number of the point carried out.
        point_title: what the point is, as the pathway model names it; None when unknown.
        carried_out_on: the day it was carried out.
        text: the kommune nurse's note (patient data: never log it; hidden from repr).
        service_name: the kommune service that followed the patient up (e.g. "Tjenestekontoret").
        kommune_name: the kommune's name (e.g. "Skien kommune"), when known.
    """

    samhandlingspunkt: int
    point_title: str | None
    carried_out_on: date
    text: str = field(repr=False)
    service_name: str
    kommune_name: str | None = None


def render_note(note: NoteContent) -> str:
    """Render a note to the fastlege as plain text for ``TekstNotatInnhold``.

    Returns:
        The text, sections separated by blank lines, ending with a newline; no line is longer
        than :data:`WIDTH`.
    """
    sections = [
        _title(note.samhandlingspunkt, note.point_title),
        [f"Gjennomført: {_norwegian_date(note.carried_out_on)}"],
        _nurse_text(note.text),
        _contact(note.service_name, note.kommune_name),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def without_person_numbers(text: str) -> str:
    """Return ``text`` with every run shaped like a person number (6 + 5 digits) replaced."""
    return _PERSON_NUMBER.sub(PERSON_NUMBER_REMOVED, text)


def _title(samhandlingspunkt: int, point_title: str | None) -> list[str]:
    title = f"Pakkeforløp hjem for pasienter med kreft — samhandlingspunkt {samhandlingspunkt}"
    if point_title and point_title.strip():
        title += f" ({' '.join(point_title.split())})"
    return _wrapped(title)


def _nurse_text(text: str) -> list[str]:
    cleaned = without_person_numbers(text).strip()
    if not cleaned:
        return ["Notat fra kommunen: (ingen tekst)"]
    lines = ["Notat fra kommunen:"]
    for paragraph in cleaned.splitlines():
        lines += _wrapped(paragraph, indent=_INDENT) if paragraph.strip() else [""]
    return lines


def _contact(service_name: str, kommune_name: str | None) -> list[str]:
    where = f"{service_name}, {kommune_name}" if kommune_name else service_name
    return ["Kontakt i kommunen:", *_wrapped(where, indent=_INDENT)]


def _wrapped(text: str, *, indent: str = "") -> list[str]:
    # break_on_hyphens=False keeps codes and compound words in one piece, as in the assessment text.
    return textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    ) or [indent.rstrip()]


def _norwegian_date(day: date) -> str:
    return day.strftime("%d.%m.%Y")
