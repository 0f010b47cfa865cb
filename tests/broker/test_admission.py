"""Congestion: many authorities missing a search's deadline together, while those that answer are slow,
lowers admission rather than opening their circuits; a quick answer beside them means they are at fault.

The integration tests stand nine hung authorities (loopback fault proxies in ``blackhole`` mode: a
connection is accepted and never answered) beside one that answers — quickly, or slowly through a
proxy in ``latency`` mode — with real mTLS and gRPC. Slow answers beside the timeouts are what a
broker overloaded by its own traffic sees; quick ones are a shared outage. The unit tests drive
the rule and AdmissionLimit's arithmetic with a fake clock, and the leading signals admission reads
first: the nodes' outstanding work (``expected_seconds``), the broker's loop lag (``LoopLag``) and the
decision that combines them (``Admission``). The overload test with a real federation is
tests/broker/test_overload.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from broker.admission import (
    ADMIT_SHARE,
    CONGESTED_MIN_TIMEOUTS,
    LAG_EXCUSE_SECONDS,
    Admission,
    AdmissionLimit,
    Load,
    LoopLag,
    congested,
    excused,
    expected_seconds,
    node_expected,
)
from broker.appkeys import FANOUT
from broker.breaker import BreakerState, CircuitBreaker
from broker.errors import NodeTimeout
from broker.health import HealthSettings, NodeHealth
from broker.monitor import HealthMonitor
from broker.registry import Authority
from certs.identity import Role, node_dns_name
from node.config import NodeConfig
from node.server import start_node
from signpost.federation import Pki, import_authority
from tests.conftest import row, write_csv
from tests.faultproxy import FaultProxy

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}
HUNG = 9
DEADLINE = 1.0
SLOW_MS = 150
"""Each way, through LEEDS's proxy: an answer takes over a quarter of the deadline."""
# The monitor polls once at start-up (each hung node: one failure), then not again within a test.
SETTINGS = HealthSettings(poll_interval=60, poll_timeout=0.5, failure_threshold=2)


# -- the rules, alone ------------------------------------------------------------------------


def test_congestion_needs_many_timeouts_a_share_of_those_asked_and_slow_answers():
    slow, quick = [900.0, 1200.0], [8.0, 12.0]
    assert not congested(CONGESTED_MIN_TIMEOUTS - 1, CONGESTED_MIN_TIMEOUTS - 1, slow, 1950)  # a small federation
    assert congested(CONGESTED_MIN_TIMEOUTS, 10, slow, 1950)
    assert not congested(CONGESTED_MIN_TIMEOUTS, 10, quick, 1950)  # the others were quick: it is the silent ones
    assert congested(CONGESTED_MIN_TIMEOUTS, 10, [], 1950)  # nobody answered: cannot tell, so the broker backs off
    assert not congested(20, 152, slow, 1950)  # the slowest few of England: their own lateness
    assert congested(38, 152, slow, 1950)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limit_is_cut_once_for_the_searches_already_under_way_floored_and_grows_back():
    clock = Clock()
    limit = AdmissionLimit(64, floor=4, backoff=0.5, growth=1.0, clock=clock)
    assert limit.admit(63) is not None and limit.admit(64) is None
    tickets = [limit.admit(0) for _ in range(30)]
    clock.now += 1.0
    for ticket in tickets:  # all under way together, all back congested together: one cut
        assert ticket is not None
        limit.completed(ticket, True)
    assert limit.limit == 32 and limit.admit(32) is None and limit.congested == 30
    for _ in range(10):  # each search admitted after the last cut that comes back congested cuts again
        clock.now += 1.0
        ticket = limit.admit(0)
        assert ticket is not None
        clock.now += 1.0
        limit.completed(ticket, True)
    assert limit.limit == 4  # never below the floor, so the broker keeps learning how things are
    for _ in range(100):
        limit.completed(clock.now, False)
    assert limit.limit == 64  # and never above the configured ceiling


