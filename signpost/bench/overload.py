"""``signpost bench scale --overload 1,2,4``: more than the machine carries, and what the broker does with it.

Issue 18's first must-have: under any overload a search is either refused at once (503
``overloaded``) or heard from at least 99% of the authorities that are up, and circuits never open
because the broker's own machine is saturated. This measures it:

1. *What the machine carries*: ``--capacity R`` if given; otherwise a short ramp (``--ramp-duration``
   seconds a step) from an estimate made from the serial CPU per search (cores ÷ CPU per search; under
   load a dispatch carries several searches, so the estimate is low and the ramp mostly climbs), by
   ×1.25 a step while a rate is *carried* — at least 99% of the searches sent heard from every
   authority and p99 ≤ 500 ms — and down by the same factor from a first rate that is not. The
   highest rate carried is the capacity.
2. *Each multiple* of it for ``--duration`` seconds, open loop, with the broker's /v1/nodes polled
   every second for circuits: offered and admitted per second, refusals by reason (and how fast they
   came), coverage of the admitted searches (heard from all; from ≥ 99%), circuits seen open, the
   latency of admitted searches, and CPU per search.

Before each step the federation is given up to a minute to be all up again (circuits closed), so one
level's wreckage is not charged to the next; whether it was is recorded. Nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from node.store import RecordStore
from signpost.bench import calibration, floor
from signpost.bench.common import machine, save_partial
from signpost.bench.deployment import Deployment, all_up, prepare, wait_ready
from signpost.bench.load import measure
from signpost.federation import create_pki

CARRIED_COVERAGE = 0.99
"""Share of the searches sent that must be heard from every authority for a rate to count as carried."""
CARRIED_P99_MS = 500.0
"""Latency p99 a carried rate must keep (issue 18's target at 50/s)."""
RAMP_STEP = 1.25
RAMP_MAX_STEPS = 8
MIN_RATE = 0.5
SETTLE_SECONDS = 60


def carried(point: dict[str, Any]) -> bool:
    return bool(point["coverage_complete"] >= CARRIED_COVERAGE and point["latency_ms"]["p99"] <= CARRIED_P99_MS)


def estimate_from_serial(serial: dict[str, Any], cores: int) -> float:
    """Searches a second the cores would carry at the one-at-a-time CPU per search (broker, nodes, load generator)."""
    cpu_ms = serial["broker_cpu_ms_per_search"] + serial["nodes_cpu_ms_per_search"] + serial["driver_cpu_ms_per_search"]
    return round(max(MIN_RATE, cores * 1000 / cpu_ms), 1) if cpu_ms > 0 else 10.0


def next_rate(tried: list[tuple[float, bool]]) -> float | None:
    """The ramp's next offered rate after ``tried`` (rate, carried) steps, or None once the edge is found."""
    if not tried or len(tried) >= RAMP_MAX_STEPS:
        return None
    rate, ok = tried[-1]
    if ok:
        # Climbing (or the first step down that passed, which is the edge from above).
        return None if any(not k for _, k in tried) else round(rate * RAMP_STEP, 1)
    if any(k for _, k in tried):
        return None  # climbing met its first failure: the last pass is the edge
    lower = round(rate / RAMP_STEP, 1)
    return lower if lower >= MIN_RATE else None


def capacity_of(tried: list[tuple[float, bool]]) -> float | None:
    """The highest rate carried, or None if none was."""
    return max((r for r, k in tried if k), default=None)


async def find_capacity(
    dep: Deployment, subjects: list[dict[str, Any]], serial: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    estimate = estimate_from_serial(serial, os.cpu_count() or 1)
    if args.capacity:
        return {"per_second": args.capacity, "how": "given (--capacity)", "estimate_from_serial_cpu": estimate}
    steps: list[dict[str, Any]] = []
    tried: list[tuple[float, bool]] = []
    rate: float | None = estimate
    while rate is not None:
        settled = await all_up(dep, len(dep.nodes), SETTLE_SECONDS)
        point = await measure(
            dep,
            subjects,
            rate=rate,
            count=max(1, int(rate * args.ramp_duration)),
            label=f"finding what the machine carries: {rate:g}/s for {args.ramp_duration:g} s",
            circuits=True,  # not part of the judgement, but a ramp that opens circuits is worth knowing about
        )
        tried.append((rate, carried(point)))
        steps.append({**point, "carried": carried(point), "all_up_before": settled})
        rate = next_rate(tried)
    found = capacity_of(tried)
    return {
        # None carried: the lowest rate tried stands in, and "found" says so.
        "per_second": found if found is not None else min(r for r, _ in tried),
        "found": found is not None,
        "how": f"ramp of {args.ramp_duration:g} s steps",
        "estimate_from_serial_cpu": estimate,
        "ramp": steps,
    }


def verdict(level: dict[str, Any]) -> bool | None:
    """Issue 18's "admitted means heard" for one level: *every* admitted search heard from ≥ 99% of the
    authorities and no circuit opened (None if nothing was admitted: nothing to judge)."""
    if level["admitted_heard_from_99pc"] is None:
        return None
    opened = level["circuits"]["authorities_with_circuit_opened"] or level["not_answered"].get("circuit_open", 0)
    return bool(level["admitted_heard_from_99pc"] == 1.0 and not opened)


async def run_overload(args: argparse.Namespace) -> dict[str, Any]:
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    nodes, subjects = prepare(work, args)
    pki = create_pki(work / "pki", [(c, n) for c, n, _ in nodes] + [("CENTRAL", "Central index")])
    report: dict[str, Any] = {
        "benchmark": "scale-overload",
        "machine": machine(),
        "authorities": len(nodes),
        "records": sum(RecordStore(s).count() for *_, s in nodes),
        "workers": args.workers,
        "deadline_seconds": args.deadline,
        "duration_seconds": args.duration,
        "multiples": args.overload,
        "criteria": {"carried_coverage": CARRIED_COVERAGE, "carried_p99_ms": CARRIED_P99_MS},
    }
    probe = floor.probe(pki, [c for c, _, _ in nodes])
    before = await asyncio.to_thread(calibration.sample, probe)
    report["calibration"] = calibration.block(before)
    save_partial(args.out, report)
    dep = Deployment(work, pki, nodes, args.workers, args.deadline)
    try:
        dep.start()
        await wait_ready(dep, len(nodes))
        await measure(dep, subjects, rate=None, count=20, label="warm-up")
        report["serial"] = await measure(dep, subjects, rate=None, count=args.serial, label="one at a time")
        report["capacity"] = await find_capacity(dep, subjects, report["serial"], args)
        save_partial(args.out, report)
        report["levels"] = []
        for multiple in args.overload:
            report["levels"].append(await _level(dep, subjects, multiple, report["capacity"]["per_second"], args))
            save_partial(args.out, report)
    finally:
        dep.close()
    after = await asyncio.to_thread(calibration.sample, probe)
    report["calibration"] = calibration.block(before, after)
    judged = [v for v in (lv["admitted_means_heard"] for lv in report["levels"]) if v is not None]
    report["admitted_means_heard"] = bool(judged) and all(judged)
    return report


async def _level(
    dep: Deployment, subjects: list[dict[str, Any]], multiple: float, capacity: float, args: argparse.Namespace
) -> dict[str, Any]:
    settled = await all_up(dep, len(dep.nodes), SETTLE_SECONDS)
    offered = round(multiple * capacity, 2)
    began = time.perf_counter()
    point = await measure(
        dep,
        subjects,
        rate=offered,
        count=max(1, int(offered * args.duration)),
        label=f"overload ×{multiple:g}: {offered:g}/s for {args.duration:g} s",
        circuits=True,
    )
    level = {"multiple": multiple, "all_up_before": settled, **point}
    level["admitted_per_second"] = point["throughput_per_second"]
    level["wall_seconds"] = round(time.perf_counter() - began, 1)
    level["admitted_means_heard"] = verdict(level)
    return level


def print_report(r: dict[str, Any]) -> None:
    cap = r["capacity"]
    print(
        f"scale --overload: {r['authorities']} authorities, {r['records']:,} records, "
        f"{r['duration_seconds']:g} s a level"
    )
    print(f"  {calibration.describe(r['calibration'])}")
    s = r["serial"]
    print(
        f"  one at a time: p50 {s['latency_ms']['p50']} ms, p99 {s['latency_ms']['p99']} ms; CPU per search: broker "
        f"{s['broker_cpu_ms_per_search']} ms, nodes {s['nodes_cpu_ms_per_search']} ms"
    )
    found = "" if cap.get("found", True) else " (no rate tried was carried: the lowest stands in)"
    print(f"  the machine carries {cap['per_second']:g}/s, {cap['how']}{found}")
    for step in cap.get("ramp", []):
        print(
            f"    ramp {step['offered_rate']:g}/s: {step['coverage_complete']:.1%} heard from all, "
            f"p99 {step['latency_ms']['p99']} ms, refused {step['refused']} -> "
            f"{'carried' if step['carried'] else 'not carried'}"
        )
    for lv in r["levels"]:
        c = lv["circuits"]
        print(
            f"  ×{lv['multiple']:g}: offered {lv['offered_rate']:g}/s, admitted {lv['admitted_per_second']:g}/s, "
            f"refused {lv['refused']} {lv['refused_by_reason']}; admitted heard from all "
            f"{_pc(lv['admitted_heard_from_all'])}, from ≥99% {_pc(lv['admitted_heard_from_99pc'])}; circuits opened "
            f"{c['authorities_with_circuit_opened']} (circuit_open gaps {lv['not_answered'].get('circuit_open', 0)}); "
            f"admitted p50 {lv['latency_ms']['p50']} p99 {lv['latency_ms']['p99']} ms -> admitted means heard: "
            f"{lv['admitted_means_heard']}"
        )
    print(f"  admitted means heard at every level: {r['admitted_means_heard']}")


def _pc(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overload",
        type=lambda s: [float(x) for x in s.split(",")],
        help="multiples of what the machine carries to offer, e.g. 1,2,4 (writes bench-results/scale-overload.json)",
    )
    parser.add_argument("--capacity", type=float, help="with --overload: searches/s the machine carries (no ramp)")
    parser.add_argument("--ramp-duration", type=float, default=10.0, help="with --overload: seconds per ramp step")
