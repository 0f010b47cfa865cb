"""``signpost bench accuracy --dataset NAME``: a development data set, in-process, through a federation, beside Splink.

``--in-process`` scores the node engine alone (:mod:`signpost.bench.evaluate`): seconds, for tuning.
Without it the queries go through a real local federation (mTLS, gRPC, the broker's HTTPS API) and
are scored by authority, as a practitioner sees them, and by record through each running node's own
engine. ``--compare splink`` runs Splink on the same held records and queries in the same run
(:mod:`signpost.bench.versus_splink`). Each phase prints a line and a running count; the whole
report goes to bench-results/ through :func:`signpost.bench.common.publish`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
import time
from pathlib import Path
from typing import Any

from signpost.bench import evaluate, misses
from signpost.bench.common import machine, percentile
from signpost.bench.datasets import Dataset, load
from signpost.synth.files import COLUMNS


def _say(line: str) -> None:
    print(line, flush=True)


def load_dataset(args: argparse.Namespace) -> Dataset:
    options: dict[str, Any] = {}
    if args.dataset == "synth":
        options = {"children": args.children, "queries": args.queries, "seed": args.seed}
    elif args.limit:
        options = {"limit": args.limit}
    _say(f"loading {args.dataset} ...")
    started = time.perf_counter()
    data = load(args.dataset, **options)
    s = data.summary()
    _say(
        f"  {s['records_held']} records held ({s['rows_rejected']} rows rejected by the importer's rules), "
        f"{s['queries']} queries ({s['queries_expecting_nobody']} for people held nowhere, "
        f"{s['queries_refused_400']} refused 400) in {time.perf_counter() - started:.1f} s"
    )
    return data


def write_csvs(data: Dataset, directory: Path) -> list[tuple[str, str, Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for code, rows in sorted(data.rows.items()):
        path = directory / f"{code}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        out.append((code, data.authority_names.get(code, code), path))
    return out


def run_dataset(args: argparse.Namespace) -> dict[str, Any]:
    data = load_dataset(args)
    report: dict[str, Any] = {"benchmark": "accuracy", "machine": machine()} | data.summary()
    ours: misses.Outcomes = {}
    if args.in_process:
        _say("signpost engine, in-process ...")
        report["signpost_in_process"] = evaluate.run_in_process(data, _say, ours)
    else:
        _say("signpost through a local federation ...")
        report["signpost"] = asyncio.run(run_federated(data, args.concurrency, ours))
    theirs: misses.Outcomes | None = None
    if args.compare == "splink":
        from signpost.bench import versus_splink

        _say("splink (DuckDB), trained unsupervised ...")
        theirs = {}
        report["splink"] = versus_splink.run(data, _say, theirs)
    if getattr(args, "misses", None):
        rows = misses.write(args.misses, data, ours, theirs)
        _say(f"  {rows} missed (query, record) pairs written to {args.misses}")
    return report


async def run_federated(data: Dataset, concurrency: int, outcomes: misses.Outcomes | None = None) -> dict[str, Any]:
    from signpost.bench.federated import score_federation, search_all
    from signpost.federation import start_local_federation

    with tempfile.TemporaryDirectory(prefix="signpost-dataset-") as tmp:
        work = Path(tmp)
        authorities = write_csvs(data, work / "data")
        started = time.perf_counter()
        fed = await start_local_federation(work, authorities, rate_limit_per_minute=0, search_deadline_seconds=10.0)
        _say(f"  federation of {len(fed.nodes)} nodes up in {time.perf_counter() - started:.1f} s")
        try:
            answers = await search_all(fed, data, concurrency, _say)
            _say("  record level through each node's own engine ...")
            engines = {n.config.code: n.service.matcher for n in fed.nodes}
            record_level = evaluate.score_engines(data, engines, _say, outcomes)  # type: ignore[arg-type]
        finally:
            await fed.stop()
    authority = score_federation(data, answers)
    latencies = [a["ms"] for a in answers if "ms" in a]
    return {
        "authority_level": authority,
        "record_level": record_level,
        "search_latency_ms": {"p50": round(percentile(latencies, 50), 1), "p99": round(percentile(latencies, 99), 1)},
    }


def print_report(report: dict[str, Any]) -> None:
    _say(f"\n{report['dataset']}: {report['records_held']} records, {report['queries']} queries")
    rows = []
    for label, key in (("signpost (in-process)", "signpost_in_process"), ("signpost (federation)", "signpost")):
        if key in report:
            rows.append((label, report[key] if key == "signpost_in_process" else report[key]["record_level"]))
    if "splink" in report:
        rows.append(("splink p>=0.5", report["splink"]))
    _say(
        f"  {'linker':<22} {'match P':>8} {'match R':>8} {'match F1':>8} {'F1 twin+':>8} {'m|p R':>8} "
        f"{'m|p R*':>8} {'m|p R=':>8} {'hh FM':>6} {'other FM':>8} {'block R':>8} {'ms/q':>7}"
    )
    for label, r in rows:
        m, w = r["match"], r["wrong_records"]
        _say(
            f"  {label:<22} {m['precision']:>8.4f} {m['recall']:>8.4f} {m['f1']:>8.4f} "
            f"{r['match_counting_twin_profile_possibles']['f1']:>8.4f} {r['match_or_possible']['recall']:>8.4f} "
            f"{r['match_or_possible_of_accepted_queries']['recall']:>8.4f} "
            f"{r['match_or_possible_of_broker_accepted_queries']['recall']:>8.4f} "
            f"{w['match_sibling_or_twin']:>6} {w['match_other_person']:>8} {r['blocking_recall']:>8.4f} "
            f"{r['ms_per_query']['mean']:>7.2f}"
        )
    if "signpost" in report:
        a = report["signpost"]["authority_level"]
        _say(
            f"  federation, by authority: match P {a['match']['precision']:.4f} R {a['match']['recall']:.4f}; "
            f"match|possible R {a['match_or_possible']['recall']:.4f}; incomplete coverage {a['incomplete']}; "
            f"search p50 {report['signpost']['search_latency_ms']['p50']} ms"
        )
    _say(
        "  (hh FM: sibling/twin records in match band; F1 twin+: counting twin-profile possibles as found;\n"
        "   m|p R*: over the queries the linker saw — Signpost's broker refuses some with 400, Splink sees all;\n"
        "   m|p R=: over the queries the broker accepts, for every linker: the same queries side by side;\n"
        "   block R: the true record among the linker's candidates, over the queries it saw)"
    )
