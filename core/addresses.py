"""What in an address says where a child lives: its house number and the word naming its street.

An address is read as a home (:func:`read_home`): the house number is the one just before the street's
name, never a flat's ("Flat 2, 12 Oak Road" and "2/12 Oak Road" are number 12, flat 2), and the words
after the street's "Road" or a comma are where it is (a town, a locality), which one side may leave out.

Written once for both sides. A node keys and compares homes by these (``node.matching``'s home keys,
``node.comparisons``), and a search without a date of birth may rest on the home only when its address
gives both (``core.subject.home_given``): filler alone ("Flat 1", "Apartment 2", "1 Road") is no home,
since it partly agrees with every flat 1 and every number 1 on a road. Pure functions; nothing here logs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

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


FLAT_WORDS = frozenset({"flat", "apartment", "apt", "unit", "suite"})
"""Words that say the number after them is a flat's, not the house's ('Flat 2, 12 Oak Road')."""

STREET_TYPES = ADDRESS_FILLER - {"flat", "the", "house", "apartment", "apt"} | {
    "place",
    "pl",
    "crescent",
    "cres",
    "terrace",
    "tce",
    "grove",
    "gardens",
    "gdns",
    "circuit",
    "cct",
    "parade",
    "pde",
    "boulevard",
    "blvd",
    "highway",
    "hwy",
    "mews",
    "square",
    "sq",
}
"""Words that end a street's name ('Oak *Road*, Leeds'): what follows is the town or locality."""


class Home(NamedTuple):
    """An address read as a home: the house on its street, the flat in it, and where the street is."""

    house: str
    """The house number: the number just before the street's name ('Flat 2, 12a Oak Road' -> '12'), '' when none."""
    number: str
    """The house number as written ('12a', '12-14'): two homes are one only when these agree."""
    flat: str
    """The flat or unit number ('Flat 2', 'Unit B', '2/12'), '' when none: it may agree, need not be given."""
    street: frozenset[str]
    """The words naming the street, after the house number up to its 'Road' or a comma, minus filler."""
    extra: frozenset[str]
    """Every other word (town, locality, a house's name), minus filler and the flat: one side may lack them."""
    word: str
    """The first word naming the street (:func:`street_word`), '' when none."""


_PIECE = re.compile(r"([^a-z0-9]*)([a-z0-9]+)")
_NUMBER = re.compile(r"\d+")
_NO_STREET = ADDRESS_FILLER | FLAT_WORDS


def _house_word(word: str) -> bool:
    """A house or flat number as written: '12', '12a' (a string test: no regular expression per word)."""
    return word.isdigit() or (word[-1].isalpha() and word[:-1].isdigit())


def _is_street(word: str) -> bool:
    return len(word) > 1 and word not in _NO_STREET and not _house_word(word)


def _words(address: str) -> tuple[list[str], list[str]]:
    """The words of ``address`` and, for each, the mark just before it (',', '/', '-' or ' ')."""
    words: list[str] = []
    marks: list[str] = []
    for gap, word in _PIECE.findall(fold_keep_digits(address)):
        words.append(word)
        marks.append(" " if gap in ("", " ") else _mark(gap))
    return words, marks


def _mark(gap: str) -> str:
    return next((m for m in ",/-" if m in gap), " ")


def _flats(words: list[str], marks: list[str]) -> set[int]:
    """Where a flat's number (and the word saying so) stands: 'flat 2', 'unit b', the 2 of '2/12'."""
    flats: set[int] = set()
    if FLAT_WORDS.isdisjoint(words) and "/" not in marks and sum(w[0].isdigit() for w in words) < 2:
        return flats  # most addresses
    for i, word in enumerate(words):
        if i and words[i - 1] in FLAT_WORDS and marks[i] != "," and (len(word) == 1 or _house_word(word)):
            flats |= {i - 1, i}  # not 'Ground Floor Flat, 12 Oak Road': there 12 is the house's
        elif i + 1 < len(words) and _house_word(word) and words[i + 1][0].isdigit() and _flat_first(words, marks, i):
            flats.add(i)
    return flats


def _flat_first(words: list[str], marks: list[str], i: int) -> bool:
    """The number at ``i`` is a flat's, the house's next: '2/12 Oak Road', and '2, 12 Oak Road' or '2 12 Oak
    Road' (two numbers, then the street: another flat than '3, 12 Oak Road', as 'Flat 2' is), never a range."""
    if marks[i + 1] == "/":
        return True
    return marks[i + 1] != "-" and _house_word(words[i + 1]) and i + 2 < len(words) and _is_street(words[i + 2])


def _house_before(words: list[str], flats: set[int], at: int) -> int:
    """The house number just before the street word at ``at`` (over 'the' or a single letter), -1 when none."""
    k = at - 1
    while k >= 0 and k not in flats and (words[k] in ADDRESS_FILLER or len(words[k]) == 1) and not words[k].isdigit():
        k -= 1
    return k if k >= 0 and k not in flats and _house_word(words[k]) else -1


