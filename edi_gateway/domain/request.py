"""Request format v1 (EPR → gateway, DESIGN §4): the pydantic model, the intake check and the JSON Schema.

The field names are part of the external contract (fixed by the examples EPR vendors were given).
:func:`parse_request` is the single way in: it checks size, content type, UTF-8, JSON, the schema and
then the identifiers, and turns every finding into a :class:`~edi_gateway.errors.Problem` with a stable
code. Nothing a sender wrote is ever copied into a reason: the body may hold person numbers.

Schema validation runs in pydantic's strict mode, so the model accepts exactly what the published JSON
Schema describes (no ``"1"`` for ``1``, no ``1`` for ``true``).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from typing import Annotated, Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from edi_gateway.domain.identifiers import (
    InvalidIdentifier,
    PersonIdType,
    classify_person_id,
    is_valid_her_id,
    is_valid_kommunenummer,
)
from edi_gateway.errors import Problem, RequestRejected

SCHEMA_ID = "urn:edi-gateway:schema:request-v1"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Text ends up in XML 1.0, which cannot carry most control characters (nor U+FFFE/U+FFFF); a line
# must also show something, so a blank name or item is refused.
_NO_CONTROL = r"\x00-\x1f\x7f\uFFFE\uFFFF"
_LINE_PATTERN = rf"^[^{_NO_CONTROL}]*[^{_NO_CONTROL}\x20][^{_NO_CONTROL}]*$"
_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\uFFFE\uFFFF]*$"  # tab and line breaks allowed
_PHONE_PATTERN = r"^\+?[0-9][0-9 ]{3,18}[0-9]$"
_ICD10_PATTERN = r"^[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?$"


def _line(max_length: int) -> StringConstraints:
    """A one-line, non-blank text field of at most ``max_length`` characters."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=_LINE_PATTERN)


Name = Annotated[str, _line(100)]
Area = Literal["praktisk", "familie", "emosjonell", "åndelig", "fysisk"]
Responsible = Literal["sykehus", "kommune", "fastlege", "pasient"]
Intent = Literal["kurativ", "palliativ"]
Text = Annotated[str, StringConstraints(max_length=4000, pattern=_TEXT_PATTERN)]


class _Frozen(BaseModel):
    """Base of every part of the request: immutable, and unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestContact(_Frozen):
    """The responsible nurse at the hospital (``RollerRelatertNotat`` in the message)."""

    name: Annotated[str, _line(200)] = Field(description="Full name.")
    role: Annotated[str, _line(100)] = Field(description="Role, e.g. Forløpskoordinator kreft.")
    phone: Annotated[str, StringConstraints(pattern=_PHONE_PATTERN)] = Field(
        description="Phone number: digits and spaces, optionally starting with + (e.g. +47 35 00 35 00)."
    )


class RequestSender(_Frozen):
    """Who at the hospital sends the request."""

    unit_her_id: int | None = Field(
        default=None,
        description="HER-id of the sending unit; absent means the configured default unit.",
        json_schema_extra={"minimum": 1, "maximum": 999_999_999},
    )
    contact: RequestContact


class RequestPatient(_Frozen):
    """The patient. Personal data: never logged."""

    id: str = Field(
        description="Fødselsnummer or D-nummer, 11 digits, with valid check digits.",
        json_schema_extra={"pattern": "^[0-9]{11}$"},
    )
    given_name: Name
    family_name: Name
    middle_name: Name | None = None
    kommunenummer: str | None = Field(
        default=None,
        description="Bostedskommune; absent means it is taken from the population register.",
        json_schema_extra={"pattern": "^[0-9]{4}$"},
    )


class Diagnosis(_Frozen):
    """The cancer diagnosis the pakkeforløp follows."""

    icd10: str = Field(pattern=_ICD10_PATTERN, description="ICD-10 code, e.g. C50.9.")
    text: Annotated[str, _line(500)] = Field(description="The diagnosis in words.")
    date: date
    relapse: bool = Field(description="Residiv (relapse).")
    intent: Intent = Field(description="Intensjon: kurativ or palliativ.")


class AssessmentProblem(_Frozen):
    """One problem the patient marked on the distress thermometer's problem list."""

    area: Area
    item: Annotated[str, _line(500)]


