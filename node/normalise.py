"""Normalising what only the matcher compares: sounds of names and words of addresses.

Names themselves are folded and split by :mod:`core.names`, postcodes and
dates by :mod:`core.identifiers`, and an address's house number and street word
by :mod:`core.addresses`, so the broker, the audit log and the matcher agree;
this module adds what only matching needs. Pure functions, no I/O;
nothing here logs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from doublemetaphone import doublemetaphone

from core.addresses import ADDRESS_FILLER, fold_keep_digits, house_and_street, plain
from core.names import PLACEHOLDERS, TITLES, is_placeholder, tokens


@lru_cache(maxsize=200_000)
def phonetic(name: str) -> tuple[str, str]:
    """Double Metaphone codes of a folded name ('' when there is none)."""
    if not name:
        return "", ""
    primary, secondary = doublemetaphone(name)
    return primary, secondary or primary


class Address(NamedTuple):
    """An address as the matcher compares it (:func:`node.comparisons.address_level`)."""

    words: frozenset[str]
    """Its words, minus filler, for a word-overlap comparison."""
    house: str
    """Its first number ('' when none)."""
    ordered: tuple[str, ...]
    """All its words in order, filler too: spelt out only for two addresses at one house number (see
    :func:`node.comparisons.address_level`)."""
    plain: bool
    """Read from its first two words (:func:`core.addresses.plain`): no flat, range or '/'."""
    text: str
    """The address as given: read as a home (:func:`core.addresses.home_of`) only when two share a house
    number, so that most candidates of a query cost no more than splitting their words."""


def address_tokens(address: str) -> frozenset[str]:
    """Words of an address, minus filler, for a token-overlap comparison."""
    return address_key(address).words


# One cache for both readings: a candidate's address is read to score it and again by the home guard, and
# learning's blocked pairs repeat homes a few at a time. Each entry is memory a serving node keeps.
@lru_cache(maxsize=1 << 15)
def address_key(address: str) -> Address:
    """``address`` read for :func:`node.comparisons.address_level`, its words split once."""
    words = [t for t in re.split(r"[^a-z0-9]+", fold_keep_digits(address)) if t]
    house, _ = house_and_street(address, words)
    kept = frozenset(w for w in words if w not in ADDRESS_FILLER)
    return Address(kept, house, tuple(words), plain(address, words), address)


@lru_cache(maxsize=200_000)  # a node's records repeat a few thousand given names
def given_names(given_name: str, middle_names: str = "") -> tuple[str, tuple[str, ...]]:
    """A given name as the matcher reads it: (first name, other forms to try), '' when it names nobody.

    - leading placeholders and titles name nobody: "Ms Ann" is Ann; "Baby", "Girl A" and "Ms J" are
      nobody, and an initial left after one ("A") is not compared with a searched first name;
    - a given name written in parts is also tried joined: "Mary-Jane" and "ja xson" are also
      "maryjane" and "jaxson", so they meet "Maryjane" and "Jaxson";
    - the first middle name is another form to try, unless it is only an initial of a nameless record.
    """
    parts = list(tokens(given_name))
    if is_placeholder(given_name):
        parts = []
    dropped = False
    while parts and (parts[0] in PLACEHOLDERS or parts[0] in TITLES):
        parts.pop(0)
        dropped = True
    if dropped and all(len(p) == 1 for p in parts):
        parts = []
    first = parts[0] if parts else ""
    others = ["".join(parts)] if len(parts) > 1 else []
    middles = [m for m in tokens(middle_names)[:1] if first or len(m) > 1]
    return first, tuple(dict.fromkeys(o for o in (*others, *middles) if o and o != first))
