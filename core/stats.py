"""Percentiles, one definition for the health monitor, admission and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank of sorted ``values``; None when there are none."""
    if not values:
        return None
    return of_sorted(sorted(values), q)


def of_sorted(ordered: Sequence[float], q: float) -> float:
    """``percentile`` of values already sorted and not empty: several percentiles of one sample, sorted once."""
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
