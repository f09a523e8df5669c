"""Norwegian identifiers: person numbers, organisation numbers, HER-ids and kommunenummer.

Pure functions, no I/O. The checks are implemented here (not delegated to a library) because the
synthetic test series are a policy of ours.

Person numbers (kodeverk 8116) are 11 digits: a six-digit date ``DDMMYY``, a three-digit individual
number, and two mod-11 check digits (k1 with weights 3 7 6 1 8 9 4 5 2, k2 with weights
5 4 3 2 7 6 5 4 3 2 over the first ten digits). A check digit that would be 10 makes the number invalid.

How the first four digits are read:

========================  ===========================  ================  ===========================
first four digits         meaning                      ``test_mode``     without ``test_mode``
========================  ===========================  ================  ===========================
first digit 8 or 9        FH-nummer (no date)          FHN               FHN
day 01-31, month 01-12    fødselsnummer                FNR               FNR
day 41-71, month 01-12    D-nummer (day + 40)          DNR               DNR
day 01-31, month 41-52    H-nummer *or* NAV synthetic  HNR if accepted,  HNR if accepted, else
                          (month + 40)                 else FNR          ``person_id.type_not_allowed``
day 41-71, month 41-52    NAV synthetic D-nummer       DNR               ``synthetic_not_allowed``
month 81-92 (any day)     Tenor synthetic (month + 80) FNR or DNR        ``synthetic_not_allowed``
========================  ===========================  ================  ===========================

The month + 40 overlap is settled by the caller's ``accept_hnr``: a caller that handles H-numbers
(helseforetak-internal numbers) gets HNR; a caller that does not (the request intake, which takes a
fødselsnummer or D-nummer only) gets the synthetic reading in test mode and a refusal otherwise. An
H-nummer never has day + 40, so day + 40 with month + 40 can only be synthetic.

The birth century comes from the individual number as Skatteetaten assigns it (000-499: 1900s;
500-749 with year 54-99: 1800s; 500-999 with year 00-39: 2000s; 900-999 with year 40-99: 1900s);
a combination outside those ranges has no date and is refused. Birth dates in the future are not
refused: this module is pure and does not read the clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)

_ELEVEN_DIGITS = re.compile(r"[0-9]{11}")
_NINE_DIGITS = re.compile(r"[0-9]{9}")
_HER_ID = re.compile(r"[1-9][0-9]{0,8}")
_KOMMUNENUMMER = re.compile(r"[0-9]{4}")

_DAY_OFFSET = 40  # D-nummer
_HNR_MONTH_OFFSET = 40  # H-nummer and NAV's synthetic series
_TENOR_MONTH_OFFSET = 80  # Skatteetaten's Tenor test series
_LAST_FYLKE = 56  # fylkesnummer run from 01; the highest in use stays below this bound
_MAX_HER_ID = 999_999_999


class PersonIdType(StrEnum):
    """Kind of person number, by its kodeverk 8116 code."""

    FNR = "FNR"
    DNR = "DNR"
    HNR = "HNR"
    FHN = "FHN"


class InvalidIdentifier(ValueError):
    """An identifier failed a check.

    The message never contains the identifier itself, so the exception is safe to log.

    Attributes:
        code: stable code, e.g. ``person_id.checksum``.
        reason: plain-language explanation.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A person number read into its parts."""

    id_type: PersonIdType
    birth_date: date | None


def classify_person_id(value: str, *, test_mode: bool, accept_hnr: bool = False) -> PersonIdType:
    """Check a person number and say which kind it is.

    Args:
        value: the 11-digit number, without separators.
        test_mode: accept the synthetic series (month + 40 and month + 80).
        accept_hnr: read month + 40 as an H-nummer (see the module docstring for the overlap with
            NAV's synthetic series).

    Returns:
        FNR, DNR, HNR or FHN.

    Raises:
        InvalidIdentifier: with code ``person_id.format`` (not 11 digits), ``person_id.checksum``,
            ``person_id.date`` (no valid birth date), ``person_id.synthetic_not_allowed`` or
            ``person_id.type_not_allowed`` (month + 40 when H-numbers are not accepted).
    """
    return _decode(value, test_mode=test_mode, accept_hnr=accept_hnr).id_type


def birth_date(value: str, *, test_mode: bool) -> date | None:
    """Return the birth date a person number encodes, or ``None`` for an FH-nummer (which has none).

    Month + 40 numbers are decoded too (as H-numbers outside test mode): the date reads the same way
    whichever series they belong to.

    Raises:
        InvalidIdentifier: as :func:`classify_person_id`.
    """
    return _decode(value, test_mode=test_mode, accept_hnr=True).birth_date


def mask_person_id(value: str) -> str:
    """Mask a person number for operator lists: ``23015712345`` becomes ``230157*****``.

    The date digits are kept so an operator can tell patients apart; the individual number and the
    check digits are hidden. An FH-nummer carries no date and anything that is not 11 digits is not
    understood, so both are masked completely.
    """
    if _ELEVEN_DIGITS.fullmatch(value) is None or value[0] in "89":
        return "*" * 11
    return value[:6] + "*" * 5


def is_valid_org_number(value: str) -> bool:
    """Return whether ``value`` is a valid organisasjonsnummer: 9 digits, mod-11 check digit last."""
    if _NINE_DIGITS.fullmatch(value) is None:
        return False
    check = _mod11_check_digit(value[:8], _ORG_WEIGHTS)
    return check is not None and check == int(value[8])


def is_valid_her_id(value: int | str) -> bool:
    """Return whether ``value`` can be a HER-id: a positive integer of at most 9 digits.

    HER-ids are plain serial numbers from the Adresseregister and carry no check digit, so only the
    form can be checked here; whether the id exists is a register question. Strings must be plain
    decimal digits without a leading zero.
    """
    if isinstance(value, bool):  # bool is an int subclass; True is not a HER-id
        return False
    if isinstance(value, int):
        return 1 <= value <= _MAX_HER_ID
    return _HER_ID.fullmatch(value) is not None


def is_valid_kommunenummer(value: str) -> bool:
    """Return whether ``value`` has the form of a kommunenummer: 4 digits, fylke part 01-56.

    The list of kommuner changes with every reform, so existence is a register question; only the
    form is checked here.
    """
    if _KOMMUNENUMMER.fullmatch(value) is None:
        return False
    return 1 <= int(value[:2]) <= _LAST_FYLKE


def _mod11_check_digit(digits: str, weights: Sequence[int]) -> int | None:
    """Return the mod-11 check digit for ``digits``, or ``None`` when it would be 10 (no valid number)."""
    remainder = sum(w * int(d) for w, d in zip(weights, digits, strict=True)) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


def _has_valid_check_digits(value: str) -> bool:
    k1 = _mod11_check_digit(value[:9], _K1_WEIGHTS)
    if k1 is None or k1 != int(value[9]):
        return False
    k2 = _mod11_check_digit(value[:10], _K2_WEIGHTS)
    return k2 is not None and k2 == int(value[10])


def _decode(value: str, *, test_mode: bool, accept_hnr: bool) -> _Decoded:
    if _ELEVEN_DIGITS.fullmatch(value) is None:
        raise InvalidIdentifier("person_id.format", "A person number must be exactly 11 digits.")
    # The checksum comes first: a typing error is the most likely fault and the most useful answer.
    if not _has_valid_check_digits(value):
        raise InvalidIdentifier("person_id.checksum", "The check digits of the person number do not match.")
    if value[0] in "89":
        return _Decoded(PersonIdType.FHN, None)
    day, month = int(value[:2]), int(value[2:4])
    is_dnr = day > _DAY_OFFSET
    if is_dnr:
        day -= _DAY_OFFSET
    id_type, month = _series(month, is_dnr=is_dnr, test_mode=test_mode, accept_hnr=accept_hnr)
    return _Decoded(id_type, _date_of(day, month, value))


def _series(month: int, *, is_dnr: bool, test_mode: bool, accept_hnr: bool) -> tuple[PersonIdType, int]:
    """Return the id type and the real month for the month digits (see the table in the module docstring)."""
    base_type = PersonIdType.DNR if is_dnr else PersonIdType.FNR
    if month > _TENOR_MONTH_OFFSET:
        _require_test_mode(test_mode)
        return base_type, month - _TENOR_MONTH_OFFSET
    if month > _HNR_MONTH_OFFSET:
        if accept_hnr and not is_dnr:
            return PersonIdType.HNR, month - _HNR_MONTH_OFFSET
        if not test_mode and not is_dnr:
            raise InvalidIdentifier(
                "person_id.type_not_allowed",
                "H-numbers are not accepted here; use a fødselsnummer or D-nummer.",
            )
        _require_test_mode(test_mode)
        return base_type, month - _HNR_MONTH_OFFSET
    return base_type, month


def _require_test_mode(test_mode: bool) -> None:
    if not test_mode:
        raise InvalidIdentifier(
            "person_id.synthetic_not_allowed",
            "Synthetic test person numbers are accepted only when the gateway runs in test mode.",
        )


def _date_of(day: int, month: int, value: str) -> date:
    """Return the birth date, taking the century from the individual number."""
    year, individual = int(value[4:6]), int(value[6:9])
    century = _century(year, individual)
    born = None if century is None else _valid_date(century + year, month, day)
    if born is None:
        raise InvalidIdentifier("person_id.date", "The person number does not contain a valid date.")
    return born


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _century(year: int, individual: int) -> int | None:
    if individual < 500:
        return 1900
    if individual < 750 and year >= 54:
        return 1800
    if year < 40:
        return 2000
    if individual >= 900:
        return 1900
    return None
