"""One health poll per node per interval, whichever replica makes it: the replicas share the result.

Each replica's health monitor (broker.monitor) used to poll every node every ``poll_interval``, so
three replicas tripled the load on every node's health check and Describe. With a shared limits
store (Redis), before probing a node a monitor claims that node's poll for the next 0.9 interval
(``once``: atomic, one winner); the winner probes and publishes the outcome for a few intervals, and
the others apply the latest outcome they have not yet applied, as if they had polled themselves.
A node therefore sees about one poll per interval whatever the number of replicas; a replica's view
of a node lags the poller's by at most one interval.

Polling is not a safeguard: if the store cannot be reached, each replica polls for itself (as a
single broker does) rather than lose sight of the nodes; the monitor's own jitter keeps those
polls spread out. What is shared is what Describe reports (record count, data date, software
version, certificate expiry) and the outcome's reason: never anything about a child.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from broker.errors import (
    LimitsUnavailable,
    NodeCallError,
    NodeCircuitOpen,
    NodeFailed,
    NodeRefused,
    NodeTimeout,
    NodeUnavailable,
)
from broker.limits_store import LimitsStore

log = structlog.get_logger("signpost.broker")
_ERRORS: dict[str, type[NodeCallError]] = {
    e.reason: e for e in (NodeTimeout, NodeUnavailable, NodeRefused, NodeCircuitOpen, NodeFailed)
}
CLAIM_SHARE = 0.9
"""A claim lasts this share of the interval: the next round's claim is free however the replicas drift."""
KEEP_INTERVALS = 3.0
"""A published outcome is kept this many intervals: older than that, a replica polls rather than trust it."""


@dataclass(frozen=True)
class PollResult:
    """One poll of one node: answered (``ms``, ``info``) or not (``reason``), when, and by which replica."""

    at: float
    ok: bool
    ms: float = 0.0
    reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    poller: str = ""

    def error(self) -> NodeCallError:
        """The failure as the poller saw it, to record as this replica's own."""
        return _ERRORS.get(self.reason, NodeFailed)("reported by the replica that polled")


class SharedPolls:
    """The claim and the last outcome of each node's poll, in the replicas' shared store."""

    def __init__(self, store: LimitsStore, interval: float, *, clock: Callable[[], float] = time.time) -> None:
        # The wall clock, not the app's: claims must expire in real time whatever clock the searches see.
        self.store, self.interval, self._clock = store, interval, clock
        self.replica = uuid.uuid4().hex[:12]
        self._applied: dict[str, float] = {}
        self._warned = False

    async def claim(self, code: str) -> bool:
        """Whether this replica polls ``code`` now: yes if it won the claim, or if the store is unreachable."""
        try:
            won = await self.store.once(f"poll:{code}", self._clock(), self.interval * CLAIM_SHARE)
        except LimitsUnavailable:
            self._unreachable()
            return True
        self._warned = False
        return won

    async def publish(self, code: str, result: PollResult) -> None:
        self._applied[code] = result.at  # our own: never applied again
        payload = json.dumps({**result.__dict__, "poller": self.replica})
        try:
            await self.store.put(f"poll-result:{code}", payload, self.interval * KEEP_INTERVALS)
        except LimitsUnavailable:
            self._unreachable()

    async def fresh(self, code: str) -> PollResult | None:
        """The latest outcome another replica published for ``code`` that this one has not applied yet."""
        try:
            payload = await self.store.get(f"poll-result:{code}")
        except LimitsUnavailable:
            self._unreachable()
            return None
        if payload is None:
            return None
        try:
            result = PollResult(**json.loads(payload))
        except (ValueError, TypeError):
            return None  # written by another version: poll again next round
        if result.at <= self._applied.get(code, float("-inf")):
            return None
        self._applied[code] = result.at
        return result

    def _unreachable(self) -> None:
        if not self._warned:  # once per outage, not once per node per round
            log.warning("poll_share_unavailable", detail="polling every node from this replica")
        self._warned = True
