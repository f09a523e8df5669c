"""Request intake: every example is accepted as it stands; every fault becomes a stable Problem code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from edi_gateway.domain.identifiers import PersonIdType
from edi_gateway.domain.request import RequestV1, parse_request, request_id_hint
from edi_gateway.errors import Problem, RequestRejected
from tests.conftest import EXAMPLE_REQUESTS, data_files

EXAMPLES = data_files(EXAMPLE_REQUESTS, "*.json")
JSON = "application/json"
MAX = 64 * 1024
BASE_ID = "a13cb337-89ca-4cc9-a88a-1b2d759aeff6"


def example(name: str = "kommune-only") -> dict[str, Any]:
    """A fresh copy of one example request."""
    return dict(json.loads((EXAMPLE_REQUESTS / f"{name}.json").read_text(encoding="utf-8")))


def encode(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def parse(data: object, *, test_mode: bool = True) -> RequestV1:
    return parse_request(encode(data), content_type=JSON, max_bytes=MAX, test_mode=test_mode)


def problems_of(body: bytes, *, content_type: str | None = JSON, test_mode: bool = True) -> list[Problem]:
    """The problems parse_request reports for ``body`` (it must reject it)."""
    with pytest.raises(RequestRejected) as caught:
        parse_request(body, content_type=content_type, max_bytes=MAX, test_mode=test_mode)
    return list(caught.value.problems)


def rejected(
    change: Callable[[dict[str, Any]], object], *, test_mode: bool = True
) -> list[tuple[str, str | None]]:
    """(code, field) of every problem after applying ``change`` to a copy of the example."""
    data = example()
    change(data)
    return [(p.code, p.field) for p in problems_of(encode(data), test_mode=test_mode)]


# -- the examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_is_accepted(path: Path) -> None:
    """Each example request validates as it stands, in test mode, with an FNR patient."""
    body = path.read_bytes()
    request = parse_request(body, content_type=JSON, max_bytes=MAX, test_mode=True)
    raw = json.loads(body)
    assert str(request.request_id) == raw["request_id"]
    assert request.patient.id == raw["patient"]["id"]
    assert request.patient_id_type is PersonIdType.FNR
    assert request.consent is raw["consent"]
    assert len(request.assessment.problems) == len(raw["assessment"]["problems"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_need_test_mode(path: Path) -> None:
    """The examples carry synthetic person numbers, refused outside test mode."""
    problems = problems_of(path.read_bytes(), test_mode=False)
    assert [(p.code, p.field) for p in problems] == [("person_id.synthetic_not_allowed", "patient.id")]


def test_there_are_examples() -> None:
    """The four example requests that fix the format are where the tests expect them."""
    assert [p.stem for p in EXAMPLES] == [
        "fastlege-missing",
        "kommune-and-fastlege",
        "kommune-only",
        "no-consent",
    ]


def test_optional_fields_may_be_left_out() -> None:
    """unit_her_id, middle_name, kommunenummer, problems, measures and the free texts are optional."""
    data = example()
    del data["sender"]["unit_her_id"]
    for key in ("problems", "important_to_patient", "notes"):
        del data["assessment"][key]
    del data["measures"]
    request = parse(data)
    assert request.sender.unit_her_id is None
    assert request.patient.middle_name is None
    assert request.patient.kommunenummer is None
    assert request.assessment.problems == ()
    assert request.measures == ()
    assert request.assessment.notes is None


def test_optional_fields_are_read() -> None:
    """Given optional fields reach the model unchanged."""
    data = example()
    data["patient"]["middle_name"] = "Ola"
    data["patient"]["kommunenummer"] = "4003"
    request = parse(data)
    assert request.patient.middle_name == "Ola"
    assert request.patient.kommunenummer == "4003"


def test_request_is_frozen() -> None:
    """The parsed request cannot be changed, nor its lists."""
    request = parse(example())
    with pytest.raises(ValidationError):
        request.consent = False
    assert isinstance(request.measures, tuple)
    assert isinstance(request.assessment.problems, tuple)


def test_patient_id_type_needs_parse_request() -> None:
    """A model built directly (not by parse_request) has no classification to offer."""
    request = RequestV1.model_validate(example())
    with pytest.raises(RuntimeError):
        _ = request.patient_id_type


# -- transport-level refusals -------------------------------------------------------------------------


def test_too_large() -> None:
    """A body over max_bytes is refused before it is read."""
    body = encode(example())
    with pytest.raises(RequestRejected) as caught:
        parse_request(body, content_type=JSON, max_bytes=len(body) - 1, test_mode=True)
    assert caught.value.codes == ["request.too_large"]
    assert parse_request(body, content_type=JSON, max_bytes=len(body), test_mode=True)


@pytest.mark.parametrize(
    "content_type",
    [None, "", "text/plain", "application/xml", "application/json; charset=iso-8859-1", "application/jsonx"],
)
def test_wrong_content_type(content_type: str | None) -> None:
    """Only application/json in UTF-8 is accepted, and the content type is required."""
    problems = problems_of(encode(example()), content_type=content_type)
    assert [p.code for p in problems] == ["request.content_type"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        'Application/JSON;charset="UTF-8"',
        "application/json; v=1",
    ],
)
def test_content_type_parameters(content_type: str) -> None:
    """Media type matching ignores case, and parameters other than a non-UTF-8 charset are fine."""
    assert parse_request(encode(example()), content_type=content_type, max_bytes=MAX, test_mode=True)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"a": 1,}',
        b"\xff\xfe{}",
        '{"request_id": "æ"}'.encode("latin-1"),
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": "\\ud800"}',
        b"\xef\xbb\xbf{}",  # a byte-order mark is not JSON
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_not_json(body: bytes) -> None:
    """Bytes that are not UTF-8 JSON are refused with request.not_json."""
    body_problems = [p.code for p in problems_of(body)] if len(body) <= MAX else None
    if body_problems is None:  # the deep nesting case is larger than MAX; check it with a bigger limit
        with pytest.raises(RequestRejected) as caught:
            parse_request(body, content_type=JSON, max_bytes=len(body), test_mode=True)
        body_problems = caught.value.codes
    assert body_problems == ["request.not_json"]


@pytest.mark.parametrize("body", [b"[]", b'"request"', b"1", b"null", b"true"])
def test_not_an_object(body: bytes) -> None:
    """JSON that is not an object is refused with request.not_object."""
    assert [p.code for p in problems_of(body)] == ["request.not_object"]


# -- schema refusals ----------------------------------------------------------------------------------


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[last]

    return change


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


@pytest.mark.parametrize(
    "path",
    [
        "request_id",
        "samhandlingspunkt",
        "consent",
        "send_to_fastlege",
        "sender",
        "sender.contact",
        "sender.contact.phone",
        "patient.id",
        "patient.given_name",
        "patient.family_name",
        "diagnosis.icd10",
        "diagnosis.relapse",
        "diagnosis.intent",
        "assessment.date",
        "assessment.distress_score",
        "assessment.problems.1.area",
        "measures.0.responsible",
    ],
)
def test_missing_required_field(path: str) -> None:
    """Leaving out a required field gives schema.missing with its dotted path."""
    assert rejected(_del(path)) == [("schema.missing", path)]


@pytest.mark.parametrize(
    "path",
    ["priority", "patient.ssn", "sender.contact.email", "assessment.problems.0.severity", "measures.1.due"],
)
def test_unknown_field(path: str) -> None:
    """Any field outside request format v1, at any depth, gives schema.unknown_field."""
    assert rejected(_set(path, "x")) == [("schema.unknown_field", path)]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("consent", "true"),
        ("consent", 1),
        ("send_to_fastlege", None),
        ("samhandlingspunkt", "1"),
        ("samhandlingspunkt", 1.0),
        ("samhandlingspunkt", True),
        ("assessment.distress_score", 6.0),
        ("assessment.problems", {"area": "fysisk"}),
        ("assessment.problems.0", "Økonomi"),
        ("sender.unit_her_id", "8100002"),
        ("patient", []),
        ("patient.id", 23915700969),
        ("request_id", 42),
        ("diagnosis.date", 20261012),
    ],
)
def test_wrong_type(path: str, value: object) -> None:
    """A value of the wrong JSON type gives schema.type (no silent coercion)."""
    assert rejected(_set(path, value)) == [("schema.type", path)]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("request_id", "not-a-uuid"),
        ("samhandlingspunkt", 0),
        ("samhandlingspunkt", 4),
        ("assessment.distress_score", -1),
        ("assessment.distress_score", 11),
        ("assessment.problems.1.area", "økonomisk"),
        ("assessment.problems.1.area", "Emosjonell"),
        ("assessment.problems.1.item", ""),
        ("assessment.problems.1.item", "   "),
        ("assessment.problems.1.item", "Bekymring\u0007"),
        ("assessment.problems.1.item", "to\nlinjer"),
        ("assessment.notes", "x" * 4001),
        ("assessment.notes", "nul\u0000"),
        ("assessment.date", "2026-13-01"),
        ("assessment.date", "02.11.2026"),
        ("diagnosis.intent", "kurativt"),
        ("diagnosis.icd10", "brystkreft"),
        ("diagnosis.icd10", "C5"),
        ("measures.0.responsible", "nav"),
        ("sender.contact.phone", "tlf 35003500"),
        ("sender.contact.phone", "12"),
        ("sender.contact.name", "x" * 201),
        ("patient.given_name", ""),
    ],
)
def test_value_not_allowed(path: str, value: object) -> None:
    """A well-typed value outside the allowed set, range, length or pattern gives schema.value."""
    assert rejected(_set(path, value)) == [("schema.value", path)]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sender.contact.phone", "+47 35 00 35 00"),
        ("sender.contact.phone", "35003500"),
        ("diagnosis.icd10", "C50"),
        ("diagnosis.icd10", "C509"),
        ("diagnosis.intent", "palliativ"),
        ("assessment.notes", "Linje 1\nLinje 2\n\tInnrykk"),
        ("assessment.notes", ""),
        ("assessment.problems.1.area", "åndelig"),
        ("assessment.distress_score", 0),
        ("assessment.distress_score", 10),
        ("samhandlingspunkt", 3),
        ("patient.middle_name", None),
        ("request_id", BASE_ID.upper()),
    ],
)
def test_value_allowed(path: str, value: object) -> None:
    """Values at the edges of what the format allows are accepted."""
    data = example()
    _set(path, value)(data)
    assert parse(data)


def test_too_many_problems() -> None:
    """The problem list is bounded."""
    problems = [{"area": "fysisk", "item": "Smerter"}] * 101
    assert rejected(_set("assessment.problems", problems)) == [("schema.value", "assessment.problems")]


def test_every_problem_is_reported_at_once() -> None:
    """Schema problems and identifier problems are reported together, in field order."""

    def change(data: dict[str, Any]) -> None:
        data["consent"] = "yes"
        data["patient"]["id"] = "23915700968"
        data["patient"]["kommunenummer"] = "9903"
        data["assessment"]["problems"][2]["area"] = "annet"
        data["extra"] = 1

    assert sorted(rejected(change)) == sorted(
        [
            ("schema.type", "consent"),
            ("schema.value", "assessment.problems.2.area"),
            ("schema.unknown_field", "extra"),
            ("person_id.checksum", "patient.id"),
            ("patient.kommunenummer.format", "patient.kommunenummer"),
        ]
    )


# -- identifier refusals ------------------------------------------------------------------------------


FH_NUMMER = "81234560077"  # valid check digits
MONTH_PLUS_40 = "01517510005"  # H-nummer or NAV synthetic, valid check digits
REAL_SERIES_FNR = "01017510084"  # 1 January 1975, valid check digits


@pytest.mark.parametrize(
    ("patient_id", "test_mode", "code"),
    [
        ("2391570096", True, "person_id.format"),
        ("23915700968", True, "person_id.checksum"),
        ("31027510000", True, "person_id.checksum"),
        (FH_NUMMER, True, "person_id.type_not_allowed"),
        (MONTH_PLUS_40, False, "person_id.type_not_allowed"),
        ("23915700969", False, "person_id.synthetic_not_allowed"),
    ],
)
def test_person_id_refused(patient_id: str, test_mode: bool, code: str) -> None:
    """Bad person numbers, FH- and H-numbers are refused on patient.id with the identifier's code."""
    assert rejected(_set("patient.id", patient_id), test_mode=test_mode) == [(code, "patient.id")]


