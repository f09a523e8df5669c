"""The assessment text holds everything the kommune nurse acts on, and nothing that names the patient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.assessment_text import WIDTH, render_assessment
from edi_gateway.domain.request import RequestV1, parse_request
from tests.conftest import EXAMPLE_REQUESTS, data_files

EXAMPLES = data_files(EXAMPLE_REQUESTS, "*.json")
RESPONSIBLE = {"sykehus": "Sykehus", "kommune": "Kommune", "fastlege": "Fastlege", "pasient": "Pasient"}


def example(name: str = "kommune-only") -> dict[str, Any]:
    return dict(json.loads((EXAMPLE_REQUESTS / f"{name}.json").read_text(encoding="utf-8")))


def request_from(data: dict[str, Any]) -> RequestV1:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return parse_request(body, content_type="application/json", max_bytes=1 << 20, test_mode=True)


def rich_request() -> RequestV1:
    """The example with a middle name, every problem area and every responsible party."""
    data = example()
    data["patient"]["middle_name"] = "Ola"
    data["diagnosis"]["relapse"] = True
    data["diagnosis"]["intent"] = "palliativ"
    data["assessment"]["problems"] = [
        {"area": "fysisk", "item": "Smerter"},
        {"area": "åndelig", "item": "Meningstap"},
        {"area": "familie", "item": "Omsorg for barn"},
        {"area": "praktisk", "item": "Transport"},
        {"area": "fysisk", "item": "Kvalme"},
        {"area": "emosjonell", "item": "Angst"},
    ]
    data["measures"] = [
        {"description": "Smertelindring vurderes", "responsible": "sykehus"},
        {"description": "Hjemmesykepleie to ganger i uken", "responsible": "kommune"},
        {"description": "Oppfølging av kvalme", "responsible": "fastlege"},
        {"description": "Føre smertedagbok", "responsible": "pasient"},
    ]
    return request_from(data)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_everything_the_nurse_needs_is_there(path: Path) -> None:
    """Problems, score, measures with responsible party, diagnosis and the contact's phone all appear."""
    data = json.loads(path.read_text(encoding="utf-8"))
    text = render_assessment(request_from(data))
    assert f"samhandlingspunkt {data['samhandlingspunkt']}" in text
    assert f"{data['assessment']['distress_score']}/10" in text
    assert data["diagnosis"]["icd10"] in text
    assert data["diagnosis"]["text"] in text
    for problem in data["assessment"]["problems"]:
        assert f"- {problem['item']}" in text
    for measure in data["measures"]:
        assert f"{measure['description']} (ansvar: {RESPONSIBLE[measure['responsible']]})" in text
    contact = data["sender"]["contact"]
    assert contact["phone"] in text
    assert contact["name"] in text
    assert contact["role"] in text
    assert data["assessment"]["important_to_patient"] in text
    assert data["assessment"]["notes"] in text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_patient_is_not_named(path: Path) -> None:
    """Neither the person number nor any of the patient's names appears in the text."""
    data = json.loads(path.read_text(encoding="utf-8"))
    text = render_assessment(request_from(data), kommune_name="Skien kommune")
    patient = data["patient"]
    for value in (patient["id"], patient["id"][:6], patient["given_name"], patient["family_name"]):
        assert value not in text


def test_middle_name_is_not_in_the_text() -> None:
    """A middle name stays out too."""
    assert "Ola" not in render_assessment(rich_request())


def test_sections_and_values() -> None:
    """The full text for the rich request, section by section."""
    text = render_assessment(rich_request(), kommune_name="Skien kommune")
    assert text == (
        "Pakkeforløp hjem for pasienter med kreft — behovskartlegging (samhandlingspunkt 1)\n"
        "Bostedskommune: Skien kommune\n"
        "\n"
        "Diagnose: C50.9 Brystkreft\n"
        "Diagnosedato: 12.10.2026\n"
        "Residiv: ja\n"
        "Intensjon: palliativ\n"
        "\n"
        "Kartleggingsdato: 02.11.2026\n"
        "Distresstermometer: score 6/10\n"
        "\n"
        "Problemområder:\n"
        "  Praktisk:\n"
        "    - Transport\n"
        "  Familie:\n"
        "    - Omsorg for barn\n"
        "  Emosjonell:\n"
        "    - Angst\n"
        "  Åndelig:\n"
        "    - Meningstap\n"
        "  Fysisk:\n"
        "    - Smerter\n"
        "    - Kvalme\n"
        "\n"
        "Hva er viktig for pasienten:\n"
        "  Å kunne fortsette i jobb og ta vare på barna.\n"
        "\n"
        "Notater:\n"
        "  Ønsker kontakt med kreftkoordinator i kommunen. Pårørende involvert.\n"
        "\n"
        "Tiltak:\n"
        "  - Smertelindring vurderes (ansvar: Sykehus)\n"
        "  - Hjemmesykepleie to ganger i uken (ansvar: Kommune)\n"
        "  - Oppfølging av kvalme (ansvar: Fastlege)\n"
        "  - Føre smertedagbok (ansvar: Pasient)\n"
        "\n"
        "Kontakt på sykehuset:\n"
        "  Nina Kreftsykepleier, Forløpskoordinator kreft\n"
        "  Telefon: +4735003500\n"
    )


def test_empty_sections_say_so() -> None:
    """Without problems or measures the text says none were registered, and absent free texts are left out."""
    data = example()
    data["assessment"]["problems"] = []
    data["measures"] = []
    del data["assessment"]["important_to_patient"]
    data["assessment"]["notes"] = "   "
    text = render_assessment(request_from(data))
    assert "Problemområder: ingen registrert" in text
    assert "Tiltak: ingen registrert" in text
    assert "Hva er viktig for pasienten" not in text
    assert "Notater" not in text
    assert "Bostedskommune" not in text


def test_rendering_is_deterministic() -> None:
    """The same request renders to the same text every time."""
    request = rich_request()
    assert render_assessment(request) == render_assessment(request)


def test_notes_keep_their_paragraphs() -> None:
    """Line breaks in the notes are kept; each line is indented under its heading."""
    data = example()
    data["assessment"]["notes"] = "Første linje.\n\nAndre avsnitt."
    text = render_assessment(request_from(data))
    assert "Notater:\n  Første linje.\n\n  Andre avsnitt.\n" in text


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzæøå", min_size=1, max_size=30)
long_text = st.lists(words, min_size=1, max_size=120).map(" ".join)


@given(long_text, long_text, st.lists(long_text, min_size=1, max_size=5))
def test_lines_stay_short_and_nothing_is_lost(notes: str, item: str, measures: list[str]) -> None:
    """Long texts are wrapped under 100 characters per line, and every word survives the wrapping."""
    data = example()
    data["assessment"]["notes"] = notes
    data["assessment"]["problems"] = [{"area": "fysisk", "item": item[:500]}]
    data["measures"] = [{"description": m[:1000], "responsible": "kommune"} for m in measures]
    text = render_assessment(request_from(data))
    assert all(len(line) <= WIDTH for line in text.splitlines())
    flattened = " ".join(text.split())
    for source in (notes, item[:500], *(m[:1000] for m in measures)):
        assert " ".join(source.split()) in flattened
