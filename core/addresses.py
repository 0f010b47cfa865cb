"""What in an address says where a child lives: its house number and the word naming its street.

Written once for both sides. A node keys and compares homes by these (``node.matching``'s home keys,
``node.comparisons``), and a search without a date of birth may rest on the home only when its address
gives both (``core.subject.home_given``): filler alone ("Flat 1", "Apartment 2", "1 Road") is no home,
since it partly agrees with every flat 1 and every number 1 on a road. Pure functions; nothing here logs.
"""

from __future__ import annotations

import re
import unicodedata

ADDRESS_FILLER = frozenset(
    {
        "flat",
        "the",
        "road",
        "rd",
        "street",
        "st",
        "avenue",
        "ave",
        "lane",
        "ln",
        "close",
        "cl",
        "way",
        "drive",
        "dr",
        "court",
        "ct",
        "house",
        "apartment",
        "apt",
    }
)
"""Words that name no particular street or home: left out of address comparisons and never a street word."""


def fold_keep_digits(text: str) -> str:
    """``text`` case-folded with its accents dropped, digits kept (an address's words as the matcher reads them)."""
    if text.isascii():  # most addresses: nothing to decompose (a Python loop over every character otherwise)
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_WORD = re.compile(r"[a-z0-9]+")
_HOUSE_WORD = re.compile(r"\d+[a-z]?")


def street_word(address: str) -> str:
    """The first word of an address that names its street ('Flat 2, 12a Oak Road' -> 'oak'), '' when none.

    With the house number, a home that keys neither a name nor the postcode: filler, house and flat
    numbers ('12', '12a') and single letters (a compass point, 'n 30th st') are skipped.
    """
    word: str
    for word in _WORD.findall(fold_keep_digits(address)):
        if len(word) > 1 and word not in ADDRESS_FILLER and not _HOUSE_WORD.fullmatch(word):
            return word
    return ""


_NUMBER = re.compile(r"\d+")
"""Compiled once: ``re.search`` with a pattern string looks it up in re's cache at every call (once a
record in a build)."""


def house_number(address: str) -> str:
    """The first number in an address ('12a Oak Road' -> '12'), '' when it has none: a blocking key's part."""
    found = _NUMBER.search(address)
    return found.group(0).lstrip("0") if found else ""
