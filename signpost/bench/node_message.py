"""``signpost bench node-message``: one real node's CPU per MatchStream message, as the broker sends them.

One authority's node (``node.server.start_node``, real mTLS on loopback, a synthetic store of about
14,000 records) runs in a child process; this process holds one MatchStream to it and sends batches
spliced exactly as the broker's pipe does, each request built and signed by the broker's own code
(``broker.search_service.match_request``, ``certs.assertions.AssertionSigner``, addressed to ``audience``
authorities as a national search is), so the node's checks, matching, journal and answer floor all run.
One batch at a time; the node process's CPU (``/proc/<pid>/stat``, every thread) is read around each run
and divided by the messages sent. Runs of each shape are alternated and the medians reported. Most
requests find nothing here, as at one authority of many. The same number of messages of the same sizes
then go to a bare grpc.aio echo server (``signpost.bench.floor``'s) for the transport's own share, so
``node_over_echo`` compares machines. Figures to JSON; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import multiprocessing as mp
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import grpc

from broker.errors import InvalidRequest
from broker.nodeclient import STREAM_METHOD, batch_bytes, batch_piece
from broker.search_request import SearchRequest, parse_search
from broker.search_service import match_request
from certs.assertions import AssertionSigner, load_private_key
from certs.identity import Identity, Role, node_dns_name
from certs.tls import channel_credentials
from node.config import NodeConfig
from node.importer import import_csv
from node.store import RecordStore
from protos.signpost.v1 import node_pb2
from signpost.bench import calibration, floor
from signpost.bench.common import add_out_argument, machine, publish
from signpost.bench.deployment import CHILDREN_PER_RECORD, cpu_seconds
from signpost.bench.progress import step
from signpost.federation import Pki, create_pki, local_front_door
from signpost.synth import ENGLISH_AUTHORITIES, SynthConfig, generate_to

CALLER = Identity(Role.PRACTITIONER, "pat", "Pat Practitioner", "Leeds City Council", "pat@example.org")


def _nodes(configs: list[NodeConfig], ready: Any, stop: Any) -> None:
    from core.logs import configure
    from node.server import start_node

    configure("error")

    async def main() -> None:
        nodes = [await start_node(c) for c in configs]
        ready.put([n.port for n in nodes])
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for node in nodes:
            await node.stop(grace=0.5)

    asyncio.run(main())


def prepare(work: Path, records: int, seed: int) -> tuple[str, Path, list[dict[str, Any]]]:
    """The served authority's store (the first of four of equal size) and the queries of all four."""
    chosen = ENGLISH_AUTHORITIES[:4]
    data = work / "data"
    if not (data / "COMPLETE").exists():
        config = SynthConfig(
            authorities=tuple((c, n) for c, n, _ in chosen),
            children=int(4 * records * CHILDREN_PER_RECORD),
            seed=seed,
            queries=400,
        )
        with step(f"generating about {4 * records:,} records"):
            generate_to(config, data)
        (data / "COMPLETE").write_text("generated\n")
    code = chosen[0][0]
    store = work / f"{code}.sqlite3"
    if not store.exists():
        s = RecordStore(store)
        import_csv(s, data / f"{code}.csv")
        s.close()
    queries = json.loads((data / "queries.json").read_text())
    return code, store, [q["subject"] for q in queries if q["kind"] in ("exact", "variant", "absent")]


def _searchable(subject: dict[str, Any], purpose: dict[str, str], today: dt.date) -> SearchRequest | None:
    """The search as the broker would send it, or None for one the broker refuses (never sent to a node)."""
    try:
        return parse_search({"subject": subject, "purpose": purpose}, today=today)
    except InvalidRequest:
        return None


