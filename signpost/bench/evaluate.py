"""Record-level accuracy of the node engine on a development data set, in-process (no federation).

Fast enough to tune on: one :class:`node.matching.MatchEngine` per authority, every query through
every engine, scored by record against the data set's truth. Reports ``match`` precision, recall and
F1; recall of ``match`` or ``possible``; wrong records matched, split into the searched child's
household (sibling or twin — for FEBRL the proxy of :mod:`signpost.bench.datasets.febrl`) and
anyone else; blocking recall (pairs completeness: the true record among the engine's candidates);
and milliseconds per query. A query the broker would refuse with 400 reaches no engine: its
expected records are misses, counted as such.

It must never print a row's or a query's values: only ids, counts and rates.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from core.subject import Subject
from node import matching
from node.matching import MatchEngine, build_matcher
from signpost.bench.common import percentile
from signpost.bench.datasets import Dataset
from signpost.bench.datasets.base import Key, Query


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, found: set[Key], expected: frozenset[Key]) -> None:
        self.tp += len(found & expected)
        self.fp += len(found - expected)
        self.fn += len(expected - found)

    def summary(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)} | {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass
class Score:
    """Everything counted over one run of a data set's queries, by whichever linker answered them."""

    match: Tally = field(default_factory=Tally)
    any_band: Tally = field(default_factory=Tally)
    any_band_searchable: Tally = field(default_factory=Tally)
    """``match`` or ``possible`` over the queries the linker saw (for Signpost, those the broker accepts)."""
    any_band_broker_accepted: Tally = field(default_factory=Tally)
    """``match`` or ``possible`` over the queries the broker accepts, whichever linker answered: Signpost
    and Splink on the very same queries (Splink also sees the ones the broker refuses)."""
    match_with_twin_profile: Tally = field(default_factory=Tally)
    """``match``, counting a ``possible`` that differs from its record only by given name as found."""
    wrong: Counter[str] = field(default_factory=Counter)
    blocked: int = 0
    expected: int = 0
    refused: int = 0
    ms: list[float] = field(default_factory=list)
    hidden: frozenset[Key] = frozenset()
    outcomes: dict[str, dict[Key, str]] = field(default_factory=dict)
    """Per query id, the band each expected record came back in ('' for none): ids only, for ``--misses``."""

    def add(
        self,
        data: Dataset,
        query: Query,
        bands: dict[Key, str],
        candidates: set[Key] | None,
        twin_profile: Callable[[Query, Key], bool],
        accepted: bool | None = None,
    ) -> None:
        """Count one query's answer; ``accepted``: did the linker see it (by default, did the broker accept it)."""
        accepted = query.subject is not None if accepted is None else accepted
        # A shielded or sensitive-only record is answered as absent by design: nothing should find it.
        expected = query.expected - self.hidden if self.hidden else query.expected
        query = replace(query, expected=expected)
        self.outcomes[query.query_id] = {k: bands.get(k, "") for k in sorted(expected)}
        matched = {k for k, b in bands.items() if b == "match"}
        self.match.add(matched, query.expected)
        self.any_band.add(set(bands), query.expected)
        if accepted:
            self.any_band_searchable.add(set(bands), query.expected)
        if query.subject is not None:
            self.any_band_broker_accepted.add(set(bands), query.expected)
        profiled = {k for k, b in bands.items() if b == "possible" and k in query.expected and twin_profile(query, k)}
        self.match_with_twin_profile.add(matched | profiled, query.expected)
        for key, band in bands.items():
            if key not in query.expected:
                home = bool(query.households & data.households.get(key, frozenset()))
                self.wrong[f"{band}_{'sibling_or_twin' if home else 'other_person'}"] += 1
        if accepted and candidates is not None:
            # Pairs completeness of the linker's own blocking: over the queries it was given.
            self.expected += len(query.expected)
            self.blocked += len(query.expected & candidates)
        if query.subject is None:
            self.refused += 1

    def summary(self) -> dict[str, Any]:
        kinds = ("match_sibling_or_twin", "match_other_person", "possible_sibling_or_twin", "possible_other_person")
        return {
            "match": self.match.summary(),
            "match_or_possible": self.any_band.summary(),
            "match_or_possible_of_accepted_queries": self.any_band_searchable.summary(),
            "match_or_possible_of_broker_accepted_queries": self.any_band_broker_accepted.summary(),
            "match_counting_twin_profile_possibles": self.match_with_twin_profile.summary(),
            "wrong_records": {k: self.wrong.get(k, 0) for k in kinds},
            "blocking_recall": round(self.blocked / self.expected, 4) if self.expected else 1.0,
            "queries_refused_400": self.refused,
            "ms_per_query": {
                "mean": round(sum(self.ms) / len(self.ms), 3) if self.ms else 0.0,
                "p50": round(percentile(self.ms, 50), 3),
                "p99": round(percentile(self.ms, 99), 3),
            },
        }


