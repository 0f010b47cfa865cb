"""``signpost bench scale``: England on one box — N authorities, millions of records, load through HTTPS.

Layout on this machine (``signpost.bench.deployment``): node *worker processes* each host a share
of the authorities (every authority still its own gRPC server, port and certificate), the broker
runs in its own process, and this process drives searches through the real HTTPS API
(``signpost.bench.load``). CPU seconds and peak RSS per component come from /proc. Then the same
records go into one node — the ContactPoint shape — answering the same queries through the same
broker, for federated/central ratios.

``--runs N`` repeats the measurement N times on the same data and, by default, the same deployment
(``--redeploy`` starts fresh node workers and broker for each run: slower at 2 M records, but it
also catches how much a deployment itself moves the figures), and reports each figure's least,
median and greatest. Every run's figures are also put against calibration measured in the same
invocation (``signpost.bench.calibration``, ``signpost.bench.figures``). ``--overload`` is a
different measurement (``signpost.bench.overload``).

Figures go to JSON as soon as each part is measured (so a late failure loses nothing), charts to
PNG at the end (matplotlib, checked for before anything starts). Every long step shows progress
on stderr. Nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from broker.registry import Authority, save_registry
from node.store import RecordStore
from signpost.bench import calibration, floor, overload
from signpost.bench.common import add_out_argument, machine, publish, save_partial
from signpost.bench.deployment import Deployment, Node, central_store, peak_rss_mb, prepare, wait_ready
from signpost.bench.figures import latency_ratio, run_ratios, spread
from signpost.bench.load import measure
from signpost.bench.progress import require
from signpost.federation import create_pki

SPREAD_SHOWN = (
    "latency_ms.p50",
    "latency_ms.p99",
    "coverage_complete",
    "throughput_per_second",
    "broker_cpu_ms_per_search",
    "nodes_cpu_ms_per_search",
)
"""Of every figure whose spread is in the JSON, the ones printed."""


async def run_shape(
    dep: Deployment, subjects: list[dict[str, Any]], args: argparse.Namespace, expected: int, shape: str
) -> dict[str, Any]:
    await wait_ready(dep, expected)
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
    dep: Deployment, nodes: list[Node], subjects: list[dict[str, Any]], counts: list[int], serial: int
) -> list[dict[str, Any]]:
    """Serial latency with the broker's registry cut to the first k authorities (reloaded live)."""
    registry = json.loads((dep.work / "registry.json").read_text())
    points = []
    for k in counts:
        save_registry(dep.work / "registry.json", tuple(Authority(**a) for a in registry["authorities"][:k]))
        await asyncio.sleep(3.0)  # the broker's watcher applies registry edits within 2 s
        await wait_ready(dep, k)
        result = await measure(dep, subjects, rate=None, count=serial, label=f"{k} authorities: one at a time")
        points.append({"authorities": k, **result})
    save_registry(dep.work / "registry.json", tuple(Authority(**a) for a in registry["authorities"]))
    return points


def _tag(i: int, runs: int) -> str:
    return f"run {i + 1}/{runs} " if runs > 1 else ""


def _record_runs(report: dict[str, Any], runs: list[dict[str, Any]], out: Path) -> None:
    """The runs done so far, their ratios against the calibration so far and their spread, on disk now."""
    done = [r for r in runs if "federated" in r]
    ref = report["calibration"]["reference"]
    for run in done:
        run["ratios"] = run_ratios(
            run, report["authorities"], ref.get("grpc_floor_cpu_ms_per_round"), run["python_loop_ms"]
        )
    report["runs"] = done
    report["spread"] = spread(done)
    report["federated"] = done[0]["federated"]  # the first run, where it always was
    if "central" in done[0]:
        report["central"] = done[0]["central"]
        report["federated_over_central"] = latency_ratio(done[0]["federated"]["serial"], done[0]["central"]["serial"])
    save_partial(out, report)


