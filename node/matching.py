"""Deciding which of a node's records describe the child being searched for.

A probabilistic (Fellegi–Sunter) engine:

1. candidates come from the blocking index (:mod:`node.index`) on several keys
   — date of birth with the phonetic family or given name, phonetic names with
   year of birth, postcode sector with date of birth, NHS number, and keys with
   no date at all (names with the postcode district or house number) so a date
   keyed wholly wrong still meets the query — tried with the date's day and
   month swapped and with given and family names swapped, and the home alone
   (house number with postcode, or with street) for a record whose names and
   date were both keyed wrong — so a query never scans the table;
2. each candidate is compared field by field into graded levels
   (:mod:`node.comparisons`), and the levels' weights (:mod:`node.weights`,
   learnt from this node's own data) are summed with a prior that depends on
   how many records the node holds, into a match probability — the score;
3. rules that no weight can override (:mod:`node.bands`): evidence about the
   named child or nothing; three of given name, family name, date of birth and
   home agreeing are a ``possible`` whatever the score (nobody vanishes); a
   different given name, sex or NHS number is never a ``match``; and the home
   guard — within a home (family name with postcode, address or birthday), only
   the best-fitting given name, then date of birth, may be a ``match``.

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
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Protocol

import numpy as np

from core.addresses import house_number, street_word
from core.identifiers import dob_int, postcode_parts
from core.names import is_placeholder, tokens
from core.nicknames import NameVariants, default_variants
from core.subject import Subject
from node import bands
from node import comparisons as cmp
from node.comparisons import NULL
from node.em import Session, run_em
from node.index import MAX_POSTINGS_PER_KEY, BlockingIndex, IndexBuilder, RecordTable, SearchKeys, search_keys
from node.learning import blocked_pairs, pair_levels
from node.normalise import Address, address_key, address_tokens, given_names, phonetic
from node.records import Record
from node.weights import Model, estimate_u

GIVEN, FAMILY, DOB, SEX, POSTCODE, ADDRESS, NHS = range(7)
WIDE_POSTINGS = 12
"""A wide key (the whole name alone, or the home alone) is looked up only while it holds at most this
many records: enough for a rare name or one household, nothing for a common one in a large node."""
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
    address: Address | None
    nhs: str
    district: str = ""
    house: str = ""
    """The address's house number (core.addresses.house_number: the number before the street, never a flat's):
    with the postcode district, a home that keys nothing on the date."""
    street: str = ""
    """The address's street word (core.addresses.street_word): with the house number, a home without a postcode."""

    @classmethod
    def of(cls, q: Subject) -> _Prepared:
        first, joined = given_names(q.given_name)
        givens = [first, *joined]
        families = [tuple(t for t in tokens(q.family_name)) if not is_placeholder(q.family_name) else ()]
        for other in q.other_names:
            g, f = split_other_name(other)
            givens.append(g)
            families.append(f)
        middle = next(iter(tokens(q.middle_names)), "")
        return cls(
            tuple(dict.fromkeys(g for g in givens if g)) or ("",),
            middle if len(middle) > 1 else "",
            tuple(dict.fromkeys(f for f in families if f)) or ((),),
            dob_int(q.date_of_birth),
            q.sex if q.sex in ("M", "F") else "",
            q.postcode,
            address_key(q.address) if q.address else None,
            q.nhs_number,
            postcode_parts(q.postcode)[2] if q.postcode else "",
            house_number(q.address),
            street_word(q.address),
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
    codes = {phonetic(g)[0] for g in givens if g}
    codes.discard("")  # in place: a second set (``- {""}``) a record cost more than the codes themselves
    return codes


def _given_parts(givens: Iterable[str]) -> tuple[tuple[str, ...], set[str], set[str]]:
    """(the given names that are not empty, in order; their phonetic codes; their first letters).

    Not cached: records' sets of given names (with middle names) are nearly as many as the records.
    """
    named = tuple(filter(None, givens))  # the names that are not empty (a generator cost twice as much)
    return named, _given_codes(named), {g[0] for g in named}


@functools.lru_cache(maxsize=1 << 16)
def _family_parts(families: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(phonetic codes; whole names, parts joined; first letters) of a record's or query's family names,
    each without repeats (tuples: a quarter the memory of frozensets, in a cache of tens of thousands).

    Worked out once per distinct family name (a node's records repeat a few thousand), not once per
    record and key kind: the blocking keys were most of an index build's time.
    """
    whole = {"".join(parts) for parts in families if parts}
    letters = {parts[0][0] for parts in families if parts and parts[0]}
    return tuple(_family_codes(families)), tuple(whole), tuple(letters)


def blocking_keys(
    givens: Iterable[str],
    families: Iterable[tuple[str, ...]],
    dobs: Iterable[int],
    sector: str,
    nhs: str,
    years: Iterable[int],
    district: str = "",
    house: str = "",
    wide: bool = True,
    postcode: str = "",
) -> list[int]:
    """The index keys of a record (or a query: several dates, years and orientations).

    ``wide``: with the wide keys (:func:`wide_keys`), which a query looks up apart, with a lower cap.
    Each key is the hash of a tuple, as :func:`node.index.key_hash` makes it; the one value it would
    move (the largest int64) is moved where keys become arrays (``BlockingIndex``, ``search_keys``).
    A record's keys may repeat (a given name that is also an alternative one): each repeat is a
    posting, and counts towards the key's cap, as it always has.
    """
    named, giv, given_letters = _given_parts(givens)
    fam, whole, family_letters = _family_parts(tuple(families))
    keys = _home_keys(named, fam, whole, given_letters, district, house, postcode)
    if wide:
        keys += [hash((12, f, g)) for f in whole for g in named]
    for dob in dobs:
        if not dob:
            continue
        keys += [hash((1, dob, f)) for f in fam]
        keys += [hash((2, dob, g)) for g in giv]
        # First letters survive the typos that change a phonetic code ("Rihcardson", "Maggie" for Margaret).
        keys += [hash((6, dob, "f", letter)) for letter in family_letters]
        keys += [hash((6, dob, "g", letter)) for letter in given_letters]
        if sector:
            keys.append(hash((4, sector, dob)))
    for year in years:
        keys += [hash((3, f, g, year)) for f in fam for g in giv]
    if nhs:
        keys.append(hash((5, nhs)))
    return keys


def _home_keys(
    named: tuple[str, ...],
    fam: tuple[str, ...],
    whole: tuple[str, ...],
    given_letters: set[str],
    district: str,
    house: str,
    postcode: str,
) -> list[int]:
    """Keys with no date in them: the child whose date of birth was keyed wholly wrong (a sibling's, a
    system default) still meets the query through the names and the home.

    Each is narrow (a home, or a name within a district), so that it adds a few candidates a query,
    not a name's every holder in a large node.
    """
    keys: list[int] = []
    if postcode:
        # The family at that postcode (a dozen homes), and the given name there: a name mistyped, or
        # written the other way round, as well as the date and the house number.
        keys += [hash((14, f, postcode)) for f in fam]
        keys += [hash((15, g, postcode)) for g in named]
    if district:
        keys += [hash((7, f, g, district)) for f in whole for g in named]
    if house:
        keys += [hash((13, f, g, house)) for f in whole for g in named]
        keys += [hash((9, f, letter, house)) for f in fam for letter in given_letters]
        if district:
            # One name keyed wrong as well as the date: the family at that home, or the given name there.
            keys += [hash((10, f, district, house)) for f in fam]
            keys += [hash((11, g, district, house)) for g in named]
    return keys


def wide_keys(givens: Iterable[str], families: Iterable[tuple[str, ...]]) -> list[int]:
    """The date-free key a common name fills: the whole name alone (for a home keyed differently too).
    Looked up only while it holds at most WIDE_POSTINGS records, so a large node's common names add
    nothing to a query's cost. (The phonetic family name and initial in a district was tried too: it
    found one more pair in FEBRL1 and cost a quarter more time a query on 100,000 records.)"""
    named = tuple(filter(None, givens))
    return [hash((12, f, g)) for f in _family_parts(tuple(families))[1] for g in named]


@dataclass(frozen=True)
class LearningRule:
    """A blocking rule EM learns m from: the keys it gives a record, and the comparisons its pairs agree
    on by construction (left out of its EM session: see :mod:`node.em`)."""

    left_out: frozenset[str]
    keys: Callable[[RecordTable, int], list[int]]


def _family_dated(t: RecordTable, i: int) -> list[int]:
    return blocking_keys((), t.families(i), (t.dob[i],), "", "", (), wide=False)


def _given_dated(t: RecordTable, i: int) -> list[int]:
    return blocking_keys(t.givens(i), (), (t.dob[i],), "", "", (), wide=False)


def _sector_dated(t: RecordTable, i: int) -> list[int]:
    return blocking_keys((), (), (t.dob[i],), postcode_parts(t.postcode[i])[1], "", (), wide=False)


def _names_year(t: RecordTable, i: int) -> list[int]:
    return blocking_keys(t.givens(i), t.families(i), (), "", "", (t.dob[i] // 10000,), wide=False)


def _nhs(t: RecordTable, i: int) -> list[int]:
    return blocking_keys((), (), (), "", t.nhs[i], (), wide=False)


_HOME = frozenset({"family name", "postcode", "address"})
"""What a household shares: siblings and twins agree on these as the same child's records do."""
LEARNING_RULES: tuple[LearningRule, ...] = (
    # A date of birth without a given name lets twins in: alike on the date and the home, they are all
    # but a match to u from random pairs (a 20,000-record synth node's sessions counted 227 and 208
    # matches where 90 and 80 were true). So the home is left out of these two as well.
    LearningRule(frozenset({"date of birth"}) | _HOME, _family_dated),
    LearningRule(frozenset({"date of birth"}) | _HOME, _sector_dated),
    # The given name says the sex: pairs chosen for a given name agree on sex far more than random pairs.
    LearningRule(frozenset({"date of birth", "given name", "sex"}), _given_dated),
    LearningRule(frozenset({"date of birth", "given name", "family name", "sex"}), _names_year),
    LearningRule(frozenset({"NHS number"}), _nhs),
)
"""The dated keys, split by what their pairs agree on. The date-free keys are not learnt from: they add
whole households, which cost build time and would teach EM that siblings (alike on every field but the
given name) are matches."""


def home_keys(postcode: str, house: str, street: str) -> list[int]:
    """Wide keys of the home alone, with no name and no date: the house number with the full postcode,
    and with the street word (an address held without a postcode, or with a postcode keying slip).

    For the record whose given name *and* date of birth, or both names, were keyed wrong (a family name
    cut to an initial, a placeholder, a sibling's date): no other key holds anything it shares with the
    query but the home. Wide, so looked up only while the home holds at most WIDE_POSTINGS records —
    a household, not every "1 High Street" of a large node. Only blocking: the band rules still want
    evidence about the named child (bands.has_evidence), so this alone returns nobody.
    """
    if not house:
        return []
    keys = [hash((16, postcode, house))] if postcode else []
    if street:
        keys.append(hash((17, house, street)))
    return keys


def query_keys(q: _Prepared) -> list[int]:
    """The index keys a query looks up (the same for every node: key_hash is per process, not per index)."""
    dobs = {q.dob, _swap_dob(q.dob)} if q.dob else set()
    years = {q.dob // 10000 + d for d in (-1, 0, 1)} if q.dob else set()
    sector = postcode_parts(q.postcode)[1] if q.postcode else ""
    full = postcode_parts(q.postcode)[0] if q.postcode else ""
    keys = blocking_keys(
        q.givens, q.families, dobs, sector, q.nhs, years, q.district, q.house, wide=False, postcode=full
    )
    # Given and family written the other way round.
    swapped_givens = tuple("".join(f) for f in q.families if f)
    swapped_families = tuple((g,) for g in q.givens if g)
    keys += blocking_keys(
        swapped_givens, swapped_families, dobs, "", "", years, q.district, q.house, wide=False, postcode=full
    )
    return keys


def query_wide_keys(q: _Prepared) -> list[int]:
    """The wide keys a query looks up (both orientations of the names, and the home)."""
    keys = wide_keys(q.givens, q.families)
    keys += wide_keys(["".join(f) for f in q.families if f], [(g,) for g in q.givens if g])
    keys += home_keys(postcode_parts(q.postcode)[0] if q.postcode else "", q.house, q.street)
    return keys


@dataclass(frozen=True)
class QueryKeys:
    """A query's keys, looked up in every index of the process (read-only arrays)."""

    narrow: SearchKeys
    wide: SearchKeys

    def lookup(self, index: BlockingIndex) -> set[int]:
        return index.lookup(self.narrow) | index.lookup(self.wide, WIDE_POSTINGS)


@functools.lru_cache(maxsize=1024)
def prepare_query(query: Subject) -> tuple[_Prepared, QueryKeys]:
    """A query normalised, and its index keys, worked out once per process.

    Both are pure functions of the query. A host serving several authorities' nodes (an IT
    provider's, or the scale benchmark's) receives every search once per authority, and normalising
    names and computing phonetic keys was a large share of each answer. Bounded and in memory only,
    like the records the process already holds; the key array is read-only.
    """
    prepared = _Prepared.of(query)
    keys = QueryKeys(search_keys(query_keys(prepared)), search_keys(query_wide_keys(prepared)))
    keys.narrow.flags.writeable = keys.wide.flags.writeable = False  # shared by every node in the process
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
        hidden_rows: Sequence[int] = (),
    ) -> None:
        self.table, self.index, self.model, self.settings, self.variants = table, index, model, settings, variants
        # `is None`, not `or`: an index with no postings of its own may still hold over-cap runs (node.delta).
        self.hidden_index = hidden_index if hidden_index is not None else BlockingIndex.build(())
        """The records answered as absent (shielded or sensitive-only), looked up only for alerts."""
        self.hidden_rows = np.array(hidden_rows, dtype=np.int32)
        """Their table rows (sorted): no part of the model."""
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
        visible, hidden = IndexBuilder(), IndexBuilder()
        for i, record in enumerate(records):
            _add(table, record)
            narrow, wide = cls._record_keys(table, i)
            if record.answered_as_absent:  # indexed apart, and no part of the model
                hidden.add(i, narrow, wide)
                continue
            visible.add(i, narrow, wide)
        given_counts, family_counts, dob_counts = _name_counts(table, hidden.records)
        model = Model(
            given_counts=given_counts,
            family_counts=family_counts,
            dob_counts=dob_counts,
            records=len(table) - len(hidden.records),
        )
        engine = cls(
            table,
            visible.build(MAX_POSTINGS_PER_KEY, WIDE_POSTINGS),
            model,
            settings,
            variants or default_variants(),
            hidden.build(MAX_POSTINGS_PER_KEY, WIDE_POSTINGS),
            hidden.records,
        )
        if settings.learn and model.records >= settings.learn_min_records:
            engine._learn()
        return engine

    @staticmethod
    def _record_keys(table: RecordTable, i: int) -> tuple[list[int], list[int]]:
        """A record's keys: (narrow, wide)."""
        dob = table.dob[i]
        givens, families = table.givens(i), table.families(i)
        full, sector, district, _ = cmp.split_postcode(table.postcode[i])  # a node repeats its postcodes
        house = house_number(table.address[i])
        narrow = blocking_keys(
            givens,
            families,
            (dob,),
            sector,
            table.nhs[i],
            (dob // 10000,),
            district,
            house,
            wide=False,
            postcode=full,
        )
        return narrow, wide_keys(givens, families) + home_keys(full, house, street_word(table.address[i]))

    def _visible_rows(self) -> np.ndarray:
        """Table rows of the records the model learns from (ascending): every row unless some are hidden."""
        visible = np.ones(len(self.table), dtype=bool)
        visible[self.hidden_rows] = False
        return np.flatnonzero(visible)

    def _learn(self) -> None:
        rng = random.Random(self.settings.seed)
        # Drawn by position among the visible rows, so the model is the one the node would learn
        # if its hidden records did not exist.
        rows = self._visible_rows()
        n = len(rows)
        draws = [rng.randrange(n) for _ in range(2 * self.settings.u_sample_pairs)]  # (left, right) per pair
        left, right = rows[np.array(draws, dtype=np.int64)].reshape(-1, 2).T
        differ = left != right
        estimate_u(pair_levels(self.table, self.variants, left[differ], right[differ]), self.model)
        picked = rng.sample(range(n), min(n, self.settings.em_sample_records))
        sample: list[int] = rows[np.array(picked, dtype=np.int64)].tolist()
        pairs, sessions = self._learning_pairs(sample)
        run_em(pair_levels(self.table, self.variants, pairs[:, 0], pairs[:, 1]), self.model, sessions)
        self._log2_prior = -math.log2(max(n, self.settings.min_prior_records))

    def _learning_pairs(self, sample: list[int]) -> tuple[np.ndarray, list[Session]]:
        """Every pair a learning rule blocks for a row of ``sample`` (each pair once, for its levels to
        be worked out once), and each rule's session: which of those pairs it blocked."""
        blocked = [
            blocked_pairs(self.index, sample, [rule.keys(self.table, i) for i in sample], MAX_POSTINGS_PER_KEY)
            for rule in LEARNING_RULES
        ]
        n = len(self.table)
        codes = [b[:, 0] * n + b[:, 1] for b in blocked]
        union = np.unique(np.concatenate(codes))
        sessions = [
            Session(np.searchsorted(union, c), rule.left_out) for c, rule in zip(codes, LEARNING_RULES, strict=True)
        ]
        return np.stack([union // n, union % n], axis=1), sessions

    # -- matching -------------------------------------------------------------

    def candidates(self, q: _Prepared) -> set[int]:
        return QueryKeys(search_keys(query_keys(q)), search_keys(query_wide_keys(q))).lookup(self.index)

    def candidate_record_ids(self, query: Subject) -> set[str]:
        """The visible records blocking puts forward for ``query``: what the benchmark's blocking recall counts."""
        _, keys = prepare_query(query)
        return {self.table.record_id[i] for i in keys.lookup(self.index)}

    def match(self, query: Subject) -> list[MatchResult]:
        """The visible records' results, best first and limited; then the shielded records' alerts."""
        q, keys = prepare_query(query)
        names: _NameMemo = {}
        close = _CloseNames(q, self.variants)
        scored = [s for s in (self._score(q, i, names, close) for i in keys.lookup(self.index)) if s is not None]
        results = self._results(self._home_guard(scored))
        hidden = [s for s in (self._score(q, i, names, close) for i in keys.lookup(self.hidden_index)) if s is not None]
        if hidden:
            # Would a hidden record have been a match or possible, had it been visible? Judged among
            # all the candidates, as the child's twin would judge it; sensitive-only ones raise nothing.
            judged = self._home_guard(scored + hidden)
            results += [r for r in self._results([s for s in judged if s in hidden]) if r.shielded]
        return results

    def _results(self, scored: list[_Scored]) -> list[MatchResult]:
        """Banded results, best first, at most ``max_results``."""
        results = []
        thresholds = (self.settings.match_threshold, self.settings.possible_threshold)
        for s in scored:
            band = bands.band(s.levels, s.probability, thresholds, s.capped, s.household_alone, s.rival)
            if band:
                results.append(
                    MatchResult(
                        self.table.record_id[s.index],
                        bool(self.table.shielded[s.index]),
                        band,
                        round(s.probability, 4),
                        _reasons(s),
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
        straight_evidence = bands.close(given) or bands.close(family)
        swapped_family = min((cmp.family_level((g,), t.families(i)) for g in q.givens if g), default=NULL)
        if straight_evidence and not bands.close(swapped_family):
            return given, family, False  # neither reading below can win: spare the given-name comparison
        swapped_given = min(
            (cmp.given_level("".join(f), t.givens(i), self.variants) for f in q.families if f), default=NULL
        )
        if (
            swapped_given != NULL
            and swapped_family != NULL
            and given != NULL
            and family != NULL
            and swapped_given + swapped_family < given + family
            # The other way round, and one of the two perhaps mistyped as well.
            and min(swapped_given, swapped_family) <= 1
            and max(swapped_given, swapped_family) <= bands.CLOSE
        ):
            return swapped_given, swapped_family, True
        if (
            not straight_evidence
            and swapped_given != NULL
            and swapped_family != NULL
            and (bands.close(swapped_given) or bands.close(swapped_family))
        ):
            # Only the other way round does a name agree ("White, Jasmine" for Jacqueline White): read
            # it so, and let the band rules judge the name that still differs.
            return swapped_given, swapped_family, True
        return given, family, False

    def _score(self, q: _Prepared, i: int, names: _NameMemo, close: _CloseNames) -> _Scored | None:
        """``names``: this query's name levels by the record's names (see _NameMemo); ``close``: its
        names that may agree (see _CloseNames)."""
        t = self.table
        nhs = cmp.nhs_level(q.nhs, t.nhs[i])
        if nhs != 0 and not close.row(t, i):
            return None  # no name could be evidence, in either reading: spare comparing them in full
        dob = cmp.dob_level(q.dob, t.dob[i])
        postcode = cmp.postcode_level(q.postcode, t.postcode[i])
        address = cmp.address_level(q.address, address_key(t.address[i]), postcode) if q.address else NULL
        if nhs != 0 and not bands.dated_or_at_home((NULL, NULL, dob, NULL, postcode, address, NULL)):
            return None  # bands.has_evidence says no whatever the names: spare comparing them
        held = (t.givens(i), t.families(i))
        found = names.get(held)
        if found is None:
            found = names[held] = self._name_levels(q, i)
        given, family, swapped = found
        if not (bands.close(given) or bands.close(family) or nhs == 0):
            return None  # no evidence about the named child (bands.has_evidence), whatever else agrees
        levels = (given, family, dob, cmp.sex_level(q.sex, t.sex[i]), postcode, address, nhs)
        if not bands.has_evidence(levels):
            return None
        total = self._log2_prior + sum(self.model.weight(f, lv) for f, lv in enumerate(levels))
        total += self._tf_adjustment(q, levels, i, swapped)
        probability = 1.0 / (1.0 + 2.0**-total) if total > -1000 else 0.0
        if probability < self.settings.possible_threshold and not bands.strong_partial(levels):
            return None
        primary = cmp.given_level(q.givens[0], (t.given[i],), self.variants)
        return _Scored(i, levels, probability, swapped, primary if primary != NULL else 99)

    def _tf_adjustment(self, q: _Prepared, levels: tuple[int, ...], i: int, swapped: bool) -> float:
        """Replace the average u of name agreement by this name's frequency here.

        Exact agreement uses the record's name; a variant or close spelling (as Splink does) the
        commoner of the two names, so "Jon" for "John" counts for as little as a common name should.
        """
        m, t = self.model, self.table
        adjustment = 0.0
        searched_given = "".join(q.families[0]) if swapped else q.givens[0]
        searched_family = q.givens[0] if swapped else "".join(q.families[0])
        names = (
            (bands.GIVEN_AT, "given name", t.given[i], searched_given),
            (bands.FAMILY_AT, "family name", "".join(t.family[i]), searched_family),
        )
        for at, field_name, held, searched in names:
            level = levels[at]
            if level == 0:
                tf = max(m.name_frequency(field_name, held), MIN_TF)
            elif level in (1, 2):
                tf = max(m.name_frequency(field_name, held), m.name_frequency(field_name, searched), MIN_TF)
            else:
                continue
            adjustment += math.log2(m.u[field_name][0] / tf)
        if levels[DOB] == 0:
            # Birthdays are not uniform: a system's default date or a cluster of newborns makes one common.
            tf = max(m.name_frequency("date of birth", t.dob[i]), MIN_TF)
            adjustment += math.log2(m.u["date of birth"][0] / tf)
        return adjustment

    def _home_guard(self, scored: list[_Scored]) -> list[_Scored]:
        """Within a home, only the child whose given name (then date of birth) fits best may be a ``match``.

        Candidates share a home when they share a family name and a full postcode or an address, or a
        family name and a date of birth. Two sisters of one name at one address born months apart, or
        twins, are each the other's look-alike: the one that fits less well is at most ``possible``
        (not dropped — it may still be the child, with a name or date keyed wrong). An agreeing NHS
        number is never capped.
        """
        t = self.table
        groups: dict[tuple[object, ...], list[_Scored]] = {}
        for s in scored:
            s.capped, s.household_alone, s.rival = False, True, False
            family = "".join(t.family[s.index])
            if not family:
                continue
            home = cmp.split_postcode(t.postcode[s.index])[0]
            address = address_tokens(t.address[s.index])
            for key in (("p", home), ("a", address), ("d", t.dob[s.index])):
                if key[1]:
                    groups.setdefault((family, *key), []).append(s)
        for members in groups.values():
            if len(members) < 2:
                continue
            best = min(_rank(s) for s in members)
            rivals = sum(_rival(s) for s in members)
            for s in members:
                s.household_alone = False
                s.rival = s.rival or rivals - _rival(s) > 0
                if _rank(s) > best and s.levels[NHS] != 0:
                    s.capped = True
        return scored


class _CloseNames:
    """Which names a query meets could agree with a searched name at least as a close spelling, in any
    reading ``_name_levels`` tries: each distinct name compared once per query, not once per candidate.

    A candidate none of whose names could is no evidence about the named child, so it is dropped before
    its names are compared in full (most of a large node's candidates: a date of birth with an initial
    is a key, not evidence). Exact, not a guess: a name is close when its own level, by the comparisons
    the scorer uses, is; so this must probe every pairing ``_name_levels`` reads — given names (and the
    middle name) against given names, family names against family names, and each the other way round.
    """

    def __init__(self, q: _Prepared, variants: NameVariants) -> None:
        self.variants = variants
        givens = [g for g in (*q.givens, q.middle) if g]
        self.given_probes = tuple(dict.fromkeys([*givens, *("".join(f) for f in q.families if f)]))
        self.family_probes = tuple(dict.fromkeys([*(f for f in q.families if f), *((g,) for g in givens)]))
        self.given: dict[str, bool] = {}
        self.family: dict[tuple[str, ...], bool] = {}
        self.close = cmp.CloseToAny(self.given_probes, self.family_probes, variants)

    def any(self, givens: tuple[str, ...], families: tuple[tuple[str, ...], ...]) -> bool:
        return any(map(self._given, givens)) or any(map(self._family, families))

    def row(self, t: RecordTable, i: int) -> bool:
        """``any(t.givens(i), t.families(i))``, without making those tuples: every candidate asks this."""
        if self._given(t.given[i]) or self._family(t.family[i]):
            return True
        others = t.other_given.get(i)
        if others and any(map(self._given, others)):
            return True
        other_families = t.other_family.get(i)
        return other_families is not None and any(map(self._family, other_families))

    def _given(self, name: str) -> bool:
        found = self.given.get(name)
        if found is None:
            found = self.given[name] = self.close.given(name)
        return found

    def _family(self, parts: tuple[str, ...]) -> bool:
        found = self.family.get(parts)
        if found is None:
            found = self.family[parts] = self.close.family(parts)
        return found


_NameMemo = dict[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], tuple[int, int, bool]]
"""One query's name levels by a candidate's (given names, family names): they depend on nothing else, and
a common name's candidates share them (every Oliver Smith born within a year of the searched one)."""


def _rival(s: _Scored) -> bool:
    """Could this candidate be the searched child, and not merely another record of one whose given name
    and date of birth agree exactly (twins never share a given name: that is a duplicate)?"""
    return bands.close(s.levels[GIVEN]) and not (s.levels[GIVEN] == 0 and s.levels[DOB] == 0)


def _rank(s: _Scored) -> tuple[float, int, int]:
    """How well a candidate fits, for the home guard: given name, the first names alone, date of birth."""
    given = s.levels[GIVEN]
    # No given name ("Baby") fits worse than any agreeing one and better than one that differs.
    given_rank = 5.5 if given == NULL else float(given)
    dob = s.levels[DOB]
    return given_rank, s.given_primary, 99 if dob == NULL else dob


def _reasons(s: _Scored) -> tuple[str, ...]:
    """What agrees and differs, in words; never a value, never how close a date of birth is."""
    reasons = [cmp.reason(f, lv) for f, lv in zip(cmp.FIELDS, s.levels, strict=False) if lv != NULL]
    if bands.given_differs(s.levels) or (s.capped and s.levels[GIVEN] > 0):
        reasons[0] = cmp.SIBLING  # a better-fitting child at the same home has the other name
    if s.swapped:
        reasons.insert(0, "given and family names written the other way round")
    return tuple(reasons)


@dataclass(eq=False)
class _Scored:
    index: int
    levels: tuple[int, ...]
    probability: float
    swapped: bool = field(default=False)
    given_primary: int = 99
    """Level of the first given names alone (99 when one is missing)."""
    household_alone: bool = field(default=True)
    """No other candidate shares this one's family name and home or date of birth."""
    capped: bool = field(default=False)
    """Another candidate at its home fits better: at most ``possible``."""
    rival: bool = field(default=False)
    """Another candidate sharing its family name and home or birthday could be the child too (``_rival``)."""


@functools.lru_cache(maxsize=1 << 18)  # a node's records repeat a few tens of thousands of family names
def _family_name(family_name: str) -> tuple[str, ...]:
    """A record's family name as parts (interned), () for a placeholder."""
    return tuple(sys.intern(p) for p in tokens(family_name)) if not is_placeholder(family_name) else ()


def _add(table: RecordTable, record: Record) -> None:
    i = len(table)
    share, intern = table.share, sys.intern  # strings straight to intern (what share does with them): once a record
    first, other_given = given_names(record.given_name, record.middle_names)
    table.record_id.append(record.record_id)
    table.given.append(intern(first))
    table.family.append(share(_family_name(record.family_name)))  # type: ignore[arg-type]
    table.dob.append(dob_int(record.date_of_birth))
    table.sex.append(intern(record.sex if record.sex in ("M", "F") else ""))
    table.postcode.append(intern(record.postcode))
    table.address.append(record.address)
    table.nhs.append(record.nhs_number)
    table.shielded.append(1 if record.shielded else 0)
    others = [intern(g) for g in other_given]
    other_family = []
    for name in record.other_names:
        g, f = split_other_name(name)
        others.append(intern(g))
        other_family.append(share(tuple(share(p) for p in f)))
    if others:
        table.other_given[i] = tuple(dict.fromkeys(g for g in others if g))
    if other_family:
        table.other_family[i] = tuple(dict.fromkeys(f for f in other_family if f))  # type: ignore[misc]


def _name_counts(
    table: RecordTable, hidden_rows: Iterable[int]
) -> tuple[dict[str, int], dict[str, int], dict[int, int]]:
    """The model's counts of given names, family names (parts joined) and dates of birth among the visible records.

    Counted over the table's columns once the table is built (in C: ``Counter`` of a column), not a
    record at a time; family names are counted as the table holds them (shared tuples, a few thousand)
    and joined once each.
    """
    visible = bytearray(b"\x01") * len(table)
    for i in hidden_rows:
        visible[i] = 0
    family_counts: Counter[str] = Counter()
    for parts, n in Counter(compress(table.family, visible)).items():
        family_counts["".join(parts)] += n
    return (
        dict(Counter(compress(table.given, visible))),
        dict(family_counts),
        dict(Counter(compress(table.dob, visible))),
    )


def build_matcher(records: Iterable[Record], settings: MatchSettings | None = None) -> MatchEngine:
    return MatchEngine.build(records, settings)


add_record = _add
"""Append one record's identity fields to a table as a build does: the seam :mod:`node.delta` adds the rows
of changed records with (and ``MatchEngine._record_keys`` gives their keys)."""
