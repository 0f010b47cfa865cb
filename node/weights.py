"""Fellegi–Sunter weights: how much each comparison level says for or against a match.

For every field and level, ``m`` is the probability of that level among pairs
that are the same child and ``u`` among pairs that are not. The weight of a
level is log2(m/u). As Splink does, each node learns from its own data:

- ``u`` by comparing random pairs of its records (almost all different children);
- ``m`` by expectation–maximisation over blocked pairs with ``u`` held fixed,
  blended with default m values by a pseudo-count, so a node whose data holds
  few duplicates (most nodes: one record per child) keeps sensible defaults;
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


def run_em(levels: np.ndarray, model: Model, *, iterations: int = 30, prior_match: float = 0.01) -> None:
    """Estimate m by EM over blocked pairs with u fixed, then blend with the defaults."""
    if len(levels) == 0:
        return
    m = {f.name: np.array(model.m[f.name]) for f in FIELDS}
    u = {f.name: np.array(model.u[f.name]) for f in FIELDS}
    # Each field's known levels and where they are, found once, not once per iteration; the log of
    # each level's m or u is taken once and gathered (the same numbers as the log of each pair's).
    # A field every pair has is taken whole (a slice), not through a mask of all True.
    masks = [levels[:, index] != NULL for index in range(len(FIELDS))]
    known: list[np.ndarray | slice] = [slice(None) if mask.all() else mask for mask in masks]
    columns = [levels[known[index], index] for index in range(len(FIELDS))]
    log_u_of = [np.log(np.maximum(u[f.name], MIN_U))[columns[index]] for index, f in enumerate(FIELDS)]
    lam = prior_match
    for _ in range(iterations):
        log_m = np.zeros(len(levels))
        log_u = np.zeros(len(levels))
        for index, f in enumerate(FIELDS):
            log_m[known[index]] += np.log(np.maximum(m[f.name], MIN_U))[columns[index]]
            log_u[known[index]] += log_u_of[index]
        odds = np.exp(np.clip(np.log(lam) + log_m - np.log1p(-lam) - log_u, -700, 700))
        p = odds / (1.0 + odds)
        for index, f in enumerate(FIELDS):
            weights = np.bincount(columns[index], weights=p[known[index]], minlength=len(f.levels))
            if weights.sum() > 0:
                m[f.name] = np.maximum(weights / weights.sum(), 1e-4)
                m[f.name] /= m[f.name].sum()
        lam = float(np.clip(p.mean(), 1e-6, 0.5))
    matches = float(p.sum())
    for f in FIELDS:
        default = np.array(DEFAULT_M[f.name])
        model.m[f.name] = list((matches * m[f.name] + PSEUDO_PAIRS * default) / (matches + PSEUDO_PAIRS))
    model.expected_matches = matches
    model.refresh()
