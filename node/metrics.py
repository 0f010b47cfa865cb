"""Prometheus metrics of one authority's node, on a listen address of its own (``metrics_listen``, off by default).

What an operator needs to see the node working: searches answered; their outcome as answered, by
band (``match``, ``possible``, ``none`` — a shielded child's record is answered as ``none``, as
node.policy says); safeguarding alerts raised (searches that found a shielded child's record); data
refreshes by outcome; loads from the authority's database (``[source]``) by kind and outcome; and the
age and size of the data served. Imports run in their own process
(``signpost node import``): a failed or missed import shows here as data that keeps getting older.

Labels are bands and outcomes only. Never put a record id, a requester, a purpose's justification
or anything about a child in a metric: a scrape is read by monitoring, not by the holder's
safeguarding staff. Even the alert count tells whoever can scrape that a shielded child was just
searched for here, which is why the endpoint is off unless configured, and meant for loopback or
the authority's own monitoring network.

The counters are fed by the journal (every answered search passes through ``record_many`` before
it is answered) and the refresher, through the two small subclasses below, so node.service and
node.refresh stay unaware of metrics.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from node.journal import Journal
from node.matching import MatchSettings
from node.policy import JournalEntry
from node.refresh import GenerationHolder, Refresher
from node.store import RecordStore
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.node")
BANDS = ("match", "possible", "none")
"""A search's outcome as the broker got it: its best band here, or none."""


class NodeMetrics:
    """The node's counters and gauges, in a registry of its own (tests run many nodes in one process)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        r = self.registry = CollectorRegistry()
        self._clock = clock
        self.searches = Counter("signpost_node_searches_answered", "Searches this node answered", registry=r)
        self.outcomes = Counter(
            "signpost_node_search_outcomes",
            "Searches by the best band answered (none: nothing here)",
            ["band"],
            registry=r,
        )
        self.alerts = Counter(
            "signpost_node_safeguarding_alerts",
            "Searches that found a shielded child's record: an alert for the safeguarding officer",
            registry=r,
        )
        self.refreshes = Counter(
            "signpost_node_refreshes", "New imports noticed, by outcome (applied or failed)", ["outcome"], registry=r
        )
        self.data_age = Gauge(
            "signpost_node_served_data_age_seconds", "Age of the data this node serves (its last import)", registry=r
        )
        self.records = Gauge("signpost_node_served_records", "Records in the data this node serves", registry=r)
        self.source_loads = Counter(
            "signpost_node_source_loads",
            "Loads from the authority's database ([source]) by kind (full or incremental) and outcome (ok or failed)",
            ["kind", "outcome"],
            registry=r,
        )
        # Every band from the start, so a rate over them is never missing; the children kept, as each
        # search counts one and labels() looks its child up anew.
        self._outcome = {band: self.outcomes.labels(band) for band in BANDS}
        for outcome in ("applied", "failed"):
            self.refreshes.labels(outcome)

    def source_loaded(self, kind: str, outcome: str) -> None:
        """One load from ``[source]`` ended (node.source_sync's ``observe``)."""
        self.source_loads.labels(kind, outcome).inc()

    def watch_source(self) -> None:
        """Every kind and outcome from the start, for a node fed by ``[source]``: an alert on a failed load's
        increase then sees the first failure too (a series born at 1 shows no increase)."""
        for kind in ("full", "incremental"):
            for outcome in ("ok", "failed"):
                self.source_loads.labels(kind, outcome)

    def searches_recorded(self, searches: Iterable[list[JournalEntry]]) -> None:
        """Count each search of one call from the rows the journal recorded for it."""
        for rows in searches:
            self.searches.inc()
            answered = {band for kind, _, band in rows if kind == "match"}
            self._outcome[next((b for b in BANDS if b in answered), "none")].inc()
            if any(kind == "alert" for kind, _, _ in rows):
                self.alerts.inc()

    def watch(self, holder: GenerationHolder) -> None:
        """Read the data's age and size from the generation being served, at each scrape."""
        self.records.set_function(lambda: holder.generation.matcher.size)
        self.data_age.set_function(lambda: self._age(holder.generation.store.data_as_of()))

    def _age(self, as_of: str) -> float:
        try:
            when = dt.datetime.fromisoformat(as_of)
        except ValueError:
            return math.nan  # never imported
        return max(0.0, self._clock() - (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())


class MeteredJournal(Journal):
    """The journal, counting each search it records (all of them: no answer goes out unrecorded)."""

    def __init__(self, path: Path, metrics: NodeMetrics, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(path, clock=clock)
        self.metrics = metrics

    def record_many(self, searches: list[tuple[node_pb2.MatchRequest, list[JournalEntry]]]) -> None:
        super().record_many(searches)  # counted only once recorded: a failed write answers nobody
        self.metrics.searches_recorded(rows for _, rows in searches)


class MeteredRefresher(Refresher):
    """The refresher, counting each new import it applied or failed to build."""

    def __init__(
        self,
        store: RecordStore,
        target: GenerationHolder,
        metrics: NodeMetrics,
        *,
        interval: float,
        settings: MatchSettings | None = None,
    ) -> None:
        super().__init__(store, target, interval=interval, settings=settings)
        self.metrics = metrics

    async def refresh_if_changed(self) -> bool:
        pending = self.store.data_version() != self.target.generation.version
        applied = await super().refresh_if_changed()
        if pending:
            self.metrics.refreshes.labels("applied" if applied else "failed").inc()
        return applied


@dataclass
class MetricsServer:
    """The node's plain-HTTP metrics listener (GET /metrics only)."""

    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve_metrics(metrics: NodeMetrics, listen: tuple[str, int]) -> MetricsServer:
    """Serve ``GET /metrics`` on ``listen`` (port 0 picks one), in the node's own event loop.

    In the loop, not prometheus_client's thread: the gauges read the served generation's SQLite
    snapshot, which belongs to the loop.
    """

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = listen
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot serve metrics on {host}:{port} (key 'metrics_listen'): {exc.strerror}") from None
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    log.info("node_metrics_listening", host=host, port=bound)
    return MetricsServer(runner, bound)
