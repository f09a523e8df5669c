"""Pathway models: which samhandlingspunkter a pathway has, who performs each, and when it is due.

A model is data, read from one YAML file in ``pathway_models/`` (``telemark.yaml`` is the default, the
national draft's five points are ``nasjonalt-utkast.yaml``). The file format::

    name: telemark                      # a slug, equal to the file name without .yaml
    description: free text
    points:                             # numbered 1, 2, 3 … in this order
      - number: 2
        title: Behovskartlegging i kommunen …
        performer: kommune              # or sykehus
        window:
          counted_from: diagnosis       # or the number of an EARLIER point
          from_months: 3                # whole months, at least 0
          to_months: 4                  # at least from_months; null: the text sets no end
        note: where the window comes from (optional)

Every key is required except ``note``; unknown keys are refused, so a misspelt key is an error and not a
silently ignored line. Parsing (:func:`parse_model`) and checking (the dataclasses themselves) are pure;
the files are read by ``services.pathway_models``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import yaml

from edi_gateway.errors import PermanentError

DEFAULT_MODEL = "telemark"
"""The model a new pathway follows unless told otherwise: Sykehuset Telemark's three points."""

"""The shipped resource folder that holds one ``<name>.yaml`` per model."""

NAME_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_T = TypeVar("_T")


class PathwayError(PermanentError):
    """Base of the pathway errors: the input (a model file, a message, an operator's move) is wrong."""


class PathwayModelInvalid(PathwayError):
    """A pathway model file or document breaks the format or contradicts itself; the message says where."""


class UnknownPathwayModel(PathwayError):
    """No shipped pathway model has the name asked for."""


class Performer(StrEnum):
    """Who carries out a samhandlingspunkt."""

    SYKEHUS = "sykehus"
    KOMMUNE = "kommune"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """When a point should take place, in whole calendar months after a starting day.

    Attributes:
        from_months: months from the starting day to the first day of the window.
        to_months: months from the starting day to the last day of the window; None when the source
            text sets no end (such a point becomes due but never overdue).
        after_point: None to count from the diagnosis date; else the number of an earlier point, counted
            from the day that point was settled, provisionally from its own window start until then.
    """

    from_months: int
    to_months: int | None
    after_point: int | None = None

    def __post_init__(self) -> None:
        if self.from_months < 0:
            raise PathwayModelInvalid(f"from_months must be 0 or more, not {self.from_months}")
        if self.to_months is not None and self.to_months < self.from_months:
            raise PathwayModelInvalid(
                f"to_months ({self.to_months}) must not be before from_months ({self.from_months})"
            )
        if self.after_point is not None and self.after_point < 1:
            raise PathwayModelInvalid(f"counted_from must name a point 1 or higher, not {self.after_point}")

    def describe(self) -> str:
        """Return the window in words, e.g. ``3–4 months after samhandlingspunkt 3``."""
        start = "the diagnosis" if self.after_point is None else f"samhandlingspunkt {self.after_point}"
        if self.to_months is None:
            return f"from {self.from_months} months after {start}, no end"
        return f"{self.from_months}–{self.to_months} months after {start}"


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One samhandlingspunkt as a model defines it.

    Attributes:
        number: the point's number, 1 for the first.
        title: what the point is, in Norwegian, as the operators' pages show it.
        performer: who carries it out.
        window: when it is due.
        note: where the window comes from, and what was decided where the source text is vague.
    """

    number: int
    title: str
    performer: Performer
    window: WindowSpec
    note: str = ""

    def __post_init__(self) -> None:
        if self.number < 1:
            raise PathwayModelInvalid(f"number must be 1 or higher, not {self.number}")
        if not self.title.strip():
            raise PathwayModelInvalid("title must not be empty")
        if self.window.after_point is not None and self.window.after_point >= self.number:
            raise PathwayModelInvalid(
                f"samhandlingspunkt {self.number} is counted from samhandlingspunkt "
                f"{self.window.after_point}, which is not an earlier point"
            )


@dataclass(frozen=True, slots=True)
class PathwayModel:
    """A pathway model: its points in order.

    Attributes:
        name: a slug naming the model (``telemark``); pathways record it.
        description: what the model is and where it comes from.
        points: the samhandlingspunkter, numbered 1, 2, 3 … in this order.
    """

    name: str
    description: str
    points: tuple[PointSpec, ...]

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise PathwayModelInvalid(
                f"name {self.name!r} must be lower-case letters and digits joined by single hyphens"
            )
        if not self.points:
            raise PathwayModelInvalid("a model needs at least one point")
        numbers = [p.number for p in self.points]
        if numbers != list(range(1, len(numbers) + 1)):
            found = ", ".join(str(n) for n in numbers)
            raise PathwayModelInvalid(f"points must be numbered 1, 2, 3 … in order; found {found}")

    def point(self, number: int) -> PointSpec:
        """Return samhandlingspunkt ``number``.

        Raises:
            KeyError: the model has no such point.
        """
        if not 1 <= number <= len(self.points):
            raise KeyError(f"model {self.name} has no samhandlingspunkt {number}")
        return self.points[number - 1]


# --- Reading a document ------------------------------------------------------------------------

_MODEL_KEYS = frozenset({"name", "description", "points"})
_POINT_KEYS = frozenset({"number", "title", "performer", "window", "note"})
_WINDOW_KEYS = frozenset({"counted_from", "from_months", "to_months"})
_OPTIONAL_KEYS = frozenset({"note"})


def parse_model(text: str, *, source: str = "<text>") -> PathwayModel:
    """Parse and check the YAML text of a pathway model.

    Args:
        text: the YAML document.
        source: what to call the document in error messages (a file name).

    Raises:
        PathwayModelInvalid: the text is not YAML, or the model breaks the format or contradicts itself.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PathwayModelInvalid(f"{source}: not readable YAML: {exc}") from exc
    return model_from_document(document, source=source)


