"""EM's fit on a node whose duplicates are known: m close to the truth, matches close to the true count.

The records are made here, not by ``signpost synth``, so that what a duplicate keeps and what it
changes is set by the test: the true m of each comparison is then measured on the true pairs
themselves (``pair_levels``), and set against what the engine learnt without being told. Twins are
in it on purpose (the same date of birth, family name and home, another given name and NHS number):
they are what made the per-rule fit count non-matches as matches before their home was left out.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from node import em
from node.comparisons import FIELDS
from node.em import Session, run_em
from node.learning import pair_levels
from node.matching import MatchEngine, MatchSettings
from node.records import Record
from node.weights import Model

PEOPLE = 6000
DUPLICATED = 0.1
"""The share of people held twice: about 600 true pairs among some 6,600 records."""
TWIN_HOUSEHOLDS = 300


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(syllables)).capitalize()


def _slip(rng: random.Random, name: str) -> str:
    """One letter changed (never the first: the phonetic and initial keys still meet)."""
    k = rng.randrange(1, len(name))
    return name[:k] + rng.choice([c for c in string.ascii_lowercase if c != name[k].lower()]) + name[k + 1 :]


def _population() -> tuple[list[Record], list[tuple[str, str]]]:
    """Records, and the record ids of every true duplicate pair."""
    rng = random.Random(13)
    givens = sorted({_word(rng, 3) for _ in range(900)})
    families = sorted({_word(rng, 3) for _ in range(3000)})
    streets = [f"{_word(rng, 2)} Road" for _ in range(400)]

    def postcode() -> str:
        unit = rng.choice("ABDEFGHJ") + rng.choice("LNPQRSTU")
        return f"{rng.choice(['LS', 'BD', 'HX', 'WF'])}{rng.randint(1, 29)} {rng.randint(1, 9)}{unit}"

    def person(family: str, dob: str, home: tuple[str, str]) -> dict[str, str]:
        nhs = "".join(rng.choice(string.digits) for _ in range(10)) if rng.random() < 0.6 else ""
        return dict(
            given_name=rng.choice(givens), family_name=family, date_of_birth=dob,
            sex=rng.choice("MF"), postcode=home[0], address=home[1], nhs_number=nhs,
        )  # fmt: skip

    def home() -> tuple[str, str]:
        return postcode(), f"{rng.randint(1, 200)} {rng.choice(streets)}"

    def dob() -> str:
        return f"{rng.randint(2008, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"

    people = [person(rng.choice(families), dob(), home()) for _ in range(PEOPLE)]
    for _ in range(TWIN_HOUSEHOLDS):
        first = people[rng.randrange(PEOPLE)]
        people.append(person(first["family_name"], first["date_of_birth"], (first["postcode"], first["address"])))
    rows, pairs = [], []
    for n, p in enumerate(people):
        rows.append(Record(record_id=f"P{n}", **p))
        if rng.random() < DUPLICATED:
            rows.append(Record(record_id=f"P{n}b", **_changed(rng, p, home, givens)))
            pairs.append((f"P{n}", f"P{n}b"))
    rng.shuffle(rows)
    return rows, pairs


def _changed(
    rng: random.Random, p: dict[str, str], home: Callable[[], tuple[str, str]], givens: list[str]
) -> dict[str, str]:
    """The same child as another service keyed them: names slipped or replaced, the date with its day and
    month swapped, moved house, the NHS number missing."""
    q = dict(p)
    roll = rng.random()
    if roll < 0.15:
        q["given_name"] = _slip(rng, p["given_name"]) if roll < 0.1 else rng.choice(givens)
    if rng.random() < 0.1:
        q["family_name"] = _slip(rng, p["family_name"])
    year, month, day = p["date_of_birth"].split("-")
    if rng.random() < 0.08 and int(day) <= 12 and day != month:
        q["date_of_birth"] = f"{year}-{day}-{month}"
    if rng.random() < 0.2:
        q["postcode"], q["address"] = home()
    if rng.random() < 0.3:
        q["nhs_number"] = ""
    return q


@dataclass
class Node:
    engine: MatchEngine
    truth: np.ndarray
    """Table rows of every true duplicate pair."""
    pairs: np.ndarray
    levels: np.ndarray
    sessions: list[Session]


@pytest.fixture(scope="module")
def node() -> Node:
    """The node as its build learns it: u from random pairs, m by EM over every record's blocked pairs."""
    records, pairs = _population()
    engine = MatchEngine.build(records, MatchSettings())
    assert engine.size < MatchSettings().em_sample_records  # so the build's EM saw every record, as here
    row = {rid: i for i, rid in enumerate(engine.table.record_id)}
    truth = np.array([(row[a], row[b]) for a, b in pairs], dtype=np.int64)
    blocked, sessions = engine._learning_pairs(list(range(engine.size)))
    levels = pair_levels(engine.table, engine.variants, blocked[:, 0], blocked[:, 1])
    return Node(engine, truth, blocked, levels, sessions)


