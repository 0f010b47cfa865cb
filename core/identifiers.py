"""Rules for the identifiers that describe a child, written once for broker, nodes and audit.

These functions validate and normalise; they never log or echo the values they
are given, so error messages built on them are safe to show and to log.
"""

from __future__ import annotations

import datetime as dt
import re

# One UK postcode grammar: outward code (area letters, district) and inward code (sector digit, unit).
_POSTCODE = re.compile(r"([A-Z]{1,2})([0-9][A-Z0-9]?)([0-9])([A-Z]{2})")
# A postcode may be written in any spacing, case or punctuation ("ls6 2ab", "LS6-2AB"): only letters
# and digits carry meaning.
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ASCII_DIGITS = re.compile(r"[0-9]{10}")

EARLIEST_DATE_OF_BIRTH = dt.date(1900, 1, 1)
"""The window a date of birth must fall in is [EARLIEST_DATE_OF_BIRTH, today]: earlier is a typo or a probe."""


def _squash_postcode(value: str) -> str:
    return _NOT_ALNUM.sub("", value.upper())


def postcode_valid(value: str) -> bool:
    """True when ``value`` reads as a UK postcode in any spacing, case or punctuation."""
    return _POSTCODE.fullmatch(_squash_postcode(value)) is not None


def normalise_postcode(value: str) -> str:
    """Upper-case and space a UK postcode as 'LS6 2AB'; unrecognised text is returned squashed."""
    squashed = _squash_postcode(value)
    m = _POSTCODE.fullmatch(squashed)
    return f"{m[1]}{m[2]} {m[3]}{m[4]}" if m else squashed


def postcode_parts(postcode: str) -> tuple[str, str, str, str]:
    """(full, sector, district, area) of a UK postcode, unspaced; unparseable parts are ''."""
    squashed = _squash_postcode(postcode)
    m = _POSTCODE.fullmatch(squashed)
    if not m:
        return (squashed, "", "", "") if squashed else ("", "", "", "")
    area, district, sector, unit = m.groups()
    return f"{area}{district}{sector}{unit}", f"{area}{district}{sector}", f"{area}{district}", area


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit for nine digits, or None when no valid digit exists."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def normalise_nhs_number(value: str) -> str:
    """An NHS number as its digits alone: '943 476 5919' -> '9434765919'."""
    return value.replace(" ", "")


def nhs_number_valid(value: str) -> bool:
    """True for ten ASCII digits (spaces allowed), not all one digit, whose modulus-11 check digit is right."""
    digits = normalise_nhs_number(value)
    # ASCII only: str.isdigit() also accepts superscripts and other scripts' digits, which int() may refuse.
    if not _ASCII_DIGITS.fullmatch(digits):
        return False
    # 0000000000 and several other repeated digits pass modulus 11, but none is ever issued.
    if len(set(digits)) == 1:
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def parse_date(value: str) -> dt.date:
    """Parse a strict YYYY-MM-DD date; raise ValueError without echoing the value."""
    if not _DATE.fullmatch(value) or not value.isascii():
        raise ValueError("must be a date in YYYY-MM-DD form")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a real calendar date") from None


def parse_date_of_birth(value: str, today: dt.date) -> dt.date:
    """A plausible date of birth: a real date from 1900-01-01 to ``today``; ValueError says which rule failed."""
    born = parse_date(value)
    if born < EARLIEST_DATE_OF_BIRTH:
        raise ValueError(f"is before {EARLIEST_DATE_OF_BIRTH.isoformat()}")
    if born > today:
        raise ValueError("is in the future")
    return born


def date_readings(value: str, today: dt.date) -> tuple[dt.date, ...]:
    """The plausible dates one keystroke from a date of birth typed into the future, latest first.

    A reading changes one digit, never the first ("2112-05-03" -> 2012-05-03, 2102-... is still
    future): a year starting 9 or 0 is a placeholder or garbage, not a slip ("9999-12-31" has none).
    Only real dates in the window of :func:`parse_date_of_birth` count. () for a date that is not in
    the future, or has no such reading (2150-01-01).
    """
    try:
        typed = parse_date(value)
    except ValueError:
        return ()
    if typed <= today:
        return ()
    digits = value.replace("-", "")
    readings = set()
    for position in range(1, len(digits)):
        for digit in "0123456789":
            if digit == digits[position]:
                continue
            changed = digits[:position] + digit + digits[position + 1 :]
            try:
                reading = dt.date(int(changed[:4]), int(changed[4:6]), int(changed[6:]))
            except ValueError:
                continue
            if EARLIEST_DATE_OF_BIRTH <= reading <= today:
                readings.add(reading)
    return tuple(sorted(readings, reverse=True))


def swapped_reading(value: str, today: dt.date) -> dt.date | None:
    """A YYYY-MM-DD form that is no calendar date because day and month were typed the other way round
    ("2006-16-07": the month is 16), read as the plausible date it then is; else None.

    Only when the month as typed cannot be a month and the day can: then the swap is the one reading,
    and the commonest slip of a date written day first or month first. A form that is a real date
    either way ("2006-07-06") is taken as typed, never swapped here.
    """
    if not _DATE.fullmatch(value) or not value.isascii():
        return None
    year, month, day = int(value[:4]), int(value[5:7]), int(value[8:])
    if month <= 12 or not 1 <= day <= 12:
        return None
    try:
        reading = dt.date(year, day, month)
    except ValueError:
        return None
    return reading if EARLIEST_DATE_OF_BIRTH <= reading <= today else None


def date_form(value: str) -> bool:
    """Is ``value`` written as YYYY-MM-DD in ASCII digits, whether or not it is a real, plausible date?"""
    return bool(_DATE.fullmatch(value)) and value.isascii()


def read_date_of_birth(value: str, today: dt.date) -> tuple[dt.date, bool]:
    """A date of birth to search with, and whether it was read rather than taken as typed.

    Taken as typed when plausible (:func:`parse_date_of_birth`); a date in the future is read as the
    latest of its :func:`date_readings` (2112 typed for 2012 is searched as 2012), and a month that
    cannot be a month with the day and month the other way round as that date
    (:func:`swapped_reading`). Otherwise the ValueError of :func:`parse_date_of_birth`, which never
    echoes the value.
    """
    try:
        return parse_date_of_birth(value, today), False
    except ValueError:
        readings = date_readings(value, today)
        if readings:
            return readings[0], True
        swapped = swapped_reading(value, today)
        if swapped is not None:
            return swapped, True
        if parse_date(value) > today:
            raise ValueError("is in the future, and no date one digit away is a plausible date of birth") from None
        raise


def dob_int(dob: str) -> int:
    """'2014-03-09' -> 20140309; 0 when empty or malformed (already validated upstream)."""
    digits = dob.replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isascii() and digits.isdigit() else 0