@pytest.mark.parametrize(
    ("patient_id", "test_mode", "id_type"),
    [
        (REAL_SERIES_FNR, False, PersonIdType.FNR),
        (REAL_SERIES_FNR, True, PersonIdType.FNR),
        (MONTH_PLUS_40, True, PersonIdType.FNR),  # test mode: NAV's synthetic series
        ("47924807322", True, PersonIdType.DNR),
    ],
)
def test_person_id_accepted(patient_id: str, test_mode: bool, id_type: PersonIdType) -> None:
    """Fødselsnummer and D-nummer are accepted and typed; synthetic series only in test mode."""
    data = example()
    data["patient"]["id"] = patient_id
    assert parse(data, test_mode=test_mode).patient_id_type is id_type


@pytest.mark.parametrize("kommunenummer", ["403", "40033", "9903", "0003", "40a3", ""])
def test_kommunenummer_format(kommunenummer: str) -> None:
    """A kommunenummer that is not 4 digits with a fylke 01-56 is refused."""
    assert rejected(_set("patient.kommunenummer", kommunenummer)) == [
        ("patient.kommunenummer.format", "patient.kommunenummer")
    ]


@pytest.mark.parametrize("her_id", [0, -1, 1_000_000_000])
def test_unit_her_id_format(her_id: int) -> None:
    """A sender unit HER-id that is not a positive number of at most 9 digits is refused."""
    assert rejected(_set("sender.unit_her_id", her_id)) == [
        ("sender.unit_her_id.format", "sender.unit_her_id")
    ]