class Assessment(_Frozen):
    """The behovskartlegging (needs assessment) with the NCCN distress thermometer."""

    date: date
    distress_score: int = Field(ge=0, le=10, description="Distress thermometer score, 0-10.")
    problems: tuple[AssessmentProblem, ...] = Field(default=(), max_length=100)
    important_to_patient: Text | None = Field(default=None, description="Hva er viktig for pasienten.")
    notes: Text | None = None


class Measure(_Frozen):
    """An agreed tiltak and who is responsible for it."""

    description: Annotated[str, _line(1000)]
    responsible: Responsible


class RequestV1(_Frozen):
    """A request v1 from a hospital EPR: one behovskartlegging to send to the kommune (and fastlege).

    Build it with :func:`parse_request`; that also classifies the person number
    (:attr:`patient_id_type`).
    """

    request_id: uuid.UUID = Field(description="Idempotency key: the same request_id is processed once.")
    samhandlingspunkt: int = Field(
        ge=1, le=3, json_schema_extra={"enum": [1, 2, 3]}, description="Samhandlingspunkt 1, 2 or 3."
    )
    consent: bool = Field(description="The patient's consent; false means the request is only recorded.")
    send_to_fastlege: bool = Field(description="Also send the message to the patient's fastlege.")
    sender: RequestSender
    patient: RequestPatient
    diagnosis: Diagnosis
    assessment: Assessment
    measures: tuple[Measure, ...] = Field(default=(), max_length=100)

    _patient_id_type: PersonIdType | None = PrivateAttr(default=None)

    @property
    def patient_id_type(self) -> PersonIdType:
        """Kind of ``patient.id`` (FNR or DNR), as classified by :func:`parse_request`.

        Raises:
            RuntimeError: when the model was not built by :func:`parse_request` (a programming error).
        """
        if self._patient_id_type is None:
            raise RuntimeError("patient_id_type is known only for a request built by parse_request")
        return self._patient_id_type


def json_schema() -> dict[str, Any]:
    """Return the published JSON Schema (draft 2020-12) of request v1, generated from the model."""
    generated = RequestV1.model_json_schema(mode="validation")
    for replaced in ("title", "description"):  # the model's own wording is written for Python readers
        generated.pop(replaced, None)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "edi_gateway request v1",
        "description": "A behovskartlegging from a hospital EPR, to be sent as Dialogmelding to the "
        "patient's kommune (and fastlege). Person numbers, kommunenummer and HER-ids are checked "
        "further by the gateway (check digits, fylke range).",
        **generated,
    }


