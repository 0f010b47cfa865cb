"""``signpost bench speed``: one node with a million records — build time, memory, match latency.

Steps, each timed: synthetic records for one large authority (not part of the
figures), import into the node's SQLite store, build the match engine from the
store exactly as ``signpost node serve`` does, then run the query set through
the engine in-process. Reported: index build seconds, resident memory of the
built engine, and per-query latency p50/p99.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core.subject import Subject
from node.importer import import_csv
from node.matching import MatchEngine
from node.store import RecordStore
from signpost.bench import calibration
from signpost.bench.common import add_out_argument, machine, peak_rss_mb, percentile, publish, rss_mb
from signpost.bench.progress import step, track
from signpost.synth import SynthConfig, generate_to

# About 68% of synthetic children are held somewhere, and a held child has 1-3 rows.
CHILDREN_PER_RECORD = 1.0 / 0.68


def _prepare(records: int, seed: int, queries: int, work: Path) -> tuple[Path, list[dict[str, Any]], float, float]:
    config = SynthConfig(
        authorities=(("BIGSHIRE", "Bigshire"),), children=int(records * CHILDREN_PER_RECORD), seed=seed, queries=queries
    )
    started = time.perf_counter()
    with step(f"generating about {records:,} records", unit=" rows") as bar:

        def watch(_code: str, rows: Iterable[dict[str, str]]) -> Iterator[dict[str, str]]:
            for row in rows:
                bar.update(1)
                yield row

        generate_to(config, work, watch=watch)
    generated = time.perf_counter() - started
    store = RecordStore(work / "store.sqlite3")
    started = time.perf_counter()
    with step("importing into the node's store"):  # elapsed time only: the importer reads the file itself
        import_csv(store, work / "BIGSHIRE.csv")
    imported = time.perf_counter() - started
    store.close()
    return work / "store.sqlite3", json.loads((work / "queries.json").read_text()), generated, imported


def _query(subject: dict[str, Any]) -> Subject:
    return Subject(**{**subject, "other_names": tuple(subject.get("other_names", ()))})


def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="signpost-speed-") as tmp:
        store_path, queries, generated, imported = _prepare(args.records, args.seed, args.queries, Path(tmp))
        gc.collect()
        before = rss_mb()
        store = RecordStore(store_path)
        started = time.perf_counter()
        # Elapsed time only: counting inside the build would add to the figure it measures.
        with step("building the match index"):
            engine = MatchEngine.build(store.identities())
        build = time.perf_counter() - started
        gc.collect()
        after = rss_mb()
        prepared = [_query(q["subject"]) for q in queries]
        for q in prepared[:50]:
            engine.match(q)  # warm caches the way a serving node's would be
        latencies = []
        candidates = []
        from node.matching import _Prepared

        for q in track(prepared, "matching the query set", len(prepared), " queries"):
            t0 = time.perf_counter()
            engine.match(q)
            latencies.append((time.perf_counter() - t0) * 1000)
            candidates.append(len(engine.candidates(_Prepared.of(q))))
        store.close()
    return {
        "benchmark": "speed",
        "machine": machine(),
        "records": engine.size,
        "seed": args.seed,
        "synth_seconds": round(generated, 1),
        "import_seconds": round(imported, 1),
        "index_build_seconds": round(build, 1),
        "engine_rss_mb": round(after - before, 1),
        "process_rss_mb": round(after, 1),
        "process_peak_rss_mb": round(peak_rss_mb(), 1),
        "index_postings": len(engine.index.postings),
        "index_mb": round(engine.index.nbytes / 2**20, 1),
        "em_expected_matches": round(engine.model.expected_matches, 1),
        "queries": len(latencies),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 3),
            "p99": round(percentile(latencies, 99), 3),
            "max": round(max(latencies), 3),
        },
        "candidates_per_query": {
            "p50": percentile([float(c) for c in candidates], 50),
            "p99": percentile([float(c) for c in candidates], 99),
        },
    }


def print_report(r: dict[str, Any]) -> None:
    print(f"speed: one node, {r['records']} records")
    print(
        f"  import {r['import_seconds']} s; index build {r['index_build_seconds']} s; "
        f"engine RSS {r['engine_rss_mb']} MiB (process {r['process_rss_mb']} MiB, peak {r['process_peak_rss_mb']} MiB)"
    )
    print(
        f"  match latency over {r['queries']} queries: p50 {r['latency_ms']['p50']} ms, "
        f"p99 {r['latency_ms']['p99']} ms, max {r['latency_ms']['max']} ms; "
        f"candidates p50 {r['candidates_per_query']['p50']:.0f}, p99 {r['candidates_per_query']['p99']:.0f}"
    )
    if "calibration" in r:
        print(f"  {calibration.describe(r['calibration'])}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=11)
    add_out_argument(parser, "speed")


def run(args: argparse.Namespace) -> int:
    publish(calibration.calibrated(lambda: run_speed(args)), args.out, print_report)
    return 0
