"""The kernel's identifier rules: one postcode grammar, NHS numbers, dates of birth — the same on every side."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.identifiers import (
    EARLIEST_DATE_OF_BIRTH,
    date_readings,
    dob_int,
    nhs_check_digit,
    nhs_number_valid,
    normalise_nhs_number,
    normalise_postcode,
    parse_date,
    parse_date_of_birth,
    postcode_parts,
    postcode_valid,
    read_date_of_birth,
    swapped_reading,
)

TODAY = dt.date(2026, 12, 2)


@pytest.mark.parametrize("written", ["LS6 2AB", "ls62ab", " LS6  2AB ", "LS6-2AB", "ls6.2ab"])
def test_a_postcode_in_any_spacing_case_or_punctuation_is_one_postcode(written):
    # The broker's normaliser and the node's parts used to disagree on "LS6-2AB"; now one grammar decides both.
    assert postcode_valid(written)
    assert normalise_postcode(written) == "LS6 2AB"
    assert postcode_parts(written) == ("LS62AB", "LS62", "LS6", "LS")


@pytest.mark.parametrize(
    ("written", "spaced", "parts"),
    [
        ("M1 1AA", "M1 1AA", ("M11AA", "M11", "M1", "M")),
        ("EC1A 1BB", "EC1A 1BB", ("EC1A1BB", "EC1A1", "EC1A", "EC")),
        ("W1A0AX", "W1A 0AX", ("W1A0AX", "W1A0", "W1A", "W")),
    ],
)
def test_postcode_shapes(written, spaced, parts):
    assert normalise_postcode(written) == spaced
    assert postcode_parts(written) == parts


@pytest.mark.parametrize("text", ["", "not a postcode", "LS6", "12345", "LS6 2A"])
def test_text_that_is_no_postcode_is_invalid_and_has_no_parts(text):
    assert not postcode_valid(text)
    _full, sector, district, area = postcode_parts(text)
    assert (sector, district, area) == ("", "", "")


@given(st.text(max_size=20))
def test_validity_and_parts_never_disagree(text):
    assert postcode_valid(text) == bool(postcode_parts(text)[1])


def test_nhs_numbers():
    assert nhs_number_valid("9434765919")
    assert nhs_number_valid("943 476 5919")
    assert normalise_nhs_number("943 476 5919") == "9434765919"
    assert not nhs_number_valid("9434765918")  # wrong check digit
    assert not nhs_number_valid("943476591")  # nine digits
    assert nhs_check_digit("943476591") == 9


@pytest.mark.parametrize("text", ["²²²²²²²²²²", "٩٤٣٤٧٦٥٩١٩", "９４３４７６５９１９", "943-476-5919x"])
def test_only_ascii_digits_make_an_nhs_number(text):
    # str.isdigit() accepts superscripts and other scripts' digits; int() does not take all of them.
    assert not nhs_number_valid(text)


def test_dates():
    assert parse_date("2014-03-09") == dt.date(2014, 3, 9)
    assert dob_int("2014-03-09") == 20140309
    assert dob_int("") == 0
    for bad, reason in (
        ("2014-02-30", "real calendar date"),
        ("09/03/2014", "YYYY-MM-DD"),
        ("２０１４-03-09", "YYYY-MM-DD"),
    ):
        with pytest.raises(ValueError, match=reason) as caught:
            parse_date(bad)
        assert bad not in str(caught.value)  # never echoes the value


def test_a_date_of_birth_in_the_future_is_refused():
    assert parse_date_of_birth("2026-12-02", TODAY) == TODAY
    with pytest.raises(ValueError, match="in the future"):
        parse_date_of_birth("2026-12-03", TODAY)


@pytest.mark.parametrize("digits", [str(d) * 10 for d in range(10)])
def test_an_nhs_number_of_one_digit_repeated_is_refused(digits):
    # 0000000000 and 1111111111 pass modulus 11, but no such number is ever issued.
    assert not nhs_number_valid(digits)


@pytest.mark.parametrize("value", ["1899-12-31", "1800-01-01", "0001-01-01"])
def test_a_date_of_birth_before_1900_is_refused(value):
    with pytest.raises(ValueError, match="before 1900-01-01") as caught:
        parse_date_of_birth(value, TODAY)
    assert value not in str(caught.value)


def test_the_date_of_birth_window_is_stated_once():
    assert EARLIEST_DATE_OF_BIRTH == dt.date(1900, 1, 1)
    assert parse_date_of_birth("1900-01-01", TODAY) == EARLIEST_DATE_OF_BIRTH


@pytest.mark.parametrize(
    ("fields", "column"),
    [
        ({"date_of_birth": "1800-01-01"}, "date_of_birth"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"nhs_number": "0000000000"}, "nhs_number"),
    ],
)
def test_the_csv_import_applies_the_same_rules(fields, column):
    # One rule on both sides: a record the broker would never let a search ask for is not loaded either.
    from node.records import parse_row
    from tests.conftest import row

    with pytest.raises(ValueError, match=f"^{column}: ") as caught:
        parse_row(row(**fields), today=TODAY)
    assert next(iter(fields.values())) not in str(caught.value)


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("2112-05-03", "2012-05-03"),
        ("2099-01-01", "2019-01-01"),
        ("2026-12-10", "2026-11-10"),
        ("2029-05-03", "2026-05-03"),
    ],
)
def test_a_date_of_birth_in_the_future_is_read_one_digit_away(typed, read):
    assert read_date_of_birth(typed, TODAY) == (dt.date.fromisoformat(read), True)
    assert date_readings(typed, TODAY)[0] == dt.date.fromisoformat(read)


@pytest.mark.parametrize("typed", ["2150-01-01", "9999-12-31", "3012-05-03"])
def test_a_future_date_with_no_plausible_reading_is_refused(typed):
    assert date_readings(typed, TODAY) == ()
    with pytest.raises(ValueError, match="future") as caught:
        read_date_of_birth(typed, TODAY)
    assert typed not in str(caught.value)


def test_a_plausible_date_is_taken_as_typed():
    assert read_date_of_birth("2014-03-09", TODAY) == (dt.date(2014, 3, 9), False)
    assert date_readings("2014-03-09", TODAY) == ()
    with pytest.raises(ValueError):
        read_date_of_birth("1899-12-31", TODAY)  # only the future is read: before 1900 stays refused


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("2006-16-07", "2006-07-16"),
        ("2019-30-11", "2019-11-30"),
        ("2019-29-02", None),  # 2019-02-29 is no date either
        ("2006-16-13", None),  # neither reading is a date
        ("2026-31-12", None),  # 2026-12-31 is after today
        ("1899-13-01", None),  # before 1900
    ],
)
def test_a_month_past_12_is_read_with_day_and_month_the_other_way_round(typed, read):
    """Only when the month cannot be one and the day can, and the swap is a plausible date of birth."""
    assert swapped_reading(typed, TODAY) == (dt.date.fromisoformat(read) if read else None)
    if read:
        assert read_date_of_birth(typed, TODAY) == (dt.date.fromisoformat(read), True)
    else:
        with pytest.raises(ValueError):
            read_date_of_birth(typed, TODAY)


def test_a_real_date_is_never_swapped():
    assert swapped_reading("2006-07-06", TODAY) is None
    assert read_date_of_birth("2006-07-06", TODAY) == (dt.date(2006, 7, 6), False)
