"""Keeping every node's health record current between searches: the health monitor.

Every ``poll_interval`` seconds each node is probed (``grpc.health.v1`` Check, then Describe for record
count, data freshness, software version and certificate expiry, see NodeClient.probe) and the outcome is
written to its record (broker.health). A node whose circuit is open is probed only once its reset time
has passed, like a search would.

The monitor sees the nodes through the small Protocols below (FanOut provides both), so that neither
broker.health nor this module depends on broker.fanout. It must never decide a search's outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog

from broker.errors import NodeCallError
from broker.health import HealthSettings, NodeHealth
from broker.registry import Authority
from core.tasks import BackgroundLoop

log = structlog.get_logger("signpost.broker")


class Probed(Protocol):
    """A node that can be probed (broker.nodeclient.NodeClient)."""

    @property
    def authority(self) -> Authority: ...

    async def probe(self, timeout: float) -> dict[str, Any]: ...


class Watched(Protocol):
    """The nodes to poll and their records (broker.fanout.FanOut); read anew each round, as they change."""

    @property
    def clients(self) -> Sequence[Probed]: ...

    def health_of(self, code: str) -> NodeHealth | None: ...


class HealthMonitor:
    """Polls every node of a fan-out on an interval until stopped."""

    def __init__(
        self, nodes: Watched, settings: HealthSettings, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self.nodes, self.settings, self._sleep = nodes, settings, sleep
        self._loop = BackgroundLoop("signpost-health-monitor", self._run)
        self.start, self.stop = self._loop.start, self._loop.stop

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await self._sleep(self.settings.poll_interval)

    async def poll_once(self) -> None:
        await asyncio.gather(*(self._poll(c) for c in self.nodes.clients))

    async def _poll(self, client: Probed) -> None:
        health = self.nodes.health_of(client.authority.code)
        if health is None or not health.breaker.allow():
            return  # an open circuit is probed only once its reset time has passed
        started = time.perf_counter()
        try:
            info = await client.probe(self.settings.poll_timeout)
        except NodeCallError as exc:
            if health.reachable or not health.polled:
                log.warning("node_down", authority=client.authority.code, reason=exc.reason)
            health.failed(exc)
        else:
            if not health.reachable:
                log.info("node_up", authority=client.authority.code)
            health.succeeded((time.perf_counter() - started) * 1000)
            health.info = info
        health.polled = True
