"""Where the search limits and the unusual-activity counts are kept: one broker's memory, or Redis shared by replicas.

The rate limits (broker.ratelimit) and the pattern detector (broker.patterns) decide; this module only
keeps their counts, through four atomic operations that both stores implement with the same meaning:

* ``hit``: a sliding-window log per key. Trim what is older than ``keep``; if any window already holds
  its limit, refuse (naming the window and the seconds until a slot frees); else record ``now``.
* ``unhit``: give back the newest event of a key (a search that turned out malformed or refused elsewhere).
* ``once``: true for the first call per key in each ``period`` (an alert raised once, whoever asks).
* ``distinct``: remember ``value`` under a key for ``window`` seconds, at most ``cap`` values; how many.
* ``put`` / ``get``: a short-lived value (the last health poll of a node, shared by replicas: broker.pollshare).

Times are the broker's clock (passed in, so tests can move it), not the store's: every replica runs
NTP, and a second's disagreement between two replicas shifts a window by a second.

``MemoryStore`` is for exactly one broker: with several replicas each would keep its own windows and a
practitioner would get the limit once per replica. ``RedisStore`` is shared: each operation is one Lua
script, so two replicas counting the same practitioner at the same instant cannot both take the last
slot. Keys carry a practitioner's user id or an organisation's name and, for the patterns, keyed hashes
of a name or date (broker.patterns) — never a child's details — and every key expires with its window,
so Redis holds nothing older than a day.

Redis errors and time-outs are translated here, and only here, into ``LimitsUnavailable`` (503
``limits_unavailable``): the broker fails closed, see broker.errors and the README.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from broker.errors import LimitsUnavailable

T = TypeVar("T")
MEMORY = "memory"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
UNAVAILABLE_MESSAGE = "search limits cannot be checked just now, so the search was not made; try again shortly"


@dataclass(frozen=True)
class Hit:
    """What ``hit`` found: the index of the window that refused (-1: recorded), and when to retry."""

    refused: int
    retry_after: float = 0.0
    recent: int = 0
    """Events in the last ``recent_span`` seconds, this one included (0 when refused or not asked)."""


class LimitsStore(Protocol):
    """The counts behind the limits; see the module docstring for what each operation means."""

    kind: str
    """``memory`` or ``redis``: shown by /readyz and in logs."""

    async def hit(
        self, key: str, now: float, windows: Sequence[tuple[int, float]], keep: float, recent_span: float
    ) -> Hit: ...

    async def unhit(self, key: str) -> None: ...

    async def once(self, key: str, now: float, period: float) -> bool: ...

    async def distinct(self, key: str, value: str, now: float, window: float, cap: int) -> int: ...

    async def put(self, key: str, value: str, ttl: float) -> None: ...

    async def get(self, key: str) -> str | None: ...

    async def check(self) -> None:
        """Raise LimitsUnavailable if the store cannot be used now (for /readyz)."""

    async def close(self) -> None: ...


class MemoryStore:
    """One process's counts: for a single broker only (``limits_store = "memory"``).

    Bounded: the distinct-value sets (and their once-marks) are at most ``max_tracked``, the least
    recently used forgotten first; a rate-limit log holds at most its largest limit of events.
    """

    kind = MEMORY

    def __init__(self, *, max_tracked: int = 100_000) -> None:
        self.max_tracked = max_tracked
        self._events: dict[str, deque[float]] = {}
        self._marks: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (when, period)
        self._sets: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._values: dict[str, str] = {}

    def __len__(self) -> int:
        """Distinct-value sets held (the patterns' names and dates followed)."""
        return len(self._sets)

    async def hit(
        self, key: str, now: float, windows: Sequence[tuple[int, float]], keep: float, recent_span: float
    ) -> Hit:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - keep:
            events.popleft()
        for index, (limit, span) in enumerate(windows):
            in_window = [t for t in events if t > now - span]
            if len(in_window) >= limit:
                return Hit(index, max(0.001, in_window[-limit] + span - now))
        events.append(now)
        return Hit(-1, recent=sum(1 for t in events if t > now - recent_span) if recent_span > 0 else 0)

    async def unhit(self, key: str) -> None:
        events = self._events.get(key)
        if events:
            events.pop()

    async def once(self, key: str, now: float, period: float) -> bool:
        last = self._marks.get(key)
        if last is not None and now - last[0] < period:
            return False
        self._marks.pop(key, None)
        self._marks[key] = (now, period)
        while len(self._marks) > self.max_tracked:
            self._marks.popitem(last=False)
        return True

    async def distinct(self, key: str, value: str, now: float, window: float, cap: int) -> int:
        self._forget_older_than(now - window)
        values = self._sets.pop(key, None) or {}
        self._sets[key] = values  # most recently seen last: the oldest are forgotten first
        values = {v: t for v, t in values.items() if t > now - window}
        if value in values or len(values) < cap:
            values[value] = now  # beyond the cap nothing more is needed to know it was reached
        self._sets[key] = values
        while len(self._sets) > self.max_tracked:
            self._sets.popitem(last=False)
        return len(values)

    def _forget_older_than(self, cutoff: float) -> None:
        while self._sets:
            values = next(iter(self._sets.values()))
            if max(values.values(), default=cutoff) > cutoff:
                break
            self._sets.popitem(last=False)

    async def put(self, key: str, value: str, ttl: float) -> None:
        self._values[key] = value  # one broker: only ever its own last value, one per node

    async def get(self, key: str) -> str | None:
        return self._values.get(key)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


# Each script is one atomic step on the Redis server: no other replica's command runs in between.
# Numbers go in and out as strings: Redis would truncate a Lua number it returns to an integer.
_HIT = """
local now, keep, recent_span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - keep)
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local limit, span = tonumber(ARGV[6 + 2 * i]), tonumber(ARGV[7 + 2 * i])
  local since = '(' .. string.format('%.6f', now - span)
  if redis.call('ZCOUNT', KEYS[1], since, '+inf') >= limit then
    local nth = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', since, 'WITHSCORES', 'LIMIT', limit - 1, 1)
    return {i, string.format('%.6f', tonumber(nth[2]) + span - now), 0}
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(keep * 1000))
local recent = 0
if recent_span > 0 then
  recent = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.6f', now - recent_span), '+inf')
end
return {-1, '0', recent}
"""

_ONCE = """
local now, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local last = redis.call('GET', KEYS[1])
if last and now - tonumber(last) < period then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.ceil(period * 1000))
return 1
"""

_DISTINCT = """
local now, window, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < cap then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return redis.call('ZCARD', KEYS[1])
"""


def _nothing() -> None:
    return None


class RedisStore:
    """Counts shared by every replica in one Redis database, under ``prefix``; see the module docstring."""

    kind = "redis"

    def __init__(
        self, url: str, *, prefix: str = "signpost:", timeout: float = 0.5, on_error: Callable[[], None] = _nothing
    ) -> None:
        # Imported here: a single broker on memory needs no Redis client installed to start.
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.prefix, self.timeout, self._on_error = prefix, timeout, on_error
        # One immediate retry: a pooled connection Redis dropped (a restart, a failover) is found dead on
        # first use, and a fresh one should answer at once. The client's default backs off for a second,
        # far past the timeout, which would refuse the first search after every Redis restart.
        self._redis: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            retry=Retry(NoBackoff(), 1),
        )
        self._hit = self._redis.register_script(_HIT)
        self._once = self._redis.register_script(_ONCE)
        self._distinct = self._redis.register_script(_DISTINCT)

    async def _call(self, step: Awaitable[T]) -> T:
        """The one place Redis errors are translated: any failure or time-out is LimitsUnavailable."""
        from redis.exceptions import RedisError

        try:
            return await asyncio.wait_for(step, self.timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._on_error()  # counted for the operators' alert (signpost_limits_store_errors_total)
            # Not the error's text: it can quote the server's address or a password in the URL.
            raise LimitsUnavailable(UNAVAILABLE_MESSAGE, headers={"Retry-After": "1"}) from exc

    async def hit(
        self, key: str, now: float, windows: Sequence[tuple[int, float]], keep: float, recent_span: float
    ) -> Hit:
        flat = [str(n) for window in windows for n in window]
        member = f"{now:.6f}:{uuid.uuid4().hex[:12]}"  # unique: two searches in one microsecond are two
        args = [f"{now:.6f}", str(keep), str(recent_span), member, str(len(windows)), *flat]
        refused, retry_after, recent = await self._call(self._hit(keys=[self.prefix + key], args=args))
        return Hit(int(refused), max(0.001, float(retry_after)) if int(refused) >= 0 else 0.0, int(recent))

    async def unhit(self, key: str) -> None:
        await self._call(self._redis.zpopmax(self.prefix + key))

    async def once(self, key: str, now: float, period: float) -> bool:
        return bool(await self._call(self._once(keys=[self.prefix + key], args=[f"{now:.6f}", str(period)])))

    async def distinct(self, key: str, value: str, now: float, window: float, cap: int) -> int:
        args = [value, f"{now:.6f}", str(window), str(cap)]
        return int(await self._call(self._distinct(keys=[self.prefix + key], args=args)))

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._call(self._redis.set(self.prefix + key, value, px=max(1, int(ttl * 1000))))

    async def get(self, key: str) -> str | None:
        value: str | None = await self._call(self._redis.get(self.prefix + key))
        return value

    async def check(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


def open_limits_store(
    location: str, *, prefix: str, timeout: float, max_tracked: int, on_error: Callable[[], None] = _nothing
) -> LimitsStore:
    """The store ``limits_store`` names: ``memory``, or a redis:// (rediss://, unix://) URL."""
    if location == MEMORY:
        return MemoryStore(max_tracked=max_tracked)
    return RedisStore(location, prefix=prefix, timeout=timeout, on_error=on_error)
