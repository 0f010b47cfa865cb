"""The scale benchmarks' federation on one machine: data, stores, node worker processes and a broker process.

Node *worker processes* each host a share of the authorities (every authority still its own gRPC
server, port and certificate) and the broker runs in its own process, so the process driving the
searches (``signpost.bench.load``) measures each component's CPU and memory from /proc. Synthetic
data and stores are kept in the work directory and reused by the next run. Nothing here measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
from collections.abc import Iterable, Iterator
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
from signpost.bench.progress import step, track
from signpost.federation import Pki, local_front_door
from signpost.synth import ENGLISH_AUTHORITIES, SynthConfig, generate_to

CHILDREN_PER_RECORD = 1.0 / 0.68
Node = tuple[str, str, Path]
"""An authority's code, name and record store."""


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
    from broker.server import settle_heap, start_broker
    from core.logs import configure

    configure("error")

    async def main() -> None:
        broker = await start_broker(config)
        settle_heap()  # as serve_forever does: this process is the broker's alone
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


def bench_broker_config(registry: Path, pki: Pki, work: Path, **settings: Any) -> BrokerConfig:
    """A broker for a benchmark: no rate limits or pattern alerts (one load generator plays every
    practitioner), its audit log and keys in ``work``; ``settings`` add to or override these."""
    base: dict[str, Any] = {
        "listen": ("127.0.0.1", 0),
        "registry": registry,
        "tls": pki.tls(pki.broker),
        "assertion_key": pki.assertion_key,
        "rate_limit_per_minute": 0,
        "rate_limit_per_day": 0,
        "alert_searches_per_hour": 0,
        "org_rate_limit_per_minute": 0,
        "org_rate_limit_per_day": 0,
        "patterns": PATTERNS_OFF,
        "audit_log": str(work / "audit.sqlite3"),
        "audit_signing_key": work / "audit.key",
        "subject_key": work / "subject.key",
        # The load generator is one source address holding up to 500 connections at once: the door's
        # per-address caps are for the public side, not for this.
        "preauth_burst": 0,
        "limits": DoorLimits(max_connections_per_address=768),
    }
    return BrokerConfig(**(base | settings))


class Deployment:
    """Node workers plus a broker process, started from prepared stores."""

    def __init__(self, work: Path, pki: Pki, nodes: list[Node], workers: int, deadline: float):
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
        config = bench_broker_config(
            registry,
            self.pki,
            self.work,
            search_deadline_seconds=self.deadline,
            health=HealthSettings(poll_interval=5.0),
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


async def all_up(dep: Deployment, expected: int, seconds: int = 120) -> bool:
    """Whether the broker sees ``expected`` authorities, every one up, within ``seconds`` (polled each second)."""
    context = client_ssl_context(dep.pki.ca.cert, dep.pki.users[Role.OPERATOR])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for _ in range(seconds):
            try:
                async with session.get(f"{dep.url}/v1/nodes?refresh=true") as resp:
                    nodes = (await resp.json())["nodes"]
                if len(nodes) == expected and all(n["status"] == "up" for n in nodes):
                    return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
    return False


async def wait_ready(dep: Deployment, expected: int) -> None:
    if not await all_up(dep, expected):
        raise RuntimeError("the federation did not come up")


def prepare(work: Path, args: argparse.Namespace) -> tuple[list[Node], list[dict[str, Any]]]:
    """The stores of ``args.authorities`` authorities holding about ``args.records`` records, and the queries."""
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


def central_store(work: Path, nodes: list[Node]) -> Path:
    """Every authority's records in one store: the ContactPoint shape."""
    store_path = work / "stores" / "CENTRAL.sqlite3"
    if not store_path.exists():
        store = RecordStore(store_path)
        for code, _, _ in track(nodes, "importing every authority into one central store", len(nodes), " authorities"):
            import_csv(store, work / "data" / f"{code}.csv")
        store.close()
    return store_path