def json_schema_text() -> str:
    """Return :func:`json_schema` as the text of ``schemas/request-v1.schema.json`` (2-space indent)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


# -- intake ------------------------------------------------------------------------------------------

_ACCEPTED_PERSON_ID_TYPES = frozenset({PersonIdType.FNR, PersonIdType.DNR})


def parse_request(body: bytes, *, content_type: str | None, max_bytes: int, test_mode: bool) -> RequestV1:
    """Validate a request body and return the request.

    Args:
        body: the AMQP message body.
        content_type: the AMQP ``content_type``; must be ``application/json`` (parameters allowed,
            a charset other than UTF-8 is not). A missing content type is refused.
        max_bytes: the largest body accepted.
        test_mode: accept synthetic person numbers.

    Returns:
        The validated request, with :attr:`RequestV1.patient_id_type` set.

    Raises:
        RequestRejected: with every problem found. Codes: ``request.too_large``,
            ``request.content_type``, ``request.not_json``, ``request.not_object``, ``schema.missing``,
            ``schema.unknown_field``, ``schema.type``, ``schema.value``, ``person_id.*``,
            ``patient.kommunenummer.format``, ``sender.unit_her_id.format``.
    """
    if len(body) > max_bytes:
        _reject("request.too_large", f"The request is larger than the limit of {max_bytes} bytes.")
    _check_content_type(content_type)
    text, data = _load_json_object(body)
    schema_problems: list[Problem] = []
    request: RequestV1 | None = None
    try:
        request = RequestV1.model_validate_json(text, strict=True)
    except ValidationError as exc:
        schema_problems = [_problem_from_error(error) for error in exc.errors(include_input=False)]
    flagged = {p.field for p in schema_problems}
    id_type, identifier_problems = _check_identifiers(data, flagged, test_mode=test_mode)
    problems = schema_problems + identifier_problems
    if problems or request is None:
        raise RequestRejected(problems)
    request._patient_id_type = id_type
    return request


def request_id_hint(body: bytes) -> str | None:
    """Best-effort: find the ``request_id`` of a body that may be invalid, so a rejection can name it.

    Returns the id in canonical UUID form, or ``None`` when the body holds no usable UUID there.
    Never raises.
    """
    try:
        return _request_id_hint(body)
    except Exception:  # a hint is optional; a hostile body must not break the rejection it serves
        return None


_HINT_JSON_LIMIT = 4 * 1024 * 1024  # above this, do not parse JSON just for a hint
_HINT_SCAN_LIMIT = 64 * 1024
_HINT_PATTERN = re.compile(r'"request_id"\s*:\s*"([^"\\]{1,100})"')


def _request_id_hint(body: bytes) -> str | None:
    candidate: object = None
    parsed = False
    if len(body) <= _HINT_JSON_LIMIT:
        try:
            data = json.loads(body.decode("utf-8"))
            candidate = data.get("request_id") if isinstance(data, dict) else None
            parsed = True
        except (ValueError, RecursionError):
            parsed = False
    if not parsed:  # broken JSON: look for the field in the text itself
        match = _HINT_PATTERN.search(body[:_HINT_SCAN_LIMIT].decode("utf-8", errors="replace"))
        candidate = match.group(1) if match else None
    if not isinstance(candidate, str) or len(candidate) > 100:
        return None
    try:
        return str(uuid.UUID(candidate))
    except ValueError:
        return None


def _reject(code: str, reason: str, field: str | None = None) -> NoReturn:
    raise RequestRejected([Problem(code, reason, field)])


def _check_content_type(content_type: str | None) -> None:
    if content_type is None:
        _reject("request.content_type", "The message has no content type; send application/json.")
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media_type != "application/json":
        _reject("request.content_type", "The content type must be application/json.")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            _reject("request.content_type", "Requests must be encoded in UTF-8 (charset=utf-8).")


def _load_json_object(body: bytes) -> tuple[str, dict[str, Any]]:
    """Decode and parse the body; return the text (for pydantic) and the object (for the id checks)."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_refuse_constant)
        # Lone surrogates (\ud800) parse in Python but cannot be encoded, nor put in XML.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        _reject("request.not_json", "The request is not valid JSON in UTF-8.")
    if not isinstance(data, dict):
        _reject("request.not_object", "The request must be a JSON object.")
    return text, data


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError("NaN and Infinity are not JSON")


def _check_identifiers(
    data: dict[str, Any], flagged: set[str | None], *, test_mode: bool
) -> tuple[PersonIdType | None, list[Problem]]:
    """Check what the schema cannot (check digits, ranges) in the fields the schema found well-typed.

    Runs on the raw object even when other fields failed, so the sender hears of every problem at once.
    """
    patient = _object_at(data, "patient")
    id_type, problems = None, []
    patient_id = patient.get("id")
    if isinstance(patient_id, str) and "patient.id" not in flagged:
        try:
            id_type = _classify(patient_id, test_mode=test_mode)
        except InvalidIdentifier as exc:
            problems.append(Problem(exc.code, exc.reason, "patient.id"))
    kommunenummer = patient.get("kommunenummer")
    if isinstance(kommunenummer, str) and not is_valid_kommunenummer(kommunenummer):
        problems.append(_KOMMUNENUMMER_PROBLEM)
    unit_her_id = _object_at(data, "sender").get("unit_her_id")
    if type(unit_her_id) is int and not is_valid_her_id(unit_her_id):  # bool is no HER-id: schema's job
        problems.append(_UNIT_HER_ID_PROBLEM)
    return id_type, problems


