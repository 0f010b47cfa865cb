"""How many searches the broker takes on at once, and how it tells that the federation is congested.

A federation asked for more than its machines can answer does not fail all at once: every search
waits longer, then searches start to reach their deadline with many authorities not yet heard from.
Answering those is the worst of both: the practitioner waited the whole deadline and still gets
"these authorities could not be asked" for a third of England. So the broker keeps an *admission
limit* on searches under way: it starts at ``max_searches_in_flight`` and, while searches come back
congested, is cut back (once for the searches already under way when it last was), then grows again
by a little with each search that is answered in time. A search beyond the limit is refused at once with 503 and
Retry-After, which the practitioner can act on, instead of being answered late and with gaps.

Congestion is read from the outcomes themselves (``congested``): many of one search's authorities
missed its deadline together *and* those that did answer were slow too. That is the broker, the
machine or the network being too busy, not each of those authorities; such timeouts are reported,
as always, and kept in each node's error rate, but FanOut does not hold them against the nodes'
circuit breakers — a busy minute must not open every circuit and leave the next searches unable to
ask anyone. When the answering authorities were quick, the silent ones are silent on their own
account (a shared link or supplier down, say) and their circuits open as usual. A search that no
authority answered cannot tell the two apart; it counts as congestion, and a node that is really
down is still found out by the health monitor's polls.

The limit depends only on counts and timing, never on what is searched for.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

CONGESTED_MIN_TIMEOUTS = 8
"""Fewer timeouts than this in one search are the nodes' own (a small federation never reads as congested)."""
CONGESTED_SHARE = 0.25
"""...and at least this share of the authorities asked must have timed out..."""
CONGESTED_SLOW_SHARE = 0.25
"""...and the authorities that answered must have taken, at the median, this share of the time they had."""


def congested(timeouts: int, asked: int, answer_ms: Sequence[float], budget_ms: float) -> bool:
    """Whether a search's timeouts say the federation as a whole was too busy to answer in time.

    ``answer_ms``: how long each authority that answered took; ``budget_ms``: the time they had.
    """
    if timeouts < CONGESTED_MIN_TIMEOUTS or timeouts < CONGESTED_SHARE * asked:
        return False
    return not answer_ms or statistics.median(answer_ms) >= CONGESTED_SLOW_SHARE * budget_ms


class AdmissionLimit:
    """Additive increase, multiplicative decrease of the searches admitted at once (as TCP does with its window).

    ``admit`` gives each search a ticket (when it was admitted); only a search admitted after the last
    cut can cut again, so the searches already under way when the federation became congested, which
    come back congested together, cost one cut and not one each.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 4,
        backoff: float = 0.7,
        growth: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling, self.floor = ceiling, min(floor, ceiling)
        self.backoff, self.growth = backoff, growth
        self._clock = clock
        self.limit = float(ceiling)
        self._last_cut = float("-inf")
        self.congested = 0
        """Searches that came back congested, in all."""

    def admit(self, in_flight: int) -> float | None:
        """A ticket for one more search while ``in_flight`` are under way, or None: refuse it."""
        return self._clock() if in_flight < int(self.limit) else None

    def completed(self, ticket: float, was_congested: bool) -> None:
        """The search admitted with ``ticket`` has its outcomes: cut the limit if congested, else grow it back."""
        if was_congested:
            self.congested += 1
            if ticket > self._last_cut:
                self._last_cut = self._clock()
                self.limit = max(float(self.floor), self.limit * self.backoff)
        else:
            self.limit = min(float(self.ceiling), self.limit + self.growth)
