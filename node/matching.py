"""Deciding whether a record describes the child being searched for.

The node's service depends only on the :class:`Matcher` protocol. This module
provides :class:`SimpleMatcher`: exact and basic fuzzy agreement on names and
date of birth, NHS number as strong evidence, candidates taken from blocking
indexes so that a query never scans every record. The full probabilistic
engine (weights learnt from each node's data) is a separate piece of work and
will replace it behind the same protocol.

A matcher returns reasons a practitioner can read ("family name agrees"); it
never puts the compared values themselves into a reason.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from rapidfuzz.distance import JaroWinkler

from node.records import Record

MATCH_THRESHOLD = 0.85
POSSIBLE_THRESHOLD = 0.6
PLACEHOLDER_NAMES = frozenset({"baby", "babyboy", "babygirl", "unknown", "infant", "twin1", "twin2", "newborn"})


@dataclass(frozen=True)
class Query:
    """The searched-for child, as the broker passed it on (already validated)."""

    given_name: str = ""
    family_name: str = ""
    date_of_birth: str = ""
    middle_names: str = ""
    other_names: tuple[str, ...] = ()
    sex: str = ""
    postcode: str = ""
    address: str = ""
    nhs_number: str = ""


@dataclass(frozen=True)
class MatchResult:
    record: Record
    band: str
    score: float
    reasons: tuple[str, ...]


class Matcher(Protocol):
    def match(self, query: Query) -> list[MatchResult]: ...

    @property
    def size(self) -> int: ...


def normalise_name(value: str) -> str:
    """Case-fold, strip accents and everything but letters: 'O'Brien-Smith' -> 'obriensmith'."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(c for c in decomposed if c.isalpha() and not unicodedata.combining(c))


def _name(value: str) -> str:
    name = normalise_name(value)
    return "" if name in PLACEHOLDER_NAMES else name


def _swapped(dob: str) -> str:
    y, m, d = dob.split("-")
    return f"{y}-{d}-{m}" if d <= "12" and d != m else ""


def _similarity(a: str, b: str) -> float:
    return JaroWinkler.similarity(a, b) if a and b else 0.0


def _dob_evidence(query: str, record: str) -> tuple[float, str]:
    if not query:
        return 0.0, ""
    if query == record:
        return 1.0, "date of birth agrees"
    if _swapped(query) == record:
        return 0.7, "date of birth: day and month swapped"
    if query[:7] == record[:7]:
        return 0.3, "date of birth: same month and year"
    return 0.0, "date of birth differs"


def _name_evidence(label: str, query: str, candidates: Iterable[str]) -> tuple[float, str]:
    best = max((_similarity(query, c) for c in candidates), default=0.0)
    if not query:
        return 0.0, ""
    if best == 1.0:
        return 1.0, f"{label} agrees"
    if best >= 0.9:
        return 0.8, f"{label}: close spelling"
    if best >= 0.8:
        return 0.5, f"{label}: similar spelling"
    return 0.0, f"{label} differs"


class SimpleMatcher:
    """An in-memory index of one authority's records with rule-based scoring."""

    def __init__(self, records: Iterable[Record]) -> None:
        self._records: list[Record] = []
        self._by_key: dict[str, list[int]] = defaultdict(list)
        for record in records:
            self._add(record)

    @property
    def size(self) -> int:
        return len(self._records)

    def _add(self, record: Record) -> None:
        index = len(self._records)
        self._records.append(record)
        for key in self._keys_of(record):
            self._by_key[key].append(index)

    @staticmethod
    def _keys_of(record: Record) -> set[str]:
        year = record.date_of_birth[:4]
        keys = {f"dob:{record.date_of_birth}"}
        if record.nhs_number:
            keys.add(f"nhs:{record.nhs_number}")
        for family in (record.family_name, *record.other_names):
            surname = _name(family.split()[-1] if family.split() else family)
            if surname:
                keys.add(f"fam:{surname}:{year}")
        return keys

    def _candidates(self, query: Query) -> set[int]:
        keys = {f"dob:{query.date_of_birth}", f"fam:{_name(query.family_name)}:{query.date_of_birth[:4]}"}
        if query.date_of_birth and _swapped(query.date_of_birth):
            keys.add(f"dob:{_swapped(query.date_of_birth)}")
        if query.nhs_number:
            keys.add(f"nhs:{query.nhs_number}")
        found: set[int] = set()
        for key in keys:
            found.update(self._by_key.get(key, ()))
        return found

    def match(self, query: Query) -> list[MatchResult]:
        results = [self._score(query, self._records[i]) for i in sorted(self._candidates(query))]
        kept = [r for r in results if r is not None]
        return sorted(kept, key=lambda r: -r.score)

    def _score(self, query: Query, record: Record) -> MatchResult | None:
        reasons: list[str] = []
        if query.nhs_number and record.nhs_number:
            if query.nhs_number != record.nhs_number:
                return None  # different NHS numbers: different children
            reasons.append("NHS number agrees")
        families = [_name(record.family_name), *(_name(n.split()[-1]) for n in record.other_names if n.split())]
        fam, fam_reason = _name_evidence("family name", _name(query.family_name), families)
        givens = [_name(record.given_name), *(_name(n.split()[0]) for n in record.other_names if n.split())]
        giv, giv_reason = _name_evidence("given name", _name(query.given_name), givens)
        dob, dob_reason = _dob_evidence(query.date_of_birth, record.date_of_birth)
        reasons += [r for r in (fam_reason, giv_reason, dob_reason) if r]
        if query.sex and record.sex and query.sex != record.sex and "U" not in (query.sex, record.sex):
            return None  # a different sex at the same address and birth date is a twin, never the same child
        score = 0.35 * fam + 0.3 * giv + 0.35 * dob
        if "NHS number agrees" in reasons:
            score = min(1.0, 0.6 + 0.4 * max(fam, dob))
        if giv == 0.0 and "NHS number agrees" not in reasons:
            return None  # same family and birthday but a different first name: a sibling or twin
        band = "match" if score >= MATCH_THRESHOLD else "possible" if score >= POSSIBLE_THRESHOLD else ""
        return MatchResult(record, band, round(score, 3), tuple(reasons)) if band else None


def build_matcher(records: Sequence[Record] | Iterable[Record]) -> Matcher:
    return SimpleMatcher(records)
