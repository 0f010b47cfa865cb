"""The blocking index against a plain dict: same records for any keys, including the edges of int64."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from node.index import MAX_POSTINGS_PER_KEY, BlockingIndex, key_hash, search_keys

INT64 = st.integers(min_value=np.iinfo(np.int64).min, max_value=np.iinfo(np.int64).max - 1)
# Few distinct keys, so that runs of equal keys (and keys one apart) are common.
KEYS = st.one_of(st.integers(min_value=-3, max_value=3), INT64, st.just(np.iinfo(np.int64).max - 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(KEYS, st.integers(min_value=0, max_value=50)), max_size=60), st.lists(KEYS, max_size=12))
def test_lookup_finds_exactly_what_a_dict_would(pairs, wanted):
    postings: dict[int, set[int]] = defaultdict(set)
    runs: dict[int, int] = defaultdict(int)
    for key, record in pairs:
        postings[key].add(record)
        runs[key] += 1
    expected = set().union(*(postings[k] for k in wanted if 0 < runs[k] <= MAX_POSTINGS_PER_KEY))
    assert BlockingIndex.build(pairs).lookup(search_keys(wanted)) == expected


def test_a_key_shared_by_too_many_records_finds_none_of_them():
    pairs = [(7, i) for i in range(MAX_POSTINGS_PER_KEY + 1)] + [(8, 1)]
    index = BlockingIndex.build(pairs)
    assert index.lookup(search_keys([7])) == set()
    assert index.lookup(search_keys([7, 8])) == {1}


def test_key_hash_never_gives_the_largest_int64_so_key_plus_one_cannot_overflow(monkeypatch):
    import node.index

    top = int(np.iinfo(np.int64).max)
    monkeypatch.setattr(node.index, "hash", lambda parts: top, raising=False)
    assert key_hash("any", 1) == top - 1
    monkeypatch.setattr(node.index, "hash", lambda parts: top - 5, raising=False)
    assert key_hash("any", 1) == top - 5
