"""``signpost bench source``: a node over its authority's PostgreSQL database — a full load to searchable,
then an incremental sync of changed rows to visible.

Steps: synthetic children (:mod:`signpost.synth`) written as ``--rows`` involvement rows into a throw-away
case-management database on the local PostgreSQL server (:mod:`signpost.bench.source_db`; not part of the
figures); a serving node started over it with ``[source]`` and a ``change_column`` — its start-up does
the full load: read the view, validate and write every row into its store, build the match index, serve
(timed); a broker, and one practitioner's search through it to prove the data is searchable. Then
``--changes`` children's forenames are changed at source and ``updated_at`` bumped; timed from the start
of the next sync until a search through the broker for one of them by the new name comes back ``match``
(the incremental read and write, the refresher's overlay of the change on the index — :mod:`node.delta` —
and the swap).

Then the hourly reconciliation: one more child renamed at source and a full load of the whole view, timed
until a search sees that child (a full load writes only what differs, so this too is an overlay).

The issue's targets: a million rows loaded in at most 3 minutes; 1,000 changed rows visible to searches
within 5 s. The figures go to ``bench-results/source.json`` as soon as each exists.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from broker.app import create_app
from broker.registry import Authority, save_registry
from broker.server import RunningBroker, start_broker
from certs.identity import Role, node_dns_name
from certs.tls import client_ssl_context
from node.config import NodeConfig, SourceConfig
from node.server import RunningNode, start_node
from signpost.bench import calibration
from signpost.bench.common import add_out_argument, machine, peak_rss_mb, publish, save_partial
from signpost.bench.deployment import bench_broker_config
from signpost.bench.progress import step
from signpost.bench.source_db import (
    COLUMNS,
    VALUES,
    Person,
    change_given_names,
    fill,
    throwaway_database,
)
from signpost.federation import Pki, create_pki, local_front_door
from signpost.synth import SynthConfig
from signpost.synth.plan import Plan
from signpost.synth.render import Renderer

CODE, NAME = "BIGSHIRE", "Bigshire"
NEW_GIVEN_NAME = "Zephyrine"
"""The forename the changed children are given: a real name, and far from any synthetic child's."""
RECONCILED_GIVEN_NAME = "Ottoline"
"""The forename one of them is given before the full reconciliation."""
ROWS_PER_CHILD = 0.68 * 1.4
"""About 68% of synthetic children are held somewhere, with about 1.4 involvement rows each."""
PURPOSE = {"code": "child-protection-enquiry", "justification": "Benchmark of a node over its database"}


def synthetic_rows(rows: int, seed: int) -> Iterator[dict[str, str]]:
    """``rows`` involvement rows of one authority (fewer only if the population runs out)."""
    config = SynthConfig(authorities=((CODE, NAME),), children=int(rows / ROWS_PER_CHILD) + 100, seed=seed, queries=0)
    return itertools.islice(Renderer(Plan(config)).rows(0), rows)


def source_config(url: str) -> SourceConfig:
    """The node's ``[source]``: loads only when the benchmark says (refreshes far apart), incremental by updated_at."""
    return SourceConfig(
        url=url,
        query="SELECT * FROM signpost_children_v",
        columns=COLUMNS,
        values=VALUES,
        other_names_delimiter="|",
        change_column="updated_at",
        refresh_seconds=86400.0,
        full_refresh_seconds=86400.0,
        retry_attempts=1,
    )


async def start_broker_for(node: RunningNode, pki: Pki, work: Path) -> RunningBroker:
    """A broker that knows only this node, with no rate limits (one practitioner polls it)."""
    registry = work / "registry.json"
    save_registry(registry, (Authority(CODE, NAME, node.address, node_dns_name(CODE)),))
    config = bench_broker_config(registry, pki, work)
    return await start_broker(config, create_app(config))


class Searcher:
    """One practitioner searching through the broker's HTTPS API, as a real one would."""

    def __init__(self, broker: RunningBroker, pki: Pki) -> None:
        self.url = f"https://127.0.0.1:{broker.port}/v1/searches"
        context = client_ssl_context(pki.ca.cert, pki.users[Role.PRACTITIONER])
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    async def band(self, person: Person, given_name: str) -> str:
        """The band this authority answered for ``person`` under ``given_name``, or "none"."""
        subject = {"given_name": given_name, "family_name": person.family_name, "date_of_birth": person.date_of_birth}
        async with self.session.post(self.url, json={"subject": subject, "purpose": PURPOSE}) as resp:
            body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"the broker answered {resp.status}: {body.get('error', {}).get('code')}")
        return next((r["band"] for r in body["results"] if r["authority"]["code"] == CODE), "none")

    async def close(self) -> None:
        await self.session.close()


async def until_match(
    searcher: Searcher, person: Person, given_name: str, timeout: float, failed: list[str] | None = None
) -> float | None:
    """Search every 20 ms until ``person`` is a match; the seconds it took, or None at ``timeout``.

    ``failed``: where a search the broker did not answer is noted (and searching goes on), instead of ending
    the run: broker and node share this process, and a full index build in the node's worker thread can
    starve the broker's audit write past its deadline (503), which separate processes would not see.
    """
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            band = await searcher.band(person, given_name)
        except RuntimeError as exc:
            if failed is None:
                raise
            failed.append(str(exc))
            band = "none"
        if band == "match":
            return time.perf_counter() - started
        await asyncio.sleep(0.02)
    return None


