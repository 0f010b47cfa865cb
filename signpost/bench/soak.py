"""``signpost bench soak``: minutes of searches at a steady rate while one node flaps.

A local federation (synthetic authorities) serves searches at ``--rate`` per
second through the real HTTPS API, open loop (a slow answer does not slow the
sender), while one authority's node is stopped and restarted on its port every
``--flap-period`` seconds. For every answer we check coverage honesty against
the ground truth: each authority that holds the child must appear either with
a result or in ``not_answered`` — an authority missing from both would be a
silent "no contact", which is what we count as *misreported*. What "holds the
child" means is taken from a baseline run of every query with all nodes up, so
a matching miss (another benchmark's business) is not counted as a coverage lie.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from certs.identity import Role
from certs.tls import client_ssl_context
from node.server import start_node
from signpost.bench import calibration
from signpost.bench.common import add_out_argument, machine, percentile, publish
from signpost.bench.progress import step
from signpost.federation import LocalFederation, start_local_federation
from signpost.synth import ENGLISH_AUTHORITIES, SynthConfig, generate, write


async def _flap(fed: LocalFederation, code: str, period: float, stop: asyncio.Event, log: list[float]) -> None:
    """Stop the node for a third of each period, then start it again on the same port."""
    index = next(i for i, n in enumerate(fed.nodes) if n.config.code == code)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), period * 2 / 3)
            return
        except TimeoutError:
            pass
        node = fed.nodes[index]
        await node.stop(grace=0.5)
        log.append(time.monotonic())
        try:
            await asyncio.wait_for(stop.wait(), period / 3)
        except TimeoutError:
            pass
        fed.nodes[index] = await start_node(replace(node.config, listen=(node.config.listen[0], node.port)))


def misreported(answer: dict[str, Any], expected: set[str]) -> list[str]:
    """Authorities that found the child in the baseline but are neither listed nor declared unanswered now."""
    found = {r["authority"]["code"] for r in answer.get("results", [])}
    missing = {n["code"] for n in answer.get("coverage", {}).get("not_answered", [])}
    contradictory = found & missing
    return sorted((expected - found - missing) | contradictory)


async def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    codes = ENGLISH_AUTHORITIES[: args.authorities]
    config = SynthConfig(
        authorities=tuple((c, n) for c, n, _ in codes), children=args.children, seed=args.seed, queries=500
    )
    with tempfile.TemporaryDirectory(prefix="signpost-soak-") as tmp:
        work = Path(tmp)
        with step(f"generating {args.children:,} children"):
            write(generate(config), work / "data")
        queries = [
            q for q in json.loads((work / "data" / "queries.json").read_text()) if q["kind"] in ("exact", "absent")
        ]
        fed = await start_local_federation(
            work,
            [(c, n, work / "data" / f"{c}.csv") for c, n, _ in codes],
            rate_limit_per_minute=0,
            search_deadline_seconds=args.deadline,
        )
        flap_code = args.flap or codes[1][0]
        context = client_ssl_context(fed.pki.ca.cert, fed.pki.users[Role.PRACTITIONER])
        baseline: dict[str, set[str]] = {}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            for query in queries:
                async with session.post(
                    f"{fed.broker_url}/v1/searches", json={"subject": query["subject"], "purpose": query["purpose"]}
                ) as resp:
                    answer = await resp.json()
                if resp.status == 400:
                    continue  # below the minimum query (e.g. a placeholder "Baby" for a name): not a soak search
                if answer["coverage"]["answered"] != answer["coverage"]["asked"]:
                    raise RuntimeError("the baseline needs every node answering")
                baseline[query["query_id"]] = {r["authority"]["code"] for r in answer["results"]}
        queries = [q for q in queries if q["query_id"] in baseline]
        statuses: Counter[str] = Counter()
        gaps: Counter[str] = Counter()
        latencies: list[float] = []
        wrong: list[dict[str, Any]] = []
        stop, flaps = asyncio.Event(), list[float]()
        flapper = asyncio.create_task(_flap(fed, flap_code, args.flap_period, stop, flaps))
        total = int(args.minutes * 60 * args.rate)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=200)) as session:

                async def one(query: dict[str, Any]) -> None:
                    started = time.perf_counter()
                    try:
                        async with session.post(
                            f"{fed.broker_url}/v1/searches",
                            json={"subject": query["subject"], "purpose": query["purpose"]},
                            timeout=aiohttp.ClientTimeout(total=30),
                        ) as resp:
                            answer = await resp.json()
                            statuses[str(resp.status)] += 1
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        statuses[type(exc).__name__] += 1
                        return
                    latencies.append((time.perf_counter() - started) * 1000)
                    for gap in answer.get("coverage", {}).get("not_answered", []):
                        gaps[f"{gap['code']}:{gap['reason']}"] += 1
                    bad = misreported(answer, baseline[query["query_id"]])
                    if bad:
                        wrong.append({"query": query["query_id"], "authorities": bad})

                with step(f"soak: {args.rate:g}/s for {args.minutes:g} min", total, " searches") as progress:
                    began = time.monotonic()
                    tasks = []
                    for i in range(total):
                        await asyncio.sleep(max(0.0, began + i / args.rate - time.monotonic()))
                        task = asyncio.create_task(one(queries[i % len(queries)]))
                        task.add_done_callback(lambda _: progress.update(1))
                        tasks.append(task)
                    await asyncio.gather(*tasks)
                    elapsed = time.monotonic() - began
        finally:
            stop.set()
            await flapper
            await fed.stop()
    errors = sum(v for k, v in statuses.items() if k != "200")
    return {
        "benchmark": "soak",
        "machine": machine(),
        "minutes": args.minutes,
        "rate_per_second": args.rate,
        "authorities": args.authorities,
        "flapping": flap_code,
        "flap_period_seconds": args.flap_period,
        "node_restarts": len(flaps),
        "searches_sent": total,
        "searches_served": statuses.get("200", 0),
        "failed_searches": errors,
        "statuses": dict(statuses),
        "elapsed_seconds": round(elapsed, 1),
        "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p99": round(percentile(latencies, 99), 1)},
        "coverage_gaps": dict(gaps),
        "authorities_misreported": len(wrong),
        "misreported_examples": wrong[:10],
    }


def print_report(r: dict[str, Any]) -> None:
    print(
        f"soak: {r['minutes']} min at {r['rate_per_second']}/s over {r['authorities']} authorities, "
        f"{r['flapping']} restarted {r['node_restarts']} times"
    )
    print(
        f"  searches served {r['searches_served']} of {r['searches_sent']}; failed {r['failed_searches']} "
        f"{r['statuses']}"
    )
    print(f"  latency p50 {r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms")
    print(f"  coverage gaps (honestly reported): {r['coverage_gaps']}")
    print(f"  authorities misreported (silently missing): {r['authorities_misreported']}")
    if "calibration" in r:
        print(f"  {calibration.describe(r['calibration'])}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=10.0, help="searches per second")
    parser.add_argument("--authorities", type=int, default=6)
    parser.add_argument("--children", type=int, default=6000)
    parser.add_argument("--flap", help="authority code to flap (default: the second)")
    parser.add_argument("--flap-period", type=float, default=20.0)
    parser.add_argument("--deadline", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=3)
    add_out_argument(parser, "soak")


def run(args: argparse.Namespace) -> int:
    report = calibration.calibrated(lambda: asyncio.run(run_soak(args)))
    publish(report, args.out, print_report)
    return 0 if report["failed_searches"] == 0 and report["authorities_misreported"] == 0 else 1
