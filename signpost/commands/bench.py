"""``signpost bench``: the benchmarks, one subcommand each, built from the same table as the commands.

Every benchmark module in :mod:`signpost.bench` has the shape of a command —
``add_arguments(parser)`` and ``run(args) -> int`` — so this module only names
them and quiets logging. It must never change a benchmark's arguments or figures.
"""

from __future__ import annotations

import argparse
import sys

from signpost.bench import accuracy, floor, node_message, scale, soak, source, speed
from signpost.commands import Command

BENCHMARKS: tuple[Command, ...] = (
    Command("accuracy", "matching accuracy through a real federation", accuracy.add_arguments, accuracy.run),
    Command("speed", "one node's index build, memory and latency", speed.add_arguments, speed.run),
    Command("soak", "steady searches for minutes while a node flaps", soak.add_arguments, soak.run),
    Command("scale", "N authorities, millions of records, load via HTTPS", scale.add_arguments, scale.run),
    Command(
        "source", "a node over PostgreSQL: full load, then changes to searchable", source.add_arguments, source.run
    ),
    Command("grpc-floor", "what a bare N-way grpc.aio fan-out costs", floor.add_arguments, floor.run),
    Command("node-message", "one node's CPU per MatchStream message", node_message.add_arguments, node_message.run),
)


def add_arguments(bench: argparse.ArgumentParser) -> None:
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    for benchmark in BENCHMARKS:
        benchmark.add_arguments(bench_commands.add_parser(benchmark.name, help=benchmark.help))


def run(args: argparse.Namespace) -> int:
    from core.logs import configure
    from signpost.bench.progress import MissingDependency

    configure("warning")  # a benchmark prints figures; per-search logs would drown them
    runner = next(b.run for b in BENCHMARKS if b.name == args.bench_command)
    try:
        return runner(args)
    except MissingDependency as exc:  # raised at the start, before any work (signpost.bench.progress)
        print(f"error: {exc}", file=sys.stderr)
        return 1
