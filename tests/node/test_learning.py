"""Learning's pair levels (all pairs at once) and the query's close-name shortcut, against one pair at a time."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.identifiers import postcode_parts
from node import comparisons as cmp
from node.index import BlockingIndex, search_keys
from node.learning import blocked_pairs, dob_levels, pair_levels
from node.matching import LEARNING_RULES, MatchEngine, MatchSettings, blocking_keys
from node.normalise import address_key
from node.records import Record

DATES = st.one_of(
    st.just(0),
    st.integers(min_value=1, max_value=99_999_999),  # malformed and short ones too: "0001-01-01" is 10101
    st.dates().map(lambda d: d.year * 10000 + d.month * 100 + d.day),
    st.sampled_from([20140309, 20140903, 20140390, 20141309, 20140230, 20410309, 20130309, 20150309, 10101]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(DATES, DATES), min_size=1, max_size=40))
def test_dates_compare_as_dob_level_does(pairs):
    a, b = (np.array(side, dtype=np.int64) for side in zip(*pairs, strict=True))
    assert dob_levels(a, b).tolist() == [cmp.dob_level(x, y) for x, y in pairs]


def _one_pair(t, variants, i: int, j: int) -> tuple[int, ...]:
    """The levels of record i (as the query) against record j, one comparison at a time."""
    return (
        cmp.given_level(t.given[i], t.givens(j), variants) if t.given[i] else cmp.NULL,
        min((cmp.family_level(f, t.families(j)) for f in t.families(i) if f), default=cmp.NULL),
        cmp.dob_level(t.dob[i], t.dob[j]),
        cmp.sex_level(t.sex[i], t.sex[j]),
        cmp.postcode_level(t.postcode[i], t.postcode[j]),
        cmp.address_level(
            address_key(t.address[i]),
            address_key(t.address[j]),
            cmp.postcode_level(t.postcode[i], t.postcode[j]),
        ),
        cmp.nhs_level(t.nhs[i], t.nhs[j]),
    )


GIVEN = ["Oliver", "Olly", "Olivia", "Oliver-James", "Baby", "Girl A", "Ned", "Nec", "Jon", "John", "Jaxson", ""]
FAMILY = ["Smith", "Smyth", "Smith-Jones", "Jones", "O'Neill", "Oneil", "Li", "Lee", "Unknown"]
DOB = ["2014-03-09", "2014-09-03", "2014-03-19", "2013-03-09", "2015-01-01", ""]
POSTCODE = ["LS6 2AB", "LS6 2AD", "LS2 6AB", "LS6 2BA", "LS6 3XY", "LS7 1AA", "M1 1AA", "NOTAPOSTCODE", ""]
ADDRESS = ["12 Oak Road", "12 Oak Rd Leeds", "12 Oakroad", "3 Elm Stret", "3 Elm Street", "Flat 2 The Court", ""]


@pytest.fixture(scope="module")
def engine() -> MatchEngine:
    rng = random.Random(5)
    records = [
        Record(
            record_id=f"R{n}",
            given_name=rng.choice(GIVEN),
            middle_names=rng.choice(["", "", "Mary", "J"]),
            family_name=rng.choice(FAMILY),
            other_names=tuple(rng.sample(["Amelia Jones", "Smith", "Olly Smyth"], rng.randint(0, 1))),
            date_of_birth=rng.choice(DOB),
            sex=rng.choice(["M", "F", "U", ""]),
            postcode=rng.choice(POSTCODE),
            address=rng.choice(ADDRESS),
            nhs_number=rng.choice(["", "9434765919", "9434765870"]),
        )
        for n in range(600)
    ]
    return MatchEngine.build(records, MatchSettings(learn=False))


def test_pairs_compare_as_one_at_a_time(engine):
    rng = np.random.default_rng(3)
    left, right = rng.integers(0, engine.size, 5000), rng.integers(0, engine.size, 5000)
    expected = [_one_pair(engine.table, engine.variants, i, j) for i, j in zip(left, right, strict=True)]
    assert [tuple(row) for row in pair_levels(engine.table, engine.variants, left, right).tolist()] == expected


def test_no_pairs_give_no_levels(engine):
    assert pair_levels(engine.table, engine.variants, np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0, 7)


def _dated_keys(t, i: int) -> list[int]:
    """A record's keys without the date-free ones: what EM learns from."""
    dob, sector = t.dob[i], postcode_parts(t.postcode[i])[1]
    return blocking_keys(t.givens(i), t.families(i), (dob,), sector, t.nhs[i], (dob // 10000,), wide=False)


def test_learning_rules_split_the_dated_keys(engine):
    """Every dated key in exactly one rule's session (as often as the record has it), no other key."""
    for i in range(engine.size):
        split = [k for rule in LEARNING_RULES for k in rule.keys(engine.table, i)]
        assert sorted(split) == sorted(_dated_keys(engine.table, i))


def test_learning_pairs_are_each_rules_blocked_pairs(engine):
    rows = list(range(0, engine.size, 3))
    pairs, sessions = engine._learning_pairs(rows)
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)
    for rule, session in zip(LEARNING_RULES, sessions, strict=True):
        own = blocked_pairs(engine.index, rows, [rule.keys(engine.table, i) for i in rows], 400)
        assert pairs[session.rows].tolist() == own.tolist()
        assert session.left_out == rule.left_out
    assert len(pairs) == len(blocked_pairs(engine.index, rows, [_dated_keys(engine.table, i) for i in rows], 400))


def test_blocked_pairs_are_every_lookups_pairs(engine):
    rows = list(range(0, engine.size, 3))
    keys = [_dated_keys(engine.table, i) for i in rows]
    expected = sorted(
        {(min(i, j), max(i, j)) for i, k in zip(rows, keys, strict=True) for j in engine.index.lookup(search_keys(k))}
        - {(i, i) for i in rows}
    )
    assert [tuple(p) for p in blocked_pairs(engine.index, rows, keys, 400).tolist()] == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 3), st.integers(0, 30)), max_size=80),
    st.lists(st.lists(st.integers(-4, 4), max_size=5), max_size=8),
    st.integers(1, 6),
)
def test_blocked_pairs_keep_within_the_cap(postings, keys, cap):
    index = BlockingIndex.build(postings, cap)
    rows = list(range(len(keys)))
    by_key: dict[int, list[int]] = defaultdict(list)
    for key, record in postings:
        by_key[key].append(record)
    expected = {
        (min(i, j), max(i, j))
        for i, ks in enumerate(keys)
        for k in ks
        if len(by_key[k]) <= cap
        for j in by_key[k]
        if i != j
    }
    assert [tuple(p) for p in blocked_pairs(index, rows, keys, cap).tolist()] == sorted(expected)


