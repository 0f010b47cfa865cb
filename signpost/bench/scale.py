"""``signpost bench scale``: England on one box — N authorities, millions of records, load through HTTPS.

Layout on this machine: node *worker processes* each host a share of the
authorities (every authority still its own gRPC server, port and certificate),
the broker runs in its own process, and this process drives searches through
the real HTTPS API. CPU seconds and peak RSS per component come from /proc.
Then the same records go into one node — the ContactPoint shape — answering
the same queries through the same broker, for federated/central ratios.
Figures go to JSON as soon as each part is measured (so a late failure loses
nothing), charts to PNG at the end (matplotlib, checked for before anything
starts). Every long step shows progress on stderr. Nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from broker.config import BrokerConfig
from broker.door import DoorLimits
from broker.health import HealthSettings
from broker.patterns import OFF as PATTERNS_OFF
from broker.registry import Authority, save_registry
from certs.identity import Role, node_dns_name
from certs.tls import client_ssl_context
from node.config import NodeConfig
from node.importer import import_csv
from node.store import RecordStore
from signpost.bench.common import add_out_argument, machine, percentile, publish, save_partial
from signpost.bench.progress import require, step, track
from signpost.federation import Pki, create_pki, local_front_door
from signpost.synth import ENGLISH_AUTHORITIES, SynthConfig, generate_to

CHILDREN_PER_RECORD = 1.0 / 0.68
PURPOSE = {"code": "child-protection-enquiry", "justification": "Scale benchmark search"}


# -- processes ------------------------------------------------------------------------------


def _node_worker(configs: list[NodeConfig], ready: Any, stop: Any) -> None:
    from core.logs import configure
    from node.server import start_node

    configure("error")

    async def main() -> None:
        nodes = [await start_node(c) for c in configs]
        ready.put([(n.config.code, n.port) for n in nodes])
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for node in nodes:
            await node.stop(grace=0.5)

    asyncio.run(main())


def _broker_worker(config: BrokerConfig, ready: Any, stop: Any) -> None:
    from broker.server import start_broker
    from core.logs import configure

    configure("error")

    async def main() -> None:
        broker = await start_broker(config)
        ready.put(broker.port)
        while not stop.is_set():
            await asyncio.sleep(0.2)
        await broker.stop()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Deployment:
    """Node workers plus a broker process, started from prepared stores."""

    def __init__(self, work: Path, pki: Pki, nodes: list[tuple[str, str, Path]], workers: int, deadline: float):
        self.work, self.pki, self.nodes, self.workers, self.deadline = work, pki, nodes, workers, deadline
        self.ctx = mp.get_context("spawn")
        self.stop = self.ctx.Event()
        self.processes: list[Any] = []
        self.broker_pid = 0
        self.url = ""

    def start(self) -> None:
        ready = self.ctx.Queue()
        shares = [self.nodes[i :: self.workers] for i in range(self.workers)]
        for share in (s for s in shares if s):
            configs = [
                NodeConfig(
                    code,
                    name,
                    ("127.0.0.1", 0),
                    store,
                    self.pki.tls(self.pki.nodes[code]),
                    broker_public_keys=(self.pki.assertion_pub,),
                    refresh_interval_seconds=3600,
                    front_door=local_front_door(code),
                )
                for code, name, store in share
            ]
            proc = self.ctx.Process(target=_node_worker, args=(configs, ready, self.stop), daemon=True)
            proc.start()
            self.processes.append(proc)
        ports: dict[str, int] = {}
        started = [s for s in shares if s]
        with step("node workers loading stores and building indexes", total=len(started), unit=" workers") as bar:
            for _ in started:
                ports.update(dict(ready.get(timeout=900)))
                bar.update(1)
        registry = self.work / "registry.json"
        save_registry(
            registry,
            tuple(
                Authority(code, name, f"127.0.0.1:{ports[code]}", node_dns_name(code)) for code, name, _ in self.nodes
            ),
        )
        config = BrokerConfig(
            listen=("127.0.0.1", 0),
            registry=registry,
            tls=self.pki.tls(self.pki.broker),
            assertion_key=self.pki.assertion_key,
            search_deadline_seconds=self.deadline,
            rate_limit_per_minute=0,
            rate_limit_per_day=0,
            alert_searches_per_hour=0,
            org_rate_limit_per_minute=0,
            org_rate_limit_per_day=0,
            patterns=PATTERNS_OFF,
            audit_log=str(self.work / "audit.sqlite3"),
            audit_signing_key=self.work / "audit.key",
            subject_key=self.work / "subject.key",
            health=HealthSettings(poll_interval=5.0),
            # The load generator is one source address holding up to 500 connections at once: the door's
            # per-address caps are for the public side, not for this.
            preauth_burst=0,
            limits=DoorLimits(max_connections_per_address=768),
        )
        broker = self.ctx.Process(target=_broker_worker, args=(config, ready, self.stop), daemon=True)
        broker.start()
        self.processes.append(broker)
        self.broker_pid = broker.pid or 0
        self.url = f"https://127.0.0.1:{ready.get(timeout=120)}"

    @property
    def node_pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid != self.broker_pid]

    def close(self) -> None:
        self.stop.set()
        for proc in self.processes:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


# -- load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    ms: float
    status: int
    complete: bool
    not_answered: tuple[str, ...]
    """Coverage reasons of the authorities that did not answer (timeout, unavailable, ...)."""


async def _search(session: aiohttp.ClientSession, url: str, subject: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    async with session.post(
        f"{url}/v1/searches", json={"subject": subject, "purpose": PURPOSE}, timeout=aiohttp.ClientTimeout(total=60)
    ) as resp:
        body = await resp.json()
    ms = (time.perf_counter() - started) * 1000
    if resp.status != 200:
        return Sample(ms, resp.status, False, ())
    coverage = body["coverage"]
    return Sample(
        ms, 200, coverage["answered"] == coverage["asked"], tuple(n["reason"] for n in coverage["not_answered"])
    )


async def measure(
    dep: Deployment, subjects: list[dict[str, Any]], *, rate: float | None, count: int, label: str = "searches"
) -> dict[str, Any]:
    """``count`` searches, one at a time (rate None) or open loop at ``rate`` per second."""
    context = client_ssl_context(dep.pki.ca.cert, dep.pki.users[Role.PRACTITIONER])
    pids = [dep.broker_pid, *dep.node_pids]
    before = {pid: cpu_seconds(pid) for pid in pids}
    driver_before = time.process_time()
    results: list[Sample] = []
    # The bar is drawn by its own thread once a second: the load loop only counts.
    with step(label, total=count, unit=" searches") as bar:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=500)) as session:
            began = time.perf_counter()
            if rate is None:
                for i in range(count):
                    results.append(await _search(session, dep.url, subjects[i % len(subjects)]))
                    bar.update(1)
            else:
                tasks = []
                for i in range(count):
                    await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
                    task = asyncio.create_task(_search(session, dep.url, subjects[i % len(subjects)]))
                    task.add_done_callback(lambda _: bar.update(1))
                    tasks.append(task)
                results = list(await asyncio.gather(*tasks))
            elapsed = time.perf_counter() - began
    after = {pid: cpu_seconds(pid) for pid in pids}
    driver_cpu = time.process_time() - driver_before
    # Latency of the searches the broker admitted (a 503 "overloaded" answers at once and is counted apart).
    latencies = [r.ms for r in results if r.status == 200] or [0.0]
    node_cpu = sum(after[p] - before[p] for p in dep.node_pids)
    return {
        "offered_rate": rate,
        "searches": len(results),
        "throughput_per_second": round(sum(r.status == 200 for r in results) / elapsed, 2),  # served
        "statuses": dict(Counter(str(r.status) for r in results)),
        "latency_ms": {q: round(percentile(latencies, float(q[1:])), 1) for q in ("p50", "p95", "p99")},
        "coverage_complete": round(sum(r.complete for r in results) / len(results), 4),
        "not_answered": dict(Counter(reason for r in results for reason in r.not_answered)),
        "broker_cpu_ms_per_search": round((after[dep.broker_pid] - before[dep.broker_pid]) * 1000 / len(results), 2),
        "nodes_cpu_ms_per_search": round(node_cpu * 1000 / len(results), 2),
        # The load generator shares the same two cores: its HTTPS client is part of what the machine carries.
        "driver_cpu_ms_per_search": round(driver_cpu * 1000 / len(results), 2),
    }


async def _wait_ready(dep: Deployment, expected: int) -> None:
    context = client_ssl_context(dep.pki.ca.cert, dep.pki.users[Role.OPERATOR])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for _ in range(120):
            try:
                async with session.get(f"{dep.url}/v1/nodes?refresh=true") as resp:
                    nodes = (await resp.json())["nodes"]
                if len(nodes) == expected and all(n["status"] == "up" for n in nodes):
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
    raise RuntimeError("the federation did not come up")


async def run_shape(
    dep: Deployment, subjects: list[dict[str, Any]], args: argparse.Namespace, expected: int, shape: str
) -> dict[str, Any]:
    await _wait_ready(dep, expected)
    await measure(dep, subjects, rate=None, count=20, label=f"{shape}: warm-up")  # warm channels and caches
    serial = await measure(dep, subjects, rate=None, count=args.serial, label=f"{shape}: one at a time")
    loads = [
        await measure(
            dep, subjects, rate=r, count=int(r * args.duration), label=f"{shape}: {r:g}/s for {args.duration:g} s"
        )
        for r in args.rates
    ]
    return {
        "serial": serial,
        "loads": loads,
        "peak_rss_mb": {
            "broker": round(peak_rss_mb(dep.broker_pid), 1),
            "node_workers": [round(peak_rss_mb(p), 1) for p in dep.node_pids],
        },
    }


# -- data -----------------------------------------------------------------------------------


def prepare(work: Path, args: argparse.Namespace) -> tuple[list[tuple[str, str, Path]], list[dict[str, Any]]]:
    chosen = ENGLISH_AUTHORITIES[: args.authorities]
    data = work / "data"
    # Reused only when a run finished writing it: a run killed mid-generation leaves queries.json and part
    # of the CSVs, which a later run would otherwise load as if they were all the authorities.
    complete = data / "COMPLETE"
    if not complete.exists():
        shutil.rmtree(data, ignore_errors=True)
        config = SynthConfig(
            authorities=tuple((c, n) for c, n, _ in chosen),
            children=int(args.records * CHILDREN_PER_RECORD),
            seed=args.seed,
            queries=400,
            sizes=tuple(s for *_, s in chosen),
        )
        generate_with_progress(config, data, f"generating about {args.records:,} records")
        complete.write_text("generated\n")
    nodes = []
    for code, name, _ in track(chosen, "importing into each authority's store", len(chosen), " authorities"):
        store = work / "stores" / f"{code}.sqlite3"
        if not store.exists():
            s = RecordStore(store)
            import_csv(s, data / f"{code}.csv")
            s.close()
        nodes.append((code, name, store))
    queries = json.loads((data / "queries.json").read_text())
    subjects = [q["subject"] for q in queries if q["kind"] in ("exact", "variant", "absent")]
    return nodes, subjects


def generate_with_progress(config: SynthConfig, out: Path, description: str) -> None:
    """generate_to, counting rows on a bar (planning the children first shows as elapsed time)."""
    with step(description, unit=" rows") as bar:

        def watch(code: str, rows: Iterable[dict[str, str]]) -> Iterator[dict[str, str]]:
            bar.set_postfix_str(code, refresh=False)
            for row in rows:
                bar.update(1)
                yield row

        generate_to(config, out, watch=watch)


def central_store(work: Path, nodes: list[tuple[str, str, Path]]) -> Path:
    """Every authority's records in one store: the ContactPoint shape."""
    store_path = work / "stores" / "CENTRAL.sqlite3"
    if not store_path.exists():
        store = RecordStore(store_path)
        for code, _, _ in track(nodes, "importing every authority into one central store", len(nodes), " authorities"):
            import_csv(store, work / "data" / f"{code}.csv")
        store.close()
    return store_path


