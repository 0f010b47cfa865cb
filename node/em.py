"""m by expectation–maximisation: one session per blocking rule, as Splink trains.

Every pair a blocking rule puts forward agrees on what the rule's key holds (the date of birth, a
phonetic family name, the postcode sector...), match or not. With u taken from random pairs, a fit
over all blocked pairs at once reads that agreement as evidence of a match: at a 200,000-record synth
node it counted 125,685 matches among 125,984 blocked pairs where the truth held 177, and m became the
blocked pairs' own mix of levels (286 now). So each rule's pairs get an EM session of their own in which the
comparisons the rule blocked on are left out of the likelihood (their m cannot be learnt from pairs
chosen for agreeing on them), and each comparison's m is then taken from the sessions that left it
in: their estimates averaged, each weighted by the matches its session found, and blended with the
defaults by ``PSEUDO_PAIRS`` so a node with few duplicates keeps sensible values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from node.comparisons import FIELDS, NULL
from node.weights import DEFAULT_M, MIN_U, PSEUDO_PAIRS, Model


@dataclass(frozen=True)
class Session:
    """The pairs of one blocking rule, and the comparisons that rule blocked on."""

    rows: np.ndarray
    """Rows of the levels array: the pairs this rule put forward."""
    left_out: frozenset[str]
    """Names of the comparisons (``comparisons.FIELDS``) left out of this session's likelihood."""


@dataclass(frozen=True)
class Fit:
    """What one session learnt: m of the comparisons it kept, and each of its pairs' match probability."""

    m: dict[str, np.ndarray]
    p: np.ndarray

    @property
    def matches(self) -> float:
        return float(self.p.sum())


def run_em(
    levels: np.ndarray, model: Model, sessions: Sequence[Session], *, iterations: int = 30, prior_match: float = 0.01
) -> None:
    """Set m (and ``expected_matches``) from one EM session per blocking rule, u held fixed."""
    fits: list[tuple[Session, Fit]] = []
    for session in sessions:
        fit = fit_session(levels[session.rows], model, session.left_out, iterations=iterations, prior_match=prior_match)
        if fit is not None:
            fits.append((session, fit))
    if not fits:
        return
    for f in FIELDS:
        learnt = [(fit.matches, fit.m[f.name]) for _, fit in fits if f.name in fit.m and fit.matches > 0]
        if not learnt:
            continue  # every rule blocked on it (or found nothing): the defaults stand
        weight = sum(w for w, _ in learnt)
        m = sum(w * v for w, v in learnt) / weight
        # As many matched pairs as the largest session found: they are mostly the same pairs in each.
        count = max(w for w, _ in learnt)
        model.m[f.name] = list((count * m + PSEUDO_PAIRS * np.array(DEFAULT_M[f.name])) / (count + PSEUDO_PAIRS))
    model.expected_matches = _distinct_matches(len(levels), fits)
    model.refresh()


def _distinct_matches(pairs: int, fits: Sequence[tuple[Session, Fit]]) -> float:
    """Expected matched pairs among all blocked pairs: each pair's probability averaged over the
    sessions that saw it (a pair blocked by three rules is one pair, not three)."""
    total, seen = np.zeros(pairs), np.zeros(pairs)
    for session, fit in fits:
        np.add.at(total, session.rows, fit.p)
        np.add.at(seen, session.rows, 1.0)
    return float((total[seen > 0] / seen[seen > 0]).sum())


def fit_session(
    levels: np.ndarray, model: Model, left_out: frozenset[str], *, iterations: int = 30, prior_match: float = 0.01
) -> Fit | None:
    """EM over one rule's pairs on the comparisons it did not block on; None when there is nothing to fit."""
    kept = [(index, f) for index, f in enumerate(FIELDS) if f.name not in left_out]
    if len(levels) == 0 or not kept:
        return None
    m = {f.name: np.array(model.m[f.name]) for _, f in kept}
    # Each kept field's known levels and where they are, found once, not once per iteration; the log of
    # each level's u is taken once and gathered. A field every pair has is taken whole (a slice).
    masks = [levels[:, index] != NULL for index, _ in kept]
    known: list[np.ndarray | slice] = [slice(None) if mask.all() else mask for mask in masks]
    columns = [levels[k, index] for k, (index, _) in zip(known, kept, strict=True)]
    log_u = np.zeros(len(levels))
    for k, column, (_, f) in zip(known, columns, kept, strict=True):
        log_u[k] += np.log(np.maximum(model.u[f.name], MIN_U))[column]
    lam = prior_match
    p = np.zeros(len(levels))
    for _ in range(iterations):
        log_m = np.zeros(len(levels))
        for k, column, (_, f) in zip(known, columns, kept, strict=True):
            log_m[k] += np.log(np.maximum(m[f.name], MIN_U))[column]
        odds = np.exp(np.clip(np.log(lam) + log_m - np.log1p(-lam) - log_u, -700, 700))
        p = odds / (1.0 + odds)
        for k, column, (_, f) in zip(known, columns, kept, strict=True):
            weights = np.bincount(column, weights=p[k], minlength=len(f.levels))
            if weights.sum() > 0:
                m[f.name] = np.maximum(weights / weights.sum(), 1e-4)
                m[f.name] /= m[f.name].sum()
        lam = float(np.clip(p.mean(), 1e-6, 0.5))
    return Fit(m, p)