def test_the_floor_is_never_above_the_ceiling():
    limit = AdmissionLimit(2, floor=4)
    limit.completed(0.0, True)
    assert limit.limit == 2 and limit.admit(1) is not None and limit.admit(2) is None


def test_a_node_answers_a_new_search_after_the_batch_out_and_the_searches_queued_behind_it():
    assert node_expected(0, 0, 0.0, 0.04) == 0.04  # idle: one round trip for a search alone
    assert node_expected(10, 5, 0.01, 0.01) == pytest.approx(0.16)  # ten out, then five queued and this one
    assert node_expected(10, 5, 0.5, 0.01) == pytest.approx(0.56)  # the batch out is late: at least that late


def test_the_federations_backlog_is_its_slowest_node_unless_a_few_could_never_answer_in_time():
    assert expected_seconds([], 2.0) == 0.0
    quick = [0.05] * 35 + [0.9]
    assert expected_seconds(quick, 2.0) == 0.9  # admitted means heard from all: the slowest counts
    stuck = [30.0] * 4  # a tenth of the nodes could not answer within a deadline: each its own fault
    assert expected_seconds(quick + stuck, 2.0) == 0.9
    assert expected_seconds([*quick, *stuck, 30.0], 2.0) == 30.0  # more than a tenth: that is the machine
    assert expected_seconds([2.5] * 40, 2.0) == 2.5  # every node late together: the machine


class Loads:
    """A fake FanOut.load: what admission would read now."""

    def __init__(self) -> None:
        self.now = Load([(0.05, 0.01)] * 10, 0, 0.002, 0.0)

    def __call__(self) -> Load:
        return self.now


def test_admission_refuses_when_the_wait_ahead_would_not_fit_half_the_deadline_left():
    loads, clock = Loads(), Clock()
    admission = Admission(AdmissionLimit(64), loads, deadline=2.0, audit_timeout=0.5, clock=clock)
    assert isinstance(admission.admit(1, 2.0), float)
    loads.now = Load([(ADMIT_SHARE * 2.0 - 0.1, 0.01)], 0, 0.002, 0.1)  # backlog + lag + the dispatch window: just over
    assert admission.admit(1, 2.0) == "backlog"
    loads.now = Load([(0.1, 0.01)], 0, 0.95, 0.0)  # the broker's own loop is what is late
    assert admission.admit(1, 2.0) == "lag"
    loads.now = Load([(0.5, 0.01)], 0, 0.02, 0.1)  # fits again: admitted at once, nothing remembered
    assert isinstance(admission.admit(1, 2.0), float)
    assert admission.admit(1, 1.2) == "backlog"  # ...unless the request waited to be read: less time is left
    assert admission.admit(63, 2.0) != "limit" and admission.admit(64, 2.0) == "limit"  # the AIMD backstop
    loads.now = Load([(5.0, 0.01)] * 10, 0, 0.01, 0.1)
    assert admission.admit(1, 2.0) == "backlog"
    assert isinstance(admission.admit(0, 2.0), float)  # a search alone always goes: it measures afresh


def test_searches_admitted_and_not_yet_at_the_nodes_count_as_queued_ahead():
    loads, clock = Loads(), Clock()
    admission = Admission(AdmissionLimit(64), loads, deadline=2.0, audit_timeout=0.5, clock=clock)
    loads.now = Load([(0.1, 0.05)] * 10, 0, 0.0, 0.0)  # 50 ms a search at every node
    tickets = [admission.admit(1, 2.0) for _ in range(30)]  # a burst, all before the nodes' queues show it
    assert tickets.count("backlog") == 11 and admission.unsent == 19  # 0.1 + 18 x 0.05 = 1.0: half the deadline
    for _ in range(8):
        admission.sent()  # eight reached the dispatch gate...
    loads.now = Load([(0.1, 0.05)] * 10, 8, 0.0, 0.0)  # ...where they still wait: no room yet
    assert admission.admit(1, 2.0) == "backlog"


