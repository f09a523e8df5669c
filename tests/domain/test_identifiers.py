"""Person numbers, organisation numbers, HER-ids and kommunenummer are checked by our own rules.

Valid numbers are generated with python-stdnum's check-digit functions, so the checks in
``identifiers`` are compared against an independent implementation.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from stdnum.no import fodselsnummer, orgnr

from edi_gateway.domain.identifiers import (
    InvalidIdentifier,
    PersonIdType,
    birth_date,
    classify_person_id,
    is_valid_her_id,
    is_valid_kommunenummer,
    is_valid_org_number,
    mask_person_id,
)
from tests.conftest import EXAMPLE_REQUESTS, REGISTER_SOURCE, data_files

FNR, DNR, HNR, FHN = PersonIdType.FNR, PersonIdType.DNR, PersonIdType.HNR, PersonIdType.FHN


def with_check_digits(nine: str) -> str | None:
    """Append both check digits (computed by stdnum), or return None when one of them would be 10."""
    k1 = fodselsnummer.calc_check_digit1(nine)
    if len(k1) != 1:
        return None
    k2 = fodselsnummer.calc_check_digit2(nine + k1)
    return nine + k1 + k2 if len(k2) == 1 else None


def individual_numbers(year: int) -> st.SearchStrategy[int]:
    """Individual numbers Skatteetaten assigns to people born in ``year``."""
    if year < 1900:
        return st.integers(500, 749)
    if year < 1940:
        return st.integers(0, 499)
    if year < 2000:
        return st.one_of(st.integers(0, 499), st.integers(900, 999))
    return st.integers(500, 999)


@st.composite
def person_ids(draw: st.DrawFn, *, day_offset: int = 0, month_offset: int = 0) -> tuple[str, date]:
    """A valid person number with the given day/month offsets, and the birth date it encodes."""
    born = draw(st.dates(date(1854, 1, 1), date(2039, 12, 31)))
    individual = draw(individual_numbers(born.year))
    day, month = born.day + day_offset, born.month + month_offset
    number = with_check_digits(f"{day:02d}{month:02d}{born.year % 100:02d}{individual:03d}")
    assume(number is not None)
    assert number is not None
    return number, born


@st.composite
def fh_numbers(draw: st.DrawFn) -> str:
    """A valid FH-nummer: first digit 8 or 9, both check digits."""
    nine = draw(st.sampled_from("89")) + draw(st.text("0123456789", min_size=8, max_size=8))
    number = with_check_digits(nine)
    assume(number is not None)
    assert number is not None
    return number


def any_valid_person_id() -> st.SearchStrategy[str]:
    """Valid numbers of every series (test mode needed for the synthetic ones)."""
    dated = st.one_of(
        person_ids(),
        person_ids(day_offset=40),
        person_ids(month_offset=40),
        person_ids(month_offset=80),
        person_ids(day_offset=40, month_offset=80),
    )
    return st.one_of(dated.map(lambda pair: pair[0]), fh_numbers())


def code_of(value: str, *, test_mode: bool, accept_hnr: bool = False) -> str:
    """The InvalidIdentifier code classify_person_id raises for ``value``."""
    with pytest.raises(InvalidIdentifier) as caught:
        classify_person_id(value, test_mode=test_mode, accept_hnr=accept_hnr)
    return caught.value.code


# -- person numbers: properties -----------------------------------------------------------------------


@given(person_ids())
def test_fodselsnummer_is_accepted_in_both_modes(pair: tuple[str, date]) -> None:
    """A fødselsnummer with valid check digits is an FNR with its birth date, in and out of test mode."""
    number, born = pair
    for test_mode in (False, True):
        assert classify_person_id(number, test_mode=test_mode) is FNR
        assert birth_date(number, test_mode=test_mode) == born


@given(person_ids())
def test_fodselsnummer_agrees_with_stdnum(pair: tuple[str, date]) -> None:
    """For birth dates in the past, python-stdnum agrees that the fødselsnummer is valid."""
    number, born = pair
    assume(born <= date.today())
    assert fodselsnummer.is_valid(number)


@given(person_ids(day_offset=40))
def test_d_nummer_is_accepted_in_both_modes(pair: tuple[str, date]) -> None:
    """Day + 40 is a D-nummer, and the birth date is read without the offset."""
    number, born = pair
    for test_mode in (False, True):
        assert classify_person_id(number, test_mode=test_mode) is DNR
        assert birth_date(number, test_mode=test_mode) == born


@given(person_ids(month_offset=80), st.sampled_from([0, 40]))
def test_tenor_series_only_in_test_mode(pair: tuple[str, date], day_offset: int) -> None:
    """Month + 80 (Tenor) is accepted only in test mode, as FNR (or DNR with day + 40)."""
    number, born = pair
    if day_offset:
        number = with_check_digits(f"{int(number[:2]) + 40:02d}{number[2:9]}") or ""
        assume(number)
    expected = DNR if day_offset else FNR
    assert classify_person_id(number, test_mode=True) is expected
    assert birth_date(number, test_mode=True) == born
    assert code_of(number, test_mode=False) == "person_id.synthetic_not_allowed"
    assert code_of(number, test_mode=False, accept_hnr=True) == "person_id.synthetic_not_allowed"


@given(person_ids(month_offset=40))
def test_month_plus_40_is_hnr_or_synthetic_by_the_callers_choice(pair: tuple[str, date]) -> None:
    """Month + 40 is HNR when the caller accepts H-numbers, else synthetic FNR in test mode, else refused."""
    number, born = pair
    assert classify_person_id(number, test_mode=False, accept_hnr=True) is HNR
    assert classify_person_id(number, test_mode=True, accept_hnr=True) is HNR
    assert classify_person_id(number, test_mode=True) is FNR
    assert code_of(number, test_mode=False) == "person_id.type_not_allowed"
    assert birth_date(number, test_mode=False) == born


@given(person_ids(day_offset=40, month_offset=40))
def test_day_and_month_plus_40_is_synthetic_d_nummer(pair: tuple[str, date]) -> None:
    """Day + 40 with month + 40 cannot be an H-nummer: it is a synthetic D-nummer, test mode only."""
    number, _ = pair
    assert classify_person_id(number, test_mode=True) is DNR
    assert classify_person_id(number, test_mode=True, accept_hnr=True) is DNR
    assert code_of(number, test_mode=False, accept_hnr=True) == "person_id.synthetic_not_allowed"


@given(fh_numbers(), st.booleans())
def test_fh_nummer_has_no_date(number: str, test_mode: bool) -> None:
    """A number starting with 8 or 9 with valid check digits is an FH-nummer and has no birth date."""
    assert classify_person_id(number, test_mode=test_mode) is FHN
    assert birth_date(number, test_mode=test_mode) is None


@given(any_valid_person_id(), st.integers(0, 10), st.integers(1, 9))
def test_any_single_digit_change_breaks_the_checksum(number: str, position: int, delta: int) -> None:
    """Changing any one digit of a valid person number is caught by the check digits."""
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert code_of(changed, test_mode=True, accept_hnr=True) == "person_id.checksum"


@given(st.text("0123456789", min_size=11, max_size=11))
def test_checksum_verdict_matches_stdnum(number: str) -> None:
    """An 11-digit string passes our checksum exactly when both stdnum check digits match."""
    stdnum_ok = with_check_digits(number[:9]) == number
    try:
        classify_person_id(number, test_mode=True, accept_hnr=True)
        ours_ok = True
    except InvalidIdentifier as exc:
        ours_ok = exc.code != "person_id.checksum"
    assert ours_ok == stdnum_ok


@given(st.one_of(any_valid_person_id(), st.text("0123456789", min_size=4, max_size=14)), st.booleans())
def test_errors_never_contain_the_value(value: str, test_mode: bool) -> None:
    """Whatever the input, a refusal has a stable person_id code and a message that does not repeat it."""
    try:
        classify_person_id(value, test_mode=test_mode)
    except InvalidIdentifier as exc:
        assert exc.code.startswith("person_id.")
        assert value not in str(exc)
        assert value not in exc.reason


# -- person numbers: tables ---------------------------------------------------------------------------


def valid_with(six: str, individuals: range) -> str:
    """The first valid person number with date digits ``six`` and an individual number in ``individuals``."""
    return next(n for i in individuals if (n := with_check_digits(f"{six}{i:03d}")) is not None)


@pytest.mark.parametrize(
    ("six", "individuals"),
    [
        ("310250", range(0, 500)),  # 31 February
        ("290201", range(0, 500)),  # 29 February 1901 (no leap year)
        ("290200", range(0, 500)),  # 29 February 1900 (no leap year: a century)
        ("320150", range(0, 500)),  # day 32
        ("720150", range(0, 500)),  # day 72 (a D-nummer tops out at 71)
        ("011350", range(0, 500)),  # month 13
        ("013050", range(0, 500)),  # month 30: neither +40 nor +80
        ("015350", range(0, 500)),  # month 53: +40 but month 13
        ("019350", range(0, 500)),  # month 93: +80 but month 13
        ("010145", range(750, 900)),  # individual 750-899 with year 40-99: no century
        ("010140", range(500, 750)),  # individual 500-749 with year 40-53: no century
    ],
)
def test_impossible_dates_are_refused(six: str, individuals: range) -> None:
    """A number whose date digits (after the offsets) are no real date is refused with person_id.date."""
    assert code_of(valid_with(six, individuals), test_mode=True, accept_hnr=True) == "person_id.date"


@pytest.mark.parametrize(
    ("six", "individuals", "born"),
    [
        ("290200", range(500, 1000), date(2000, 2, 29)),  # 2000 was a leap year
        ("010160", range(900, 1000), date(1960, 1, 1)),  # 900-999 with year 40-99: 1900s
        ("010160", range(500, 750), date(1860, 1, 1)),  # 500-749 with year 54-99: 1800s
        ("010139", range(500, 1000), date(2039, 1, 1)),  # 500-999 with year 00-39: 2000s
        ("010139", range(0, 500), date(1939, 1, 1)),  # 000-499: 1900s
    ],
)
def test_century_from_individual_number(six: str, individuals: range, born: date) -> None:
    """The century is read from the individual number."""
    assert birth_date(valid_with(six, individuals), test_mode=False) == born


def test_register_patients_classify_in_test_mode() -> None:
    """Every synthetic patient in the register data classifies as its id_type in test mode only."""
    patients = json.loads(REGISTER_SOURCE.read_text(encoding="utf-8"))["patients"]
    assert {p["id_type"] for p in patients} == {"FNR", "DNR"}
    for patient in patients:
        assert classify_person_id(patient["id"], test_mode=True) == patient["id_type"]
        assert code_of(patient["id"], test_mode=False) == "person_id.synthetic_not_allowed"


def test_example_requests_have_valid_patient_ids() -> None:
    """The patient ids in the example requests are synthetic fødselsnummer."""
    for path in data_files(EXAMPLE_REQUESTS, "*.json"):
        patient_id = json.loads(path.read_text(encoding="utf-8"))["patient"]["id"]
        assert classify_person_id(patient_id, test_mode=True) is FNR


def test_invalid_identifier_is_a_value_error() -> None:
    """InvalidIdentifier is a ValueError carrying a code and a reason."""
    with pytest.raises(ValueError, match=r"person_id\.format") as caught:
        classify_person_id("x", test_mode=False)
    assert isinstance(caught.value, InvalidIdentifier)
    assert caught.value.reason


# -- masking ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("23015712345", "230157*****"),
        ("47924807322", "479248*****"),
        ("81234567890", "***********"),  # FH-nummer: no date to keep
        ("2301571234", "***********"),
        ("", "***********"),
        ("2301571234x", "***********"),
    ],
)
def test_mask_person_id(value: str, masked: str) -> None:
    """Masking keeps the date digits of a person number and hides everything else."""
    assert mask_person_id(value) == masked


@given(any_valid_person_id())
def test_mask_hides_individual_number_and_check_digits(number: str) -> None:
    """A masked number never shows its last five digits; it keeps the date digits unless an FH-nummer."""
    masked = mask_person_id(number)
    assert len(masked) == 11
    assert masked.endswith("*****")
    assert masked[:6] == ("******" if number[0] in "89" else number[:6])


# -- organisation numbers -----------------------------------------------------------------------------


@st.composite
def org_numbers(draw: st.DrawFn) -> str:
    """A valid organisasjonsnummer (check digit chosen so stdnum accepts it)."""
    eight = draw(st.text("0123456789", min_size=8, max_size=8))
    valid = [eight + d for d in "0123456789" if orgnr.is_valid(eight + d)]
    assume(valid)
    return valid[0]


@given(org_numbers())
def test_valid_org_numbers_are_accepted(number: str) -> None:
    """A 9-digit number with a correct mod-11 check digit is a valid organisasjonsnummer."""
    assert is_valid_org_number(number)


@given(org_numbers(), st.integers(0, 8), st.integers(1, 9))
def test_org_number_single_digit_change_is_refused(number: str, position: int, delta: int) -> None:
    """Changing any one digit of an organisasjonsnummer makes it invalid."""
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert not is_valid_org_number(changed)


@given(st.text("0123456789", min_size=9, max_size=9))
def test_org_number_verdict_matches_stdnum(number: str) -> None:
    """Our organisasjonsnummer check agrees with python-stdnum on every 9-digit string."""
    assert is_valid_org_number(number) == orgnr.is_valid(number)


@pytest.mark.parametrize("value", ["", "99836900", "9983690020", "998 369 002", "99836900a", "998369003"])
def test_malformed_org_numbers(value: str) -> None:
    """Wrong length, separators, letters and a wrong check digit are refused."""
    assert not is_valid_org_number(value)


def test_register_org_numbers_are_valid() -> None:
    """Every organisasjonsnummer in the register data passes the check."""
    registers = json.loads(REGISTER_SOURCE.read_text(encoding="utf-8"))
    parties = [registers["hospital"], *registers["kommuner"], *registers["legekontor"]]
    numbers = [p["org_number"] for p in parties if p.get("org_number")]
    assert numbers
    assert all(is_valid_org_number(n) for n in numbers)


# -- HER-ids and kommunenummer ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (1, True),
        (8100002, True),
        (999_999_999, True),
        (0, False),
        (-8100002, False),
        (1_000_000_000, False),
        (True, False),
        ("8100002", True),
        ("999999999", True),
        ("1000000000", False),
        ("08100002", False),
        ("0", False),
        ("", False),
        (" 8100002", False),
        ("81000a2", False),
        ("-5", False),
    ],
)
def test_her_id_form(value: int | str, valid: bool) -> None:
    """A HER-id is a positive integer of at most 9 digits (no check digit to verify)."""
    assert is_valid_her_id(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("4003", True),
        ("0301", True),
        ("2100", True),  # Svalbard
        ("5601", True),
        ("0101", True),
        ("5701", False),
        ("0001", False),
        ("403", False),
        ("40033", False),
        ("40a3", False),
        ("", False),
        (" 4003", False),
    ],
)
def test_kommunenummer_form(value: str, valid: bool) -> None:
    """A kommunenummer is 4 digits whose first two are a fylkesnummer from 01 to 56."""
    assert is_valid_kommunenummer(value) is valid


def test_register_kommunenummer_are_valid() -> None:
    """Every kommunenummer in the register data passes the form check."""
    registers = json.loads(REGISTER_SOURCE.read_text(encoding="utf-8"))
    numbers = {k["kommunenummer"] for k in registers["kommuner"]} | {
        p["kommunenummer"] for p in registers["patients"]
    }
    assert all(is_valid_kommunenummer(n) for n in numbers)
