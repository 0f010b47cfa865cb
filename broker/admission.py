"""How many searches the broker takes on at once, and how it tells that the federation is congested.

A federation asked for more than its machines can answer does not fail all at once: every search
waits longer, then searches start to reach their deadline with many authorities not yet heard from.
Answering those is the worst of both: the practitioner waited the whole deadline and still gets
"these authorities could not be asked" for a third of England. So the broker keeps an *admission
limit* on searches under way: it starts at ``max_searches_in_flight`` and, while searches come back
congested, is cut back (at most once per ``backoff_interval``), then grows again by a little with each
search that is answered in time. A search beyond the limit is refused at once with 503 and
Retry-After, which the practitioner can act on, instead of being answered late and with gaps.

Congestion is read from the outcomes themselves (``congested``): when many of one search's
authorities miss the deadline together, the cause is shared — the broker, the machine or the
network — not each of those authorities. Such timeouts are reported, as always, but FanOut does not
hold them against the nodes' circuit breakers: a busy minute must not open every circuit and leave
the next searches unable to ask anyone. A node that is really down is still found out by its own
failures and by the health monitor's polls.

The limit depends only on counts and timing, never on what is searched for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CONGESTED_MIN_TIMEOUTS = 8
"""Fewer timeouts than this in one search are the nodes' own (a small federation never reads as congested)."""
CONGESTED_SHARE = 0.25
"""...and at least this share of the authorities asked must have timed out."""


def congested(timeouts: int, asked: int) -> bool:
    """Whether a search's timeouts say the federation as a whole was too busy to answer in time."""
    return timeouts >= CONGESTED_MIN_TIMEOUTS and timeouts >= CONGESTED_SHARE * asked


class AdmissionLimit:
    """Additive increase, multiplicative decrease of the searches admitted at once (as TCP does with its window)."""

    def __init__(self, ceiling: int, *, floor: int = 4, backoff: float = 0.7, growth: float = 0.2,
                 backoff_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling, self.floor = ceiling, min(floor, ceiling)
        self.backoff, self.growth, self.backoff_interval = backoff, growth, backoff_interval
        self._clock = clock
        self.limit = float(ceiling)
        self._last_cut = float("-inf")

    def admits(self, in_flight: int) -> bool:
        """Whether one more search may start while ``in_flight`` are under way."""
        return in_flight < int(self.limit)

    def completed(self, was_congested: bool) -> None:
        """One search has its outcomes: cut the limit if it was congested, else let it grow back."""
        if was_congested:
            now = self._clock()
            # Searches under way together come back congested together: one cut per interval, not one each.
            if now - self._last_cut >= self.backoff_interval:
                self._last_cut = now
                self.limit = max(float(self.floor), self.limit * self.backoff)
        else:
            self.limit = min(float(self.ceiling), self.limit + self.growth)