def test_searches_waiting_for_the_audit_logs_first_entry_count_as_the_wait_ahead():
    loads, clock = Loads(), Clock()
    admission = Admission(AdmissionLimit(64), loads, deadline=2.0, audit_timeout=0.5, clock=clock)
    first = admission.audit.begin()
    clock.now += 0.1
    second = admission.audit.begin()
    clock.now += 0.1
    admission.audit.end(first)  # committed after 0.2 s: the recent wait rises
    assert 0.03 < admission.audit.recent < 0.05 and isinstance(admission.admit(1, 2.0), float)
    clock.now += 0.15  # the second has waited 0.25 s of its 0.5 s bound and is still waiting
    assert admission.admit(1, 2.0) == "audit"
    admission.audit.end(second)
    for _ in range(20):  # the log keeps up again
        admission.audit.end(admission.audit.begin())
    assert isinstance(admission.admit(1, 2.0), float)


def test_admission_scales_with_the_deadline_not_with_any_fixed_time():
    loads = Loads()
    loads.now = Load([(0.8, 0.01)], 0, 0.0, 0.0)
    assert Admission(AdmissionLimit(64), loads, deadline=2.0, audit_timeout=0.5).admit(1, 2.0) != "backlog"
    assert Admission(AdmissionLimit(64), loads, deadline=1.0, audit_timeout=0.25).admit(1, 1.0) == "backlog"


def test_the_loop_lag_averages_recent_lateness_and_remembers_the_worst_since_a_search_began():
    clock = Clock()
    lag = LoopLag(clock=clock)
    for _ in range(20):
        clock.now += 0.05
        lag.record(clock.now, 0.001)
    assert lag.recent < 0.002 and lag.worst_since(0.0) == 0.001
    began = clock.now
    clock.now += 0.4
    lag.record(clock.now, 0.35)  # the loop was stalled for a third of a second
    assert lag.recent > 0.1 and lag.worst_since(began) == 0.35
    for _ in range(20):
        clock.now += 0.05
        lag.record(clock.now, 0.001)
    assert lag.recent < 0.005  # a stall passes: admission opens again
    assert lag.worst_since(began) == 0.35 and lag.worst_since(clock.now - 0.5) == 0.001


async def test_the_loop_lag_timer_counts_a_stall_even_before_it_has_fired():
    lag = LoopLag(interval=0.01)
    lag.start()
    try:
        await asyncio.sleep(0.05)
        began = asyncio.get_running_loop().time()
        time.sleep(0.2)  # the loop stalls: a search's timeouts and the late timer run in the same turn
        assert lag.worst_since(began) >= 0.15  # the overdue timer is counted already
        await asyncio.sleep(0.03)  # the late timer has fired: its lateness is a sample now
        assert lag.worst_since(began) >= 0.15
    finally:
        lag.stop()


def test_timeouts_are_excused_in_congestion_or_while_the_broker_lagged_and_only_then():
    assert not excused(False, 0.0) and not excused(False, LAG_EXCUSE_SECONDS / 2)
    assert excused(True, 0.0) and excused(False, LAG_EXCUSE_SECONDS)


class _SilentNode:
    """A node whose health probe times out: the monitor's view of it (broker.monitor's Probed)."""

    authority = Authority("KENT", "Kent", "127.0.0.1:1", node_dns_name("KENT"))

    def __init__(self, lag: LoopLag, stall: float) -> None:
        self.lag, self.stall = lag, stall

    async def probe(self, timeout: float, *, describe: bool = True) -> dict[str, Any]:
        self.lag.record(self.lag.clock(), self.stall)  # how late the broker's loop ran meanwhile
        raise NodeTimeout("no answer")


class _Fleet:
    def __init__(self, node: _SilentNode, health: NodeHealth) -> None:
        self.clients, self._health = [node], health

    def health_of(self, code: str) -> NodeHealth:
        return self._health


