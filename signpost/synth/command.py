"""``signpost synth``: its arguments and what it prints; the generation itself is elsewhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from signpost.synth.build import generate_to
from signpost.synth.config import config_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSVs and ground truth")
    parser.add_argument(
        "--authorities",
        default="5",
        help="how many authorities (the first N, starting LEEDS, MANCHESTER, KENT, CORNWALL, "
        "TOWER-HAMLETS) or a comma-separated list of codes (default 5)",
    )
    parser.add_argument(
        "--children",
        type=int,
        default=2000,
        help="children in the population; about 70%% are held somewhere (default 2000)",
    )
    parser.add_argument("--queries", type=int, default=200, help="queries with known answers (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same files (default 1)")


def run(args: argparse.Namespace) -> int:
    spec: str = args.authorities.strip()
    chosen: int | list[str] = int(spec) if spec.isdigit() else [c.strip().upper() for c in spec.split(",")]
    try:
        config = config_for(chosen, children=args.children, seed=args.seed, queries=args.queries)
    except ValueError as exc:
        print(f"signpost synth: {exc}", file=sys.stderr)
        return 2
    counts = generate_to(config, args.out)
    for code, rows in counts.items():
        print(f"{args.out / (code + '.csv')}: {rows} rows")
    print(f"{args.out / 'ground_truth.json'}: which records describe which child")
    print(f"{args.out / 'queries.json'}: {args.queries} queries")
    return 0