async def _repeat(
    report: dict[str, Any],
    runs: list[dict[str, Any]],
    shape: str,
    make: Callable[[], Deployment],
    measure_run: Callable[[Deployment, str], Awaitable[dict[str, Any]]],
    args: argparse.Namespace,
) -> Deployment | None:
    """Each run's ``shape`` measured on one deployment (a fresh one per run with --redeploy); the last is returned
    still running when ``shape`` is federated (the number-of-authorities sweep uses it)."""
    dep: Deployment | None = None
    try:
        for i, run in enumerate(runs):
            if dep is None or args.redeploy:
                if dep is not None:
                    dep.close()
                dep = make()
                dep.start()
            if shape == "federated":
                # The loop beside each run: a machine that slows down mid-invocation shows here.
                run["python_loop_ms"] = await asyncio.to_thread(calibration.python_loop_ms)
            run[shape] = await measure_run(dep, f"{_tag(i, len(runs))}{shape}")
            _record_runs(report, runs, args.out)
    except BaseException:
        if dep is not None:
            dep.close()
        raise
    return dep


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
        "runs_requested": args.runs,
        "same_deployment_each_run": not args.redeploy,
    }
    # The bare transport over the same certificates, before anything of the benchmark runs (its own event loop).
    probe = floor.probe(pki, [c for c, _, _ in nodes])
    before = await asyncio.to_thread(calibration.sample, probe)
    report["calibration"] = calibration.block(before)
    save_partial(args.out, report)
    runs: list[dict[str, Any]] = [{} for _ in range(args.runs)]

    async def federated(dep: Deployment, shape: str) -> dict[str, Any]:
        return await run_shape(dep, subjects, args, len(nodes), shape)

    dep = await _repeat(
        report, runs, "federated", lambda: Deployment(work, pki, nodes, args.workers, args.deadline), federated, args
    )
    assert dep is not None
    try:
        counts = sorted({k for k in (1, 10, 38, 76, len(nodes)) if k <= len(nodes)})
        report["by_authorities"] = await by_authorities(dep, nodes, subjects, counts, args.serial)
        save_partial(args.out, report)
    finally:
        dep.close()
    if args.central:
        central = [("CENTRAL", "Central index", central_store(work, nodes))]

        async def one_node(dep: Deployment, shape: str) -> dict[str, Any]:
            return await run_shape(dep, subjects, args, 1, shape)

        dep = await _repeat(
            report, runs, "central", lambda: Deployment(work, pki, central, 1, args.deadline), one_node, args
        )
        if dep is not None:
            dep.close()
    after = await asyncio.to_thread(calibration.sample, probe)
    report["calibration"] = calibration.block(before, after)
    _record_runs(report, runs, args.out)
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
    print(f"  {calibration.describe(r['calibration'])}")
    print_ratios(r["runs"][0]["ratios"])
    if len(r["runs"]) > 1:
        print_spread(r)


def print_ratios(ratios: dict[str, Any]) -> None:
    print("  ratios (first run): broker CPU ÷ gRPC floor, CPU µs per authority (broker, nodes), CPU ÷ Python loop")
    for name, p in [("one at a time", ratios["serial"]), *ratios["loads"].items()]:
        print(
            f"    {name:>13}: ×{p['broker_cpu_over_floor']} floor; {p['broker_cpu_us_per_authority']} + "
            f"{p['nodes_cpu_us_per_authority']} µs/authority; ×{p['cpu_over_python_loop']} loop"
        )


def print_spread(r: dict[str, Any]) -> None:
    how = "one deployment" if r["same_deployment_each_run"] else "a fresh deployment each"
    print(f"  spread over {len(r['runs'])} runs ({how}): least / median / greatest")
    for path, s in r["spread"].items():
        shown = path.startswith("ratios.") or path == "python_loop_ms"
        if shown or (
            path.startswith(("federated.", "central.")) and path.endswith(tuple(f".{s}" for s in SPREAD_SHOWN))
        ):
            print(f"    {path}: {s['min']:g} / {s['median']:g} / {s['max']:g}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--authorities", type=int, default=152)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2, help="node worker processes")
    parser.add_argument("--rates", type=_rates, default=[10.0, 25.0, 40.0, 50.0])
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds per offered rate (per overload level with --overload)"
    )
    parser.add_argument("--serial", type=int, default=100, help="searches one at a time")
    parser.add_argument("--deadline", type=float, default=2.0)
    parser.add_argument("--no-central", dest="central", action="store_false")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--runs",
        type=_positive,
        default=1,
        help="repeat the measurement and report each figure's least/median/greatest",
    )
    parser.add_argument(
        "--redeploy", action="store_true", help="with --runs: fresh node workers and broker for each run"
    )
    overload.add_arguments(parser)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("bench-results/scale-work"),
        help="data and stores are kept here and reused by the next run",
    )
    add_out_argument(parser, "scale")
    # The overload measurement goes to a file of its own unless told otherwise (see run()).
    parser.set_defaults(out=None)


def _rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    require("scale", [("matplotlib", "its charts")])  # before minutes of work, not after
    if args.overload and args.runs > 1:
        # Each overload level is a whole minutes-long measurement of its own: repeat the command instead.
        print("error: --runs repeats the load measurement; it does not apply to --overload", file=sys.stderr)
        return 2
    if args.overload:
        args.out = args.out or Path("bench-results/scale-overload.json")
        publish(asyncio.run(overload.run_overload(args)), args.out, overload.print_report)
        return 0
    args.out = args.out or Path("bench-results/scale.json")
    publish(asyncio.run(run_scale(args)), args.out, print_report)
    return 0
