"""Searches through the broker's HTTPS API, one at a time or open loop, and what each part spent on them.

The load generator shares the machine with the federation it measures, so it counts its own CPU too.
A search the broker refuses (503 ``overloaded``...) or that gets no HTTP answer at all is a sample
like any other, with its reason: under overload the refusals are the figure. Coverage is judged
against the authorities that are up, which in these benchmarks is every one of them (no node is
stopped), so "heard from 99%" is ``answered >= 0.99 × authorities``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from certs.identity import Role
from certs.tls import client_ssl_context
from signpost.bench.common import percentile
from signpost.bench.deployment import Deployment, cpu_seconds
from signpost.bench.progress import step

PURPOSE = {"code": "child-protection-enquiry", "justification": "Scale benchmark search"}
CLIENT_CONNECTIONS = 500
"""The load generator's connection pool: under the broker's door cap for one address (768 in these benchmarks)."""
HEARD_SHARE = 0.99
"""Issue 18: an admitted search must be heard from at least this share of the authorities that are up."""


@dataclass(frozen=True)
class Sample:
    ms: float
    status: int
    """The HTTP status; 0 when no HTTP answer came (connection refused or reset, client timeout)."""
    refusal: str = ""
    """Why a search was not answered 200: ``"503 overloaded"`` (status and error code) or the exception's name."""
    answered: int = 0
    asked: int = 0
    not_answered: tuple[str, ...] = ()
    """Coverage reasons of the authorities that did not answer (timeout, unavailable, circuit_open...)."""
    queued_ms: float = 0.0
    """Of ``ms``, the time spent waiting for one of the load generator's connections (not the broker's doing)."""

    @property
    def complete(self) -> bool:
        return self.status == 200 and self.answered == self.asked


