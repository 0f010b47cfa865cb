"""Per-practitioner and per-organisation search limits, and an alert when someone's volume is unusual.

Sliding windows per key: one minute and one day. The broker holds two limiters: one keyed by the
practitioner's user id, one by the organisation their certificate names, so that three certificates
of one organisation share one organisation quota (each once had a full quota of its own). Over either limit the search
is refused with 429 and the seconds until one would be allowed. Separately, a
practitioner whose searches in the last hour pass ``alert_per_hour`` raises an
alert (a log event and a metric) once per hour: trawling looks like volume.

The counts live in a ``broker.limits_store``: Redis when several replicas serve as one (each search
counted once, whichever replica takes it, so a practitioner gets one limit, not one per replica), or
this process's memory for a single broker. Only user ids and organisation names are keys.

``AddressLimiter`` is the pre-authentication limit: requests per source address, whoever they claim
to be, applied before any certificate or body work (``broker.refusals``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.limits_store import LimitsStore, MemoryStore

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
    """One scope's limits (``practitioner`` keyed by user id, ``organisation`` by its name) over a store."""

    def __init__(
        self,
        per_minute: int,
        per_day: int = 0,
        *,
        alert_per_hour: int = 0,
        clock: Callable[[], float],
        scope: str = "practitioner",
        store: LimitsStore | None = None,
    ) -> None:
        self.per_minute, self.per_day, self.alert_per_hour = per_minute, per_day, alert_per_hour
        self.scope = scope
        self._clock = clock
        self.store: LimitsStore = store if store is not None else MemoryStore()

    def _key(self, who: str) -> str:
        return f"rate:{self.scope}:{who}"

    async def check(self, user: str) -> Decision:
        """Record a search by ``user`` if allowed (LimitsUnavailable if the store cannot be reached)."""
        if self.per_minute <= 0 and self.per_day <= 0 and self.alert_per_hour <= 0:
            return Decision(True, scope=self.scope)  # off: nothing to count, and nothing held
        now = self._clock()
        limits = [(limit, span, name) for limit, span, name in self._windows() if limit > 0]
        alert_span = HOUR if self.alert_per_hour > 0 else 0.0
        keep = max([span for _, span, _ in limits] + [alert_span])
        hit = await self.store.hit(self._key(user), now, [(n, span) for n, span, _ in limits], keep, alert_span)
        if hit.refused >= 0:
            return Decision(False, hit.retry_after, limits[hit.refused][2], scope=self.scope)
        return Decision(True, unusual=await self._unusual(user, hit.recent, now), scope=self.scope)

    def _windows(self) -> tuple[tuple[int, float, str], ...]:
        return ((self.per_minute, MINUTE, "minute"), (self.per_day, DAY, "day"))

    async def refund(self, user: str) -> None:
        """Give back the newest search recorded for ``user``: the request turned out malformed, or refused."""
        if self.per_minute > 0 or self.per_day > 0 or self.alert_per_hour > 0:
            await self.store.unhit(self._key(user))

    async def _unusual(self, user: str, recent: int, now: float) -> bool:
        # Counted against the shared log and marked in the store: one alert an hour, whichever replica sees it.
        if self.alert_per_hour <= 0 or recent <= self.alert_per_hour:
            return False
        return await self.store.once(f"rate-alert:{self.scope}:{user}", now, HOUR)


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