class Sender:
    """Signed requests, spliced into batches and sent one batch at a time down one MatchStream per node.

    With several nodes each batch goes to all of them at once, as the broker sends one search to every
    authority: the same signed bytes to each (the broker signs a search once for its whole audience)."""

    def __init__(self, pki: Pki, ports: dict[str, int], subjects: list[dict[str, Any]], audience: list[str]) -> None:
        credentials = channel_credentials(pki.tls(pki.broker))
        self.channels = [
            grpc.aio.secure_channel(
                f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", node_dns_name(code))]
            )
            for code, port in ports.items()
        ]
        self.signer = AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: audience)
        today = dt.date.today()
        body = {"code": "missing-child", "justification": "Benchmark search"}
        self.searches = [s for s in (_searchable(s, body, today) for s in subjects) if s is not None]
        self.ids = itertools.count(1)
        self.calls: list[Any] = []

    def piece(self, n: int) -> bytes:
        request = match_request(f"bench-{n}", self.searches[n % len(self.searches)], CALLER)
        self.signer.sign(request)
        return batch_piece(request.SerializeToString())

    async def run(self, batches: int, per_batch: int) -> tuple[int, int]:
        """Send ``batches`` batches of ``per_batch`` to every node; (requests answered, requests refused)."""
        if not self.calls:
            self.calls = [
                c.stream_stream(STREAM_METHOD, response_deserializer=node_pb2.MatchBatchResult.FromString)()
                for c in self.channels
            ]
        pieces = [[self.piece(next(self.ids)) for _ in range(per_batch)] for _ in range(batches)]
        answered = refused = 0
        for i, batch in enumerate(pieces):
            message = batch_bytes(i + 1, batch)
            await asyncio.gather(*(call.write(message) for call in self.calls))
            for result in await asyncio.gather(*(call.read() for call in self.calls)):
                for outcome in result.outcomes:
                    if outcome.HasField("response"):
                        answered += 1
                    else:
                        refused += 1
        return answered, refused

    async def close(self) -> None:
        for call in self.calls:
            await call.done_writing()
        for channel in self.channels:
            await channel.close()


async def measure(sender: Sender, pid: int, shapes: list[int], messages: int, rounds: int) -> dict[str, Any]:
    await sender.run(50, 1)  # handshake, warm caches
    per_message: dict[int, list[float]] = {n: [] for n in shapes}
    refused = 0
    for _ in range(rounds):
        for n in shapes:  # alternated: each round runs every shape once
            cpu = cpu_seconds(pid)
            _, no = await sender.run(messages, n)
            spent = cpu_seconds(pid) - cpu
            refused += no
            per_message[n].append(spent * 1e6 / (messages * len(sender.calls)))
    return {
        "refused": refused,
        "node_cpu_us_per_message": {
            str(n): {"median": round(statistics.median(v), 1), "runs": [round(x, 1) for x in v]}
            for n, v in per_message.items()
        },
        "node_cpu_us_per_search": {str(n): round(statistics.median(v) / n, 1) for n, v in per_message.items()},
    }


