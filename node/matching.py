"""Deciding which of a node's records describe the child being searched for.

A probabilistic (Fellegi–Sunter) engine:

1. candidates come from the blocking index (:mod:`node.index`) on several keys
   — date of birth with the phonetic family or given name, phonetic names with
   year of birth, postcode sector with date of birth, NHS number — tried with
   the date's day and month swapped and with given and family names swapped,
   so a query never scans the table;
2. each candidate is compared field by field into graded levels
   (:mod:`node.comparisons`), and the levels' weights (:mod:`node.weights`,
   learnt from this node's own data) are summed with a prior that depends on
   how many records the node holds, into a match probability — the score;
3. guards that no weight can override: a different given name, a different
   sex, or a different NHS number is never a ``match``; and within a household
   (same family name and date of birth), a record whose given name agrees less
   well than a sibling's is that sibling's twin, not the child searched for.

Shielded means absent. A record the node must not disclose (shielded, or known only to sensitive
services: :attr:`node.records.Record.answered_as_absent`) sits in an index of its own and counts in
none of the name frequencies, the prior or the learnt weights. The answer is worked out from the
visible records alone — guards, household, limit and order exactly as if the hidden ones did not
exist — and only then are the hidden ones looked up, to say which shielded records would have been
a match or possible had they been visible (the holder's alerts). Otherwise a hidden, better-fitting
twin would suppress its visible sibling, and the gap would say "this authority holds a hidden child
of this family".

Results carry reasons a practitioner can read; reasons never contain the values compared.
"""

from __future__ import annotations

import functools
import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.identifiers import dob_int, postcode_parts
from core.names import first_token, is_placeholder, tokens
from core.nicknames import NameVariants, default_variants
from core.subject import Subject
from node import comparisons as cmp
from node.comparisons import NULL
from node.index import BlockingIndex, RecordTable, SearchKeys, key_hash, search_keys
from node.normalise import address_tokens, phonetic
from node.records import Record
from node.weights import Model, estimate_u, level_matrix, run_em

GIVEN, FAMILY, DOB, SEX, POSTCODE, ADDRESS, NHS = range(7)
MIN_TF = 1e-5
"""Floor on a name's frequency: rarer than 1 in 100,000 says nothing more about a match."""


@dataclass(frozen=True)
class MatchSettings:
    """How the engine decides; thresholds are on the match probability (the score)."""

    match_threshold: float = 0.95
    """At or above this score a result is a ``match``."""
    possible_threshold: float = 0.30
    """At or above this (and below match) a result is ``possible``."""
    min_prior_records: int = 1000
    """The prior odds of a match are 1 in max(records held, this): small nodes are not over-trusted."""
    learn: bool = True
    """Estimate u (random pairs) and m (EM) from the node's own records."""
    learn_min_records: int = 2000
    u_sample_pairs: int = 40_000
    em_sample_records: int = 20_000
    max_results: int = 10
    seed: int = 20140309


@dataclass(frozen=True)
class MatchResult:
    record_id: str
    shielded: bool
    band: str
    score: float
    reasons: tuple[str, ...]


class Matcher(Protocol):
    def match(self, query: Subject) -> list[MatchResult]: ...

    @property
    def size(self) -> int: ...


def split_other_name(name: str) -> tuple[str, tuple[str, ...]]:
    """'Amelia Jones' -> ('amelia', ('jones',)); a single word may be either, so it is both."""
    parts = tokens(name)
    if not parts:
        return "", ()
    if len(parts) == 1:
        return parts[0], parts
    return parts[0], parts[1:]


@dataclass(frozen=True)
class _Prepared:
    """A query normalised once, compared against many candidates."""

    givens: tuple[str, ...]
    middle: str
    """The searched child's first middle name: compared with the record's given name only."""
    families: tuple[tuple[str, ...], ...]
    dob: int
    sex: str
    postcode: str
    address: frozenset[str]
    nhs: str

    @classmethod
    def of(cls, q: Subject) -> _Prepared:
        givens = [first_token(q.given_name)]
        families = [tuple(t for t in tokens(q.family_name)) if not is_placeholder(q.family_name) else ()]
        for other in q.other_names:
            g, f = split_other_name(other)
            givens.append(g)
            families.append(f)
        middle = next(iter(tokens(q.middle_names)), "")
        return cls(
            tuple(dict.fromkeys(g for g in givens if g)) or ("",),
            middle,
            tuple(dict.fromkeys(f for f in families if f)) or ((),),
            dob_int(q.date_of_birth),
            q.sex if q.sex in ("M", "F") else "",
            q.postcode,
            address_tokens(q.address) if q.address else frozenset(),
            q.nhs_number,
        )


