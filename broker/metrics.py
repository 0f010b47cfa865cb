"""Prometheus metrics of the broker, in a registry of the app's own (tests run many apps).

Labels carry authority codes, outcomes and reasons — never anything about a
child, and never user ids (unbounded cardinality; the audit log answers "who").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.searches = Counter("signpost_searches", "Searches by outcome", ["outcome"], registry=r)
        self.search_seconds = Histogram(
            "signpost_search_seconds", "Time to answer a search", buckets=LATENCY_BUCKETS, registry=r
        )
        self.node_seconds = Histogram(
            "signpost_node_call_seconds",
            "Time for one authority to answer",
            ["authority"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.coverage_gaps = Counter(
            "signpost_coverage_gaps",
            "Authorities that could not be asked, by reason",
            ["authority", "reason"],
            registry=r,
        )
        self.audit_seconds = Histogram(
            "signpost_audit_write_seconds",
            "Time to commit an audit entry",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.unusual_volume = Counter(
            "signpost_unusual_volume_alerts",
            "Practitioners whose hourly search volume passed the alert level",
            registry=r,
        )
        self.unusual_patterns = Counter(
            "signpost_unusual_pattern_alerts",
            "Unusual search patterns (one name with many dates of birth, many names with one), by kind",
            ["kind"],
            registry=r,
        )
        self.rate_limited = Counter(
            "signpost_rate_limited_searches", "Searches refused by a rate limit, by which limit", ["limit"], registry=r
        )
        self.nodes_up = Gauge("signpost_nodes_up", "Authorities answering health checks", registry=r)
        self.admission_limit = Gauge(
            "signpost_admission_limit", "Searches the broker now takes on at once (lowered while congested)", registry=r
        )
        self.congested = Counter(
            "signpost_congested_searches", "Searches whose authorities missed the deadline together", registry=r
        )
        self._node_seconds: dict[str, Any] = {}

    def observe_node(self, code: str, seconds: float) -> None:
        """One authority's answer time; the labelled child is looked up once per authority, not per search."""
        child = self._node_seconds.get(code)
        if child is None:
            child = self._node_seconds[code] = self.node_seconds.labels(code)
        child.observe(seconds)
