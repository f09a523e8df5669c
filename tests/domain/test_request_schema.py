"""The published JSON Schema is the model's own, and integrators' validators agree with the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edi_gateway.domain.request import SCHEMA_ID, json_schema, json_schema_text, parse_request
from edi_gateway.errors import RequestRejected
from edi_gateway.resources import resource_dir
from tests.conftest import EXAMPLE_REQUESTS, data_files

EXAMPLES = data_files(EXAMPLE_REQUESTS, "*.json")
COMMITTED = resource_dir("schemas") / "request-v1.schema.json"
REGENERATE = (
    'python -c "from edi_gateway.domain.request import json_schema_text as t; '
    "print(t(), end='')\" > schemas/request-v1.schema.json"
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """A draft 2020-12 validator for the committed schema file."""
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def example() -> dict[str, Any]:
    return dict(json.loads((EXAMPLE_REQUESTS / "kommune-only.json").read_text(encoding="utf-8")))


def test_committed_schema_matches_the_model() -> None:
    """The committed schema file is exactly what the model generates (regenerate it after model changes)."""
    assert COMMITTED.read_text(encoding="utf-8") == json_schema_text(), f"stale schema; run: {REGENERATE}"


def test_schema_is_valid_draft_2020_12() -> None:
    """The schema is itself a valid draft 2020-12 schema, with our $id and a title."""
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_against_the_committed_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    """Each example request is valid against the published schema."""
    instance = json.loads(path.read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(instance)] == []


@pytest.mark.parametrize(
    ("section", "key"),
    [(None, "priority"), ("patient", "ssn"), ("sender", "email"), ("diagnosis", "stage")],
)
def test_unknown_fields_fail_with_jsonschema(
    section: str | None, key: str, validator: jsonschema.Draft202012Validator
) -> None:
    """An unknown field, at the top or inside a section, fails jsonschema validation too."""
    instance = example()
    (instance if section is None else instance[section])[key] = "x"
    assert not validator.is_valid(instance)


def _change(path: str, value: object) -> dict[str, Any]:
    instance = example()
    *parents, last = path.split(".")
    target: Any = instance
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value
    return instance


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("samhandlingspunkt", 4),
        ("samhandlingspunkt", "1"),
        ("consent", "true"),
        ("assessment.distress_score", 11),
        ("assessment.problems.0.area", "økonomisk"),
        ("assessment.problems.0.item", "   "),
        ("measures.0.responsible", "nav"),
        ("diagnosis.intent", "kurativt"),
        ("diagnosis.icd10", "brystkreft"),
        ("sender.contact.phone", "tlf 35003500"),
        ("sender.unit_her_id", 0),
        ("patient.id", "2391570096"),
        ("patient.kommunenummer", "403"),
    ],
)
def test_jsonschema_and_gateway_both_refuse(
    path: str, value: object, validator: jsonschema.Draft202012Validator
) -> None:
    """What the published schema refuses, the gateway refuses too (codes may be more precise there)."""
    instance = _change(path, value)
    assert not validator.is_valid(instance)
    with pytest.raises(RequestRejected):
        parse_request(
            json.dumps(instance).encode(), content_type="application/json", max_bytes=1 << 20, test_mode=True
        )


def test_documented_example_is_accepted(validator: jsonschema.Draft202012Validator) -> None:
    """The example in docs/request-format.md is valid for the schema and the gateway (in test mode)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "request-format.md").read_text(encoding="utf-8")
    block = doc.split("```json\n", 1)[1].split("```", 1)[0]
    assert validator.is_valid(json.loads(block))
    parse_request(block.encode(), content_type="application/json", max_bytes=1 << 20, test_mode=True)
