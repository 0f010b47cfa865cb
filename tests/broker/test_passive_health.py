"""Passive health: a node that answered a search is not probed that round, and Describe is asked for seldom.

The monitor's probes were 8% of an idle broker's CPU with 150 nodes. A search's answer proves a node alive as
well as a health check, and what Describe reports (record count, data date, version) changes slowly. Recorded
nodes count the probes and Describes they receive; the last test does the same over real nodes and a real
search through the broker.
"""

from __future__ import annotations

import time
from typing import Any

from broker.appkeys import FANOUT, MONITOR
from broker.breaker import BreakerState, CircuitBreaker
from broker.errors import NodeTimeout
from broker.fanout import FanOut
from broker.health import HealthSettings, NodeHealth
from broker.limits_store import RedisStore
from broker.metrics import Metrics
from broker.monitor import HealthMonitor
from broker.pollshare import SharedPolls
from broker.registry import Authority
from certs.identity import Role
from tests.conftest import row

SETTINGS = HealthSettings(poll_interval=5.0, describe_interval=30.0, failure_threshold=2, reset_after=12.0)


class RecordingNode:
    """A node that records each probe it receives (whether it asked for Describe); ``fail`` makes it time out."""

    def __init__(self, code: str, *, fail: bool = False) -> None:
        self.authority = Authority(code, code.title(), "127.0.0.1:1", f"{code}.node.test")
        self.fail, self.probes = fail, list[bool]()
        self.records = 7

    async def probe(self, timeout: float, *, describe: bool = True) -> dict[str, Any]:
        self.probes.append(describe)
        if self.fail:
            raise NodeTimeout("no answer")
        return {"record_count": self.records, "software_version": "test"} if describe else {}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class View:
    """A fan-out's nodes and records, as the monitor sees them (broker.monitor's Watched)."""

    def __init__(self, clock: Clock, *nodes: RecordingNode, settings: HealthSettings = SETTINGS) -> None:
        self.clients, self.clock, self.settings = list(nodes), clock, settings
        self.health: dict[str, NodeHealth] = {}
        for node in nodes:
            self.add(node)

    def add(self, node: RecordingNode) -> None:
        if node not in self.clients:
            self.clients.append(node)
        s = self.settings
        breaker = CircuitBreaker(failure_threshold=s.failure_threshold, reset_after=s.reset_after, clock=self.clock)
        self.health[node.authority.code] = NodeHealth(node.authority, breaker, s, self.clock)

    def health_of(self, code: str) -> NodeHealth | None:
        return self.health.get(code)

    def search_answered(self, code: str) -> None:
        self.health[code].succeeded(12.0)  # as FanOut records a node's answer to a search


async def rounds(monitor: HealthMonitor, clock: Clock, count: int) -> None:
    for _ in range(count):
        await monitor.poll_once()
        clock.now += SETTINGS.poll_interval


async def test_a_node_that_answered_a_search_is_not_probed_and_one_that_did_not_is():
    clock, kent, leeds = Clock(), RecordingNode("kent"), RecordingNode("leeds")
    view, metrics = View(clock, kent, leeds), Metrics()
    monitor = HealthMonitor(view, SETTINGS, clock=clock, metrics=metrics)
    await rounds(monitor, clock, 1)
    view.search_answered("kent")
    await rounds(monitor, clock, 1)
    assert (kent.probes, leeds.probes) == ([True], [True, False])  # leeds checked, not described again
    assert view.health["kent"].status == "up" and view.health["kent"].info["record_count"] == 7
    assert metrics.node_up.labels("kent")._value.get() == 1 and metrics.nodes_up._value.get() == 2
    await rounds(monitor, clock, 1)  # no search since the last round: kent is probed again
    assert kent.probes == [True, False]


async def test_describe_is_asked_for_once_per_describe_interval_and_at_once_of_a_new_node():
    clock, kent = Clock(), RecordingNode("kent")
    view = View(clock, kent)
    monitor = HealthMonitor(view, SETTINGS, clock=clock)
    await rounds(monitor, clock, 6)  # 0 to 25 s
    kent.records = 9
    assert kent.probes == [True] + [False] * 5
    assert view.health["kent"].info["record_count"] == 7  # kept and shown between Describes
    hackney = RecordingNode("hackney")
    view.add(hackney)
    view.search_answered("kent")  # a search's answer does not put off a Describe that is due
    await rounds(monitor, clock, 1)  # 30 s
    assert kent.probes[-1] is True and view.health["kent"].info["record_count"] == 9
    assert hackney.probes == [True] and view.health["hackney"].info["record_count"] == 7


