"""Broker CPU per search over 152 real mTLS nodes on loopback, lone and under load, with the gRPC floor beside it.

    PYTHONPATH=<checkout> nice -n 10 python scripts/broker_cpu.py OUT.json [--records 20000] [--clients 8]

The scale benchmark's machinery (signpost.bench.deployment: node worker processes, a broker process) on small
data; searches through the HTTPS API. Per round: ``--lone`` searches one at a time, then ``--loaded`` searches
from ``--clients`` concurrent clients; the broker's CPU (from /proc, not wall clock) per search for each, the
nodes' too, and the bare grpc.aio fan-out floor (signpost.bench.floor) measured first in the same invocation.
For an A/B on a shared machine, alternate invocations of the two checkouts and compare medians (and each run's
broker/floor ratio). ``--py-spy PATH`` also records a py-spy profile of the broker (raw folded stacks) over a
lone and a loaded pass. Nothing is asserted; ``--work`` holds data and certificates — one invocation at a time
per work directory (each run makes the PKI anew).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from certs.identity import Role
from certs.tls import client_ssl_context
from signpost.bench import floor
from signpost.bench.deployment import Deployment, cpu_seconds, prepare, wait_ready
from signpost.bench.load import search
from signpost.federation import create_pki


async def drive(dep: Deployment, subjects: list[dict[str, Any]], clients: int, count: int) -> dict[str, Any]:
    context = client_ssl_context(dep.pki.ca.cert, dep.pki.users[Role.PRACTITIONER])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=64)) as session:
        numbers, results = iter(range(count)), []

        async def client() -> None:
            for i in numbers:
                results.append(await search(session, dep.url, subjects[i % len(subjects)]))

        nodes0, broker0, wall0 = (
            sum(cpu_seconds(p) for p in dep.node_pids),
            cpu_seconds(dep.broker_pid),
            time.perf_counter(),
        )
        await asyncio.gather(*(client() for _ in range(clients)))
        broker1, wall1, nodes1 = (
            cpu_seconds(dep.broker_pid),
            time.perf_counter(),
            sum(cpu_seconds(p) for p in dep.node_pids),
        )
    n = len(results)
    return {
        "clients": clients,
        "searches": n,
        "complete": sum(r.complete for r in results),
        "statuses": dict(Counter(str(r.status) for r in results)),
        "not_answered": dict(Counter(x for r in results for x in r.not_answered)),
        "broker_cpu_ms": round((broker1 - broker0) * 1000 / n, 2),
        "nodes_cpu_ms": round((nodes1 - nodes0) * 1000 / n, 2),
        "per_second": round(n / (wall1 - wall0), 1),
    }


async def profile(dep: Deployment, subjects: list[dict[str, Any]], args: argparse.Namespace) -> None:
    for name, clients, count in (("lone", 1, args.lone), ("loaded", args.clients, args.loaded)):
        command = [args.py_spy, "record", "-p", str(dep.broker_pid), "-r", "200", "--native", "-f", "raw"]
        spy = await asyncio.create_subprocess_exec(
            *command, "-o", f"{args.out}.{name}.txt", stdout=asyncio.subprocess.DEVNULL
        )
        await asyncio.sleep(1.0)
        await drive(dep, subjects, clients, count)
        spy.send_signal(2)
        await spy.wait()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    nodes, subjects = prepare(work, argparse.Namespace(authorities=152, records=args.records, seed=5))
    pki = create_pki(work / "pki", [(c, n) for c, n, _ in nodes])
    report: dict[str, Any] = {"floor": await asyncio.to_thread(floor.measure_floor, pki, [c for c, _, _ in nodes], 200)}
    dep = Deployment(work, pki, nodes, 2, 2.0)
    dep.start()
    try:
        await wait_ready(dep, len(nodes))
        await drive(dep, subjects, 1, 30)  # warm channels and caches
        if args.py_spy:
            await profile(dep, subjects, args)
        for _ in range(args.rounds):
            report.setdefault("lone", []).append(await drive(dep, subjects, 1, args.lone))
            report.setdefault("loaded", []).append(await drive(dep, subjects, args.clients, args.loaded))
    finally:
        dep.close()
    return report


if __name__ == "__main__":  # spawned node and broker processes import this module: nothing may run then
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--work", default="bench-results/broker-cpu-work")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--lone", type=int, default=200)
    parser.add_argument("--loaded", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--py-spy", default="", help="path to py-spy: profile the broker first")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    arguments.out.write_text(json.dumps(result, indent=1))
    json.dump(result, sys.stdout)
