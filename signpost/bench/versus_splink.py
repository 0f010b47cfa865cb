"""Splink beside Signpost: the same held records and queries, linked by Splink on DuckDB, scored the same way.

Settings of the kind Splink's own examples use (its FEBRL and "fake 1000" demos): NameComparison
(Jaro-Winkler levels) on given and family name with term-frequency adjustments, DateOfBirthComparison
on the ISO string, PostcodeComparison, Jaro-Winkler levels on the address, exact sex. Blocking
rules from the examples (given name; family name; date of birth; postcode). Trained unsupervised:
u by random sampling, m by expectation maximisation on two blocking rules (names; date of birth),
the prior from deterministic rules. ``link_only`` between the held records and the queries;
a pair is Splink's ``match`` when its match probability is at least 0.5, and Splink has no
``possible`` band. Blocking recall is the share of true pairs among every pair Splink scored.

Splink sees every query, including those the broker refuses with 400 (it has no minimum query);
its time per query is the whole predict step divided by the number of queries (it works in batch).
Names are lower-cased and trimmed first, as Splink's examples assume cleaned input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from signpost.bench.datasets import Dataset
from signpost.bench.datasets.base import Key
from signpost.bench.evaluate import Score, twin_profile_of

FIELDS = ("given_name", "family_name", "date_of_birth", "postcode", "address", "sex")
THRESHOLD = 0.5


def _clean(value: Any) -> str | None:
    text = " ".join(str(value or "").split()).lower()
    return text or None


def _row(unique_id: str, fields: dict[str, Any]) -> dict[str, str | None]:
    row: dict[str, str | None] = {"unique_id": unique_id}
    row.update((f, _clean(fields.get(f))) for f in FIELDS)
    return row


def _frames(data: Dataset) -> tuple[list[dict[str, str | None]], list[dict[str, str | None]]]:
    # One row per record (not per involvement), and none a node answers as absent: Splink gets what is findable.
    held = [
        _row(f"{code}|{r.record_id}", vars(r))
        for code, records in sorted(data.records.items())
        for r in records
        if not r.answered_as_absent
    ]
    queries = [_row(str(n), q.body["subject"]) for n, q in enumerate(data.queries)]
    return held, queries


def settings(present: set[str]) -> Any:
    """The model; a field no record carries (FEBRL has no sex, the pseudopeople samples no postcode) is left out."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons = [
        cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("family_name").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
    ]
    blocking = [block_on("given_name"), block_on("family_name"), block_on("date_of_birth")]
    if "postcode" in present:
        comparisons.append(cl.PostcodeComparison("postcode"))
        blocking.append(block_on("postcode"))
    if "address" in present:
        comparisons.append(cl.JaroWinklerAtThresholds("address", [0.9, 0.7]))
    if "sex" in present:
        comparisons.append(cl.ExactMatch("sex"))
    return SettingsCreator(
        link_type="link_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_intermediate_calculation_columns=False,
    )


def run(
    data: Dataset, progress: Callable[[str], None], outcomes: dict[str, dict[Key, str]] | None = None
) -> dict[str, Any]:
    """Splink's scores for ``data``; ``outcomes``, when given, filled as :class:`Score` fills it."""
    import pandas as pd
    from splink import DuckDBAPI, Linker, block_on

    held, queries = _frames(data)
    db = DuckDBAPI()
    left = db.register(pd.DataFrame(held, dtype=object), dataset_display_name="held")
    right = db.register(pd.DataFrame(queries, dtype=object), dataset_display_name="queries")
    present = {f for f in FIELDS if any(r[f] for r in held)}
    linker = Linker([left, right], settings(present), log_level=logging.ERROR)
    started = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "family_name", "date_of_birth")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in (block_on("given_name", "family_name"), block_on("date_of_birth")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    train_s = time.perf_counter() - started
    progress(f"  trained in {train_s:.1f} s; predicting ...")
    started = time.perf_counter()
    pairs = linker.inference.predict().as_pandas_dataframe()
    predict_s = time.perf_counter() - started
    progress(f"  {len(pairs)} pairs scored in {predict_s:.1f} s")
    return {"train_seconds": round(train_s, 2)} | _score(data, pairs, predict_s, outcomes)


def _score(
    data: Dataset, pairs: Any, predict_s: float, outcomes: dict[str, dict[Key, str]] | None = None
) -> dict[str, Any]:
    scored: dict[int, set[Key]] = {}
    matched: dict[int, set[Key]] = {}
    for row in pairs.itertuples(index=False):
        held_id, query_id = (row.unique_id_l, row.unique_id_r)
        if row.source_dataset_l != "held":
            held_id, query_id = query_id, held_id
        code, record_id = str(held_id).split("|", 1)
        n = int(query_id)
        scored.setdefault(n, set()).add((code, record_id))
        if row.match_probability >= THRESHOLD:
            matched.setdefault(n, set()).add((code, record_id))
    score, profile = Score(hidden=frozenset(data.answered_as_absent())), twin_profile_of(data)
    if outcomes is not None:
        score.outcomes = outcomes
    for n, query in enumerate(data.queries):
        bands = {k: "match" for k in matched.get(n, set())}
        score.add(data, query, bands, scored.get(n, set()), profile, accepted=True)
    per_query = predict_s * 1000 / len(data.queries) if data.queries else 0.0
    score.ms = [per_query]
    return score.summary() | {"pairs_scored": len(pairs)}
