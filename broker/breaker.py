"""A circuit breaker per authority: stop waiting on a node that keeps failing.

Closed: calls go through; ``failure_threshold`` failures in a row open it.
Open: searches skip the node at once and report it as ``circuit_open`` —
never as "no contact". After ``reset_after`` seconds it is half-open: exactly
one probe (the health monitor's, or a search's) is let through; success closes
it, failure opens it again.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, *, failure_threshold: int = 5, reset_after: float = 10.0, clock: Callable[[], float]) -> None:
        self.failure_threshold, self.reset_after = failure_threshold, reset_after
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May a call go to this node now? In half-open state only one probe at a time."""
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_after:
            self.state = BreakerState.HALF_OPEN
            self._probing = False
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def release(self) -> None:
        """A call let through that says nothing either way (never sent, or lost in congestion): another may probe."""
        if self.state is BreakerState.HALF_OPEN:
            self._probing = False

    def success(self) -> None:
        self.state, self.failures, self._probing = BreakerState.CLOSED, 0, False

    def failure(self) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state, self._opened_at, self._probing = BreakerState.OPEN, self._clock(), False