def _swap_dob(dob: int) -> int:
    y, m, d = dob // 10000, dob // 100 % 100, dob % 100
    return y * 10000 + d * 100 + m if d <= 12 and d != m else 0


def _family_codes(families: Iterable[tuple[str, ...]]) -> set[str]:
    codes = set()
    for parts in families:
        if parts:
            codes.add(phonetic("".join(parts))[0])
            if len(parts) > 1:
                codes.update(phonetic(p)[0] for p in parts)
    codes.discard("")
    return codes


def _given_codes(givens: Iterable[str]) -> set[str]:
    return {phonetic(g)[0] for g in givens if g} - {""}


def blocking_keys(
    givens: Iterable[str],
    families: Iterable[tuple[str, ...]],
    dobs: Iterable[int],
    sector: str,
    nhs: str,
    years: Iterable[int],
) -> Iterator[int]:
    """The index keys of a record (or a query: several dates, years and orientations)."""
    families, givens = list(families), list(givens)
    fam, giv = _family_codes(families), _given_codes(givens)
    # First letters survive the typos that change a phonetic code ("Rihcardson", "Maggie" for Margaret).
    initials = {("f", parts[0][0]) for parts in families if parts and parts[0]}
    initials |= {("g", g[0]) for g in givens if g}
    dobs = [d for d in dobs if d]
    for dob in dobs:
        yield from (key_hash(1, dob, f) for f in fam)
        yield from (key_hash(2, dob, g) for g in giv)
        yield from (key_hash(6, dob, kind, letter) for kind, letter in initials)
        if sector:
            yield key_hash(4, sector, dob)
    for year in years:
        yield from (key_hash(3, f, g, year) for f in fam for g in giv)
    if nhs:
        yield key_hash(5, nhs)