def test_unit_her_id_may_be_null() -> None:
    """unit_her_id null means the same as leaving it out."""
    data = example()
    data["sender"]["unit_her_id"] = None
    assert parse(data).sender.unit_her_id is None


# -- no personal data in problems ---------------------------------------------------------------------


def test_problems_never_repeat_personal_data() -> None:
    """Reasons and fields name the rule and the place, never the offending value (a person number, a name)."""
    person_id = "23915700968"  # wrong check digit
    data = example()
    data["patient"]["id"] = person_id
    data["patient"]["given_name"] = "Knut\u0007"
    data["patient"][person_id] = "x"  # an unknown field named by a person number
    data["sender"]["contact"]["phone"] = "Knut 23915700968"
    problems = problems_of(encode(data))
    assert len(problems) == 4
    for problem in problems:
        text = json.dumps(problem.as_dict(), ensure_ascii=False)
        assert "23915700968" not in text
        assert "Knut" not in text
        assert problem.reason


# -- robustness ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_reject(body: bytes) -> None:
    """Whatever bytes arrive, parse_request raises RequestRejected (with problems), never anything else."""
    with pytest.raises(RequestRejected) as caught:
        parse_request(body, content_type=JSON, max_bytes=MAX, test_mode=True)
    assert caught.value.problems


