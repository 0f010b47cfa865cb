"""A compact in-memory table of a node's records and its blocking index.

Built to hold a million records in a few hundred megabytes: records are kept
as columns of interned strings and integers rather than one object each, and
the blocking index is two numpy arrays (64-bit key hashes, sorted, and the
record numbers they point to) searched by bisection. Contacts are not held
here at all; the service reads them from the store for the few records that
match. A query looks up a handful of keys and never scans the table.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

MAX_POSTINGS_PER_KEY = 400
"""A key shared by more records than this says too little to be worth scoring them all."""
RESERVE_POSTINGS = 64
"""A dropped run at most this much over its cap is kept aside (``OverCap``): a change that takes a few
records from a name brings it back under its cap, and an overlay (:mod:`node.delta`) then needs its
postings, as a full build would have them."""


@dataclass
class RecordTable:
    """Columns of normalised identity fields, one row per record."""

    record_id: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)
    family: list[tuple[str, ...]] = field(default_factory=list)
    dob: array = field(default_factory=lambda: array("l"))  # type: ignore[type-arg]
    sex: list[str] = field(default_factory=list)
    postcode: list[str] = field(default_factory=list)
    address: list[str] = field(default_factory=list)
    nhs: list[str] = field(default_factory=list)
    shielded: bytearray = field(default_factory=bytearray)
    other_given: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Middle names and alternative given names, only for the records that have any."""
    other_family: dict[int, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    """Previous or alternative family names, only for the records that have any."""
    _shared: dict[object, object] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.record_id)

    def share(self, value: object) -> object:
        """One object for equal values: thousands of records named 'smith' point at one tuple."""
        if isinstance(value, str):
            return sys.intern(value)
        return self._shared.setdefault(value, value)

    def givens(self, i: int) -> tuple[str, ...]:
        return (self.given[i], *self.other_given.get(i, ()))

    def families(self, i: int) -> tuple[tuple[str, ...], ...]:
        return (self.family[i], *self.other_family.get(i, ()))


class BlockingIndex:
    """Key hash -> record numbers, as sorted numpy arrays.

    A key's postings are kept only while it holds at most its cap: a longer run is never looked up
    (``lookup`` skips it), so storing it would only cost memory and sort time. Build with the largest
    cap any lookup of that key will use. What was dropped is kept in ``over_cap`` (see ``OverCap``).
    """

    def __init__(self, keys: array, postings: array, caps: np.ndarray | int = MAX_POSTINGS_PER_KEY) -> None:  # type: ignore[type-arg]
        key_array = np.frombuffer(keys, dtype=np.int64) if len(keys) else np.zeros(0, dtype=np.int64)
        post_array = np.frombuffer(postings, dtype=np.int32) if len(postings) else np.zeros(0, dtype=np.int32)
        self.keys, self.postings, self.over_cap = _sorted_within_caps(key_array, post_array, caps)

    @classmethod
    def build(cls, pairs: Iterable[tuple[int, int]], max_postings: int = MAX_POSTINGS_PER_KEY) -> BlockingIndex:
        keys, postings = array("q"), array("i")
        for key, record in pairs:
            keys.append(key)
            postings.append(record)
        return cls(keys, postings, max_postings)

    def lookup(self, wanted: SearchKeys, max_postings: int = MAX_POSTINGS_PER_KEY) -> set[int]:
        """Record numbers under any of the keys (see search_keys) holding at most ``max_postings`` each."""
        n = len(wanted) // 2
        if n == 0 or len(self.keys) == 0:
            return set()
        # One search finds both ends of every key's run: where k starts, and where k + 1 would (the
        # array method, not np.searchsorted, whose dispatch cost more than the search itself).
        found_at = self.keys.searchsorted(wanted)
        if not (found_at[:n] != found_at[n:]).any():
            return set()  # one vector test: the usual answer of a small index (the hidden records')
        bounds = found_at.tolist()
        found: set[int] = set()
        for a, b in zip(bounds[:n], bounds[n:], strict=False):
            if a != b and b - a <= max_postings:
                found.update(self.postings[a:b].tolist())
        return found

    def __len__(self) -> int:
        """How many (key, record) postings the index holds."""
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.postings.nbytes)