async def measure(args: argparse.Namespace, url: str, people: list[Person], work: Path, report: dict[str, Any]) -> None:
    pki = create_pki(work / "pki", [(CODE, NAME)])
    config = NodeConfig(
        CODE,
        NAME,
        ("127.0.0.1", 0),
        work / "store.sqlite3",
        pki.tls(pki.nodes[CODE]),
        broker_public_keys=(pki.assertion_pub,),
        front_door=local_front_door(CODE),
        source=source_config(url),
    )
    started = time.perf_counter()
    with step("full load: read, validate, store, index"):  # elapsed only: the node does the work
        node = await start_node(config)
    report["full_load_seconds"] = round(time.perf_counter() - started, 2)
    sync = node.source_sync
    assert sync is not None
    report["full_load"] = {"outcome": sync.status.outcome, "rows_rejected": sync.status.rows_rejected}
    report["records_served"] = node.service.generation.matcher.size
    save_partial(args.out, report)
    broker = await start_broker_for(node, pki, work)
    searcher = Searcher(broker, pki)
    try:
        visible = [p for p in people if p.visible]
        changed = visible[:: max(1, len(visible) // args.changes)][: args.changes]
        probe = changed[-1]
        first = time.perf_counter()
        # Found at all is what "searchable" means: by names and date of birth alone, a child with a namesake
        # born the same day at this node is a possible (the home guard), not a match.
        band = await searcher.band(probe, probe.given_name)
        report["probe_band_after_full_load"] = band
        report["searchable_after_full_load"] = band in ("match", "possible")
        report["first_search_ms"] = round((time.perf_counter() - first) * 1000, 1)
        change_given_names(url, changed, NEW_GIVEN_NAME)
        report["children_changed_at_source"] = len(changed)
        report["probe_before_sync"] = await searcher.band(probe, NEW_GIVEN_NAME)
        started = time.perf_counter()
        with step(f"incremental sync of {len(changed):,} changed children until a search sees one"):
            ok = await sync.sync()
            report["incremental_sync_seconds"] = round(time.perf_counter() - started, 2)
            waited = await until_match(searcher, probe, NEW_GIVEN_NAME, args.timeout)
        report["incremental_ok"] = ok
        report["incremental_visible_seconds"] = None if waited is None else round(time.perf_counter() - started, 2)
        save_partial(args.out, report)
        # The hourly reconciliation: a full load of the whole view, with one more child renamed since.
        again = changed[0]
        change_given_names(url, [again], RECONCILED_GIVEN_NAME)
        started = time.perf_counter()
        with step("full reconciliation until a search sees the one child changed since"):
            ok = await sync.sync(full=True)
            report["reconcile_sync_seconds"] = round(time.perf_counter() - started, 2)
            failed: list[str] = []
            waited = await until_match(searcher, again, RECONCILED_GIVEN_NAME, args.timeout, failed)
        report["reconcile_ok"] = ok
        report["reconcile_searches_failed"] = {reason: failed.count(reason) for reason in set(failed)}
        report["reconcile_visible_seconds"] = None if waited is None else round(time.perf_counter() - started, 2)
    finally:
        await searcher.close()
        await broker.stop()
        await node.stop(grace=0.5)


def run_source(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"benchmark": "source", "machine": machine(), "rows": args.rows, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="signpost-source-") as tmp, throwaway_database(args.server) as url:
        started = time.perf_counter()
        with step(f"writing {args.rows:,} rows into a throw-away PostgreSQL database", args.rows, " rows") as bar:

            def counted() -> Iterator[dict[str, str]]:
                for row in synthetic_rows(args.rows, args.seed):
                    bar.update(1)
                    yield row

            filled = fill(url, counted())
        report.update(
            rows=filled.rows, children=len(filled.people), fill_seconds=round(time.perf_counter() - started, 1)
        )
        save_partial(args.out, report)
        asyncio.run(measure(args, url, filled.people, Path(tmp), report))
    report["process_peak_rss_mb"] = round(peak_rss_mb(), 1)
    report["targets"] = {"full_load_seconds": 180, "incremental_visible_seconds": 5}
    return report


def print_report(r: dict[str, Any]) -> None:
    print(f"source: a node over PostgreSQL, {r['rows']:,} rows ({r['children']:,} children)")
    print(
        f"  full load to serving {r['full_load_seconds']} s ({r['records_served']:,} records served, "
        f"{r['full_load']['rows_rejected']} rows rejected); searchable: {r['searchable_after_full_load']} "
        f"(the probe came back {r.get('probe_band_after_full_load', '?')})"
    )
    visible = r["incremental_visible_seconds"]
    print(
        f"  {r['children_changed_at_source']:,} children changed at source (a people row each): "
        f"incremental read and write {r['incremental_sync_seconds']} s; visible to a search after "
        f"{'never (timed out)' if visible is None else f'{visible} s'}"
    )
    if "reconcile_sync_seconds" in r:
        seen = r["reconcile_visible_seconds"]
        print(
            f"  full reconciliation (one more child changed): read and write {r['reconcile_sync_seconds']} s; "
            f"visible to a search after {'never (timed out)' if seen is None else f'{seen} s'}"
        )
    if "calibration" in r:
        print(f"  {calibration.describe(r['calibration'])}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="involvement rows at source (default 1,000,000)")
    parser.add_argument("--changes", type=int, default=1000, help="children changed at source (default 1,000)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--server",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where a throw-away database may be created and dropped",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting for a change after this")
    add_out_argument(parser, "source")


def run(args: argparse.Namespace) -> int:
    publish(calibration.calibrated(lambda: run_source(args)), args.out, print_report)
    return 0
