"""Per-practitioner search limits, and an alert when someone's volume is unusual.

Sliding windows per user: one minute and one day. Over either limit the search
is refused with 429 and the seconds until one would be allowed. Separately, a
practitioner whose searches in the last hour pass ``alert_per_hour`` raises an
alert (a log event and a metric) once per hour: trawling looks like volume.

Held in memory per broker process. With several replicas each enforces its own
windows, so the effective limit is at most replicas x the configured one; a
shared limiter belongs with the shared audit store.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@dataclass(frozen=True)
class Decision:
    """Whether a search may go ahead; if not, why and for how long."""

    allowed: bool
    retry_after: float = 0.0
    window: str = ""
    unusual: bool = False
    """This search pushed the user past the hourly alert level (reported once an hour)."""


class RateLimiter:
    def __init__(
        self, per_minute: int, per_day: int = 0, *, alert_per_hour: int = 0, clock: Callable[[], float]
    ) -> None:
        self.per_minute, self.per_day, self.alert_per_hour = per_minute, per_day, alert_per_hour
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._alerted: dict[str, float] = {}

    def check(self, user: str) -> Decision:
        """Record a search by ``user`` if allowed."""
        now = self._clock()
        events = self._events.setdefault(user, deque())
        while events and events[0] <= now - DAY:
            events.popleft()
        for limit, span, name in ((self.per_minute, MINUTE, "minute"), (self.per_day, DAY, "day")):
            if limit > 0:
                in_window = [t for t in events if t > now - span] if span != DAY else events
                if len(in_window) >= limit:
                    return Decision(False, max(0.001, in_window[-limit] + span - now), name)
        events.append(now)
        return Decision(True, unusual=self._unusual(user, events, now))

    def _unusual(self, user: str, events: deque[float], now: float) -> bool:
        if self.alert_per_hour <= 0 or now - self._alerted.get(user, -HOUR) < HOUR:
            return False
        if sum(1 for t in events if t > now - HOUR) > self.alert_per_hour:
            self._alerted[user] = now
            return True
        return False
