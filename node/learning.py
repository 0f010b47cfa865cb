"""The comparison levels of many pairs of a node's own records at once, for learning its weights.

Learning (:mod:`node.weights`) needs the levels of tens of thousands of random pairs (for u) and of
every blocked pair of a sample of records (for m), compared exactly as the scorer compares a
candidate with a query (``MatchEngine._score``). A pair at a time in Python that was most of a
large node's index build; here dates of birth, sex, postcodes and NHS numbers are compared for all
the pairs in a few numpy operations, and only names and addresses a pair at a time. The levels are
the ones the per-pair comparisons in :mod:`node.comparisons` give, level for level.

Nothing here outlives a call: at a million records a cache per learning pass held half a million
addresses, and the memory they freed stayed with the process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from operator import itemgetter
from typing import TypeVar

import numpy as np

from core.nicknames import NameVariants
from node import comparisons as cmp
from node.comparisons import NULL
from node.index import BlockingIndex, RecordTable
from node.normalise import address_key

T = TypeVar("T")
_FIRST_8_DIGIT = 10_000_000
"""Dates below this have fewer than eight digits as text (a year before 1000): compared one by one."""


def _gather(column: Sequence[T], rows: np.ndarray) -> list[T]:
    """``[column[i] for i in rows]``, in C."""
    if len(rows) == 0:
        return []
    if len(rows) == 1:
        return [column[int(rows[0])]]
    return list(itemgetter(*rows.tolist())(column))


def pair_levels(table: RecordTable, variants: NameVariants, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Levels (rows = pairs, columns = comparisons.FIELDS) of record ``left[k]`` against ``right[k]``.

    The left record plays the query: its first given name against the right's given names, each of
    its family names against the right's.
    """
    levels = np.empty((len(left), len(cmp.FIELDS)), dtype=np.int64)
    levels[:, 0], levels[:, 1] = _name_levels(table, variants, left, right)
    dob = np.frombuffer(table.dob, dtype=np.int64) if len(table.dob) else np.zeros(0, dtype=np.int64)
    levels[:, 2] = dob_levels(dob[left], dob[right])
    levels[:, 3] = _sex_levels(_gather(table.sex, left), _gather(table.sex, right))
    levels[:, 4] = _postcode_levels(_gather(table.postcode, left), _gather(table.postcode, right))
    addresses = zip(_gather(table.address, left), _gather(table.address, right), strict=True)
    postcodes = levels[:, 4].tolist()
    levels[:, 5] = [
        cmp.address_level(address_key(a), address_key(b), p) for (a, b), p in zip(addresses, postcodes, strict=True)
    ]
    nhs = zip(_gather(table.nhs, left), _gather(table.nhs, right), strict=True)
    levels[:, 6] = [NULL if not a or not b else 0 if a == b else 1 for a, b in nhs]
    return levels


def _name_levels(
    table: RecordTable, variants: NameVariants, left: np.ndarray, right: np.ndarray
) -> tuple[list[int], list[int]]:
    given, family = [], []
    t = table
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        g = t.given[i]
        # Equal names are level 0 whatever else the record holds: blocked pairs are mostly these.
        given.append(NULL if not g else 0 if g == t.given[j] else cmp.given_level(g, t.givens(j), variants))
        f = t.family[i]
        if f and f == t.family[j]:
            family.append(0)
        else:
            family.append(min((cmp.family_level(q, t.families(j)) for q in t.families(i) if q), default=NULL))
    return given, family