async def echo_reference(pki: Pki, code: str, sizes: dict[int, int], messages: int, rounds: int) -> dict[str, float]:
    """The bare transport's share: CPU per message of a grpc.aio echo server (signpost.bench.floor's) in a
    child process, over the same mTLS, sent messages of the node's sizes one at a time; medians by shape."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=floor._echo_servers, args=([pki.tls(pki.nodes[code])], ready, stop), daemon=True)
    child.start()
    try:
        [port] = await asyncio.to_thread(ready.get, timeout=120)
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{port}",
            channel_credentials(pki.tls(pki.broker)),
            options=[("grpc.ssl_target_name_override", node_dns_name(code))],
        )
        call: Any = channel.stream_stream(floor.METHOD)()
        runs: dict[int, list[float]] = {n: [] for n in sizes}
        for n in [next(iter(sizes))] + [n for _ in range(rounds) for n in sizes]:  # the first warms up
            payload = b"x" * sizes[n]
            cpu = cpu_seconds(child.pid or 0)
            for _ in range(messages):
                await call.write(payload)
                await call.read()
            runs[n].append((cpu_seconds(child.pid or 0) - cpu) * 1e6 / messages)
        call.cancel()
        await channel.close()
        return {str(n): round(statistics.median(v[1:] if n == next(iter(sizes)) else v), 1) for n, v in runs.items()}
    finally:
        stop.set()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()


def run_node_message(args: argparse.Namespace) -> dict[str, Any]:
    work = args.workdir.resolve()
    code, store, subjects = prepare(work, args.records, args.seed)
    audience = [c for c, _, _ in ENGLISH_AUTHORITIES[: max(args.audience, args.nodes)]]
    codes = [code, *[c for c in audience if c != code][: args.nodes - 1]]
    with step("certificates"):
        pki = create_pki(work / "pki", [(c, c) for c in codes])
    journals = work / "journals" / str(time.time_ns())  # new each run: an earlier run's nonces and rows
    journals.mkdir(parents=True)
    configs = [
        NodeConfig(
            c,
            c,
            ("127.0.0.1", 0),
            store,  # every hosted node serves the same records: the CPU per message is what is measured
            pki.tls(pki.nodes[c]),
            broker_public_keys=(pki.assertion_pub,),
            refresh_interval_seconds=3600,
            front_door=local_front_door(c),
            journal_path=journals / f"{c}.sqlite3",
        )
        for c in codes
    ]
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_nodes, args=(configs, ready, stop), daemon=True)
    child.start()
    try:
        with step(f"{len(codes)} node(s) loading the store"):
            ports = dict(zip(codes, ready.get(timeout=300), strict=True))

        async def main() -> dict[str, Any]:
            sender = Sender(pki, ports, subjects, audience)
            try:
                return await measure(sender, child.pid or 0, args.per_batch, args.messages, args.rounds)
            finally:
                await sender.close()

        piece = Sender(pki, {}, subjects, audience).piece(0)
        sizes = {n: len(batch_bytes(1, [piece] * n)) for n in args.per_batch}

        with step(f"{args.rounds} alternated rounds of {args.messages} messages per shape"):
            result = asyncio.run(main())
    finally:
        stop.set()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
        shutil.rmtree(journals, ignore_errors=True)
    with step("the same messages to a bare grpc.aio echo server"):
        echo = asyncio.run(echo_reference(pki, code, sizes, args.messages, args.rounds))
    node = result["node_cpu_us_per_message"]
    return {
        "benchmark": "node-message",
        "machine": machine(),
        "nodes_in_process": len(codes),
        "audience": len(audience),
        "messages_per_run": args.messages,
        "message_bytes": {str(n): size for n, size in sizes.items()},
        **result,
        "echo_cpu_us_per_message": echo,
        "node_over_echo": {n: round(node[n]["median"] / echo[n], 2) for n in echo if echo[n] > 0},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=14_000, help="records at the node (and at each of three others)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--audience", type=int, default=152, help="authorities each search is addressed to")
    parser.add_argument("--nodes", type=int, default=1, help="nodes in the one process (scale's workers host 76)")
    parser.add_argument("--per-batch", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    parser.add_argument("--messages", type=int, default=2000, help="messages per run (to each node)")
    parser.add_argument("--rounds", type=int, default=5, help="alternated runs of each shape")
    parser.add_argument("--workdir", type=Path, default=Path("bench-results/node-message"))
    add_out_argument(parser, "node-message")


def print_report(report: dict[str, Any]) -> None:
    nodes, audience = report["nodes_in_process"], report["audience"]
    print(f"node-message: {nodes} node(s) in one process, each search addressed to {audience} authorities")
    for n, figures in report["node_cpu_us_per_message"].items():
        print(f"  {n:>3} per batch: node CPU {figures['median']:8.1f} µs a message (median; runs {figures['runs']})")
    for n, us in report["echo_cpu_us_per_message"].items():
        ratio = report["node_over_echo"].get(n, "-")
        print(f"  {n:>3} per batch: a bare echo server {us:8.1f} µs a message of the same size (node / echo {ratio})")
    print(f"  requests refused by the node: {report['refused']} (0 unless a check failed)")
    print(f"  {calibration.describe(report['calibration'])}")


def run(args: argparse.Namespace) -> int:
    publish(calibration.calibrated(lambda: run_node_message(args)), args.out, print_report)
    return 0