def _chart(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    series: list[tuple[str, list[float], list[dict[str, Any]]]],
    *,
    log: bool = False,
) -> str:
    """One PNG: a p50 line and a dashed p99 line per (label, x values, points with latency_ms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, xs, points in series:
        prefix = f"{label} " if label else ""
        ax.plot(xs, [p["latency_ms"]["p50"] for p in points], marker="o", label=f"{prefix}p50")
        ax.plot(xs, [p["latency_ms"]["p99"] for p in points], marker="x", linestyle="--", label=f"{prefix}p99")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def charts(report: dict[str, Any], out: Path) -> list[str]:
    loads: list[tuple[str, list[float], list[dict[str, Any]]]] = [
        (shape, [load["throughput_per_second"] for load in report[shape]["loads"]], report[shape]["loads"])
        for shape in ("federated", "central")
        if shape in report
    ]
    written = [
        _chart(
            out / "scale-latency-vs-load.png",
            f"Latency against load: {report['authorities']} authorities, {report['records']:,} records",
            "searches per second (achieved)",
            "latency (ms, log scale)",
            loads,
            log=True,  # an overloaded federation and a central index differ by three orders of magnitude
        )
    ]
    if report.get("by_authorities"):
        points = report["by_authorities"]
        written.append(
            _chart(
                out / "scale-latency-vs-authorities.png",
                "Latency against the number of authorities",
                "authorities asked per search",
                "latency one search at a time (ms)",
                [("", [p["authorities"] for p in points], points)],
            )
        )
    return written


async def by_authorities(
    dep: Deployment, nodes: list[tuple[str, str, Path]], subjects: list[dict[str, Any]], counts: list[int], serial: int
) -> list[dict[str, Any]]:
    """Serial latency with the broker's registry cut to the first k authorities (reloaded live)."""
    registry = json.loads((dep.work / "registry.json").read_text())
    points = []
    for k in counts:
        save_registry(dep.work / "registry.json", tuple(Authority(**a) for a in registry["authorities"][:k]))
        await asyncio.sleep(3.0)  # the broker's watcher applies registry edits within 2 s
        await _wait_ready(dep, k)
        result = await measure(dep, subjects, rate=None, count=serial, label=f"{k} authorities: one at a time")
        points.append({"authorities": k, **result})
    save_registry(dep.work / "registry.json", tuple(Authority(**a) for a in registry["authorities"]))
    return points


