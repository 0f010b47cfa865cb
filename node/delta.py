"""Applying a small change to a node's match index without rebuilding it: a base and an overlay.

A full build of a million records takes about a minute (keys for every record, sorting, learning the
weights). A sync that changed a thousand of them should not wait for that. An :class:`Overlay` answers
as the full build over the changed data would, from the last full build (the *base*) and:

- a *delta*: the changed and new records' rows, appended to a copy of the base's table, with their own
  small blocking indexes (visible and hidden, as the base has);
- *tombstones*: the base rows those records replace, or that were deleted or expired, which no lookup
  returns;
- the base's learnt weights (m and u) with the name and date frequencies and the record count moved to
  the changed data, so term-frequency adjustments and the prior are the full build's.

Each lookup counts a key's postings across base and delta, less the tombstoned ones, and applies the
key's cap to that total, exactly as the full build's index would: a name that the change made common
enough to pass its cap is dropped, and one that fell back under it is kept. The one thing the base
cannot give is a key it dropped at build time that the change brought back under its cap (its
postings were never stored): then :func:`build_overlay` declines and the caller rebuilds in full.

The answers are therefore those of a full build over the same data *with the base's weights*. A full
build would relearn m and u from a fresh sample; that drift is bounded by folding the overlay into a new
full build (:mod:`node.refresh`) once it holds more than a small share of the records, and measured by
``tests/node/test_delta.py``. Shielded and sensitive-only records, retention (expired rows are simply
not in the store) and the home guard need nothing of their own: the overlay's rows share one table and
one row numbering with the base's, so the matcher scores and guards them together as one candidate set.
"""

from __future__ import annotations

import bisect
import copy
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import cast

import numpy as np

from node.index import MAX_POSTINGS_PER_KEY, BlockingIndex, IndexBuilder, RecordTable, SearchKeys
from node.matching import WIDE_POSTINGS, MatchEngine, add_record
from node.records import Record
from node.weights import Model

UNCAPPED = 1 << 30
"""The delta's own index keeps every run: caps apply to base and delta counted together."""


@dataclass(frozen=True)
class _KeyCounts:
    """How many postings each key has lost (tombstoned base rows), as sorted keys and counts."""

    keys: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, keys: Iterable[int]) -> _KeyCounts:
        found = np.unique(np.fromiter(keys, dtype=np.int64), return_counts=True)
        return cls(found[0], found[1].astype(np.int64))

    def at(self, wanted: np.ndarray) -> np.ndarray:
        return _counts_at(self.keys, self.counts, wanted)


