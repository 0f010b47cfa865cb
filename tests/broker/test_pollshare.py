"""Replicas do not multiply the health polls a node receives: one replica polls, the others apply its outcome.

Two health monitors (two replicas' views of the same nodes) share the real Redis under a throw-away
prefix; the nodes count the probes they receive. Redis cut by the fault proxy: each replica polls for
itself again rather than lose sight of the nodes.
"""

from __future__ import annotations

import time
from typing import Any

from broker.breaker import CircuitBreaker
from broker.errors import NodeTimeout
from broker.health import HealthSettings, NodeHealth
from broker.limits_store import RedisStore
from broker.monitor import HealthMonitor
from broker.pollshare import SharedPolls
from broker.registry import Authority
from tests.faultproxy import FaultProxy

INTERVAL = 30.0
"""Long, and on a clock the test moves: no claim expires in Redis's real time while a round runs, however busy."""


class CountingNode:
    """A node that counts the probes it receives; ``fail`` makes it time out."""

    def __init__(self, code: str, *, fail: bool = False) -> None:
        self.authority = Authority(code, code.title(), "127.0.0.1:1", f"{code}.node.test")
        self.fail, self.probes = fail, 0

    async def probe(self, timeout: float, *, describe: bool = True) -> dict[str, Any]:
        self.probes += 1
        if self.fail:
            raise NodeTimeout("no answer")
        return {"record_count": 7, "software_version": "test"}


class ReplicaView:
    """One replica's records of the shared nodes (each replica has its own fan-out and breakers)."""

    def __init__(self, clients: tuple[CountingNode, ...], settings: HealthSettings) -> None:
        self.clients = clients
        self.health = {
            c.authority.code: NodeHealth(c.authority, CircuitBreaker(clock=time.monotonic), settings, time.time)
            for c in clients
        }

    def health_of(self, code: str) -> NodeHealth | None:
        return self.health.get(code)


NOW = [1_000_000.0]


def clock() -> float:
    return NOW[0]


async def rounds(monitors: list[HealthMonitor], count: int) -> None:
    for _ in range(count):
        for monitor in monitors:
            await monitor.poll_once()
        NOW[0] += INTERVAL


def replicas(clients: tuple[CountingNode, ...], url: str, prefix: str) -> tuple[list[HealthMonitor], list[RedisStore]]:
    settings = HealthSettings(poll_interval=INTERVAL, failure_threshold=100)
    stores = [RedisStore(url, prefix=prefix, timeout=0.2) for _ in range(2)]
    monitors = [
        HealthMonitor(
            ReplicaView(clients, settings), settings, clock=clock, shared=SharedPolls(store, INTERVAL, clock=clock)
        )
        for store in stores
    ]
    return monitors, stores


async def test_two_replicas_poll_each_node_once_a_round_and_both_see_the_outcome(redis_space):
    kent, leeds = CountingNode("kent"), CountingNode("leeds", fail=True)
    monitors, stores = replicas((kent, leeds), redis_space.url, redis_space.prefix)
    try:
        await rounds(monitors, 4)
    finally:
        for store in stores:
            await store.close()
    assert (kent.probes, leeds.probes) == (4, 4)  # not 8: one replica polled, the other was told
    for monitor in monitors:
        kent_seen, leeds_seen = monitor.nodes.health_of("kent"), monitor.nodes.health_of("leeds")
        assert kent_seen.status == "up" and kent_seen.info["record_count"] == 7
        assert leeds_seen.status == "down" and leeds_seen.last_error == "timeout"


async def test_with_redis_cut_each_replica_polls_for_itself(redis_space):
    kent = CountingNode("kent")
    upstream = redis_space.url.removeprefix("redis://").split("/")[0]
    async with FaultProxy(upstream) as proxy:
        monitors, stores = replicas((kent,), f"redis://{proxy.address}/0", redis_space.prefix)
        try:
            await rounds(monitors, 2)
            assert kent.probes == 2
            await proxy.set_mode("refuse")
            await rounds(monitors, 2)
            assert kent.probes == 6  # both replicas, each round: the nodes are still watched
            assert all(m.nodes.health_of("kent").status == "up" for m in monitors)
        finally:
            for store in stores:
                await store.close()
