"""Refusals that must not flood the audit log or the broker: counted per client, limited per address.

A hostile client can be refused far faster than anyone searches: thousands of 429s or
certificate-less 401s a second. Each audited in full would bury the real searches (and fill the
disk), so ``RefusalTally`` lets the first of each interval per client through to be audited in full
(``broker.search_audit``) and only counts the rest; at the end of the interval the count becomes one
``refusals`` entry (``flush``, run by a background loop and at shutdown). Before any of that, the
pre-authentication limit (``broker.ratelimit.AddressLimiter``, applied by ``preauth_middleware``)
answers 429 with Retry-After to a source address making too many requests, before any certificate
or body is read; those refusals are counted the same way.

A client is the practitioner's user id, or the source address when there is no usable certificate.
This module never logs or stores anything a request carried beyond that: no body is read here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from broker.appkeys import AUDIT, CONFIG
from broker.audit.errors import AuditError
from broker.config import BrokerConfig
from broker.errors import RateLimited
from broker.policy import REFUSAL_AUDIT_MAX_CLIENTS
from broker.ratelimit import AddressLimiter
from core.tasks import BackgroundLoop

log = structlog.get_logger("signpost.broker")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OVERFLOW = "*"
"""The client that refusals share once ``max_clients`` are counted apart in one interval."""
OUTCOME = {401: "unauthenticated", 429: "rate_limited"}
PREAUTH = "preauth_limited"


@dataclass(frozen=True)
class Summary:
    """Refusals of one kind to one client in one interval that were counted, not audited one by one."""

    status: int
    outcome: str
    client: str
    count: int
    since: float
    until: float

    def entry(self) -> dict[str, object]:
        """The ``refusals`` audit entry: indexed by the user id when there is one, so an auditor finds it."""
        address = self.client.removeprefix("address:") if self.client.startswith("address:") else ""
        return {
            "type": "refusals",
            "time": iso(self.until),
            "status": self.status,
            "outcome": self.outcome,
            "actor": {"user_id": "" if address or self.client == OVERFLOW else self.client, "role": ""},
            "client": {"address": address} if address else {"other_clients": self.client == OVERFLOW},
            "count": self.count,
            "since": iso(self.since),
            "until": iso(self.until),
        }


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class _Window:
    since: float
    counted: int = 0


class RefusalTally:
    """Per (status, outcome, client): the first refusal of each interval in full, the rest counted."""

    def __init__(
        self, interval: float, *, clock: Callable[[], float], max_clients: int = REFUSAL_AUDIT_MAX_CLIENTS
    ) -> None:
        self.interval, self.max_clients = interval, max_clients
        self._clock = clock
        self._windows: dict[tuple[int, str, str], _Window] = {}
        self._closed: list[Summary] = []

    def note(self, status: int, client: str, outcome: str = "") -> bool:
        """Count one refusal; True when it is the first of its interval and must be audited in full."""
        return self._add(status, outcome or OUTCOME.get(status, "refused"), client, in_full=True)

    def count(self, status: int, client: str, outcome: str) -> None:
        """Count one refusal that is never audited alone (the pre-authentication limit's)."""
        self._add(status, outcome, client, in_full=False)

    def _add(self, status: int, outcome: str, client: str, *, in_full: bool) -> bool:
        now = self._clock()
        key = (status, outcome, client)
        if key not in self._windows and len(self._windows) >= self.max_clients:
            key = (status, outcome, OVERFLOW)  # memory stays bounded however many addresses an attacker has
        window = self._windows.get(key)
        if window is not None and now < window.since + self.interval:
            window.counted += 1
            return False
        if window is not None:
            self._close(key, window, now)
        self._windows[key] = _Window(now, counted=0 if in_full else 1)
        return in_full

    def _close(self, key: tuple[int, str, str], window: _Window, now: float) -> None:
        if window.counted:
            status, outcome, client = key
            until = min(now, window.since + self.interval)
            self._closed.append(Summary(status, outcome, client, window.counted, window.since, until))

    def due(self, *, everything: bool = False) -> list[Summary]:
        """Summaries of the intervals that have ended (all of them, at shutdown), each handed out once."""
        now = self._clock()
        for key, window in list(self._windows.items()):
            if everything or now >= window.since + self.interval:
                del self._windows[key]
                self._close(key, window, now)
        closed, self._closed = self._closed, []
        return closed


REFUSALS = web.AppKey("refusals", RefusalTally)
PREAUTH_LIMITER = web.AppKey("preauth_limiter", AddressLimiter)


async def flush(app: web.Application, *, everything: bool = False) -> int:
    """Write the summary entries that are due; the number written. A failed write is logged, not raised."""
    written = 0
    for summary in app[REFUSALS].due(everything=everything):
        try:
            await app[AUDIT].append_within(summary.entry(), app[CONFIG].refusal_audit_interval_seconds)
            written += 1
        except AuditError as exc:
            log.error("audit_write_failed", entry_type="refusals", error_type=type(exc).__name__)
    return written


@web.middleware
async def preauth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """429 with Retry-After for a source address over its request rate, before any certificate or body work."""
    address = request.remote or ""
    wait = request.app[PREAUTH_LIMITER].check(address)
    if wait > 0:
        request.app[REFUSALS].count(429, f"address:{address}", PREAUTH)
        raise RateLimited(
            "too many requests from this address; wait before trying again",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return await handler(request)


def install(app: web.Application, config: BrokerConfig, clock: Callable[[], float]) -> None:
    """Add the pre-authentication limit and the refusal tally (its flush loop stops before the audit log closes).

    Call after the audit log's cleanup context is added, so the last counts are written before it closes.
    """
    app[REFUSALS] = RefusalTally(config.refusal_audit_interval_seconds, clock=clock)
    app[PREAUTH_LIMITER] = AddressLimiter(config.preauth_requests_per_second, config.preauth_burst)
    app.middlewares.append(preauth_middleware)

    async def refusals_ctx(app: web.Application) -> AsyncIterator[None]:
        async def every_interval() -> None:
            while True:
                await asyncio.sleep(min(config.refusal_audit_interval_seconds, 60.0))
                await flush(app)

        loop = BackgroundLoop("refusal-audit", every_interval)
        loop.start()
        yield
        await loop.stop()
        await flush(app, everything=True)

    app.cleanup_ctx.append(refusals_ctx)