NAMES = ["Oliver", "Olly", "Olivia", "Oliver-James", "Baby", "Girl A", "Ned", "Nec", "Ted", "Jon", "John", "Ja Xson"]
NAMES += ["Jaxson", "Smith", "Smyth", "Smith-Jones", "Jones", "O'Neill", "Oneil", "Li", "Lee", "White", "Jasmine", "J"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(NAMES),
    st.sampled_from(["", *NAMES]),
    st.sampled_from(NAMES),
    st.lists(st.sampled_from(NAMES), max_size=2).map(
        lambda n: tuple(" ".join(n[i : i + 2]) for i in range(0, len(n), 2))
    ),
)
def test_close_names_never_drop_a_candidate_whose_names_are_evidence(engine, given_name, middle, family, others):
    """The query-time shortcut (_CloseNames) is exact: every candidate it drops has no close name in any reading."""
    from core.subject import Subject
    from node import bands
    from node.matching import _CloseNames, _Prepared

    q = _Prepared.of(
        Subject(
            given_name=given_name,
            middle_names=middle,
            family_name=family,
            other_names=others,
            date_of_birth="2014-03-09",
        )
    )
    close = _CloseNames(q, engine.variants)
    for i in range(engine.size):
        given, family_level, _ = engine._name_levels(q, i)
        if bands.close(given) or bands.close(family_level):
            assert close.any(engine.table.givens(i), engine.table.families(i))


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(GIVEN),
    st.sampled_from(["", "Mary"]),
    st.sampled_from(FAMILY),
    st.sampled_from(DOB),
    st.sampled_from(["M", "F", ""]),
    st.sampled_from(POSTCODE),
    st.sampled_from(ADDRESS),
    st.sampled_from(["", "9434765919"]),
)
def test_the_scorers_shortcuts_drop_only_what_the_band_rules_would(
    engine, given_name, middle, family, dob, sex, postcode, address, nhs
):
    """_score's shortcuts (the close-name check, the date and home read before the names) are exact:
    against every record, it keeps what the plain path — every level, then has_evidence, then the
    score — keeps, with the same levels."""
    import math

    from core.subject import Subject
    from node import bands
    from node.matching import _CloseNames, _Prepared

    subject = Subject(
        given_name=given_name,
        middle_names=middle,
        family_name=family,
        date_of_birth=dob,
        sex=sex,
        postcode=postcode,
        address=address,
        nhs_number=nhs,
    )
    q = _Prepared.of(subject)
    close, names = _CloseNames(q, engine.variants), {}
    t, model = engine.table, engine.model
    for i in range(engine.size):
        given_level, family_level, swapped = engine._name_levels(q, i)
        levels = (
            given_level,
            family_level,
            cmp.dob_level(q.dob, t.dob[i]),
            cmp.sex_level(q.sex, t.sex[i]),
            cmp.postcode_level(q.postcode, t.postcode[i]),
            cmp.address_level(q.address, address_key(t.address[i]), cmp.postcode_level(q.postcode, t.postcode[i]))
            if q.address
            else cmp.NULL,
            cmp.nhs_level(q.nhs, t.nhs[i]),
        )
        scored = engine._score(q, i, names, close)
        if not bands.has_evidence(levels):
            assert scored is None
            continue
        total = engine._log2_prior + sum(model.weight(f, lv) for f, lv in enumerate(levels))
        total += engine._tf_adjustment(q, levels, i, swapped)
        probability = 1.0 / (1.0 + 2.0**-total) if total > -1000 else 0.0
        if probability < engine.settings.possible_threshold and not bands.strong_partial(levels):
            assert scored is None
        else:
            assert scored is not None and (scored.levels, scored.swapped) == (levels, swapped)
            assert math.isclose(scored.probability, probability, rel_tol=0, abs_tol=0)