def dob_levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``comparisons.dob_level`` of two arrays of YYYYMMDD dates (0 = unknown), pair by pair."""
    out = np.full(len(a), 5, dtype=np.int64)
    ya, ma, da = a // 10000, a // 100 % 100, a % 100
    yb, mb, db = b // 10000, b // 100 % 100, b % 100
    # Assigned from the weakest level up, so that the strongest that holds is the one left.
    out[_within_a_year(a, b)] = 4
    out[(ya == yb) & (ma == mb)] = 3
    out[_one_keying_slip(a, b)] = 2
    out[(ya == yb) & (ma == db) & (da == mb)] = 1
    out[a == b] = 0
    out[(a == 0) | (b == 0)] = NULL
    odd = ((a < _FIRST_8_DIGIT) | (b < _FIRST_8_DIGIT)) & (a != 0) & (b != 0)
    for k in np.flatnonzero(odd).tolist():
        out[k] = cmp.dob_level(int(a[k]), int(b[k]))
    return out


def _one_keying_slip(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One digit apart, or two adjacent digits transposed, as eight-digit text (see comparisons)."""
    powers = 10 ** np.arange(7, -1, -1, dtype=np.int64)
    da, db = (a[:, None] // powers) % 10, (b[:, None] // powers) % 10
    differ = da != db
    count = differ.sum(axis=1)
    swapped = differ[:, :-1] & differ[:, 1:] & (da[:, :-1] == db[:, 1:]) & (da[:, 1:] == db[:, :-1])
    slip: np.ndarray = (count == 1) | ((count == 2) & swapped.any(axis=1))
    return slip


def _within_a_year(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """At most 366 days apart, both real dates (a date that is not one is "differs", as dt.date says)."""
    values, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    days = np.array([_ordinal(int(v)) for v in values.tolist()], dtype=np.int64)[inverse]
    da, db = days[: len(a)], days[len(a) :]
    near: np.ndarray = (da >= 0) & (db >= 0) & (np.abs(da - db) <= 366)
    return near


def _ordinal(value: int) -> int:
    try:
        return dt.date(value // 10000, value // 100 % 100, value % 100).toordinal()
    except ValueError:
        return -1


def _sex_levels(a: list[str], b: list[str]) -> list[int]:
    known = ("M", "F")
    return [NULL if x not in known or y not in known else 0 if x == y else 1 for x, y in zip(a, b, strict=True)]


def _postcode_levels(a: list[str], b: list[str]) -> np.ndarray:
    """``comparisons.postcode_level``: full, sector, a keying slip in the full postcode, district, area."""
    ids: dict[str, int] = {}
    codes_a = np.array([ids.setdefault(p, len(ids)) for p in a], dtype=np.int64)
    codes_b = np.array([ids.setdefault(p, len(ids)) for p in b], dtype=np.int64)
    split = [cmp.split_postcode(code) for code in ids]
    part_ids: dict[str, int] = {"": -1}
    parts = np.array([[part_ids.setdefault(p, len(part_ids)) for p in four] for four in split]).reshape(-1, 4)
    pa, pb = parts[codes_a], parts[codes_b]
    out = np.full(len(a), 5, dtype=np.int64)
    # Least close first, so a closer agreement overwrites: area 4, district 3, sector 1, full 0.
    for part, level in ((3, 4), (2, 3), (1, 1), (0, 0)):
        out[(pa[:, part] != -1) & (pa[:, part] == pb[:, part])] = level
    # A slip (level 2) outranks district and area: tried only for those pairs, once per pair of codes.
    maybe = np.flatnonzero((out >= 3) & (pa[:, 0] != -1) & (pb[:, 0] != -1))
    if len(maybe):
        # Each distinct pair of codes tried once, the pairs numbered in numpy (most random pairs get here:
        # a set and a dict of them, a pair at a time, cost more than the slips).
        pairs, which = np.unique(codes_a[maybe] * len(ids) + codes_b[maybe], return_inverse=True)
        x, y = np.divmod(pairs, len(ids))
        tried = zip(x.tolist(), y.tolist(), strict=True)
        slip = np.array([cmp.postcode_slip(split[p][0], split[q][0]) for p, q in tried], dtype=bool)
        out[maybe[slip[which.reshape(-1)]]] = 2
    empty = np.array([not p for p in ids], dtype=bool)
    out[empty[codes_a] | empty[codes_b]] = NULL
    return out


def blocked_pairs(index: BlockingIndex, rows: Sequence[int], keys: Sequence[list[int]], cap: int) -> np.ndarray:
    """Every pair (i, j), i < j, of a row in ``rows`` and a record sharing one of its ``keys`` (a key
    holding at most ``cap`` records): sorted, without repeats, as an array of two columns.

    What ``index.lookup`` would give for each row's keys, in one search for all of them.
    """
    owners = np.repeat(np.asarray(rows, dtype=np.int64), [len(k) for k in keys])
    flat = np.fromiter((k for ks in keys for k in ks), dtype=np.int64, count=len(owners))
    if len(flat) == 0 or len(index.keys) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    flat = _clamp(flat)
    found = index.keys.searchsorted(np.concatenate([flat, flat + 1]))  # as search_keys makes them
    start, stop = found[: len(flat)], found[len(flat) :]
    runs = (stop > start) & (stop - start <= cap)
    owners, start, stop = owners[runs], start[runs], stop[runs]
    lengths = stop - start
    positions = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    i, j = np.repeat(owners, lengths), index.postings[positions].astype(np.int64)
    differ = i != j
    i, j = i[differ], j[differ]
    n = int(max(i.max(initial=0), j.max(initial=0))) + 1
    pairs = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
    return np.stack([pairs // n, pairs % n], axis=1)


def _clamp(keys: np.ndarray) -> np.ndarray:
    """The largest int64 looked up as the one below it, as the index stores it (see index.key_hash)."""
    top = np.iinfo(np.int64).max
    return np.where(keys == top, top - 1, keys)