class IndexBuilder:
    """A build's postings, gathered a record at a time: its narrow keys and its wide keys (caps differ)."""

    def __init__(self) -> None:
        self._keys = array("q")
        self._counts = array("i")
        """Per record added: how many narrow keys, then how many wide ones (in that order in _keys)."""
        self.records = array("i")
        """The record numbers added, in order (a record with no key at all too): an array, not a list,
        so that a million int objects do not outlive the build scattered among the table's."""

    def add(self, record: int, narrow: list[int], wide: list[int]) -> None:
        self.records.append(record)
        self._keys.extend(narrow)
        self._keys.extend(wide)
        self._counts.append(len(narrow))
        self._counts.append(len(wide))

    def build(self, narrow_cap: int, wide_cap: int) -> BlockingIndex:
        """The index, each run of postings kept only while within the cap its lookups use."""
        counts = np.frombuffer(self._counts, dtype=np.int32) if len(self._counts) else np.zeros(0, dtype=np.int32)
        rows = np.frombuffer(self.records, dtype=np.int32) if len(self.records) else np.zeros(0, dtype=np.int32)
        per_record = counts[0::2] + counts[1::2]
        caps = np.repeat(np.tile(np.array([narrow_cap, wide_cap], dtype=np.int32), len(rows)), counts)
        index = BlockingIndex(array("q"), array("i"))
        index.keys, index.postings, index.over_cap = _sorted_within_caps(
            _int64(self._keys), np.repeat(rows, per_record), caps
        )
        return index


def _int64(keys: array) -> np.ndarray:  # type: ignore[type-arg]
    return np.frombuffer(keys, dtype=np.int64) if len(keys) else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class OverCap:
    """The runs an index dropped for being longer than their cap: never looked up, but an overlay of
    changed records (:mod:`node.delta`) must know how long each was, and to bring back one that the
    change took under its cap, its postings (kept here while within RESERVE_POSTINGS of the cap)."""

    keys: np.ndarray
    """Each dropped run's key, sorted."""
    lengths: np.ndarray
    reserve_keys: np.ndarray
    """The postings of the runs at most RESERVE_POSTINGS over their cap, by key (sorted), as in the index."""
    reserve_postings: np.ndarray


_EMPTY = np.zeros(0, dtype=np.int64)
NO_OVER_CAP = OverCap(_EMPTY, _EMPTY, _EMPTY, np.zeros(0, dtype=np.int32))


def _sorted_within_caps(
    keys: np.ndarray, postings: np.ndarray, caps: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray, OverCap]:
    """Sort by key (stably), clamp the largest int64 (see key_hash), and drop every run longer than its cap.

    ``caps``: one cap for all, or one per posting (wide and narrow keys share one array but not one
    cap); a run's cap is the largest of its postings' (they differ only when two keys' hashes collide).
    """
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    if len(keys) and keys[-1] == _TOP:
        keys[keys == _TOP] = _TOP - 1  # the largest values, so the array stays sorted
    postings = postings[order]
    if len(keys) == 0:
        return keys, postings, NO_OVER_CAP
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    lengths = np.diff(np.append(starts, len(keys)))
    run_cap = np.maximum.reduceat(caps[order], starts) if isinstance(caps, np.ndarray) else caps
    del order
    kept_runs = lengths <= run_cap
    if kept_runs.all():
        return keys, postings, NO_OVER_CAP
    dropped = ~kept_runs
    reserved = np.repeat(dropped & (lengths <= run_cap + RESERVE_POSTINGS), lengths)
    over_cap = OverCap(keys[starts[dropped]], lengths[dropped], keys[reserved], postings[reserved])
    keep = np.repeat(kept_runs, lengths)
    return keys[keep], postings[keep], over_cap


SearchKeys = np.ndarray
"""Keys to look up, as search_keys makes them."""
_TOP = np.iinfo(np.int64).max


def search_keys(key_hashes: list[int]) -> SearchKeys:
    """The keys then each key + 1, as int64: made once per query, looked up in every index.

    The largest int64 is looked up as the one below it, as the index stores it (see key_hash).
    """
    keys = np.array(key_hashes, dtype=np.int64)
    keys[keys == _TOP] = _TOP - 1
    return np.concatenate([keys, keys + 1])


def key_hash(*parts: object) -> int:
    """A 64-bit key for the index; Python's hash is per-process, which is all an in-memory index needs.

    Never the largest int64, so that key + 1 (search_keys) cannot overflow: that one value shares the
    key below it, which at worst puts a few more candidates in front of the scorer.
    """
    h = hash(parts)
    return h if h != _TOP else _TOP - 1