async def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    nodes, subjects = prepare(work, args)
    prepared = time.perf_counter() - started
    pki = create_pki(work / "pki", [(c, n) for c, n, _ in nodes] + [("CENTRAL", "Central index")])
    report: dict[str, Any] = {
        "benchmark": "scale",
        "machine": machine(),
        "authorities": len(nodes),
        "records": sum(RecordStore(s).count() for *_, s in nodes),
        "workers": args.workers,
        "deadline_seconds": args.deadline,
        "prepare_seconds": round(prepared, 1),
    }
    dep = Deployment(work, pki, nodes, args.workers, args.deadline)
    try:
        dep.start()
        report["federated"] = await run_shape(dep, subjects, args, len(nodes), "federated")
        save_partial(args.out, report)  # each part on disk as soon as it is measured: a late failure loses nothing
        counts = sorted({k for k in (1, 10, 38, 76, len(nodes)) if k <= len(nodes)})
        report["by_authorities"] = await by_authorities(dep, nodes, subjects, counts, args.serial)
        save_partial(args.out, report)
    finally:
        dep.close()
    if args.central:
        dep = Deployment(work, pki, [("CENTRAL", "Central index", central_store(work, nodes))], 1, args.deadline)
        try:
            dep.start()
            report["central"] = await run_shape(dep, subjects, args, 1, "central")
        finally:
            dep.close()
        fed, cen = report["federated"]["serial"]["latency_ms"], report["central"]["serial"]["latency_ms"]
        report["federated_over_central"] = {q: round(fed[q] / cen[q], 2) if cen[q] else None for q in ("p50", "p99")}
        save_partial(args.out, report)
    # Every figure is on disk before the first chart is drawn.
    report["charts"] = charts(report, args.out.parent)
    return report