def twin_profile_of(data: Dataset) -> Callable[[Query, Key], bool]:
    """Does the query differ from this held record only by given name (family, birth date, home agree)?"""
    held = {(code, r.record_id): r for code, records in data.records.items() for r in records}

    def check(query: Query, key: Key) -> bool:
        q, r = query.subject, held.get(key)
        if q is None or r is None:
            return False
        same_home = bool(q.postcode and q.postcode == r.postcode) or bool(
            q.address and q.address.casefold() == r.address.casefold()
        )
        return (
            q.given_name.casefold() != r.given_name.casefold()
            and q.family_name.casefold() == r.family_name.casefold()
            and q.date_of_birth == r.date_of_birth
            and same_home
        )

    return check


def candidate_ids(engine: MatchEngine, subject: Subject) -> set[str]:
    """The record ids the engine's blocking puts forward for ``subject`` (whatever API the engine has)."""
    friendly = getattr(engine, "candidate_record_ids", None)
    if callable(friendly):
        return set(friendly(subject))
    prepared, _ = matching.prepare_query(subject)
    return {engine.table.record_id[i] for i in engine.candidates(prepared)}


def build_engines(data: Dataset) -> dict[str, MatchEngine]:
    return {code: build_matcher(records) for code, records in sorted(data.records.items())}


def run_in_process(
    data: Dataset, progress: Callable[[str], None] = print, outcomes: dict[str, dict[Key, str]] | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    engines = build_engines(data)
    build_s = time.perf_counter() - started
    progress(f"  built {len(engines)} engines over {data.held()} records in {build_s:.1f} s")
    return {"engine_build_seconds": round(build_s, 2)} | score_engines(data, engines, progress, outcomes)


def score_engines(
    data: Dataset,
    engines: dict[str, MatchEngine],
    progress: Callable[[str], None] = print,
    outcomes: dict[str, dict[Key, str]] | None = None,
) -> dict[str, Any]:
    """Every query through every authority's engine, scored by record; ms counts matching, not blocking.

    ``outcomes``, when given, is filled with each query's band for each expected record (see ``Score``)."""
    score, profile = Score(hidden=frozenset(data.answered_as_absent())), twin_profile_of(data)
    if outcomes is not None:
        score.outcomes = outcomes
    for n, query in enumerate(data.queries, 1):
        bands: dict[Key, str] = {}
        candidates: set[Key] = set()
        if query.subject is not None:
            t0 = time.perf_counter()
            for code, engine in engines.items():
                for result in engine.match(query.subject):
                    if not result.shielded:  # a shielded record's alert goes to its node, never to the searcher
                        bands[(code, result.record_id)] = result.band
            score.ms.append((time.perf_counter() - t0) * 1000)
            for code, engine in engines.items():
                candidates |= {(code, rid) for rid in candidate_ids(engine, query.subject)}
        score.add(data, query, bands, candidates, profile)
        if n % 1000 == 0 or n == len(data.queries):
            progress(f"  scored {n}/{len(data.queries)} queries")
    return score.summary()