def _refit(node: Node, sessions: list[Session]) -> Model:
    """m fitted again from the defaults over the node's blocked pairs, u as the node learnt it."""
    model = Model(u={k: list(v) for k, v in node.engine.model.u.items()})
    run_em(node.levels, model, sessions)
    return model


def _before(node: Node) -> Model:
    """The engine before sessions per rule: one session over every blocked pair, nothing left out."""
    return _refit(node, [Session(np.arange(len(node.levels)), frozenset())])


def _true_pairs_blocked(pairs: np.ndarray, truth: np.ndarray) -> int:
    blocked = {tuple(p) for p in pairs.tolist()}
    return sum((min(a, b), max(a, b)) in blocked for a, b in truth.tolist())


def _true_m(node: Node) -> dict[str, np.ndarray]:
    levels = pair_levels(node.engine.table, node.engine.variants, node.truth[:, 0], node.truth[:, 1])
    out = {}
    for index, f in enumerate(FIELDS):
        known = levels[:, index][levels[:, index] >= 0]
        out[f.name] = np.bincount(known, minlength=len(f.levels)) / len(known)
    return out


def test_expected_matches_are_about_the_true_pairs(node):
    true_blocked = _true_pairs_blocked(node.pairs, node.truth)
    assert true_blocked > 500
    assert abs(node.engine.model.expected_matches - true_blocked) < 0.1 * true_blocked
    assert _refit(node, node.sessions).expected_matches == node.engine.model.expected_matches


def test_one_fit_over_every_blocked_pair_counts_far_too_many(node):
    """The defect this fixes: nearly every blocked pair counted a match (as at the 200,000-record
    synth node, 122,020 of 122,303)."""
    assert _before(node).expected_matches > 0.95 * len(node.pairs) > 2 * _true_pairs_blocked(node.pairs, node.truth)


def test_learnt_m_is_close_to_the_true_m(node, monkeypatch):
    """Before the blend with the defaults (no pseudo-pairs), each level's m near the truth."""
    monkeypatch.setattr(em, "PSEUDO_PAIRS", 0.0)
    model, true_m = _refit(node, node.sessions), _true_m(node)
    # The home is learnt only from rules keyed on the given name or the NHS number, where a duplicate
    # that moved and has no NHS number agrees on nothing left in: counted a non-match, so m of the
    # same home comes out a little high (0.87 against 0.83 here). Elsewhere within 0.03: a few twins
    # without NHS numbers still count as matches, so "given name differs" comes out 0.075 against 0.051.
    loose = {"postcode": 0.06, "address": 0.06}
    for f in FIELDS:
        assert np.abs(np.array(model.m[f.name]) - true_m[f.name]).max() < loose.get(f.name, 0.03), f.name


def test_before_the_fix_m_was_far_from_the_true_m(node, monkeypatch):
    monkeypatch.setattr(em, "PSEUDO_PAIRS", 0.0)
    assert abs(_before(node).m["given name"][0] - _true_m(node)["given name"][0]) > 0.3


def test_a_comparison_every_rule_blocked_on_keeps_its_defaults():
    model = Model()
    levels = np.zeros((50, len(FIELDS)), dtype=np.int64)
    every = frozenset(f.name for f in FIELDS) - {"sex"}
    run_em(levels, model, [Session(np.arange(50), every)])
    assert model.m["given name"] == Model().m["given name"]
    assert model.m["sex"] != Model().m["sex"]
