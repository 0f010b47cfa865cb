"""``signpost demo``: a complete local federation, from synthetic data or a directory of CSVs."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

DEFAULT_WORKDIR = "signpost-demo"


def add_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--data", help="directory of <CODE>.csv records files, one per authority")
    demo.add_argument(
        "--workdir",
        default=None,
        help=f"where certificates, stores and federation.json go (default ./{DEFAULT_WORKDIR}; "
        "with --check a temporary directory, removed afterwards)",
    )
    demo.add_argument("--port", type=int, default=None, help="broker HTTPS port (default 8443; 0 = any free port)")
    demo.add_argument("--rate-limit", type=int, default=60, help="searches per practitioner per minute; 0 = off")
    demo.add_argument("--check", action="store_true", help="run sample searches, print them and exit")
    demo.add_argument("--children", type=int, default=3000, help="synthetic children (without --data)")
    demo.add_argument("--seed", type=int, default=1, help="seed for synthetic data (without --data)")


def run(args: argparse.Namespace) -> int:
    if args.check and args.workdir is None:
        # A check must never touch a running demo's workdir: it would regenerate the CA, rewrite the
        # registry and delete federation.json under the running federation's feet.
        with tempfile.TemporaryDirectory(prefix="signpost-demo-check-") as tmp:
            return _run(args, Path(tmp))
    return _run(args, Path(args.workdir or DEFAULT_WORKDIR))


def _run(args: argparse.Namespace, workdir: Path) -> int:
    from signpost.demo import DemoOptions, run_demo

    options = DemoOptions(
        data=Path(args.data) if args.data else None,
        workdir=workdir,
        port=args.port,
        rate_limit=args.rate_limit,
        check=args.check,
        children=args.children,
        seed=args.seed,
    )
    return asyncio.run(run_demo(options))