async def search(session: aiohttp.ClientSession, url: str, subject: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    queued: dict[str, float] = {}  # filled by _queue_tracing() if the search waited for a connection
    try:
        async with session.post(
            f"{url}/v1/searches",
            json={"subject": subject, "purpose": PURPOSE},
            timeout=aiohttp.ClientTimeout(total=60),
            trace_request_ctx=queued,
        ) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:  # not JSON: whatever answered, it was not the broker's API
                body = None
    except (aiohttp.ClientError, TimeoutError) as exc:
        ms = (time.perf_counter() - started) * 1000
        return Sample(ms, 0, type(exc).__name__, queued_ms=queued.get("ms", 0.0))
    ms = (time.perf_counter() - started) * 1000
    if resp.status != 200 or not isinstance(body, dict):
        code = body.get("error", {}).get("code", "?") if isinstance(body, dict) else "unreadable"
        return Sample(ms, resp.status, f"{resp.status} {code}", queued_ms=queued.get("ms", 0.0))
    coverage = body["coverage"]
    reasons = tuple(n["reason"] for n in coverage["not_answered"])
    return Sample(ms, 200, "", coverage["answered"], coverage["asked"], reasons, queued.get("ms", 0.0))


def _queue_tracing() -> aiohttp.TraceConfig:
    """Time each request's wait for a free connection in the load generator's pool, into its trace context."""
    tracing = aiohttp.TraceConfig()

    async def start(_: Any, ctx: Any, __: Any) -> None:
        ctx.queued_at = time.perf_counter()

    async def end(_: Any, ctx: Any, __: Any) -> None:
        if isinstance(ctx.trace_request_ctx, dict):
            ctx.trace_request_ctx["ms"] = (time.perf_counter() - ctx.queued_at) * 1000

    tracing.on_connection_queued_start.append(start)
    tracing.on_connection_queued_end.append(end)
    return tracing


def summarise(results: list[Sample], elapsed: float, authorities: int) -> dict[str, Any]:
    """Throughput, refusals, latency and coverage of one measurement (no CPU: that is measure()'s).

    A 400 (a query set's subject below the minimum query) is counted apart as ``invalid`` and judged in
    nothing else: no load makes it answerable, and it must not pass for a refusal or a coverage gap."""
    invalid = sum(r.status == 400 for r in results)
    judged = [r for r in results if r.status != 400]
    admitted = [r for r in judged if r.status == 200]
    # Latency of the searches the broker admitted: a refusal should answer at once and is counted apart.
    latencies = [r.ms for r in admitted] or [0.0]
    # A refusal's time at the broker: what the load generator's own connection queue added is taken off.
    refusals = [r.ms - r.queued_ms for r in judged if r.status != 200]
    queued = [r.queued_ms for r in results] or [0.0]
    heard = math.ceil(HEARD_SHARE * authorities)
    return {
        "searches": len(results),
        "throughput_per_second": round(len(admitted) / elapsed, 2) if elapsed > 0 else 0.0,  # served
        "statuses": dict(Counter(str(r.status) for r in results)),
        "invalid": invalid,
        "refused": len(refusals),
        "refused_by_reason": dict(Counter(r.refusal for r in judged if r.status != 200)),
        # "Refused at once"? How long a refused search waited for its answer, less any wait for a connection.
        "refused_latency_ms": {
            q: round(percentile(refusals, float(q[1:])), 1) if refusals else None for q in ("p50", "p99")
        },
        "latency_ms": {q: round(percentile(latencies, float(q[1:])), 1) for q in ("p50", "p95", "p99")},
        # Time searches spent waiting for one of the load generator's connections (included in latency_ms).
        "client_queue_ms": {q: round(percentile(queued, float(q[1:])), 1) for q in ("p50", "p99")},
        # Of every valid search sent: a refusal counts as not heard, so this is what a practitioner got.
        "coverage_complete": round(sum(r.complete for r in judged) / len(judged), 4) if judged else 0.0,
        # Of the searches admitted: issue 18's "admitted means heard".
        "admitted_heard_from_all": _share(sum(r.complete for r in admitted), len(admitted)),
        "admitted_heard_from_99pc": _share(sum(r.answered >= heard for r in admitted), len(admitted)),
        "not_answered": dict(Counter(reason for r in results for reason in r.not_answered)),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class CircuitWatch:
    """What the broker's /v1/nodes said about circuits while a load ran: every authority seen not closed."""

    seen: set[str] = field(default_factory=set)
    most_at_once: int = 0
    polls: int = 0
    failed_polls: int = 0

    def record(self, nodes: list[dict[str, Any]]) -> None:
        not_closed = {n["code"] for n in nodes if n.get("circuit", "closed") != "closed"}
        self.seen |= not_closed
        self.most_at_once = max(self.most_at_once, len(not_closed))
        self.polls += 1

    def summary(self) -> dict[str, Any]:
        return {
            "authorities_with_circuit_opened": len(self.seen),
            "most_open_at_once": self.most_at_once,
            "opened": sorted(self.seen)[:20],
            "polls": self.polls,
            "failed_polls": self.failed_polls,
        }


@contextlib.asynccontextmanager
async def watch_circuits(dep: Deployment, interval: float = 1.0) -> AsyncIterator[CircuitWatch]:
    """Poll /v1/nodes (as the operator, without ``refresh``: no extra health checks) until the block ends."""
    watch = CircuitWatch()
    context = client_ssl_context(dep.pki.ca.cert, dep.pki.users[Role.OPERATOR])
    stop = asyncio.Event()

    async def poll(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                async with session.get(f"{dep.url}/v1/nodes", timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    watch.record((await resp.json())["nodes"])
            except (aiohttp.ClientError, TimeoutError, KeyError):
                watch.failed_polls += 1  # the broker busy or refusing: counted, the load goes on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
                return

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        poller = asyncio.create_task(poll(session))
        try:
            yield watch
        finally:
            stop.set()
            await poller


async def measure(
    dep: Deployment,
    subjects: list[dict[str, Any]],
    *,
    rate: float | None,
    count: int,
    label: str = "searches",
    circuits: bool = False,
) -> dict[str, Any]:
    """``count`` searches, one at a time (rate None) or open loop at ``rate`` per second."""
    context = client_ssl_context(dep.pki.ca.cert, dep.pki.users[Role.PRACTITIONER])
    pids = [dep.broker_pid, *dep.node_pids]
    before = {pid: cpu_seconds(pid) for pid in pids}
    driver_before = time.process_time()
    watch: CircuitWatch | None = None
    async with contextlib.AsyncExitStack() as stack:
        if circuits:
            watch = await stack.enter_async_context(watch_circuits(dep))
        driven = await _drive(dep.url, context, subjects, rate, count, label)
    after = {pid: cpu_seconds(pid) for pid in pids}
    driver_cpu = time.process_time() - driver_before
    node_cpu = sum(after[p] - before[p] for p in dep.node_pids)
    n = max(len(driven.results), 1)
    report = {"offered_rate": rate, **summarise(driven.results, driven.elapsed, len(dep.nodes))}
    report.update(
        broker_cpu_ms_per_search=round((after[dep.broker_pid] - before[dep.broker_pid]) * 1000 / n, 2),
        nodes_cpu_ms_per_search=round(node_cpu * 1000 / n, 2),
        # The load generator shares the same cores: its HTTPS client is part of what the machine carries.
        driver_cpu_ms_per_search=round(driver_cpu * 1000 / n, 2),
    )
    if rate is not None:
        report.update(driven.summary())
    if watch is not None:
        report["circuits"] = watch.summary()
    return report


@dataclass
class Driven:
    """What the load generator saw of its own sending: whether the offered load was really offered."""

    results: list[Sample]
    elapsed: float
    send_lag_ms: list[float] = field(default_factory=list)
    """How late each open-loop search left against its schedule (a starved load generator sends late)."""
    most_in_flight: int = 0

    def summary(self) -> dict[str, Any]:
        lag = self.send_lag_ms or [0.0]
        return {
            "send_lag_ms": {"p50": round(percentile(lag, 50), 1), "p99": round(percentile(lag, 99), 1)},
            # Past CLIENT_CONNECTIONS in flight, searches wait in the load generator, not at the broker.
            "most_in_flight": self.most_in_flight,
            "client_connections": CLIENT_CONNECTIONS,
        }


async def _drive(
    url: str, context: Any, subjects: list[dict[str, Any]], rate: float | None, count: int, label: str
) -> Driven:
    driven = Driven([], 0.0)
    in_flight = 0

    def done(_: Any) -> None:
        nonlocal in_flight
        in_flight -= 1
        bar.update(1)

    # The bar is drawn by its own thread once a second: the load loop only counts.
    with step(label, total=count, unit=" searches") as bar:
        connector = aiohttp.TCPConnector(ssl=context, limit=CLIENT_CONNECTIONS)
        async with aiohttp.ClientSession(connector=connector, trace_configs=[_queue_tracing()]) as session:
            began = time.perf_counter()
            if rate is None:
                for i in range(count):
                    driven.results.append(await search(session, url, subjects[i % len(subjects)]))
                    bar.update(1)
            else:
                tasks = []
                for i in range(count):
                    due = began + i / rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    driven.send_lag_ms.append(max(0.0, time.perf_counter() - due) * 1000)
                    task = asyncio.create_task(search(session, url, subjects[i % len(subjects)]))
                    in_flight += 1
                    driven.most_in_flight = max(driven.most_in_flight, in_flight)
                    task.add_done_callback(done)
                    tasks.append(task)
                driven.results = list(await asyncio.gather(*tasks))
            driven.elapsed = time.perf_counter() - began
    return driven