def query_keys(q: _Prepared) -> list[int]:
    """The index keys a query looks up (the same for every node: key_hash is per process, not per index)."""
    dobs = {q.dob, _swap_dob(q.dob)} if q.dob else set()
    years = {q.dob // 10000 + d for d in (-1, 0, 1)} if q.dob else set()
    sector = postcode_parts(q.postcode)[1] if q.postcode else ""
    keys = list(blocking_keys(q.givens, q.families, dobs, sector, q.nhs, years))
    # Given and family written the other way round.
    swapped_givens = tuple("".join(f) for f in q.families if f)
    swapped_families = tuple((g,) for g in q.givens if g)
    keys += blocking_keys(swapped_givens, swapped_families, dobs, "", "", years)
    return keys


@functools.lru_cache(maxsize=1024)
def prepare_query(query: Subject) -> tuple[_Prepared, SearchKeys]:
    """A query normalised, and its index keys, worked out once per process.

    Both are pure functions of the query. A host serving several authorities' nodes (an IT
    provider's, or the scale benchmark's) receives every search once per authority, and normalising
    names and computing phonetic keys was a large share of each answer. Bounded and in memory only,
    like the records the process already holds; the key array is read-only.
    """
    prepared = _Prepared.of(query)
    keys = search_keys(query_keys(prepared))
    keys.flags.writeable = False  # shared by every node in the process
    return prepared, keys


class MatchEngine:
    """One node's records, indexed and weighted; ``match`` answers one query."""

    def __init__(
        self,
        table: RecordTable,
        index: BlockingIndex,
        model: Model,
        settings: MatchSettings,
        variants: NameVariants,
        hidden_index: BlockingIndex | None = None,
    ) -> None:
        self.table, self.index, self.model, self.settings, self.variants = table, index, model, settings, variants
        self.hidden_index = hidden_index or BlockingIndex.build(())
        """The records answered as absent (shielded or sensitive-only), looked up only for alerts."""
        self._log2_prior = -math.log2(max(model.records, settings.min_prior_records))

    @property
    def size(self) -> int:
        return len(self.table)

    # -- building -------------------------------------------------------------

    @classmethod
    def build(
        cls, records: Iterable[Record], settings: MatchSettings | None = None, variants: NameVariants | None = None
    ) -> MatchEngine:
        settings = settings or MatchSettings()
        table = RecordTable()
        given_counts: Counter[str] = Counter()
        family_counts: Counter[str] = Counter()
        dob_counts: Counter[int] = Counter()
        hidden_pairs: list[tuple[int, int]] = []

        def pairs() -> Iterator[tuple[int, int]]:
            for i, record in enumerate(records):
                _add(table, record)
                if record.answered_as_absent:  # indexed apart, and no part of the model
                    hidden_pairs.extend((key, i) for key in cls._record_keys(table, i))
                    continue
                given_counts[table.given[i]] += 1
                family_counts["".join(table.family[i])] += 1
                dob_counts[table.dob[i]] += 1
                for key in cls._record_keys(table, i):
                    yield key, i

        index = BlockingIndex.build(pairs())
        model = Model(
            given_counts=dict(given_counts),
            family_counts=dict(family_counts),
            dob_counts=dict(dob_counts),
            records=len(table) - len({i for _, i in hidden_pairs}),
        )
        hidden_index = BlockingIndex.build(hidden_pairs)
        engine = cls(table, index, model, settings, variants or default_variants(), hidden_index)
        if settings.learn and model.records >= settings.learn_min_records:
            engine._learn()
        return engine

    @staticmethod
    def _record_keys(table: RecordTable, i: int) -> Iterator[int]:
        dob = table.dob[i]
        sector = postcode_parts(table.postcode[i])[1]
        return blocking_keys(table.givens(i), table.families(i), (dob,), sector, table.nhs[i], (dob // 10000,))

    def _visible_rows(self) -> Sequence[int]:
        """Table rows of the records the model learns from: every row unless some are hidden."""
        if len(self.hidden_index) == 0:
            return range(len(self.table))
        hidden = np.unique(self.hidden_index.postings)
        rows: list[int] = np.setdiff1d(np.arange(len(self.table), dtype=np.int32), hidden).tolist()
        return rows

    def _learn(self) -> None:
        rng = random.Random(self.settings.seed)
        # Drawn by position among the visible rows, so the model is the one the node would learn
        # if its hidden records did not exist.
        rows = self._visible_rows()
        n = len(rows)
        random_pairs = [(rows[rng.randrange(n)], rows[rng.randrange(n)]) for _ in range(self.settings.u_sample_pairs)]
        estimate_u(level_matrix([self._pair_levels(i, j) for i, j in random_pairs if i != j]), self.model)
        blocked: set[tuple[int, int]] = set()
        for i in (rows[k] for k in rng.sample(range(n), min(n, self.settings.em_sample_records))):
            for j in self.index.lookup(search_keys(list(self._record_keys(self.table, i)))):
                if i != j:
                    blocked.add((min(i, j), max(i, j)))
        run_em(level_matrix([self._pair_levels(i, j) for i, j in sorted(blocked)]), self.model)
        self._log2_prior = -math.log2(max(n, self.settings.min_prior_records))

    def _pair_levels(self, i: int, j: int) -> tuple[int, ...]:
        t = self.table
        return (
            cmp.given_level(t.given[i], t.givens(j), self.variants) if t.given[i] else NULL,
            min((cmp.family_level(f, t.families(j)) for f in t.families(i) if f), default=NULL),
            cmp.dob_level(t.dob[i], t.dob[j]),
            cmp.sex_level(t.sex[i], t.sex[j]),
            cmp.postcode_level(t.postcode[i], t.postcode[j]),
            cmp.address_level(address_tokens(t.address[i]), address_tokens(t.address[j])),
            cmp.nhs_level(t.nhs[i], t.nhs[j]),
        )

    # -- matching -------------------------------------------------------------

    def candidates(self, q: _Prepared) -> set[int]:
        return self.index.lookup(search_keys(query_keys(q)))

    def match(self, query: Subject) -> list[MatchResult]:
        """The visible records' results, best first and limited; then the shielded records' alerts."""
        q, keys = prepare_query(query)
        scored = [s for s in (self._score(q, i) for i in self.index.lookup(keys)) if s is not None]
        results = self._results(self._household_guard(scored))
        hidden = [s for s in (self._score(q, i) for i in self.hidden_index.lookup(keys)) if s is not None]
        if hidden:
            # Would a hidden record have been a match or possible, had it been visible? Judged among
            # all the candidates, as the child's twin would judge it; sensitive-only ones raise nothing.
            survivors = [s for s in self._household_guard(scored + hidden) if s in hidden]
            results += [r for r in self._results(survivors) if r.shielded]
        return results

    def _results(self, scored: list[_Scored]) -> list[MatchResult]:
        """Banded results, best first, at most ``max_results``."""
        results = []
        for s in scored:
            band = self._band(s)
            if band:
                reasons = tuple(cmp.reason(f, lv) for f, lv in zip(cmp.FIELDS, s.levels, strict=False) if lv != NULL)
                if s.swapped:
                    reasons = ("given and family names written the other way round", *reasons)
                results.append(
                    MatchResult(
                        self.table.record_id[s.index],
                        bool(self.table.shielded[s.index]),
                        band,
                        round(s.probability, 4),
                        reasons,
                    )
                )
        results.sort(key=lambda r: (-r.score, r.record_id))
        return results[: self.settings.max_results]

    def _name_levels(self, q: _Prepared, i: int) -> tuple[int, int, bool]:
        """(given level, family level, written the other way round) — the best reading of the names."""
        t = self.table
        levels = [cmp.given_level(g, t.givens(i), self.variants) for g in q.givens]
        if q.middle:  # known by their middle name: compare it with the name the record uses
            levels.append(cmp.given_level(q.middle, (t.given[i],), self.variants))
        given = min((lv for lv in levels if lv != NULL), default=NULL)
        family = min(
            (lv for lv in (cmp.family_level(f, t.families(i)) for f in q.families) if lv != NULL), default=NULL
        )
        if given in (0, 1) and family in (0, 1):
            return given, family, False
        swapped_given = min(
            (cmp.given_level("".join(f), t.givens(i), self.variants) for f in q.families if f), default=NULL
        )
        swapped_family = min((cmp.family_level((g,), t.families(i)) for g in q.givens if g), default=NULL)
        if (
            swapped_given != NULL
            and swapped_family != NULL
            and given != NULL
            and family != NULL
            and swapped_given + swapped_family < given + family
            and max(swapped_given, swapped_family) <= 1
        ):
            return swapped_given, swapped_family, True
        return given, family, False

    def _score(self, q: _Prepared, i: int) -> _Scored | None:
        t = self.table
        given, family, swapped = self._name_levels(q, i)
        levels = (
            given,
            family,
            cmp.dob_level(q.dob, t.dob[i]),
            cmp.sex_level(q.sex, t.sex[i]),
            cmp.postcode_level(q.postcode, t.postcode[i]),
            cmp.address_level(q.address, address_tokens(t.address[i])) if q.address else NULL,
            cmp.nhs_level(q.nhs, t.nhs[i]),
        )
        total = self._log2_prior + sum(self.model.weight(f, lv) for f, lv in enumerate(levels))
        total += self._tf_adjustment(levels, i)
        probability = 1.0 / (1.0 + 2.0**-total) if total > -1000 else 0.0
        if probability < self.settings.possible_threshold:
            return None
        primary = cmp.given_level(q.givens[0], (t.given[i],), self.variants)
        return _Scored(i, levels, probability, swapped, primary if primary != NULL else 99)

    def _tf_adjustment(self, levels: tuple[int, ...], i: int) -> float:
        """Replace the average u of exact name agreement by this name's frequency here."""
        m = self.model
        adjustment = 0.0
        if levels[GIVEN] == 0:
            tf = max(m.name_frequency("given name", self.table.given[i]), MIN_TF)
            adjustment += math.log2(m.u["given name"][0] / tf)
        if levels[FAMILY] == 0:
            tf = max(m.name_frequency("family name", "".join(self.table.family[i])), MIN_TF)
            adjustment += math.log2(m.u["family name"][0] / tf)
        if levels[DOB] == 0:
            # Birthdays are not uniform: a system's default date or a cluster of newborns makes one common.
            tf = max(m.name_frequency("date of birth", self.table.dob[i]), MIN_TF)
            adjustment += math.log2(m.u["date of birth"][0] / tf)
        return adjustment

    def _band(self, s: _Scored) -> str:
        """``match`` needs the probability and corroboration; some evidence rules out even ``possible``."""
        lv = s.levels
        nhs_agrees = lv[NHS] == 0
        if lv[GIVEN] == cmp.GIVEN.disagree and not nhs_agrees:
            return ""  # a different child: sibling, twin or namesake
        if lv[SEX] == 1 and lv[FAMILY] in (0, 1) and lv[DOB] == 0 and not nhs_agrees:
            return ""  # twins of different sex
        if s.probability >= self.settings.match_threshold and self._corroborated(lv, s.household_alone):
            return "match"
        return "possible" if s.probability >= self.settings.possible_threshold else ""

    @staticmethod
    def _corroborated(lv: tuple[int, ...], household_alone: bool) -> bool:
        """Deterministic limits on a ``match``, whatever the weights say.

        Twins and siblings share a family name, an address and sometimes a birthday: the
        given name, date of birth and sex are what tell them apart, so each must agree
        well, or the NHS number must. A different family name needs the same home too.
        """
        if lv[NHS] == 1:
            return False  # different NHS numbers
        if lv[NHS] == 0:
            return lv[FAMILY] != NULL and lv[DOB] != NULL and (lv[FAMILY] <= 4 or lv[DOB] <= 1)
        same_home = lv[POSTCODE] == 0 or lv[ADDRESS] == 0
        if lv[SEX] == 1 or lv[FAMILY] == NULL or lv[DOB] == NULL:
            return False
        if lv[GIVEN] == NULL:  # "Baby": only the sole newborn at that home
            return lv[FAMILY] == 0 and lv[DOB] == 0 and same_home and household_alone
        if lv[GIVEN] > 2:  # sounds alike, similar, initial: Hassan is not Hussain
            return False
        if lv[FAMILY] == cmp.FAMILY.disagree and not same_home:
            return False  # a new surname needs the same home as evidence
        return lv[DOB] <= 1 or (
            lv[DOB] <= 4 and (same_home or (lv[FAMILY] <= 1 and lv[GIVEN] == 0 and lv[POSTCODE] in (1, 2)))
        )

    def _household_guard(self, scored: list[_Scored]) -> list[_Scored]:
        """Within one household (family name and date of birth agree), only the best given name can be the child."""
        t = self.table
        household = [s for s in scored if s.levels[FAMILY] != NULL and s.levels[FAMILY] <= 3 and s.levels[DOB] == 0]
        for s in household:
            s.household_alone = len(household) == 1
        known = [s for s in household if s.levels[GIVEN] != NULL]
        if len(household) < 2 or not known:
            return scored
        # Ranked by the given name's level, then by how well the first names themselves agree: a twin
        # whose first name is the searched child's middle name loses to the child it is named after.
        best = min((s.levels[GIVEN], s.given_primary) for s in known)
        best_names = {t.given[s.index] for s in known if (s.levels[GIVEN], s.given_primary) == best}
        return [
            s
            for s in scored
            if not (
                s in known
                and (s.levels[GIVEN], s.given_primary) != best
                and t.given[s.index] not in best_names
                and s.levels[NHS] != 0
            )
        ]


@dataclass(eq=False)
class _Scored:
    index: int
    levels: tuple[int, ...]
    probability: float
    swapped: bool = field(default=False)
    given_primary: int = 99
    """Level of the first given names alone (99 when one is missing)."""
    household_alone: bool = field(default=True)
    """No other candidate shares this one's family name and date of birth."""


def _add(table: RecordTable, record: Record) -> None:
    i = len(table)
    share = table.share
    table.record_id.append(record.record_id)
    table.given.append(share(first_token(record.given_name)))  # type: ignore[arg-type]
    family = tokens(record.family_name) if not is_placeholder(record.family_name) else ()
    table.family.append(share(tuple(share(p) for p in family)))  # type: ignore[arg-type]
    table.dob.append(dob_int(record.date_of_birth))
    table.sex.append(share(record.sex if record.sex in ("M", "F") else ""))  # type: ignore[arg-type]
    table.postcode.append(share(record.postcode))  # type: ignore[arg-type]
    table.address.append(record.address)
    table.nhs.append(record.nhs_number)
    table.shielded.append(1 if record.shielded else 0)
    other_given = [share(t) for t in tokens(record.middle_names)[:1]]
    other_family = []
    for name in record.other_names:
        g, f = split_other_name(name)
        other_given.append(share(g))
        other_family.append(share(tuple(share(p) for p in f)))
    if other_given:
        table.other_given[i] = tuple(dict.fromkeys(g for g in other_given if g))  # type: ignore[misc]
    if other_family:
        table.other_family[i] = tuple(dict.fromkeys(f for f in other_family if f))  # type: ignore[misc]


def build_matcher(records: Iterable[Record], settings: MatchSettings | None = None) -> MatchEngine:
    return MatchEngine.build(records, settings)