@given(json_values)
def test_arbitrary_json_only_ever_rejects(value: object) -> None:
    """Arbitrary JSON is refused: a non-object as request.not_object, an object by the schema checks alone."""
    with pytest.raises(RequestRejected) as caught:
        parse_request(encode(value), content_type=JSON, max_bytes=MAX, test_mode=True)
    codes = [p.code for p in caught.value.problems]
    if isinstance(value, dict):
        assert "schema.missing" in codes  # four keys at most: required fields are always missing
        assert all(code.startswith("schema.") for code in codes)
    else:
        assert codes == ["request.not_object"]


@given(st.sampled_from(["sender", "patient", "diagnosis", "assessment"]), json_values)
def test_mangled_sections_only_ever_reject(section: str, value: object) -> None:
    """Replacing a whole section with arbitrary JSON is refused cleanly, naming that section."""
    data = example()
    data[section] = value
    with pytest.raises(RequestRejected) as caught:
        parse(data)
    assert all((p.field or "").startswith(section) for p in caught.value.problems)


# -- request_id_hint ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (encode(example()), BASE_ID),
        (encode({"request_id": BASE_ID.upper(), "consent": "x"}), BASE_ID),
        (('{"request_id": "' + BASE_ID + '", "consent": tru').encode(), BASE_ID),
        (b'\xff\xfe{"request_id" : "' + BASE_ID.encode() + b'"', BASE_ID),
        (encode({"request_id": "23915700969"}), None),
        (encode({"request_id": 42}), None),
        (encode({"request_id": None}), None),
        (encode([BASE_ID]), None),
        (encode({"nested": {"request_id": BASE_ID}}), None),
        (b"", None),
        (b"[" * 100_000, None),
    ],
)
def test_request_id_hint(body: bytes, hint: str | None) -> None:
    """The hint finds a UUID request_id even in broken bodies, in canonical form, and nothing else."""
    assert request_id_hint(body) == hint


@given(st.binary(max_size=500))
def test_request_id_hint_never_raises(body: bytes) -> None:
    """Any bytes give a hint that is None or a canonical UUID."""
    hint = request_id_hint(body)
    assert hint is None or str(uuid.UUID(hint)) == hint
