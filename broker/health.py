"""What the broker knows about each authority's node.

Every call — a search's Match or the monitor's health check and Describe —
feeds the node's record: recent latencies (p50, p99), error rate, last
success, and the circuit breaker. The monitor (broker.monitor) polls every
node on an interval. ``GET /v1/nodes`` and the operator dashboard show this
state; searches use it to skip open circuits and to give slow nodes (on
probation) less of the deadline.

This module is a record only: it must never call a node nor import the modules
that do (broker.nodeclient, broker.fanout, broker.monitor).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broker.breaker import BreakerState, CircuitBreaker
from broker.errors import NodeCallError
from broker.registry import Authority
from core.stats import of_sorted, percentile


@dataclass(frozen=True)
class HealthSettings:
    """How the broker watches nodes."""

    poll_interval: float = 2.0
    """Seconds between health polls of every node."""
    poll_timeout: float = 1.0
    describe_interval: float = 30.0
    """Seconds between the monitor's Describe calls to a node (record count, data date, version, certificate
    expiry): these change slowly, and the last figures are kept and shown meanwhile."""
    failure_threshold: int = 5
    """Consecutive failures that open a node's circuit."""
    reset_after: float = 5.0
    """Seconds an open circuit waits before one probe is let through."""
    slow_ms: float = 500.0
    """A node whose recent p90 latency exceeds this, and is an outlier among its peers (see Peers), is
    put on probation."""
    probation_timeout: float = 0.5
    """The most of a search's deadline a node on probation is given."""


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def _age(as_of: object, now: float) -> int | None:
    """Whole seconds since the node's data was loaded (its Describe ``data_as_of``); None if unknown."""
    if not isinstance(as_of, str) or not as_of:
        return None
    try:
        when = dt.datetime.fromisoformat(as_of)
    except ValueError:
        return None
    return max(0, int(now - (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()))


PEER_FACTOR = 3.0
"""How many times the federation's typical latency a node's p90 must be to count as slow."""


class Peers:
    """The federation's typical node latency, so that probation singles out a node slow among its peers.

    When the whole machine is busy every node answers slowly; giving them all a short probation
    timeout would turn load into timeouts, timeouts into open circuits, and a busy afternoon into
    searches that could not ask most authorities. So a node is on probation only if its recent p90
    is over ``slow_ms`` and over PEER_FACTOR times the (lower) median of every node's recent p50, and
    only while at most half of the nodes are: more is the machine, stalling everyone's answers together.
    Recomputed at most every ``interval`` seconds: it is read once per node per search.
    """

    def __init__(
        self, settings: HealthSettings, *, clock: Callable[[], float] = time.monotonic, interval: float = 0.5
    ) -> None:
        self.settings, self._clock, self.interval = settings, clock, interval
        self.members: dict[str, NodeHealth] = {}
        self._computed_at = float("-inf")
        self.typical_ms: float | None = None

    def refresh(self) -> None:
        now = self._clock()
        if now - self._computed_at < self.interval:
            return
        self._computed_at = now
        p50s: list[float] = []
        p90s: dict[str, float] = {}
        for code, health in self.members.items():
            # The last 20, sorted once for both (152 nodes twice a second: copying all 200 was most of it).
            recent = sorted(itertools.islice(reversed(health.latencies), 20))
            if len(recent) >= 5:
                p50s.append(of_sorted(recent, 50))
                p90s[code] = of_sorted(recent, 90)
        p50s.sort()
        self.typical_ms = p50s[(len(p50s) - 1) // 2] if p50s else None
        floor = max(self.settings.slow_ms, PEER_FACTOR * (self.typical_ms or 0.0))
        slow = {code for code, p90 in p90s.items() if p90 > floor}
        if 2 * len(slow) > len(p90s):
            # Most nodes slow at once is the machine (a broker loop stalled now and then delays every answer
            # alike, while the median p50 stays fast): single out nobody, as for a machine busy throughout.
            slow = set()
        for code, health in self.members.items():
            health.probation = code in slow


@dataclass
class NodeHealth:
    """One authority's recent record, as the broker sees it."""

    authority: Authority
    breaker: CircuitBreaker
    settings: HealthSettings
    wall_clock: Callable[[], float]
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=100))
    last_success: float | None = None
    last_error: str = ""
    polled: bool = False
    retrying: int = 0
    """Searches now retrying this node (see FanOut.max_retrying)."""
    reachable: bool = False
    answered: int = 0
    """Successful answers so far, searches' and polls': the monitor skips a node that answered since its
    last round (passive health: a search's answer proves the node alive as well as a health check)."""
    info: dict[str, Any] = field(default_factory=dict)
    peers: Peers | None = None
    probation: bool = False
    """Set by ``peers``; read through on_probation."""

    def __post_init__(self) -> None:
        if self.peers is None:
            self.peers = Peers(self.settings)
        self.peers.members[self.authority.code] = self

    def succeeded(self, ms: float, at: float | None = None) -> None:
        """An answer in ``ms``; ``at`` (wall clock) lets a search read the clock once for all its nodes."""
        self.latencies.append(ms)
        self.outcomes.append(True)
        self.answered += 1
        self.last_success, self.reachable = self.wall_clock() if at is None else at, True
        self.breaker.success()

    def failed(self, error: NodeCallError) -> None:
        self.outcomes.append(False)
        self.last_error, self.reachable = error.reason, False
        if error.reason == "timeout":
            self.latencies.append(float("inf"))  # a timeout is the slowest answer of all
        self.breaker.failure()

    def missed_in_congestion(self, error: NodeCallError) -> None:
        """No answer in a congested search (broker.admission): in the error rate, not held against the node.

        Not a failure for the breaker (a half-open probe gives its turn back), not an infinite latency
        for probation, and not evidence that the node is down.
        """
        self.outcomes.append(False)
        self.last_error = error.reason
        self.breaker.release()

    @property
    def on_probation(self) -> bool:
        assert self.peers is not None
        self.peers.refresh()
        return self.probation

    @property
    def status(self) -> str:
        if self.breaker.state is BreakerState.OPEN:
            return "circuit_open"
        if not self.polled and not self.outcomes:
            return "unknown"
        if not self.reachable:
            return "down"
        if self.on_probation or self.breaker.state is BreakerState.HALF_OPEN:
            return "probation"
        return "up"

    def to_json(self) -> dict[str, Any]:
        finite = [v for v in self.latencies if v != float("inf")]
        p50, p99 = percentile(finite, 50), percentile(list(self.latencies), 99)
        errors = self.outcomes.count(False)
        return {
            "code": self.authority.code,
            "name": self.authority.name,
            "address": self.authority.address,
            "status": self.status,
            "reason": self.last_error or None,
            "latency_ms": {
                "p50": None if p50 is None else round(p50, 1),
                "p99": None if p99 is None or p99 == float("inf") else round(p99, 1),
            },
            "error_rate": round(errors / len(self.outcomes), 3) if self.outcomes else None,
            "last_success": _iso(self.last_success),
            "circuit": self.breaker.state.value,
            **self.info,
            "data_age_seconds": _age(self.info.get("data_as_of"), self.wall_clock()),
        }
