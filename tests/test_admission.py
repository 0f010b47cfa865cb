"""Congestion: many authorities missing a search's deadline together lowers admission, not their circuits.

The integration tests stand nine hung authorities (loopback fault proxies in ``blackhole`` mode: a
connection is accepted and never answered) beside one healthy node, with real mTLS and gRPC: each
search then answers from LEEDS with nine timeouts, which is what a broker overloaded by its own
traffic sees. The unit tests drive AdmissionLimit's arithmetic with a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.admission import CONGESTED_MIN_TIMEOUTS, AdmissionLimit, congested
from broker.health import HealthSettings
from broker.registry import Authority
from certs.identity import Role, node_dns_name
from node.config import NodeConfig
from node.server import start_node
from signpost.federation import Pki, import_authority
from tests.conftest import row, write_csv
from tests.faultproxy import FaultProxy

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}
HUNG = 9
DEADLINE = 0.6
# The monitor polls once at start-up (each hung node: one failure), then not again within a test.
SETTINGS = HealthSettings(poll_interval=60, poll_timeout=0.5, failure_threshold=2)


# -- the rules, alone ------------------------------------------------------------------------

def test_congestion_needs_many_timeouts_and_a_share_of_those_asked():
    assert not congested(CONGESTED_MIN_TIMEOUTS - 1, CONGESTED_MIN_TIMEOUTS - 1)  # a small federation: never
    assert congested(CONGESTED_MIN_TIMEOUTS, 10)
    assert not congested(20, 152)  # the slowest few of England: their own lateness
    assert congested(38, 152)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limit_is_cut_once_per_interval_floored_and_grows_back():
    clock = Clock()
    limit = AdmissionLimit(64, floor=4, backoff=0.5, growth=1.0, backoff_interval=1.0, clock=clock)
    assert limit.admits(63) and not limit.admits(64)
    for _ in range(30):  # a whole dispatch comes back congested together: one cut
        limit.completed(True)
    assert limit.limit == 32 and not limit.admits(32)
    for _ in range(10):
        clock.now += 1.0
        limit.completed(True)
    assert limit.limit == 4  # never below the floor, so the broker keeps learning how things are
    for _ in range(100):
        limit.completed(False)
    assert limit.limit == 64  # and never above the configured ceiling


def test_a_ceiling_below_the_floor_is_the_floor():
    limit = AdmissionLimit(2, floor=4)
    limit.completed(True)
    assert limit.limit == 2 and limit.admits(1) and not limit.admits(2)


# -- a real federation with nine hung authorities --------------------------------------------

@pytest.fixture
async def hung(pki: Pki, tmp_path: Path) -> AsyncIterator[list[Authority]]:
    """Nine authorities whose connections are accepted and never answered (proxies in front of KENT)."""
    store = tmp_path / "kent.sqlite3"
    import_authority(store, write_csv(tmp_path / "kent.csv", [row(record_id="K1")]))
    node = await start_node(NodeConfig("KENT", "Kent", ("127.0.0.1", 0), store, pki.tls(pki.nodes["KENT"]),
                                       broker_public_keys=(pki.assertion_pub,)))
    proxies: list[FaultProxy] = []
    try:
        for _ in range(HUNG):
            proxy = await FaultProxy(node.address).start()
            proxies.append(proxy)
            await proxy.set_mode("blackhole")
        yield [Authority(f"HUNG{i}", f"Hung {i}", p.address, node_dns_name("KENT")) for i, p in enumerate(proxies)]
    finally:
        for proxy in proxies:
            await proxy.close()
        await node.stop(grace=0)


async def _nodes(fed) -> dict[str, dict]:
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/v1/nodes") as resp:
        return {n["code"]: n for n in (await resp.json())["nodes"]}


async def _admission_limit(fed) -> float:
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/metrics") as resp:
        text = await resp.text()
    [line] = [l for l in text.splitlines() if l.startswith("signpost_admission_limit ")]
    return float(line.split()[1])


async def _polled(fed) -> None:
    for _ in range(100):  # the start-up poll of the hung nodes ends by its timeout
        if all(n["status"] != "unknown" for n in (await _nodes(fed)).values()):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the monitor's first poll never finished")


async def test_congested_timeouts_are_reported_but_open_no_circuit(federation, hung):
    fed = await federation({"LEEDS": [row()]}, extra=hung, deadline=DEADLINE, health=SETTINGS)
    await _polled(fed)
    for _ in range(SETTINGS.failure_threshold + 1):
        status, body = await fed.search(AMELIA)
        assert status == 200
        assert {r["authority"]["code"] for r in body["results"]} == {"LEEDS"}
        assert {n["code"]: n["reason"] for n in body["coverage"]["not_answered"]} == {
            a.code: "timeout" for a in hung}  # reported as not asked in time, never as "no contact"
    seen = await _nodes(fed)
    assert {seen[a.code]["circuit"] for a in hung} == {"closed"}
    assert await _admission_limit(fed) < 64


async def test_after_congestion_searches_past_the_lowered_limit_are_refused_at_once(federation, hung):
    fed = await federation({"LEEDS": [row()]}, extra=hung, deadline=DEADLINE, health=SETTINGS, max_in_flight=10)
    await _polled(fed)
    status, _ = await fed.search(AMELIA)
    assert status == 200
    assert await _admission_limit(fed) == 7  # 10 cut by 0.7 once

    answers = await asyncio.gather(*(fed.search(AMELIA) for _ in range(9)))
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 7
    assert [body["error"]["code"] for status, body in answers if status != 200] == ["overloaded"] * 2
