"""Per-practitioner and per-organisation search limits, and an alert when someone's volume is unusual.

Sliding windows per key: one minute and one day. The broker holds two limiters: one keyed by the
practitioner's user id, one by the organisation their certificate names, so that three certificates
of one organisation share one organisation quota (each once had a full quota of its own). Over either limit the search
is refused with 429 and the seconds until one would be allowed. Separately, a
practitioner whose searches in the last hour pass ``alert_per_hour`` raises an
alert (a log event and a metric) once per hour: trawling looks like volume.

Held in memory per broker process. With several replicas each enforces its own
windows, so the effective limit is at most replicas x the configured one; a
shared limiter belongs with the shared audit store.

``AddressLimiter`` is the pre-authentication limit: requests per source address, whoever they claim
to be, applied before any certificate or body work (``broker.refusals``).
"""

from __future__ import annotations

import time
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
    scope: str = "practitioner"
    """Whose limit: ``practitioner`` or ``organisation``."""

    @property
    def limit(self) -> str:
        """Which limit refused, as the 429 names it: ``practitioner_per_minute``, ``organisation_per_day``..."""
        return f"{self.scope}_per_{self.window}"


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        per_day: int = 0,
        *,
        alert_per_hour: int = 0,
        clock: Callable[[], float],
        scope: str = "practitioner",
    ) -> None:
        self.per_minute, self.per_day, self.alert_per_hour = per_minute, per_day, alert_per_hour
        self.scope = scope
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._alerted: dict[str, float] = {}

    def check(self, user: str) -> Decision:
        """Record a search by ``user`` if allowed."""
        if self.per_minute <= 0 and self.per_day <= 0 and self.alert_per_hour <= 0:
            return Decision(True, scope=self.scope)  # off: nothing to count, and nothing held in memory
        now = self._clock()
        events = self._events.setdefault(user, deque())
        while events and events[0] <= now - DAY:
            events.popleft()
        for limit, span, name in ((self.per_minute, MINUTE, "minute"), (self.per_day, DAY, "day")):
            if limit > 0:
                in_window = [t for t in events if t > now - span] if span != DAY else events
                if len(in_window) >= limit:
                    return Decision(False, max(0.001, in_window[-limit] + span - now), name, scope=self.scope)
        events.append(now)
        return Decision(True, unusual=self._unusual(user, events, now), scope=self.scope)

    def refund(self, user: str) -> None:
        """Give back the search ``check`` last recorded for ``user``: the request turned out malformed."""
        events = self._events.get(user)
        if events:
            events.pop()

    def _unusual(self, user: str, events: deque[float], now: float) -> bool:
        if self.alert_per_hour <= 0 or now - self._alerted.get(user, -HOUR) < HOUR:
            return False
        if sum(1 for t in events if t > now - HOUR) > self.alert_per_hour:
            self._alerted[user] = now
            return True
        return False


class AddressLimiter:
    """A token bucket per source address: ``burst`` requests at once, refilled at ``per_second``.

    Checked before any certificate or body is read, so it costs a dictionary lookup. Buckets that
    have refilled are forgotten once ``max_addresses`` are held, so memory stays bounded.
    """

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        max_addresses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second, self.burst, self.max_addresses = per_second, burst, max_addresses
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when counted)

    def check(self, address: str) -> float:
        """Take one request for ``address``: 0 if allowed, else the seconds until one would be."""
        if self.burst <= 0:
            return 0.0
        now = self._clock()
        tokens, then = self._buckets.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            return (1.0 - tokens) / self.per_second
        if len(self._buckets) >= self.max_addresses and address not in self._buckets:
            self._forget_full(now)
        self._buckets[address] = (tokens - 1.0, now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        """Drop every bucket that has refilled: those addresses are as if never seen."""
        for address, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self.per_second >= self.burst:
                del self._buckets[address]
