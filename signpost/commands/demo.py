"""``signpost demo``: a complete local federation, from synthetic data or a directory of CSVs."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def add_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--data", help="directory of <CODE>.csv records files, one per authority")
    demo.add_argument("--workdir", default="signpost-demo", help="where certificates, stores and federation.json go")
    demo.add_argument("--port", type=int, default=None, help="broker HTTPS port (default 8443; 0 = any free port)")
    demo.add_argument("--rate-limit", type=int, default=60, help="searches per practitioner per minute; 0 = off")
    demo.add_argument("--check", action="store_true", help="run sample searches, print them and exit")
    demo.add_argument("--children", type=int, default=3000, help="synthetic children (without --data)")
    demo.add_argument("--seed", type=int, default=1, help="seed for synthetic data (without --data)")


def run(args: argparse.Namespace) -> int:
    from signpost.demo import DemoOptions, run_demo

    options = DemoOptions(
        data=Path(args.data) if args.data else None,
        workdir=Path(args.workdir),
        port=args.port,
        rate_limit=args.rate_limit,
        check=args.check,
        children=args.children,
        seed=args.seed,
    )
    return asyncio.run(run_demo(options))
