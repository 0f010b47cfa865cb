"""``signpost synth``'s own world as a development data set: its records, its queries, its truth.

Rows and queries are the generator's, unchanged, through the same validation as the foreign sets.
Households come from the ground truth (the household of a held child is named by its first child);
queries for people held nowhere carry no household (the generator does not record it), so a false
match for a sibling held nowhere counts as "other person" here. The split over authorities is the
generator's own (English authorities, sized realistically), not the five development authorities.
"""

from __future__ import annotations

from signpost.bench.datasets.base import Dataset
from signpost.synth import ENGLISH_AUTHORITIES, SynthConfig, generate


def load(children: int = 20_000, queries: int = 2_000, seed: int = 7, authorities: int = 5) -> Dataset:
    codes = ENGLISH_AUTHORITIES[:authorities]
    config = SynthConfig(
        authorities=tuple((c, n) for c, n, _ in codes),
        children=children,
        seed=seed,
        queries=queries,
        sizes=tuple(s for _, _, s in codes),
    )
    result = generate(config)
    data = Dataset("synth", f"signpost synth: {children} children, seed {seed}, {authorities} authorities")
    household_of = {}
    for pid, held in result.truth.items():
        for r in held:
            household_of[(r["authority"], r["record_id"])] = frozenset({r["household"]}), pid
    for code, rows in result.rows.items():
        for row in rows:
            data.add_record(code, row, household_of.get((code, row["record_id"]), (frozenset(), ""))[0])
    for q in result.queries:
        held = result.truth.get(q["person_id"] or "", [])
        expected = [(r["authority"], r["record_id"]) for r in held]
        homes = {r["household"] for r in held}
        data.add_query(q["query_id"], q["subject"], expected, homes)
    data.authority_names = {c: n for c, n, _ in codes}
    return data
