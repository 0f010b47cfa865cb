"""Keeping every node's health record current between searches: the health monitor.

Every ``poll_interval`` seconds each node is probed (``grpc.health.v1`` Check, see NodeClient.probe) and
the outcome is written to its record (broker.health). A node whose circuit is open is probed only once its
reset time has passed, like a search would. Health is also passive, as load balancers do it: a node that
answered a search since the monitor's last round (and is up, its circuit closed) is not probed that round,
its answer being proof of life enough; with 150 nodes the probes were 8% of an idle broker's CPU. A node
that is down is probed every round. Describe (record count, data freshness, software version, certificate
expiry) is asked for at most every ``describe_interval``, and at once of a node not yet described or just
back up; the last figures are kept and shown meanwhile.

After every round the monitor itself sets the operators' gauges (broker.metrics), so Prometheus
sees a node go down within a poll interval whether or not anyone opens ``/v1/nodes``: how many
authorities answer, and for each its up/down, the round trip of its last check, the age of the
data it serves, its record count and its certificate's expiry — as seen in a TLS handshake
(broker.peercert, every few minutes) when ``certificates`` is given and the handshake succeeds,
else as the node reports it in Describe. An authority removed from the registry has its series
dropped.

Several replicas must not multiply the load on the nodes: given ``shared`` (broker.pollshare, over the
replicas' Redis) a node is polled by one replica per interval and the others apply its outcome (a replica
that skips a node for its search answers does not claim it, so another may poll it); and
every monitor sleeps ``poll_interval`` give or take ``jitter`` (10%), so replicas started together drift
apart instead of polling in step (which matters when the shared store is down and each polls alone).

The monitor sees the nodes through the small Protocols below (FanOut provides both), so that neither
broker.health nor this module depends on broker.fanout. It must never decide a search's outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog

from broker.admission import LoopLag, excused
from broker.breaker import BreakerState
from broker.errors import NodeCallError, NodeTimeout
from broker.health import HealthSettings, NodeHealth
from broker.metrics import Metrics
from broker.peercert import PeerCertificates
from broker.pollshare import PollResult, SharedPolls
from broker.registry import Authority
from core.tasks import BackgroundLoop

log = structlog.get_logger("signpost.broker")


class Probed(Protocol):
    """A node that can be probed (broker.nodeclient.NodeClient)."""

    @property
    def authority(self) -> Authority: ...

    async def probe(self, timeout: float, *, describe: bool = True) -> dict[str, Any]: ...


class Watched(Protocol):
    """The nodes to poll and their records (broker.fanout.FanOut); read anew each round, as they change."""

    @property
    def clients(self) -> Sequence[Probed]: ...

    def health_of(self, code: str) -> NodeHealth | None: ...


class HealthMonitor:
    """Polls every node of a fan-out on an interval until stopped."""

    def __init__(
        self,
        nodes: Watched,
        settings: HealthSettings,
        *,
        metrics: Metrics | None = None,
        certificates: PeerCertificates | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        shared: SharedPolls | None = None,
        jitter: float = 0.1,
        uniform: Callable[[], float] = random.random,
        lag: LoopLag | None = None,
    ) -> None:
        self.nodes, self.settings, self._sleep = nodes, settings, sleep
        self.lag = lag
        """The broker's loop lag (broker.admission): a poll timed out while it lagged is not the node's failure."""
        self.metrics, self.certificates, self._clock = metrics, certificates, clock
        self.shared, self.jitter, self._uniform = shared, jitter, uniform
        self._seen_expiry: dict[str, float] = {}
        self._probe_seconds: dict[str, float] = {}
        self._exported: set[str] = set()
        self._last: dict[str, PollResult] = {}
        self._answers_seen: dict[str, int] = {}
        """Each node's NodeHealth.answered at the end of the last round: more since, and it answered a search."""
        self._described_at: dict[str, float] = {}
        self._loop = BackgroundLoop("signpost-health-monitor", self._run)
        self.start, self.stop = self._loop.start, self._loop.stop

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await self._sleep(self.settings.poll_interval * (1 + self.jitter * (2 * self._uniform() - 1)))

    async def poll_once(self, *, full: bool = False) -> None:
        """One round; ``full`` (an operator's ``?refresh=true``) probes and describes every node, answered or not."""
        await asyncio.gather(*(self._poll(c, full) for c in self.nodes.clients))
        if self.metrics is not None:
            self._export(self.metrics)

    async def _poll(self, client: Probed, full: bool) -> None:
        code = client.authority.code
        health = self.nodes.health_of(code)
        if health is None:
            return
        describe = full or self._describe_due(code, health)
        if describe or not self._answered_since(code, health):
            await self._poll_node(client, health, describe)
        self._answers_seen[code] = health.answered  # the next round asks for an answer after this one

    def _answered_since(self, code: str, health: NodeHealth) -> bool:
        """Whether a search's answer since the last round shows the node up (a down node is always probed)."""
        closed = health.breaker.state is BreakerState.CLOSED
        return closed and health.reachable and health.answered > self._answers_seen.get(code, 0)

    def _describe_due(self, code: str, health: NodeHealth) -> bool:
        """Due every describe_interval, and at once for a record with no figures (new, or its authority changed)."""
        described = self._described_at.get(code)
        if described is None or not health.info:
            return True
        return self._clock() - described >= self.settings.describe_interval

    async def _poll_node(self, client: Probed, health: NodeHealth, describe: bool) -> None:
        if not health.breaker.allow():
            return  # an open circuit is probed only once its reset time has passed
        code = client.authority.code
        if self.shared is not None and not await self.shared.claim(code):
            await self._apply_shared(client, health, self.shared)  # another replica polls it this round
            return
        started = time.perf_counter()
        lag_mark = self.lag.clock() if self.lag is not None else 0.0
        try:
            info = await client.probe(self.settings.poll_timeout, describe=describe)
        except NodeCallError as exc:
            if isinstance(exc, NodeTimeout) and self.lag is not None and excused(False, self.lag.worst_since(lag_mark)):
                health.missed_in_congestion(exc)  # the broker was late to read the answer, not the node to send it
                return
            self._record(client, health, PollResult(self._clock(), ok=False, reason=exc.reason), exc)
        else:
            seconds = time.perf_counter() - started
            # Not described this time: the figures kept go with the outcome, so replicas applying it keep them too.
            kept = info if describe else dict(health.info)
            result = PollResult(self._clock(), ok=True, ms=seconds * 1000, info=kept)
            self._record(client, health, result, None)
            if describe:
                self._described_at[code] = result.at
            await self._look_at_certificate(client.authority)
        if self.shared is not None:
            await self.shared.publish(code, self._last[code])

    async def _apply_shared(self, client: Probed, health: NodeHealth, shared: SharedPolls) -> None:
        """Record the outcome another replica published, once; if there is none new, as if not polled."""
        result = await shared.fresh(client.authority.code)
        if result is None:
            health.breaker.release()  # a half-open probe slot taken by allow() is given back
            return
        self._record(client, health, result, None if result.ok else result.error())
        if result.ok and result.info:
            # Described by the poller now or not long ago: this replica need not ask again at once.
            self._described_at.setdefault(client.authority.code, result.at)
        if result.ok:
            await self._look_at_certificate(client.authority)

    def _record(self, client: Probed, health: NodeHealth, result: PollResult, error: NodeCallError | None) -> None:
        """One poll's outcome into the node's record, whoever polled."""
        code = client.authority.code
        self._last[code] = result
        if error is not None:
            if health.reachable or not health.polled:
                log.warning("node_down", authority=code, reason=error.reason)
            health.failed(error)
            self._described_at.pop(code, None)  # back up, it may have restarted with new data or software
        else:
            if not health.reachable:
                log.info("node_up", authority=code)
            health.succeeded(result.ms)
            health.info = dict(result.info)
            self._probe_seconds[code] = result.ms / 1000
        health.polled = True

    async def _look_at_certificate(self, authority: Authority) -> None:
        if self.certificates is None:
            return
        expires = await self.certificates.expiry(authority)  # cached: a handshake every few minutes at most
        if expires is None:
            self._seen_expiry.pop(authority.code, None)  # fall back to what the node reports
        else:
            self._seen_expiry[authority.code] = expires

    def _export(self, metrics: Metrics) -> None:
        """Every authority's gauges from its record, as the round left it."""
        now, up, exported = self._clock(), 0, set()
        for client in self.nodes.clients:
            code = client.authority.code
            health = self.nodes.health_of(code)
            if health is None:
                continue
            exported.add(code)
            answering = health.status in ("up", "probation")  # probation: slow, but answering
            up += answering
            metrics.node_up.labels(code).set(1 if answering else 0)
            if code in self._probe_seconds:
                metrics.node_probe_seconds.labels(code).set(self._probe_seconds[code])
            if health.info.get("record_count") is not None:
                metrics.node_records.labels(code).set(health.info["record_count"])
            if (as_of := _timestamp(health.info.get("data_as_of"))) is not None:
                metrics.node_data_age.labels(code).set(max(0.0, now - as_of))
            expires = self._seen_expiry.get(code) or _timestamp(health.info.get("cert_expires"))
            if expires is not None:
                metrics.node_certificate_expiry.labels(code).set(expires)
        metrics.nodes_up.set(up)
        metrics.nodes_known.set(len(exported))
        for gone in self._exported - exported:
            metrics.forget_node(gone)
            self._probe_seconds.pop(gone, None)
            self._last.pop(gone, None)
            self._seen_expiry.pop(gone, None)
            self._answers_seen.pop(gone, None)
            self._described_at.pop(gone, None)
        self._exported = exported


def _timestamp(text: object) -> float | None:
    """POSIX time of an ISO 8601 date a node reported (UTC if it names no zone); None if absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
