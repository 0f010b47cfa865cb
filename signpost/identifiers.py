"""Rules for the identifiers that describe a child, shared by broker and nodes.

These functions validate and normalise; they never log or echo the values they
are given, so error messages built on them are safe to show and to log.
"""

from __future__ import annotations

import datetime as dt
import re

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit for nine digits, or None when no valid digit exists."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(first_nine))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_number_valid(value: str) -> bool:
    """True for a 10-digit NHS number whose check digit is right (spaces allowed)."""
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isdigit():
        return False
    return nhs_check_digit(digits[:9]) == int(digits[9])


def normalise_nhs_number(value: str) -> str:
    return value.replace(" ", "")


def parse_date(value: str) -> dt.date:
    """Parse a strict YYYY-MM-DD date; raise ValueError without echoing the value."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date in YYYY-MM-DD form")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a real calendar date") from None


def normalise_postcode(value: str) -> str:
    """Upper-case and space a UK postcode as 'LS6 2AB'; unrecognised text is returned squashed."""
    squashed = re.sub(r"\s+", "", value).upper()
    m = _POSTCODE.match(squashed)
    return f"{m.group(1)} {m.group(2)}" if m else squashed


def postcode_valid(value: str) -> bool:
    return bool(_POSTCODE.match(re.sub(r"\s+", "", value).upper()))
