"""Fast random draws shared by every phase of the generator.

They consume the one seeded ``random.Random`` the plan owns, exactly as the
generator always has: changing how many numbers a draw takes changes every
byte that follows, so these must never change behaviour for a given seed.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from typing import TypeVar

_T = TypeVar("_T")


# random.choice and randint cost three times as much; this runs millions of times per file.
def pick(rng: random.Random, options: Sequence[_T]) -> _T:
    return options[int(rng.random() * len(options))]


def between(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high], both ends included."""
    return low + int(rng.random() * (high - low + 1))


def swap_day_month(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{year}-{day}-{month}" if int(day) <= 12 and day != month else iso


class Cumulative:
    """Weighted choice by bisection: random.choices re-sums the weights on every call."""

    def __init__(self, weights: Sequence[float]) -> None:
        self.totals = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> int:
        return bisect.bisect_right(self.totals, rng.random() * self.totals[-1])