def read_home(address: str) -> Home:
    """``address`` read as a home (:class:`Home`): pure, the same on both sides."""
    words, marks = _words(address)
    flats = _flats(words, marks)
    first_street = next((i for i, w in enumerate(words) if i not in flats and _is_street(w)), -1)
    at = _house_before(words, flats, first_street) if first_street >= 0 else -1
    if at < 0:  # no number just before the street: the first that is no flat's ('Mill Cottage, 5 Oak Road')
        at = next((i for i, w in enumerate(words) if i not in flats and _house_word(w)), -1)
    flat = " ".join(words[i] for i in sorted(flats) if words[i] not in FLAT_WORDS)
    if at < 0:
        word = words[first_street] if first_street >= 0 else ""
        return Home("", "", flat, frozenset(), _kept(words, flats, 0, len(words)), word)
    first = at
    if marks[at] == "-" and at and at - 1 not in flats and words[at - 1].isdigit() and words[at].isdigit():
        if _below(words[at - 1], words[at]):
            first = at - 1  # a range, '12-14 Oak Road': the first number is the house's
    end = _street_end(words, marks, flats, at)
    house = _NUMBER.match(words[first])
    street = _kept(words, flats, at + 1, end)
    extra = _kept(words, flats, 0, first) | _kept(words, flats, end, len(words))
    after = next((w for i, w in enumerate(words) if i > at and i not in flats and _is_street(w)), "")
    word = after or (words[first_street] if first_street >= 0 else "")
    return Home(
        house.group(0).lstrip("0") if house else "",
        "-".join(w.lstrip("0") or w for w in words[first : at + 1]),
        flat,
        street,
        extra,
        word,
    )


def _below(a: str, b: str) -> bool:
    """Digits ``a`` a smaller number than ``b``, compared as text: ``int`` refuses more than 4300 digits."""
    a, b = a.lstrip("0"), b.lstrip("0")
    return (len(a), a) < (len(b), b)


def _street_end(words: list[str], marks: list[str], flats: set[int], at: int) -> int:
    """Where the street named after the house number at ``at`` ends: after its 'Road', or at a comma or flat."""
    end = at + 1
    named = False
    while end < len(words) and (end == at + 1 or marks[end] != ",") and end not in flats:
        word = words[end]
        end += 1
        if word in STREET_TYPES and (named or word not in ADDRESS_FILLER):
            break
        named = named or _is_street(word)
    return end


def _kept(words: list[str], flats: set[int], start: int, end: int) -> frozenset[str]:
    if not flats:
        return frozenset(words[start:end]) - ADDRESS_FILLER
    return frozenset(words[i] for i in range(start, end) if i not in flats and words[i] not in ADDRESS_FILLER)


@lru_cache(maxsize=1 << 15)
def home_of(address: str) -> Home:
    """:func:`read_home`, remembered: a query's address is read for its keys and again to compare it."""
    return read_home(address)


def street_word(address: str) -> str:
    """The word that names an address's street ('Flat 2, 12a Oak Road' -> 'oak'), '' when none.

    With the house number, a home that keys neither a name nor the postcode: filler, flat and house
    numbers ('12', '12a') and single letters (a compass point, 'n 30th st') are skipped.
    """
    return _house_street(address)[1]


def house_number(address: str) -> str:
    """The house number ('Flat 2, 12a Oak Road' -> '12'), '' when it has none: a blocking key's part."""
    return _house_street(address)[0]


@lru_cache(maxsize=1 << 12)  # a record's address is asked for both at build, a query's at every node
def _house_street(address: str) -> tuple[str, str]:
    return house_and_street(address, _WORD.findall(fold_keep_digits(address)))


_WORD = re.compile(r"[a-z0-9]+")


def plain(address: str, words: Sequence[str]) -> bool:
    """A house number first, then the street's name, and no flat, range or '/': read from two words."""
    return (
        len(words) > 1
        and _house_word(words[0])
        and _is_street(words[1])
        and "/" not in address
        and "-" not in address
        and FLAT_WORDS.isdisjoint(words)
    )


def house_and_street(address: str, words: Sequence[str]) -> tuple[str, str]:
    """:func:`house_number` and :func:`street_word` of ``address``, whose folded ``words`` the caller has.

    The commonest address ('12 Oak Road, Leeds': a number, then the street, no flat, range or '/') is
    read from its first two words; any other is read whole (:func:`read_home`). A node reads every
    record's address at build and every candidate's at a query, so the short way is most of the cost.
    """
    if plain(address, words):
        number = _NUMBER.match(words[0])
        return (number.group(0).lstrip("0") if number else ""), words[1]
    home = home_of(address)
    return home.house, home.word
