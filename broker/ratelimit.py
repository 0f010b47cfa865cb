"""Per-practitioner search rate limits: a sliding one-minute window per user.

Held in memory per broker process. With several replicas each enforces its own
window, so the effective limit is at most replicas x the configured one; a
shared limiter belongs with the shared audit store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def check(self, user: str) -> float:
        """Record a search by ``user``; return 0 if allowed, else seconds until one is."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        events = self._events.setdefault(user, deque())
        while events and events[0] <= now - WINDOW_SECONDS:
            events.popleft()
        if len(events) >= self.per_minute:
            return max(0.001, events[0] + WINDOW_SECONDS - now)
        events.append(now)
        return 0.0
