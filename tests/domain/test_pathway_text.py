"""The facts of a behovskartlegging are read from the hospital's text exactly, and odd text is refused."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.assessment_text import render_assessment
from edi_gateway.domain.pathway import PathwayError, PathwayMessage
from edi_gateway.domain.pathway.from_text import (
    AssessmentFacts,
    AssessmentTextInvalid,
    assessment_facts,
)
from edi_gateway.domain.request import parse_request
from tests.conftest import EXAMPLE_REQUESTS

TITLE = "Pakkeforløp hjem for pasienter med kreft — behovskartlegging (samhandlingspunkt 1)"
FACTS = "Diagnosedato: 12.10.2026\nResidiv: nei\nIntensjon: kurativ\n\nKartleggingsdato: 02.11.2026"
PLAIN = AssessmentFacts(1, date(2026, 10, 12), False, date(2026, 11, 2))


def hospital_text(**changes: Any) -> str:
    """The text the hospital's renderer writes for the example request, with diagnosis changes."""
    data = json.loads((EXAMPLE_REQUESTS / "kommune-only.json").read_text(encoding="utf-8"))
    data["diagnosis"].update(changes.pop("diagnosis", {}))
    data.update(changes)
    body = json.dumps(data, ensure_ascii=False).encode()
    request = parse_request(body, content_type="application/json", max_bytes=1 << 20, test_mode=True)
    return render_assessment(request, kommune_name="Porsgrunn kommune")


def test_the_hospitals_own_text_gives_its_facts() -> None:
    """The renderer's text for the example request reads back as its point, dates and relapse flag."""
    assert assessment_facts(hospital_text()) == PLAIN


def test_a_relapse_and_another_point_are_read_from_the_hospitals_text() -> None:
    """Residiv ja and samhandlingspunkt 2 written by the renderer are read as relapse and point 2."""
    text = hospital_text(samhandlingspunkt=2, diagnosis={"relapse": True, "date": "2026-01-31"})
    assert assessment_facts(text) == AssessmentFacts(2, date(2026, 1, 31), True, date(2026, 11, 2))


