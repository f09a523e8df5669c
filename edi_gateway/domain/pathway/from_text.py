"""The facts a received behovskartlegging tells the pathway, read from the text the hospital writes.

The hospital's text (``domain.assessment_text``) starts with a title line and states the facts on
lines of their own::

    Pakkeforløp hjem for pasienter med kreft — behovskartlegging (samhandlingspunkt 1)
    ...
    Diagnosedato: 12.10.2026
    Residiv: nei
    ...
    Kartleggingsdato: 02.11.2026

Rules, and why:

* The text is a behovskartlegging when its first non-blank line holds "behovskartlegging
  (samhandlingspunkt"; anything else (a kommune's own note, a free dialogue) is not one, and
  :func:`assessment_facts` returns None for it.
* A fact is read only from a line that starts with its key (``Diagnosedato:`` …, any case, spaces
  around the colon allowed). The renderer indents every line of free text, so what a nurse typed
  ("Residiv: ja?" in the notes) is never taken for a fact.
* Dates are Norwegian ``dd.mm.yyyy`` (one-digit day and month accepted); ``Residiv`` is ``ja`` or ``nei``.
* A behovskartlegging whose facts cannot be read (one missing, a date that does not exist, a fact
  stated twice with different values) raises :class:`AssessmentTextInvalid`, naming the fact, never
  its value: guessing a diagnosis date would put wrong dates on a patient's pathway.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from edi_gateway.domain.pathway.aggregate import PathwayMessage
from edi_gateway.domain.pathway.model import PathwayError

DIAGNOSIS_KEY: Final = "diagnosedato"
RELAPSE_KEY: Final = "residiv"
ASSESSMENT_KEY: Final = "kartleggingsdato"

_MARKER = re.compile(r"behovskartlegging\s*\(\s*samhandlingspunkt\b", re.IGNORECASE)
_TITLE = re.compile(r"behovskartlegging\s*\(\s*samhandlingspunkt\s+(\d{1,3})\s*\)", re.IGNORECASE)
_FACT = re.compile(rf"({DIAGNOSIS_KEY}|{RELAPSE_KEY}|{ASSESSMENT_KEY})[ \t]*:[ \t]*(.*)", re.IGNORECASE)
_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_YES_NO: Final = {"ja": True, "nei": False}


class AssessmentTextInvalid(PathwayError):
    """The text is a behovskartlegging, but a fact the pathway needs cannot be read from it.

    The message names the fact (``Diagnosedato`` …), never the value found.
    """


@dataclass(frozen=True, slots=True)
class AssessmentFacts:
    """What a behovskartlegging's text states (no personal data).

    Attributes:
        samhandlingspunkt: the point the message documents.
        diagnosis_date: the diagnosis date stated.
        relapse: whether it states a relapse (residiv).
        assessment_date: the day the behovskartlegging took place.
    """

    samhandlingspunkt: int
    diagnosis_date: date
    relapse: bool
    assessment_date: date

    def message(self, *, received_at: datetime, msg_id: str) -> PathwayMessage:
        """Return the :class:`PathwayMessage` of the received message these facts were read from.

        Args:
            received_at: when the message was received, timezone-aware.
            msg_id: its MsgId.
        """
        return PathwayMessage(
            samhandlingspunkt=self.samhandlingspunkt,
            diagnosis_date=self.diagnosis_date,
            relapse=self.relapse,
            assessment_date=self.assessment_date,
            received_at=received_at,
            msg_id=msg_id,
        )


def assessment_facts(text: str) -> AssessmentFacts | None:
    """Read the facts of a behovskartlegging from its ``TekstNotatInnhold`` text.

    Args:
        text: the note's text as received (any line endings).

    Returns:
        The facts, or None when the text is not a behovskartlegging (see the module docstring).

    Raises:
        AssessmentTextInvalid: it is one, but the point, a date or the relapse flag cannot be read.
    """
    lines = text.lstrip("\ufeff").splitlines()
    title = next((line for line in lines if line.strip()), "")
    if not _MARKER.search(title):
        return None
    facts = _facts(lines)
    return AssessmentFacts(
        samhandlingspunkt=_point(title),
        diagnosis_date=_date(facts, DIAGNOSIS_KEY),
        relapse=_relapse(facts),
        assessment_date=_date(facts, ASSESSMENT_KEY),
    )


def _point(title: str) -> int:
    found = _TITLE.search(title)
    number = int(found.group(1)) if found else 0
    if number < 1:
        raise AssessmentTextInvalid("the title names no samhandlingspunkt (a number from 1) to read")
    return number


def _facts(lines: Iterable[str]) -> dict[str, str]:
    """The value of each fact line (key at the start of the line), a key stated twice the same way."""
    found: dict[str, str] = {}
    for line in lines:
        matched = _FACT.fullmatch(line.rstrip())
        if matched is None:
            continue
        key, value = matched.group(1).lower(), matched.group(2).strip()
        if found.setdefault(key, value) != value:
            raise AssessmentTextInvalid(f"{key.capitalize()} is stated twice with different values")
    return found


def _value(facts: dict[str, str], key: str) -> str:
    value = facts.get(key, "")
    if not value:
        raise AssessmentTextInvalid(f"the text states no {key.capitalize()}")
    return value


def _date(facts: dict[str, str], key: str) -> date:
    matched = _DATE.fullmatch(_value(facts, key))
    if matched is None:
        raise AssessmentTextInvalid(f"{key.capitalize()} is not a date written dd.mm.yyyy")
    day, month, year = (int(part) for part in matched.groups())
    try:
        return date(year, month, day)
    except ValueError:
        raise AssessmentTextInvalid(f"{key.capitalize()} is not a day of the calendar") from None


def _relapse(facts: dict[str, str]) -> bool:
    value = _value(facts, RELAPSE_KEY).lower()
    if value not in _YES_NO:
        raise AssessmentTextInvalid(f"{RELAPSE_KEY.capitalize()} must be ja or nei")
    return _YES_NO[value]
