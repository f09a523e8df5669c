"""The note to the fastlege says which point was carried out, when, what the nurse wrote and whom to call."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.note_text import (
    NOTE_TEMA,
    PERSON_NUMBER_REMOVED,
    WIDTH,
    NoteContent,
    render_note,
    without_person_numbers,
)

TITLE = "Behovskartlegging i kommunen, ca. 3–4 måneder etter diagnosen"
NOTE = NoteContent(
    samhandlingspunkt=2,
    point_title=TITLE,
    carried_out_on=date(2026, 3, 3),
    text="Hjemmebesøk gjennomført. Distresstermometer 4/10.\nØnsker kontakt om smertelindring.",
    service_name="Tjenestekontoret",
    kommune_name="Skien kommune",
)


def test_everything_the_fastlege_needs_is_there() -> None:
    """The pathway and point, the day in Norwegian form, the nurse's text and the kommune contact appear."""
    text = render_note(NOTE)
    assert text.startswith(
        "Pakkeforløp hjem for pasienter med kreft — samhandlingspunkt 2 (Behovskartlegging"
    )
    assert "Gjennomført: 03.03.2026" in text
    assert "  Hjemmebesøk gjennomført. Distresstermometer 4/10." in text
    assert "  Ønsker kontakt om smertelindring." in text
    assert text.endswith("Kontakt i kommunen:\n  Tjenestekontoret, Skien kommune\n")


def test_the_point_title_is_kept_whole_across_wrapped_lines() -> None:
    """A title that does not fit one line wraps, and reads the same when the lines are joined."""
    first_section = render_note(NOTE).split("\n\n")[0]
    assert len(first_section.splitlines()) == 2
    assert " ".join(first_section.splitlines()).endswith(f"({TITLE})")


def test_without_a_title_only_the_number_names_the_point() -> None:
    """An unknown point title leaves no empty brackets."""
    text = render_note(replace(NOTE, point_title=None))
    assert text.splitlines()[0] == "Pakkeforløp hjem for pasienter med kreft — samhandlingspunkt 2"


def test_without_a_kommune_name_the_service_alone_is_the_contact() -> None:
    """The contact line is the service name when the kommune is not named."""
    text = render_note(replace(NOTE, service_name="Skien kommune", kommune_name=None))
    assert text.endswith("Kontakt i kommunen:\n  Skien kommune\n")


def test_an_empty_note_says_so() -> None:
    """A note with only whitespace reads as having no text rather than an empty heading."""
    assert "Notat fra kommunen: (ingen tekst)" in render_note(replace(NOTE, text=" \n\t "))


def test_paragraphs_of_the_nurse_are_kept() -> None:
    """Blank lines between the nurse's paragraphs survive."""
    text = render_note(replace(NOTE, text="Første avsnitt.\n\nAndre avsnitt."))
    assert "  Første avsnitt.\n\n  Andre avsnitt." in text


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("pasient 23915700969 ringt", f"pasient {PERSON_NUMBER_REMOVED} ringt"),
        ("fnr 239157 00969.", f"fnr {PERSON_NUMBER_REMOVED}."),
        ("tlf 35003500", "tlf 35003500"),  # a phone number stays
        ("konto 123456789012", "konto 123456789012"),  # twelve digits are not a person number
    ],
)
def test_person_numbers_in_the_nurse_text_are_removed(written: str, expected: str) -> None:
    """Eleven digits (6 + 5, optionally split) are replaced; other numbers are left as written."""
    assert without_person_numbers(written) == expected
    assert expected in render_note(replace(NOTE, text=written))


def test_the_text_is_the_same_for_the_same_note() -> None:
    """Rendering is deterministic."""
    assert render_note(NOTE) == render_note(NOTE)


def test_the_tema_is_the_kommunes_wording_exactly() -> None:
    """The Tema the fastlege's system files the note under is fixed."""
    assert NOTE_TEMA == "Oppfølging - Pakkeforløp hjem for pasienter med kreft"


@given(
    text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=600),
    title=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=250),
    service=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200),
)
def test_no_line_is_longer_than_the_width(text: str, title: str, service: str) -> None:
    """Whatever the nurse, the model or the register wrote, every line fits the message viewer."""
    note = replace(NOTE, text=text, point_title=title, service_name=service)
    assert all(len(line) <= WIDTH for line in render_note(note).splitlines())