def test_a_nurses_indented_notes_are_never_taken_for_facts() -> None:
    """Free text that states other dates and a relapse (indented by the renderer) changes nothing."""
    data = json.loads((EXAMPLE_REQUESTS / "kommune-only.json").read_text(encoding="utf-8"))
    notes = "Residiv: ja?\nDiagnosedato: 01.01.2020\nKartleggingsdato: 01.01.2020"
    text = hospital_text(assessment={**data["assessment"], "notes": notes})
    assert "  Residiv: ja?" in text
    assert assessment_facts(text) == PLAIN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{TITLE}\n{FACTS}", PLAIN),
        (f"{TITLE}\r\n{FACTS.replace(chr(10), chr(13) + chr(10))}\r\n", PLAIN),
        (f"\ufeff\n\n  {TITLE}\n{FACTS}", PLAIN),
        (f"{TITLE.upper()}\n{FACTS.upper()}", PLAIN),
        (f"{TITLE}\n{FACTS.replace(': ', '  :   ')}", PLAIN),
        (
            f"{TITLE}\n{FACTS.replace('12.10.2026', '2.1.2026')}",
            AssessmentFacts(1, date(2026, 1, 2), False, PLAIN.assessment_date),
        ),
        (
            f"{TITLE}\n{FACTS.replace('Residiv: nei', 'Residiv: Ja')}",
            AssessmentFacts(1, PLAIN.diagnosis_date, True, PLAIN.assessment_date),
        ),
        (f"{TITLE}\n{FACTS}\nDiagnosedato: 12.10.2026", PLAIN),
        (
            f"Pakkeforløp - behovskartlegging(samhandlingspunkt 12)\n{FACTS}",
            AssessmentFacts(12, PLAIN.diagnosis_date, False, PLAIN.assessment_date),
        ),
        (f"{TITLE}\n{FACTS}\nDiagnose: C50.9 Brystkreft\nDiagnosedatoen: 01.01.2000", PLAIN),
    ],
    ids=[
        "plain",
        "crlf",
        "bom-blank-lines-indented-title",
        "upper-case",
        "spaces-around-colon",
        "one-digit-day-and-month",
        "relapse-capitalised",
        "fact-repeated-alike",
        "two-digit-point",
        "look-alike-keys",
    ],
)
def test_readable_texts_give_their_facts(text: str, expected: AssessmentFacts) -> None:
    """Each readable spelling of the title and facts gives exactly the facts written."""
    assert assessment_facts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "Oppfølging - Pakkeforløp hjem for pasienter med kreft\nDiagnosedato: 12.10.2026",
        "Pakkeforløp hjem — samhandlingspunkt 2 (Behovskartlegging i kommunen)\nResidiv: nei",
        f"Innledning\n{TITLE}\n{FACTS}",
        f"Pakkeforløp hjem for pasienter med kreft — behovskartlegging\n{FACTS}",
    ],
    ids=[
        "empty",
        "blank",
        "kommune-note",
        "note-title-naming-the-point",
        "title-not-first",
        "no-point-phrase",
    ],
)
def test_texts_that_are_no_behovskartlegging_give_none(text: str) -> None:
    """A text whose first line does not announce a behovskartlegging of a samhandlingspunkt is None."""
    assert assessment_facts(text) is None


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (TITLE.replace("punkt 1)", "punkt x)") + f"\n{FACTS}", "samhandlingspunkt"),
        (TITLE.replace("punkt 1)", "punkt 0)") + f"\n{FACTS}", "samhandlingspunkt"),
        (f"{TITLE}\n" + FACTS.replace("Diagnosedato: 12.10.2026\n", ""), "Diagnosedato"),
        (f"{TITLE}\n" + FACTS.replace("Residiv: nei\n", ""), "Residiv"),
        (f"{TITLE}\n" + FACTS.replace("Kartleggingsdato: 02.11.2026", ""), "Kartleggingsdato"),
        (f"{TITLE}\n" + FACTS.replace("12.10.2026", ""), "Diagnosedato"),
        (f"{TITLE}\n" + FACTS.replace("12.10.2026", "31.02.2026"), "Diagnosedato"),
        (f"{TITLE}\n" + FACTS.replace("12.10.2026", "2026-10-12"), "Diagnosedato"),
        (f"{TITLE}\n" + FACTS.replace("12.10.2026", "12.10.26"), "Diagnosedato"),
        (f"{TITLE}\n" + FACTS.replace("02.11.2026", "02.13.2026"), "Kartleggingsdato"),
        (f"{TITLE}\n" + FACTS.replace("Residiv: nei", "Residiv: kanskje"), "Residiv"),
        (f"{TITLE}\n{FACTS}\nResidiv: ja", "Residiv"),
        (f"{TITLE}\n{FACTS}\nKartleggingsdato: 03.11.2026", "Kartleggingsdato"),
    ],
    ids=[
        "point-not-a-number",
        "point-zero",
        "no-diagnosis-date",
        "no-relapse",
        "no-assessment-date",
        "empty-diagnosis-date",
        "no-such-day",
        "iso-date",
        "two-digit-year",
        "month-13",
        "relapse-neither-ja-nor-nei",
        "relapse-stated-twice-differently",
        "assessment-date-stated-twice-differently",
    ],
)
def test_a_behovskartlegging_with_unreadable_facts_is_refused_naming_the_fact(text: str, names: str) -> None:
    """A behovskartlegging whose facts cannot be read raises, naming the fact and never a value."""
    with pytest.raises(AssessmentTextInvalid) as refused:
        assessment_facts(text)
    assert names in str(refused.value)
    assert "31.02" not in str(refused.value) and "kanskje" not in str(refused.value)
    assert isinstance(refused.value, PathwayError)


def test_facts_become_the_pathway_message_of_the_received_message() -> None:
    """The facts with the receipt's time and MsgId are the PathwayMessage the domain takes."""
    at = datetime(2026, 11, 4, 9, tzinfo=UTC)
    assert PLAIN.message(received_at=at, msg_id="m-1") == PathwayMessage(
        1, date(2026, 10, 12), False, date(2026, 11, 2), at, "m-1"
    )


@given(
    point=st.integers(1, 999),
    diagnosis=st.dates(date(1900, 1, 1), date(9999, 12, 31)),
    assessment=st.dates(date(1900, 1, 1), date(9999, 12, 31)),
    relapse=st.booleans(),
)
def test_any_facts_written_as_the_hospital_writes_them_read_back(
    point: int, diagnosis: date, assessment: date, relapse: bool
) -> None:
    """Whatever point, dates and flag the hospital writes, the same facts are read back."""
    text = (
        f"Pakkeforløp hjem for pasienter med kreft — behovskartlegging (samhandlingspunkt {point})\n\n"
        f"Diagnosedato: {diagnosis.strftime('%d.%m')}.{diagnosis.year:04d}\n"
        f"Residiv: {'ja' if relapse else 'nei'}\n\n"
        f"Kartleggingsdato: {assessment.strftime('%d.%m')}.{assessment.year:04d}\n"
    )
    assert assessment_facts(text) == AssessmentFacts(point, diagnosis, relapse, assessment)