def model_from_document(document: object, *, source: str = "<document>") -> PathwayModel:
    """Build and check a pathway model from an already parsed YAML document.

    Raises:
        PathwayModelInvalid: naming ``source`` and the place in it, e.g. ``points[2].window.to_months``.
    """
    try:
        return _model(document)
    except PathwayModelInvalid as exc:
        raise PathwayModelInvalid(f"{source}: {exc}") from None


def _model(document: object) -> PathwayModel:
    fields = _mapping(document, "", _MODEL_KEYS)
    points = fields["points"]
    if not isinstance(points, list):
        raise PathwayModelInvalid("points: must be a list of points")
    specs = tuple(_point(item, f"points[{i}]") for i, item in enumerate(points))
    return _checked(
        "",
        lambda: PathwayModel(_text(fields, "name", ""), _text(fields, "description", ""), specs),
    )


def _point(item: object, where: str) -> PointSpec:
    fields = _mapping(item, where, _POINT_KEYS)
    number = _whole(fields, "number", where)
    window = _window(fields["window"], f"{where}.window")
    performer = _text(fields, "performer", where)
    if performer not in set(Performer):
        choices = ", ".join(Performer)
        raise PathwayModelInvalid(f"{where}.performer: {performer!r} is not one of {choices}")
    title, note = _text(fields, "title", where), _text(fields, "note", where) if "note" in fields else ""
    return _checked(where, lambda: PointSpec(number, title, Performer(performer), window, note))


def _window(item: object, where: str) -> WindowSpec:
    fields = _mapping(item, where, _WINDOW_KEYS)
    after_point = None if fields["counted_from"] == "diagnosis" else _counted_from(fields, where)
    from_months = _whole(fields, "from_months", where)
    to_months = None if fields["to_months"] is None else _whole(fields, "to_months", where)
    return _checked(where, lambda: WindowSpec(from_months, to_months, after_point))


def _counted_from(fields: Mapping[str, object], where: str) -> int:
    try:
        return _whole(fields, "counted_from", where)
    except PathwayModelInvalid:
        start = fields["counted_from"]
        raise PathwayModelInvalid(
            f"{where}.counted_from: must be 'diagnosis' or the number of an earlier point, not {start!r}"
        ) from None


def _mapping(item: object, where: str, keys: frozenset[str]) -> Mapping[str, object]:
    label = where or "the document"
    if not isinstance(item, dict):
        raise PathwayModelInvalid(f"{label}: must be a mapping of {', '.join(sorted(keys))}")
    unknown = sorted(str(k) for k in item if k not in keys)
    if unknown:
        raise PathwayModelInvalid(
            f"{label}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(keys))}"
        )
    missing = sorted(keys - _OPTIONAL_KEYS - item.keys())
    if missing:
        raise PathwayModelInvalid(f"{label}: missing key(s) {', '.join(missing)}")
    return item


def _whole(fields: Mapping[str, object], key: str, where: str) -> int:
    value = fields[key]
    # bool is an int in Python; "yes" in YAML must not pass for a month count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise PathwayModelInvalid(f"{_at(where, key)}: must be a whole number, not {value!r}")
    return value


def _text(fields: Mapping[str, object], key: str, where: str) -> str:
    value = fields[key]
    if not isinstance(value, str):
        raise PathwayModelInvalid(f"{_at(where, key)}: must be text, not {value!r}")
    return value.strip()


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _checked(where: str, build: Callable[[], _T]) -> _T:
    try:
        return build()
    except PathwayModelInvalid as exc:
        raise PathwayModelInvalid(f"{where}: {exc}" if where else str(exc)) from None
