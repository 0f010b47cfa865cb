"""Fellegi–Sunter weights: how much each comparison level says for or against a match.

For every field and level, ``m`` is the probability of that level among pairs
that are the same child and ``u`` among pairs that are not. The weight of a
level is log2(m/u). As Splink does, each node learns from its own data:

- ``u`` by comparing random pairs of its records (almost all different children);
- ``m`` by expectation–maximisation over blocked pairs with ``u`` held fixed,
  one session per blocking rule with that rule's comparisons left out
  (:mod:`node.em`), blended with default m values by a pseudo-count, so a node
  whose data holds few duplicates (most nodes: one record per child) keeps
  sensible defaults;
- term-frequency adjustment: exact agreement on a common name ("Smith") counts
  for less than on a rare one — ``u`` for that level becomes the name's share of
  the node's records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from node.comparisons import FIELDS, NULL

# Literature-informed defaults (linkage studies of UK health and social care records):
# how often the same child's two records show each level.
DEFAULT_M: dict[str, tuple[float, ...]] = {
    "given name": (0.86, 0.05, 0.03, 0.015, 0.01, 0.01, 0.025),
    "family name": (0.84, 0.04, 0.03, 0.01, 0.01, 0.07),
    "date of birth": (0.93, 0.015, 0.025, 0.01, 0.01, 0.01),
    "sex": (0.985, 0.015),
    "postcode": (0.6, 0.05, 0.03, 0.05, 0.07, 0.2),
    "address": (0.55, 0.15, 0.30),
    "NHS number": (0.995, 0.005),
}
# Used until (or unless) random sampling of the node's own records gives better.
DEFAULT_U: dict[str, tuple[float, ...]] = {
    "given name": (0.005, 0.002, 0.002, 0.004, 0.01, 0.03, 0.947),
    "family name": (0.002, 0.0005, 0.001, 0.003, 0.008, 0.9855),
    "date of birth": (0.00016, 0.00016, 0.002, 0.005, 0.1, 0.89268),
    "sex": (0.5, 0.5),
    "postcode": (0.0005, 0.004, 0.002, 0.03, 0.15, 0.8135),
    "address": (0.0005, 0.01, 0.9895),
    "NHS number": (1e-7, 0.9999999),
}
PSEUDO_PAIRS = 500.0
"""How many matched pairs the defaults are worth when blending with EM estimates."""
MIN_U = 1e-7
TF_PSEUDO_RECORDS = 5000.0
"""Prior weight, in records, of the average name frequency against a node's own counts."""


@dataclass
class Model:
    """m and u per field and level, plus term frequencies of exact names."""

    m: dict[str, list[float]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_M.items()})
    u: dict[str, list[float]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_U.items()})
    given_counts: dict[str, int] = field(default_factory=dict)
    family_counts: dict[str, int] = field(default_factory=dict)
    dob_counts: dict[int, int] = field(default_factory=dict)
    records: int = 0
    """How many records the name counts were taken from."""
    expected_matches: float = 0.0
    """How many matched pairs EM found in the node's own data (0 with defaults)."""

    def __post_init__(self) -> None:
        # Made once, not per call: name_frequency runs for every candidate a query scores.
        self._counts: dict[str, dict[Any, int]] = {
            "given name": self.given_counts,
            "family name": self.family_counts,
            "date of birth": self.dob_counts,
        }
        self.refresh()

    def refresh(self) -> None:
        """Recompute the weight table after m or u changed."""
        self.table = [
            [math.log2(max(m, MIN_U) / max(u, MIN_U)) for m, u in zip(self.m[f.name], self.u[f.name], strict=False)]
            for f in FIELDS
        ]
        self.given_exact_m = self.m["given name"][0]
        self.family_exact_m = self.m["family name"][0]

    def weight(self, field_index: int, level: int) -> float:
        return 0.0 if level == NULL else self.table[field_index][level]

    def name_frequency(self, field_name: str, value: str | int) -> float:
        """How common this exact name is here, shrunk towards the average for small samples.

        A name seen once among two records is not "common"; with TF_PSEUDO_RECORDS of
        prior weight, small nodes keep the default u and large nodes use their own counts.
        """
        counts = self._counts[field_name]
        prior = self.u[field_name][0]
        return (counts.get(value, 0) + TF_PSEUDO_RECORDS * prior) / (self.records + TF_PSEUDO_RECORDS)


def estimate_u(levels: np.ndarray, model: Model, *, smoothing: float = 1.0) -> None:
    """Set u from the levels of random record pairs (rows = pairs, columns = fields)."""
    for index, f in enumerate(FIELDS):
        column = levels[:, index]
        known = column[column != NULL]
        if len(known) < 1000:
            continue  # too few to beat the defaults
        counts = np.bincount(known, minlength=len(f.levels)).astype(float)
        prior = np.array(DEFAULT_U[f.name])
        # Smooth towards the defaults so a level never seen in the sample keeps a small, finite u.
        model.u[f.name] = list(
            (counts + smoothing * len(f.levels) * prior) / (counts.sum() + smoothing * len(f.levels))
        )
    model.refresh()
