"""Graded comparison of two values of one field, each level with a reason a practitioner can read.

A comparison returns a level index (0 = strongest agreement, the last level =
disagreement) or ``NULL`` when either side is missing, which carries no
evidence either way. Levels are what the Fellegi–Sunter weights in
:mod:`node.weights` are learnt for. Reasons describe how values relate
("given name: nickname"), never the values themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz.distance import OSA, Indel, JaroWinkler

from core.addresses import ADDRESS_FILLER, Home, home_of
from core.identifiers import postcode_parts
from core.nicknames import NameVariants
from node.normalise import Address, phonetic

NULL = -1


@dataclass(frozen=True)
class Field:
    """A compared field: its level names (for reasons) in order of decreasing agreement."""

    name: str
    levels: tuple[str, ...]

    @property
    def disagree(self) -> int:
        return len(self.levels) - 1


GIVEN = Field(
    "given name",
    (
        "agrees",
        "nickname or variant",
        "close spelling",
        "sounds alike",
        "similar spelling",
        "initial agrees",
        "differs",
    ),
)
FAMILY = Field(
    "family name",
    (
        "agrees",
        "one part of a double-barrelled name agrees",
        "close spelling",
        "sounds alike",
        "similar spelling",
        "differs",
    ),
)
DOB = Field(
    "date of birth",
    # The levels weigh evidence; the reason given for any but the first is only "differs" (see reason).
    ("agrees", "day and month swapped", "one keying slip", "same month and year", "within a year", "differs"),
)
SEX = Field("sex", ("agrees", "differs"))
POSTCODE = Field(
    "postcode",
    # "One keying slip": a character wrong or two swapped across sectors or districts ("C21BX" for
    # "C12BX"), which a sector or district comparison reads as another place.
    ("agrees", "same sector", "one keying slip", "same district", "same area", "differs"),
)
ADDRESS = Field("address", ("agrees", "partly agrees", "differs"))
NHS = Field("NHS number", ("agrees", "differs"))
FIELDS = (GIVEN, FAMILY, DOB, SEX, POSTCODE, ADDRESS, NHS)


SHORT_NAME = 3
"""Names this short are told apart by one letter: "Ned" and "Nec", "Ted" and "Ned" are different names."""


def _one_slip(a: str, b: str) -> bool:
    """One keying slip (a letter wrong, missing, extra or two swapped), Damerau–Levenshtein (OSA) distance 1."""
    if abs(len(a) - len(b)) > 1:
        return False  # a slip changes the length by at most one
    return OSA.distance(a, b, score_cutoff=1) <= 1


def _spelling_level(a: str, b: str, disagree: int, family: bool = False) -> int:
    """Levels 2-4 shared by given and family names: close spelling, sounds alike, similar; else ``disagree``.

    A slip in a given name of three letters or fewer is only "similar": enough, with the rest agreeing,
    for a ``possible``, never evidence for a ``match`` (Ned is not Ted). A short *family* name with a
    letter dropped or added ("Rya" or "Ryn" for "Ryan") is a close spelling: siblings share a family
    name, so it is no twin's tell, and the given name, date of birth and sex still decide a ``match``.
    """
    short = min(len(a), len(b)) <= SHORT_NAME
    if short and family and abs(len(a) - len(b)) == 1 and min(len(a), len(b)) == SHORT_NAME and _one_slip(a, b):
        return 2
    sim = JaroWinkler.similarity(a, b)
    slip = None  # worked out at most once: most pairs compared in a query or in learning differ
    if not short:
        if sim >= 0.92:
            return 2
        slip = _one_slip(a, b)
        if slip:
            return 2
    if _phonetic_agree(a, b):  # "Lee" and "Li": never enough on its own for a given name's match
        return 3
    if sim >= 0.85:
        return 4
    return 4 if (_one_slip(a, b) if slip is None else slip) else disagree


def _spelling_close(a: str, b: str, family: bool) -> bool:
    """Whether :func:`_spelling_level` would say "close spelling" (2), without working out the levels past it."""
    if min(len(a), len(b)) <= SHORT_NAME:
        return family and abs(len(a) - len(b)) == 1 and min(len(a), len(b)) == SHORT_NAME and _one_slip(a, b)
    return JaroWinkler.similarity(a, b) >= 0.92 or _one_slip(a, b)


def given_close(query: str, name: str, variants: NameVariants) -> bool:
    """``given_level(query, (name,), variants)`` at most 2 (agrees, a variant, a close spelling), answered
    without the sounds-alike and similar levels: a query asks this of every distinct name among its
    candidates, and most are not close (matching's close-name check)."""
    if not query or not name:
        return False
    if query == name or variants.are_variants(query, name):
        return True
    if len(query) == 1 or len(name) == 1:
        return False
    return _spelling_close(query, name, family=False)


def family_close(query: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """``family_level(query, (parts,))`` at most 2 (agrees, one part of a double-barrelled name, a close
    spelling), answered as :func:`given_close` is."""
    if not query or not parts:
        return False
    a, b = "".join(query), "".join(parts)
    if a == b or ((len(query) > 1 or len(parts) > 1) and set(query) & set(parts)):
        return True
    return _spelling_close(a, b, family=True)


class CloseToAny:
    """Is a name close to any of a query's names: ``any(given_close(p, name) for p in given)`` and
    ``any(family_close(p, parts) for p in family)``, asked of every distinct name among a query's candidates.

    The same rules as :func:`given_close` and :func:`family_close`, with what depends on the query alone
    (its names' variants, lengths, parts) worked out once: a pair at a time, those two were most of a
    query's time, mostly in the calls between them rather than in the comparisons.
    """

    def __init__(self, given: Sequence[str], family: Sequence[tuple[str, ...]], variants: NameVariants) -> None:
        given = [g for g in given if g]
        self.variants = variants
        self.exact = frozenset(given)
        self.variant_names = frozenset().union(*(variants.variant_set(g) for g in given))
        self.long_given = tuple(dict.fromkeys(g for g in given if len(g) > SHORT_NAME))
        family = [f for f in family if f]
        self.joined = tuple(dict.fromkeys("".join(f) for f in family))
        self.joined_set = frozenset(self.joined)
        self.several = tuple(frozenset(f) for f in family if len(f) > 1)
        """Double-barrelled searched names: one part agreeing is close."""
        self.singles = frozenset(f[0] for f in family if len(f) == 1)
        """Single searched names: close to a double-barrelled name with that part."""

    def given(self, name: str) -> bool:
        if not name:
            return False
        if name in self.exact or self.variants.normalised(name) in self.variant_names:
            return True
        n = len(name)
        if n <= SHORT_NAME:  # an initial, or a short name's slip, is never close (_spelling_close)
            return False
        similarity, distance = JaroWinkler.similarity, OSA.distance
        for p in self.long_given:
            if similarity(p, name) >= 0.92 or (abs(len(p) - n) <= 1 and distance(p, name, score_cutoff=1) <= 1):
                return True
        return False

    def family(self, parts: tuple[str, ...]) -> bool:
        if not parts or not self.joined:
            return False
        b = "".join(parts)
        if b in self.joined_set or any(not s.isdisjoint(parts) for s in self.several):
            return True
        if len(parts) > 1 and not self.singles.isdisjoint(parts):
            return True
        n = len(b)
        similarity, distance = JaroWinkler.similarity, OSA.distance
        for a in self.joined:
            shortest = min(len(a), n)
            if shortest <= SHORT_NAME:  # a short family name with a letter dropped or added (_spelling_level)
                if shortest == SHORT_NAME and abs(len(a) - n) == 1 and distance(a, b, score_cutoff=1) <= 1:
                    return True
            elif similarity(a, b) >= 0.92 or (abs(len(a) - n) <= 1 and distance(a, b, score_cutoff=1) <= 1):
                return True
        return False


def _phonetic_agree(a: str, b: str) -> bool:
    pa, pb = phonetic(a), phonetic(b)
    return bool(pa[0]) and (pa[0] in pb or (pa[1] != pa[0] and pa[1] in pb))


def given_level(query: str, candidates: Iterable[str], variants: NameVariants) -> int:
    """Best level of a searched given name against a record's given names (given, middle, alternative)."""
    if not query:
        return NULL
    best = NULL
    for name in candidates:
        if not name:
            continue
        level = _one_given(query, name, variants)
        if level == 0:
            return 0
        best = level if best == NULL else min(best, level)
    return best


def _one_given(a: str, b: str, variants: NameVariants) -> int:
    if a == b:
        return 0
    if variants.are_variants(a, b):
        return 1
    if len(a) == 1 or len(b) == 1:
        return 5 if a[0] == b[0] else 6
    return _spelling_level(a, b, GIVEN.disagree)


def family_level(query: tuple[str, ...], record: Iterable[tuple[str, ...]]) -> int:
    """Best level of a searched family name (as parts) against a record's current and previous ones."""
    if not query:
        return NULL
    joined_q = "".join(query)
    best = NULL
    for parts in record:
        if not parts:
            continue
        level = _one_family(joined_q, query, "".join(parts), parts)
        if level == 0:
            return 0
        best = level if best == NULL else min(best, level)
    return best


def _one_family(a: str, a_parts: tuple[str, ...], b: str, b_parts: tuple[str, ...]) -> int:
    if a == b:
        return 0
    if (len(a_parts) > 1 or len(b_parts) > 1) and set(a_parts) & set(b_parts):
        return 1
    return _spelling_level(a, b, FAMILY.disagree, family=True)


def dob_level(a: int, b: int) -> int:
    """Dates as YYYYMMDD integers (0 = unknown)."""
    if not a or not b:
        return NULL
    if a == b:
        return 0
    ya, ma, da = a // 10000, a // 100 % 100, a % 100
    yb, mb, db = b // 10000, b // 100 % 100, b % 100
    if ya == yb and ma == db and da == mb:
        return 1
    if _one_keying_slip(str(a), str(b)):
        return 2
    if ya == yb and ma == mb:
        return 3
    try:
        if abs((dt.date(ya, ma, da) - dt.date(yb, mb, db)).days) <= 366:
            return 4
    except ValueError:
        pass
    return 5


def _one_keying_slip(a: str, b: str) -> bool:
    """Two YYYYMMDD strings one digit apart, or with two adjacent digits transposed (2013 for 2031)."""
    diffs = [k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(diffs) == 1:
        return True
    return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]


def dob_slip(level: int) -> bool:
    """Does a date of birth level agree, or differ by at most one keying slip (the most a ``match`` allows)?"""
    return level in (0, 1, 2)


def sex_level(a: str, b: str) -> int:
    if a not in ("M", "F") or b not in ("M", "F"):
        return NULL
    return 0 if a == b else 1


def postcode_level(a: str, b: str) -> int:
    if not a or not b:
        return NULL
    return postcode_parts_level(split_postcode(a), split_postcode(b))


split_postcode = lru_cache(maxsize=1 << 16)(postcode_parts)
"""``postcode_parts``, remembered: every candidate's postcode is compared, and read again by the home guard."""


def postcode_parts_level(pa: tuple[str, str, str, str], pb: tuple[str, str, str, str]) -> int:
    """``postcode_level`` of two postcodes already split by :func:`core.identifiers.postcode_parts`."""
    if pa[0] and pa[0] == pb[0]:
        return 0
    if pa[1] and pa[1] == pb[1]:
        return 1
    if pa[0] and pb[0] and postcode_slip(pa[0], pb[0]):
        return 2
    for level in (2, 3):
        if pa[level] and pa[level] == pb[level]:
            return level + 1
    return 5


def postcode_slip(a: str, b: str) -> bool:
    """Full postcodes of one length, one character wrong or two adjacent ones swapped, the space ignored:
    "C2 1BX" and "C1 2BX" are one slip apart, though their sectors and districts differ."""
    a, b = a.replace(" ", ""), b.replace(" ", "")
    return len(a) == len(b) and OSA.distance(a, b, score_cutoff=1) <= 1


SAME_ADDRESS_SPELLING = 0.9
"""Indel similarity of two addresses' words run together (house number apart) at which they agree."""


def address_level(a: Address, b: Address, postcode: int = NULL) -> int:
    """Agrees: one home (:func:`one_home`), most words in common, or the same house number and the rest
    alike letter by letter (a typo, a word split or two run together: "sunres t styd" for "sunrest
    stud"); partly: some words in common, or the same house number and the rest much alike. Two flat
    numbers that differ at most partly agree, however alike the rest.

    ``postcode``: the two postcodes' level. One home read with a town or flat on one side only ("12 Oak
    Road" and "12 Oak Road, York") is no agreement when the postcodes are other areas' or differ (a
    Leeds postcode searched): else a search by a house on its street would find a child of that name in
    every town of the authority with such a street, and a stranger there could be a ``match``."""
    if not a.words or not b.words:
        return NULL
    level = _words_level(a, b)
    if not a.house or a.house != b.house:
        return level  # another house, or none: the words say all there is
    if level == 0 and a.plain and b.plain:
        same = a.ordered[0].lstrip("0") == b.ordered[0].lstrip("0")  # '012' is house 12
        return 0 if same else 1  # no flat on either side: only 12b beside 12a differs
    home_a, home_b = home_of(a.text), home_of(b.text)
    if _another_door(home_a.flat, home_b.flat) or _another_door(home_a.number, home_b.number):
        return max(1, level)  # another flat in the house, or 12b beside 12a: another home, however alike
    return 0 if level == 0 or (postcode not in OTHER_PLACE and one_home(home_a, home_b)) else level


OTHER_PLACE = (4, 5)
"""Postcode levels (same area only, differs) that say two addresses one home only by leniency are not."""


def one_home(a: Home, b: Home) -> bool:
    """The same house number as written and the same street words, the town or locality given on one side
    only ("12 Oak Road, Leeds" and "12 Oak Road"), a flat number on one side only ("Flat 2, 12 Oak Road").

    Two towns that differ ("…, Leeds" and "…, York") or another house or street are never one home.
    """
    if not a.number or a.number != b.number or not a.street or a.street != b.street:
        return False
    return a.extra <= b.extra or b.extra <= a.extra


def _another_door(a: str, b: str) -> bool:
    return bool(a) and bool(b) and a != b


def _words_level(a: Address, b: Address) -> int:
    overlap = len(a.words & b.words) / len(a.words | b.words)
    if overlap >= 0.8:
        return 0
    same_house = bool(a.house) and a.house == b.house
    if same_house and _spelt_alike(a.ordered, b.ordered):
        return 0
    if overlap >= 0.4:
        return 1
    return 1 if same_house and _spelt_alike(a.ordered, b.ordered, PARTLY_ALIKE) else 2


PARTLY_ALIKE = 0.7
"""At the same house number, the similarity at which two addresses partly agree though few words agree
whole ("68 buny close lumeah co ttage" and "68 bunya close lumeah cottage")."""


def _spelt_alike(a: tuple[str, ...], b: tuple[str, ...], cutoff: float = SAME_ADDRESS_SPELLING) -> bool:
    """The words after the house number run together, with and without filler ("temperleystreet" is
    one word where the other address has two), alike letter by letter."""
    for keep in (lambda w: True, lambda w: w not in ADDRESS_FILLER):
        x, y = _run_together(a, keep), _run_together(b, keep)
        if x and y and Indel.normalized_similarity(x, y, score_cutoff=cutoff) >= cutoff:
            return True
    return False


def _run_together(words: tuple[str, ...], keep: Callable[[str], bool]) -> str:
    at = next((k for k, w in enumerate(words) if w.isdigit()), -1)  # the house number, compared apart
    return "".join(w for k, w in enumerate(words) if k != at and keep(w))


def nhs_level(a: str, b: str) -> int:
    if not a or not b:
        return NULL
    return 0 if a == b else 1


SIBLING = "given name differs — could be a sibling or twin"
"""The reason of a ``possible`` whose family name, date of birth and home agree but given name does not."""


def reason(field: Field, level: int) -> str:
    """What a practitioner reads; a date of birth only agrees or differs.

    Never how closely a date differs ("same month and year", "within a year"): across a few searches
    those grades would pin down a child's birthday for someone who did not know it.
    """
    if field is DOB and level > 0:
        return "date of birth differs"
    text = field.levels[level]
    return f"{field.name} {text}" if text in ("agrees", "differs") else f"{field.name}: {text}"
