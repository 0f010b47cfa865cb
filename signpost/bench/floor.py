"""``signpost bench grpc-floor``: what N-way fan-out costs the caller in grpc.aio before Signpost does anything.

N echo servers (default 152), each its own mTLS server with its own node certificate, run in a child
process; this process holds one channel and one long-lived stream to each, exactly as the broker
does, and sends one small message down every stream and waits for every reply, one round at a
time. The CPU this process spends per round is the floor under the broker's CPU for a search
sent to N authorities one at a time: no matching, no signing, no audit, no HTTP. Figures to JSON;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from certs.identity import node_dns_name
from certs.tls import TLSConfig, channel_credentials, server_credentials
from signpost.bench import calibration
from signpost.bench.common import add_out_argument, machine, percentile, publish
from signpost.bench.progress import step
from signpost.federation import Pki, create_pki

CALIBRATION_ROUNDS = 100
"""Rounds of the short floor that ``scale`` measures before and after its main measurement."""
METHOD = "/signpost.bench.Echo/Stream"
PAYLOAD = b"x" * 600
"""About the size of one signed MatchRequest."""


def _echo_servers(tls: list[TLSConfig], ready: Any, stop: Any) -> None:
    async def handler(requests: Any, context: grpc.aio.ServicerContext[bytes, bytes]) -> Any:
        async for message in requests:
            yield message[:40]

    async def main() -> None:
        servers, ports = [], []
        for files in tls:
            server = grpc.aio.server()
            method: grpc.RpcMethodHandler[bytes, bytes] = grpc.stream_stream_rpc_method_handler(handler)  # bytes
            server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler("signpost.bench.Echo", {"Stream": method}),)
            )
            credentials = server_credentials(files)
            ports.append(server.add_secure_port("127.0.0.1:0", credentials))
            await server.start()
            servers.append(server)
        ready.put(ports)
        while not stop.is_set():
            await asyncio.sleep(0.2)
        await asyncio.gather(*(s.stop(0) for s in servers))

    asyncio.run(main())


async def _rounds(ports: list[int], codes: list[str], broker: TLSConfig, rounds: int) -> dict[str, Any]:
    credentials = channel_credentials(broker)
    channels = [
        grpc.aio.secure_channel(
            f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", node_dns_name(code))]
        )
        for port, code in zip(ports, codes, strict=False)
    ]
    calls: list[grpc.aio.StreamStreamCall[bytes, bytes]] = [c.stream_stream(METHOD)() for c in channels]
    loop = asyncio.get_running_loop()
    pending: dict[int, asyncio.Future[bytes]] = {}

    async def read(i: int, call: Any) -> None:
        while (reply := await call.read()) is not grpc.aio.EOF:
            pending.pop(i).set_result(reply)

    readers = [loop.create_task(read(i, call)) for i, call in enumerate(calls)]

    async def one_round() -> None:
        futures = [pending.setdefault(i, loop.create_future()) for i in range(len(calls))]
        await asyncio.gather(*(call.write(PAYLOAD) for call in calls))
        await asyncio.gather(*futures)

    for _ in range(20):  # connect, handshake, warm up
        await one_round()
    cpu, wall = time.process_time(), time.perf_counter()
    latencies = []
    for _ in range(rounds):
        began = time.perf_counter()
        await one_round()
        latencies.append((time.perf_counter() - began) * 1000)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for call in calls:
        call.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(c.close() for c in channels))
    return {
        "streams": len(calls),
        "rounds": rounds,
        "caller_cpu_ms_per_round": round(cpu * 1000 / rounds, 2),
        "latency_ms": {"p50": round(percentile(latencies, 50), 2), "p99": round(percentile(latencies, 99), 2)},
        "rounds_per_second": round(rounds / wall, 1),
    }


def measure_floor(pki: Pki, codes: list[str], rounds: int, *, label: str | None = None) -> dict[str, Any]:
    """Echo servers for ``codes`` (certificates from ``pki``) in a child process, and ``rounds`` rounds to them."""
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_echo_servers, args=([pki.tls(pki.nodes[c]) for c in codes], ready, stop), daemon=True)
    child.start()
    try:
        with step("starting the echo servers"):
            ports = ready.get(timeout=120)
        # Elapsed time only: a bar advanced per round would add its own CPU to the figure being measured.
        with step(label or f"{rounds} rounds of a {len(codes)}-way fan-out"):
            return asyncio.run(_rounds(ports, codes, pki.tls(pki.broker), rounds))
    finally:
        stop.set()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()


def probe(pki: Pki, codes: list[str], rounds: int = CALIBRATION_ROUNDS) -> Callable[[], dict[str, Any]]:
    """The floor as a calibration figure (signpost.bench.calibration): a short run over an existing PKI.

    Call it only from outside an event loop and with nothing else of the benchmark running."""
    return lambda: measure_floor(pki, codes, rounds, label=f"calibration: {rounds} rounds of the bare gRPC floor")


def run_floor(args: argparse.Namespace) -> dict[str, Any]:
    work = args.workdir.resolve()
    codes = [f"ECHO{i:03d}" for i in range(args.authorities)]
    with step(f"certificates for {len(codes)} echo servers"):
        pki = create_pki(work / "pki", [(c, c) for c in codes])
    result = measure_floor(pki, codes, args.rounds)
    return {"benchmark": "grpc-floor", "machine": machine(), "grpc_version": grpc.__version__, **result}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--authorities", type=int, default=152, help="echo servers, one stream each")
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--workdir", type=Path, default=Path("bench-results/grpc-floor"))
    add_out_argument(parser, "grpc-floor")


def print_report(report: dict[str, Any]) -> None:
    print(
        f"grpc-floor: {report['streams']}-way fan-out over mTLS streams, one message each way per round: "
        f"caller CPU {report['caller_cpu_ms_per_round']} ms a round, p50 {report['latency_ms']['p50']} ms, "
        f"p99 {report['latency_ms']['p99']} ms (grpcio {report['grpc_version']})"
    )
    print(f"  {calibration.describe(report['calibration'])}")
    print(f"  the floor in calibration loops: {report['floor_over_python_loop']}")


def run(args: argparse.Namespace) -> int:
    report = calibration.calibrated(lambda: run_floor(args))
    # The floor itself is this benchmark's figure; against the loop it says how much of it is the machine.
    loop = report["calibration"]["reference"]["python_loop_ms"]
    report["floor_over_python_loop"] = round(report["caller_cpu_ms_per_round"] / loop, 4)
    publish(report, args.out, print_report)
    return 0
