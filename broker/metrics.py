"""Prometheus metrics of the broker, in a registry of the app's own (tests run many apps).

Labels carry authority codes, outcomes and reasons — never anything about a
child, and never user ids (unbounded cardinality; the audit log answers "who").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from broker.expiry import FileDate, certificate_not_after, crl_next_update
from certs.tls import TLSConfig

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
            "Unusual search patterns (one name with many dates of birth, many names on one, many at a home), by kind",
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
        self.overloaded = Counter(
            "signpost_overloaded_searches",
            "Searches refused at once as overloaded, by why (backlog: the nodes' work outstanding; lag: the "
            "broker's event loop; limit: the searches in flight)",
            ["reason"],
            registry=r,
        )
        self._node_seconds: dict[str, Any] = {}
        self._operations(r)

    # --- Operations (issue 17): the health monitor's per-node gauges, audit failures, expiry dates ---

    def _operations(self, r: CollectorRegistry) -> None:
        """Gauges the health monitor keeps current (broker.monitor) and the dates operators alert on."""
        per_node = ["authority"]
        self.nodes_known = Gauge("signpost_nodes", "Authorities in the registry", registry=r)
        self.node_up = Gauge(
            "signpost_node_up", "1 if the authority answered its last health check", per_node, registry=r
        )
        self.node_probe_seconds = Gauge(
            "signpost_node_probe_seconds", "Round trip of the authority's last health check", per_node, registry=r
        )
        self.node_data_age = Gauge(
            "signpost_node_data_age_seconds",
            "Age of the data the authority serves (its last import)",
            per_node,
            registry=r,
        )
        self.node_records = Gauge("signpost_node_records", "Records the authority serves", per_node, registry=r)
        self.node_certificate_expiry = Gauge(
            "signpost_node_certificate_expiry_timestamp_seconds",
            "When the certificate the authority's node presents expires (its TLS handshake, else its own report)",
            per_node,
            registry=r,
        )
        self.audit_write_failures = Counter(
            "signpost_audit_write_failures", "Audit entries the store did not commit (the search failed)", registry=r
        )
        self.limits_store_errors = Counter(
            "signpost_limits_store_errors",
            "Operations on the limits store the replicas share (Redis) that failed or timed out; searches meanwhile"
            " are refused (503 limits_unavailable)",
            registry=r,
        )
        self.certificate_expiry = Gauge(
            "signpost_certificate_expiry_timestamp_seconds",
            "When the broker's own certificate (broker) and the federation CA's (ca) expire",
            ["certificate"],
            registry=r,
        )
        self.crl_next_update = Gauge(
            "signpost_crl_next_update_timestamp_seconds", "When the federation CA promised its next CRL", registry=r
        )

    def track_files(self, tls: TLSConfig) -> None:
        """Read the certificates' and CRL's dates from their files at each scrape (NaN while unreadable)."""

        def reader(date: FileDate) -> Any:
            return lambda: math.nan if (value := date.get()) is None else value

        self.certificate_expiry.labels("broker").set_function(reader(FileDate(tls.cert, certificate_not_after)))
        self.certificate_expiry.labels("ca").set_function(reader(FileDate(tls.ca, certificate_not_after)))
        if tls.crl is not None:
            self.crl_next_update.set_function(reader(FileDate(tls.crl, crl_next_update)))

    def forget_node(self, code: str) -> None:
        """Drop a removed authority's per-node series, so a registry edit leaves no stale 'down' behind."""
        for gauge in (
            self.node_up,
            self.node_probe_seconds,
            self.node_data_age,
            self.node_records,
            self.node_certificate_expiry,
        ):
            try:
                gauge.remove(code)
            except KeyError:
                pass  # never polled: nothing to drop

    def observe_node(self, code: str, seconds: float) -> None:
        """One authority's answer time; the labelled child is looked up once per authority, not per search."""
        child = self._node_seconds.get(code)
        if child is None:
            child = self._node_seconds[code] = self.node_seconds.labels(code)
        child.observe(seconds)