def _counts_at(keys: np.ndarray, counts: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``counts`` of each of ``wanted`` in the sorted ``keys`` (0 where absent)."""
    if len(keys) == 0:
        return np.zeros(len(wanted), dtype=np.int64)
    at = keys.searchsorted(wanted)
    inside = np.minimum(at, len(keys) - 1)
    return np.where((at < len(keys)) & (keys[inside] == wanted), counts[inside], 0)


class OverlayIndex:
    """A base index less its tombstoned rows, plus a delta index, looked up as one (``BlockingIndex.lookup``)."""

    def __init__(self, base: BlockingIndex, delta: BlockingIndex, lost: _KeyCounts, tombstones: frozenset[int]):
        self.base, self.delta, self.lost, self.tombstones = base, delta, lost, tombstones

    def _runs(self, wanted: SearchKeys) -> tuple[list[int], list[int], list[int], np.ndarray, np.ndarray] | None:
        """Where each key's run is in the base, its reserve and the delta (bounds as searchsorted gives
        them: the n starts, then the n ends), each key's posting count across them all, and whether the
        base dropped it beyond its reserve. None when no key has a posting anywhere (the usual answer of
        the hidden records' index, and of the wide keys)."""
        n = len(wanted) // 2
        over = self.base.over_cap
        base_at = self.base.keys.searchsorted(wanted)
        reserve_at = over.reserve_keys.searchsorted(wanted)
        delta_at = self.delta.keys.searchsorted(wanted)
        stored = base_at[n:] - base_at[:n]
        added = delta_at[n:] - delta_at[:n]
        reserved = reserve_at[n:] - reserve_at[:n]
        dropped = _counts_at(over.keys, over.lengths, wanted[:n]) if len(over.keys) else np.zeros(n, np.int64)
        if not (stored.any() or added.any() or dropped.any()):
            return None
        # A run the base dropped counts at its full length: it may still be over its cap after the change.
        held = np.where(stored > 0, stored, dropped)
        total = held - self.lost.at(wanted[:n]) + added
        return base_at.tolist(), reserve_at.tolist(), delta_at.tolist(), total, (held > stored) & (reserved == 0)

    def lookup(self, wanted: SearchKeys, max_postings: int = MAX_POSTINGS_PER_KEY) -> set[int]:
        n = len(wanted) // 2
        runs = self._runs(wanted) if n else None
        if runs is None:
            return set()
        base_at, reserve_at, delta_at, total, _ = runs
        found: set[int] = set()
        reserve = self.base.over_cap.reserve_postings
        for k in np.flatnonzero((total > 0) & (total <= max_postings)).tolist():
            for bounds, postings in (
                (base_at, self.base.postings),
                (reserve_at, reserve),
                (delta_at, self.delta.postings),
            ):
                a, b = bounds[k], bounds[n + k]
                if a != b:
                    found.update(postings[a:b].tolist())
        return found - self.tombstones if self.tombstones else found

    def resurrects(self, keys: np.ndarray, cap: int) -> bool:
        """Would any of ``keys``, dropped by the base beyond its reserve, be within ``cap`` now? (Its
        postings were never kept, so this overlay cannot answer as a full build would.)"""
        runs = self._runs(np.concatenate([keys, keys + 1])) if len(keys) else None
        if runs is None:
            return False
        *_, total, unkept = runs
        return bool((unkept & (total <= cap)).any())

    def __len__(self) -> int:
        return len(self.base) + len(self.delta)


class Overlay(MatchEngine):
    """A base engine with a change applied (see the module's docstring); answers as ``MatchEngine`` does."""

    base: MatchEngine
    records: int

    @property
    def size(self) -> int:
        return self.records


@dataclass(frozen=True)
class OverlayBounds:
    """When an overlay is worth it rather than a full build."""

    fold_share: float = 0.02
    """Past this share of the base's records changed, fold into a new full build in the background."""
    fold_records: int = 20_000
    """...or past this many, whichever is larger."""
    max_share: float = 0.25
    """Past this share, build in full now: an overlay that large costs nearly a full build anyway."""

    def fold_due(self, changed: int, base: int) -> bool:
        return changed > max(self.fold_records, self.fold_share * base)

    def too_large(self, changed: int, base: int) -> bool:
        return changed > max(self.fold_records, self.max_share * base)


def base_of(matcher: object) -> MatchEngine | None:
    """The full build under ``matcher`` (itself, or an overlay's base); None for another kind of matcher."""
    if isinstance(matcher, Overlay):
        return matcher.base
    return matcher if isinstance(matcher, MatchEngine) else None


def sorted_ids(table: RecordTable) -> bool:
    """Are the table's record_ids strictly ascending (as a store's ``identities`` gives them)?"""
    ids = table.record_id
    return all(a < b for a, b in itertools.pairwise(ids))


def build_overlay(base: MatchEngine, changed: Sequence[str], records: Iterable[Record]) -> Overlay | None:
    """``base`` with the records ``changed`` replaced by ``records`` (those of them the store still holds).

    ``base``'s table must be in record_id order (a build from ``RecordStore.identities``). None when the
    result could differ from a full build's (see the module's docstring): build in full instead.
    """
    t = base.table
    tombstones = set()
    for record_id in changed:
        at = bisect.bisect_left(t.record_id, record_id)
        if at < len(t.record_id) and t.record_id[at] == record_id:
            tombstones.add(at)
    hidden_base = set(base.hidden_rows.tolist())
    # Every key the change touches, with the cap its lookups use: a record's narrow and wide keys.
    narrow_keys: set[int] = set()
    wide_keys: set[int] = set()
    lost: dict[bool, list[int]] = {False: [], True: []}
    for row in tombstones:
        narrow, wide = base._record_keys(t, row)
        lost[row in hidden_base] += narrow + wide
        narrow_keys.update(narrow)
        wide_keys.update(wide)
    table = _copy(t)
    builders = {False: IndexBuilder(), True: IndexBuilder()}
    added: dict[bool, list[int]] = {False: [], True: []}
    for record in records:
        i = len(table)
        add_record(table, record)
        narrow, wide = base._record_keys(table, i)
        builders[record.answered_as_absent].add(i, narrow, wide)
        added[record.answered_as_absent].append(i)
        narrow_keys.update(narrow)
        wide_keys.update(wide)
    tomb = frozenset(tombstones)
    index, hidden_index = (
        OverlayIndex(b, builders[h].build(UNCAPPED, UNCAPPED), _KeyCounts.of(lost[h]), tomb)
        for h, b in ((False, base.index), (True, base.hidden_index))
    )
    for overlay_index in (index, hidden_index):
        for touched, cap in ((narrow_keys, MAX_POSTINGS_PER_KEY), (wide_keys, WIDE_POSTINGS)):
            if overlay_index.resurrects(np.fromiter(touched, dtype=np.int64, count=len(touched)), cap):
                return None
    # The engine only ever calls its indexes' lookup, which an OverlayIndex answers as a BlockingIndex would.
    engine = Overlay(
        table,
        cast(BlockingIndex, index),
        _moved_model(base.model, t, [r for r in tombstones if r not in hidden_base], table, added[False]),
        base.settings,
        base.variants,
        cast(BlockingIndex, hidden_index),
        sorted([r for r in hidden_base if r not in tomb] + added[True]),
    )
    engine.base = base
    engine.records = len(t) - len(tomb) + len(added[False]) + len(added[True])
    return engine


def _copy(table: RecordTable) -> RecordTable:
    """A table the delta can append to while the base (still serving) reads its own: columns copied
    (references to the same interned strings, a few tens of milliseconds at a million records)."""
    # Every column (lists, arrays, dicts) as a shallow copy; share()'s dict too, so it never writes the base's.
    return RecordTable(**{f.name: copy.copy(getattr(table, f.name)) for f in fields(RecordTable)})


def _moved_model(base: Model, old: RecordTable, lost: Iterable[int], new: RecordTable, added: Iterable[int]) -> Model:
    """The base's weights, with the visible records' name and date counts moved from ``lost`` to ``added``."""
    given, family, dob = Counter(base.given_counts), Counter(base.family_counts), Counter(base.dob_counts)
    records = base.records
    for row in lost:
        given[old.given[row]] -= 1
        family["".join(old.family[row])] -= 1
        dob[old.dob[row]] -= 1
        records -= 1
    for row in added:
        given[new.given[row]] += 1
        family["".join(new.family[row])] += 1
        dob[new.dob[row]] += 1
        records += 1
    return Model(
        m={k: list(v) for k, v in base.m.items()},
        u={k: list(v) for k, v in base.u.items()},
        given_counts={k: v for k, v in given.items() if v > 0},
        family_counts={k: v for k, v in family.items() if v > 0},
        dob_counts={k: v for k, v in dob.items() if v > 0},
        records=records,
        expected_matches=base.expected_matches,
    )