def print_report(r: dict[str, Any]) -> None:
    print(f"scale: {r['authorities']} authorities, {r['records']:,} records, {r['workers']} node worker processes")
    for shape in ("federated", "central"):
        if shape not in r:
            continue
        s = r[shape]["serial"]
        print(
            f"  {shape}: one at a time p50 {s['latency_ms']['p50']} ms p99 {s['latency_ms']['p99']} ms; "
            f"broker CPU {s['broker_cpu_ms_per_search']} ms/search, nodes {s['nodes_cpu_ms_per_search']} ms/search"
        )
        for load in r[shape]["loads"]:
            print(
                f"    offered {load['offered_rate']}/s -> {load['throughput_per_second']}/s: "
                f"p50 {load['latency_ms']['p50']} p95 {load['latency_ms']['p95']} p99 {load['latency_ms']['p99']} ms, "
                f"coverage complete {load['coverage_complete']:.1%}, broker CPU {load['broker_cpu_ms_per_search']} "
                f"ms/search, nodes {load['nodes_cpu_ms_per_search']} ms/search, load generator "
                f"{load['driver_cpu_ms_per_search']} ms/search; statuses {load['statuses']}, "
                f"not answered {load['not_answered']}"
            )
        print(f"    peak RSS MiB: {r[shape]['peak_rss_mb']}")
    if "federated_over_central" in r:
        print(f"  federated/central latency (serial): {r['federated_over_central']}")
    for p in r.get("by_authorities", []):
        print(
            f"  {p['authorities']:>4} authorities: p50 {p['latency_ms']['p50']} ms, p99 {p['latency_ms']['p99']} ms, "
            f"broker CPU {p['broker_cpu_ms_per_search']} ms/search"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--authorities", type=int, default=152)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2, help="node worker processes")
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[10.0, 25.0, 40.0, 50.0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per offered rate")
    parser.add_argument("--serial", type=int, default=100, help="searches one at a time")
    parser.add_argument("--deadline", type=float, default=2.0)
    parser.add_argument("--no-central", dest="central", action="store_false")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("bench-results/scale-work"),
        help="data and stores are kept here and reused by the next run",
    )
    add_out_argument(parser, "scale")


def run(args: argparse.Namespace) -> int:
    require("scale", [("matplotlib", "its charts")])  # before minutes of work, not after
    publish(asyncio.run(run_scale(args)), args.out, print_report)
    return 0