@pytest.mark.parametrize(("stall", "counted"), [(0.0, True), (LAG_EXCUSE_SECONDS, False)])
async def test_a_health_poll_that_timed_out_while_the_broker_lagged_is_not_held_against_the_node(stall, counted):
    clock, lag = Clock(), LoopLag()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0, clock=clock)
    node = _SilentNode(lag, stall)
    health = NodeHealth(node.authority, breaker, HealthSettings(), clock)
    await HealthMonitor(_Fleet(node, health), HealthSettings(), lag=lag).poll_once()
    assert (breaker.state is BreakerState.OPEN) is counted
    assert health.to_json()["error_rate"] == 1.0  # either way, operators see it


def test_a_half_open_probe_lost_in_congestion_gives_its_turn_back():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0, clock=clock)
    health = NodeHealth(
        Authority("KENT", "Kent", "127.0.0.1:1", node_dns_name("KENT")), breaker, HealthSettings(), clock
    )
    health.failed(NodeTimeout("no answer"))
    clock.now += 5.0
    assert breaker.allow() and not breaker.allow()  # half-open: one probe, and it is out
    health.missed_in_congestion(NodeTimeout("no answer"))
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allow()  # the next search may probe
    assert health.to_json()["error_rate"] == 1.0  # still seen by operators


# -- a real federation with nine hung authorities --------------------------------------------


async def _node_with_proxies(pki: Pki, tmp_path: Path, code: str, proxies: int) -> tuple[Any, list[FaultProxy]]:
    store = tmp_path / f"{code}.sqlite3"
    import_authority(store, write_csv(tmp_path / f"{code}.csv", [row(record_id=f"{code}1")]))
    node = await start_node(
        NodeConfig(
            code,
            code.title(),
            ("127.0.0.1", 0),
            store,
            pki.tls(pki.nodes[code]),
            broker_public_keys=(pki.assertion_pub,),
        )
    )
    return node, [await FaultProxy(node.address).start() for _ in range(proxies)]


@pytest.fixture
async def hung(pki: Pki, tmp_path: Path) -> AsyncIterator[list[Authority]]:
    """Nine authorities whose connections are accepted and never answered (proxies in front of KENT)."""
    node, proxies = await _node_with_proxies(pki, tmp_path, "KENT", HUNG)
    try:
        for proxy in proxies:
            await proxy.set_mode("blackhole")
        yield [Authority(f"HUNG{i}", f"Hung {i}", p.address, node_dns_name("KENT")) for i, p in enumerate(proxies)]
    finally:
        for proxy in proxies:
            await proxy.close()
        await node.stop(grace=0)


@pytest.fixture
async def slow_leeds(pki: Pki, tmp_path: Path) -> AsyncIterator[Authority]:
    """LEEDS answering, but slowly: every byte each way waits SLOW_MS in a proxy."""
    node, [proxy] = await _node_with_proxies(pki, tmp_path, "LEEDS", 1)
    try:
        await proxy.set_mode("latency", ms=SLOW_MS)
        yield Authority("LEEDS", "Leeds", proxy.address, node_dns_name("LEEDS"))
    finally:
        await proxy.close()
        await node.stop(grace=0)


async def _nodes(fed: Any) -> dict[str, dict[str, Any]]:
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/v1/nodes") as resp:
        return {n["code"]: n for n in (await resp.json())["nodes"]}


async def _admission_limit(fed: Any) -> float:
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/metrics") as resp:
        text = await resp.text()
    [line] = [line for line in text.splitlines() if line.startswith("signpost_admission_limit ")]
    return float(line.split()[1])


async def _until(check: Callable[[], Awaitable[bool]], what: str, tries: int = 100) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(what)


async def _polled(fed: Any) -> None:
    async def done() -> bool:  # the start-up poll of the hung nodes ends by its timeout
        return all(n["status"] != "unknown" for n in (await _nodes(fed)).values())

    await _until(done, "the monitor's first poll never finished")