_KOMMUNENUMMER_PROBLEM = Problem(
    "patient.kommunenummer.format",
    "A kommunenummer is 4 digits, starting with a fylkesnummer from 01 to 56.",
    "patient.kommunenummer",
)
_UNIT_HER_ID_PROBLEM = Problem(
    "sender.unit_her_id.format", "A HER-id is a positive number of at most 9 digits.", "sender.unit_her_id"
)


def _object_at(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _classify(patient_id: str, *, test_mode: bool) -> PersonIdType:
    id_type = classify_person_id(patient_id, test_mode=test_mode)
    if id_type not in _ACCEPTED_PERSON_ID_TYPES:
        raise InvalidIdentifier(
            "person_id.type_not_allowed", "patient.id must be a fødselsnummer or D-nummer."
        )
    return id_type


# -- pydantic errors → problems ----------------------------------------------------------------------

_LONG_DIGITS = re.compile(r"[0-9]{6,}")

_EXPECTED_TYPE = {
    "int_type": "a whole number",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "tuple_type": "an array",
    "list_type": "an array",
    "uuid_type": "a UUID string",
    "date_type": "a date string (YYYY-MM-DD)",
}

_PATTERN_HINTS = {
    "phone": "Must be a phone number: digits and spaces, optionally starting with + (e.g. +47 35 00 35 00).",
    "icd10": "Must be an ICD-10 code such as C50.9.",
}


def _problem_from_error(error: ErrorDetails) -> Problem:
    field = _field_path(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return Problem("schema.missing", "This field is required.", field)
    if kind == "extra_forbidden":
        return Problem("schema.unknown_field", "This field is not part of request format v1.", field)
    if kind == "json_invalid":  # the two JSON parsers disagreed; the body is not JSON we accept
        return Problem("request.not_json", "The request is not valid JSON in UTF-8.", None)
    if kind.endswith("_type"):
        expected = _EXPECTED_TYPE.get(kind, "another JSON type")
        return Problem("schema.type", f"Wrong type: expected {expected}.", field)
    return Problem("schema.value", _value_reason(error, field), field)


def _value_reason(error: ErrorDetails, field: str | None) -> str:
    """Plain-language reason for a value error; built from our own constraints, never from the input."""
    kind = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "literal_error":
        return f"Must be one of: {ctx.get('expected', 'the listed values')}."
    if kind == "greater_than_equal":
        return f"Must be at least {ctx.get('ge')}."
    if kind == "less_than_equal":
        return f"Must be at most {ctx.get('le')}."
    if kind == "string_too_short":
        return "Must not be empty."
    if kind == "string_too_long":
        return f"Must be at most {ctx.get('max_length')} characters."
    if kind == "too_long":
        return f"Must have at most {ctx.get('max_length')} entries."
    if kind == "uuid_parsing":
        return "Must be a UUID."
    if kind.startswith("date"):
        return "Must be a date in the form YYYY-MM-DD."
    if kind == "string_pattern_mismatch":
        last = (field or "").rsplit(".", 1)[-1]
        return _PATTERN_HINTS.get(last, "Must be text without control characters, and not blank.")
    return "This value is not allowed here."


def _field_path(loc: tuple[int | str, ...]) -> str | None:
    """Dotted JSON path; digit runs in key names are masked, since an unknown key could be a person number."""
    if not loc:
        return None
    return ".".join(_LONG_DIGITS.sub(lambda m: "*" * len(m.group()), str(part))[:64] for part in loc)