async def test_a_down_node_is_probed_every_round_and_described_when_back():
    clock, kent = Clock(), RecordingNode("kent")
    settings = HealthSettings(poll_interval=5.0, failure_threshold=100)  # the circuit stays closed
    view = View(clock, kent, settings=settings)
    monitor = HealthMonitor(view, settings, clock=clock)
    await rounds(monitor, clock, 1)
    kent.fail = True
    await rounds(monitor, clock, 3)
    assert len(kent.probes) == 4 and view.health["kent"].status == "down"
    kent.fail = False
    await rounds(monitor, clock, 1)
    assert kent.probes[-1] is True  # back up: it may have restarted with new data, so described at once
    assert view.health["kent"].status == "up"


async def test_an_open_circuit_is_probed_once_its_reset_time_has_passed():
    clock, kent = Clock(), RecordingNode("kent", fail=True)
    view = View(clock, kent)
    monitor = HealthMonitor(view, SETTINGS, clock=clock)
    await rounds(monitor, clock, 2)  # two failures open the circuit
    assert view.health["kent"].breaker.state is BreakerState.OPEN
    await rounds(monitor, clock, 2)  # 10 and 15 s: the circuit opened at 5 s and waits 12 s
    assert len(kent.probes) == 2
    await rounds(monitor, clock, 1)  # 20 s: past its reset time, one probe
    assert len(kent.probes) == 3


async def test_a_replica_that_skipped_a_node_for_its_answers_does_not_claim_its_poll(redis_space):
    clock, kent = Clock(), RecordingNode("kent")
    views = [View(clock, kent), View(clock, kent)]
    stores = [RedisStore(redis_space.url, prefix=redis_space.prefix, timeout=0.2) for _ in views]
    interval = SETTINGS.poll_interval
    monitors = [
        HealthMonitor(view, SETTINGS, clock=clock, shared=SharedPolls(store, interval, clock=clock))
        for view, store in zip(views, stores, strict=True)
    ]
    try:
        for monitor in monitors:
            await monitor.poll_once()
        clock.now += interval
        views[0].search_answered("kent")  # the first replica's search reached kent; the second's none
        for monitor in monitors:
            await monitor.poll_once()
    finally:
        for store in stores:
            await store.close()
    assert kent.probes == [True, False]  # round two: polled by the second replica, which the first left free
    assert all(view.health["kent"].status == "up" for view in views)
    assert all(view.health["kent"].info["record_count"] == 7 for view in views)


class CountedClient:
    """A real NodeClient whose probes are counted (broker.monitor's Probed)."""

    def __init__(self, client: Any) -> None:
        self.client, self.probes = client, list[bool]()

    @property
    def authority(self) -> Authority:
        return self.client.authority  # type: ignore[no-any-return]

    async def probe(self, timeout: float, *, describe: bool = True) -> dict[str, Any]:
        self.probes.append(describe)
        return await self.client.probe(timeout, describe=describe)  # type: ignore[no-any-return]


class Counted:
    def __init__(self, fanout: FanOut) -> None:
        self.fanout = fanout
        self.clients = [CountedClient(c) for c in fanout.clients]

    def health_of(self, code: str) -> NodeHealth | None:
        return self.fanout.health_of(code)


async def test_over_real_nodes_a_search_answer_stands_for_the_round_s_probe(federation):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1", given_name="Oliver")]})
    await fed.server.app[MONITOR].stop()  # ours counts the probes instead
    nodes = Counted(fed.server.app[FANOUT])
    monitor = HealthMonitor(nodes, SETTINGS, clock=time.time)
    await monitor.poll_once()
    status, body = await fed.search({"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"})
    assert status == 200 and body["coverage"]["answered"] == 2
    await monitor.poll_once()  # both answered the search: neither is probed
    await monitor.poll_once()  # no search since: both checked, not described
    assert {c.authority.code: c.probes for c in nodes.clients} == {"LEEDS": [True, False], "KENT": [True, False]}
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/v1/nodes") as resp:
        shown = {n["code"]: n for n in (await resp.json())["nodes"]}
    assert all(shown[code]["status"] == "up" and shown[code]["record_count"] == 1 for code in ("LEEDS", "KENT"))


async def test_an_operator_s_refresh_probes_and_describes_every_node_answered_or_not():
    clock, kent = Clock(), RecordingNode("kent")
    view = View(clock, kent)
    monitor = HealthMonitor(view, SETTINGS, clock=clock)
    await rounds(monitor, clock, 1)
    kent.records = 9
    view.search_answered("kent")
    await monitor.poll_once(full=True)  # GET /v1/nodes?refresh=true: current figures, not kept ones
    assert kent.probes == [True, True] and view.health["kent"].info["record_count"] == 9


async def test_a_record_made_anew_for_a_changed_authority_is_described_at_once():
    clock, kent = Clock(), RecordingNode("kent")
    view = View(clock, kent)
    monitor = HealthMonitor(view, SETTINGS, clock=clock)
    await rounds(monitor, clock, 1)
    view.add(kent)  # as FanOut does when the registry gives the authority a new address: a fresh record
    await rounds(monitor, clock, 1)
    assert kent.probes == [True, True] and view.health["kent"].info["record_count"] == 7