def _missing(body: dict[str, Any]) -> dict[str, str]:
    return {n["code"]: n["reason"] for n in body["coverage"]["not_answered"]}


async def test_timeouts_beside_slow_answers_are_congestion_reported_but_opening_no_circuit(
    federation, hung, slow_leeds
):
    fed = await federation({}, extra=[slow_leeds, *hung], deadline=DEADLINE, health=SETTINGS)
    await _polled(fed)
    answered = 0
    for _ in range(8):  # the first search may find LEEDS still connecting through its slow proxy
        status, body = await fed.search(AMELIA)
        if status == 200 and {r["authority"]["code"] for r in body["results"]} == {"LEEDS"}:
            answered += 1
            # Reported as not asked in time, never as "no contact".
            assert _missing(body) == {a.code: "timeout" for a in hung}
            if answered > SETTINGS.failure_threshold:
                break
    assert answered > SETTINGS.failure_threshold
    seen = await _nodes(fed)
    assert {seen[a.code]["circuit"] for a in hung} == {"closed"}
    assert all(seen[a.code]["error_rate"] > 0.5 for a in hung)  # operators still see them failing
    assert await _admission_limit(fed) < 64


async def test_timeouts_beside_quick_answers_are_the_silent_nodes_own_and_open_their_circuits(federation, hung):
    fed = await federation({"LEEDS": [row()]}, extra=hung, deadline=DEADLINE, health=SETTINGS)
    await _polled(fed)
    seen = []
    for _ in range(SETTINGS.failure_threshold + 1):  # the start-up poll was already one failure each
        status, body = await fed.search(AMELIA)
        assert status == 200
        seen.append(set(_missing(body).values()))
    assert seen[0] == {"timeout"} and seen[-1] == {"circuit_open"}
    assert await _admission_limit(fed) == 64  # a shared outage is no reason to refuse searches


async def test_timeouts_while_the_brokers_own_loop_lagged_open_no_circuit(federation, hung):
    """The same shared outage as above, but each search's broker stalls for a fifth of a second (as a
    process starved of CPU does): the silent nodes' answers might have sat unread, so no circuit opens."""
    fed = await federation({"LEEDS": [row()]}, extra=hung, deadline=DEADLINE, health=SETTINGS)
    await _polled(fed)
    loop = asyncio.get_running_loop()
    seen = []
    for _ in range(SETTINGS.failure_threshold + 1):
        loop.call_later(DEADLINE / 2, time.sleep, 0.2)  # the broker's loop stalls while the search is out
        status, body = await fed.search(AMELIA)
        assert status == 200
        seen.append(set(_missing(body).values()))
    assert seen == [{"timeout"}] * len(seen)  # still reported, every time, and never circuit_open
    nodes = await _nodes(fed)
    assert {nodes[a.code]["circuit"] for a in hung} == {"closed"}
    assert all(nodes[a.code]["error_rate"] == 1.0 for a in hung)


async def test_after_congestion_searches_past_the_lowered_limit_are_refused_at_once(federation, hung, pki, tmp_path):
    # Nobody answers at all: the broker cannot tell overload from outage, and backs off.
    fed = await federation({}, extra=hung, deadline=0.5, health=SETTINGS, max_in_flight=10)
    await _polled(fed)
    status, body = await fed.search(AMELIA)
    assert status == 503 and body["error"]["code"] != "overloaded"  # none could be asked: said so
    assert await _admission_limit(fed) == 7  # 10, times 0.7

    # The limit alone, here: nine TLS handshakes at once in this one test process would also read as a
    # lagging broker (that rule is tested alone above).
    fed.server.app[FANOUT].lag.stop()
    fed.server.app[FANOUT].lag.recent = 0.0
    answers = await asyncio.gather(*(fed.search(AMELIA) for _ in range(9)))
    codes = [body["error"]["code"] for _, body in answers]
    assert codes.count("overloaded") == 2 and len([c for c in codes if c != "overloaded"]) == 7
