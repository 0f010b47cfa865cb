"""Normalising what only the matcher compares: sounds of names and words of addresses.

Names themselves are folded and split by :mod:`core.names`, and postcodes and
dates by :mod:`core.identifiers`, so the broker, the audit log and the matcher
agree; this module adds what only matching needs. Pure functions, no I/O;
nothing here logs.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from doublemetaphone import doublemetaphone


@lru_cache(maxsize=200_000)
def phonetic(name: str) -> tuple[str, str]:
    """Double Metaphone codes of a folded name ('' when there is none)."""
    if not name:
        return "", ""
    primary, secondary = doublemetaphone(name)
    return primary, secondary or primary


def address_tokens(address: str) -> frozenset[str]:
    """Words of an address, minus filler, for a token-overlap comparison."""
    filler = {
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
    return frozenset(t for t in re.split(r"[^a-z0-9]+", fold_keep_digits(address)) if t and t not in filler)


def fold_keep_digits(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
