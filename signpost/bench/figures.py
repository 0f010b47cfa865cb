"""Figures that travel between machines: ratios to the same run's calibration, and the spread over runs.

Absolute milliseconds belong to one machine at one moment; a ratio to something measured on the
same machine in the same run mostly does not (README, "How to compare machines"):

- ``broker_cpu_over_floor``: the broker's CPU per search ÷ the bare N-way gRPC fan-out's CPU per
  round (``signpost bench grpc-floor``): how many "transport floors" a search costs the broker;
- ``broker_cpu_us_per_authority`` / ``nodes_cpu_us_per_authority``: CPU per search ÷ authorities;
- ``cpu_over_python_loop``: broker and nodes CPU per search ÷ the calibration loop's CPU time;
- ``federated_over_central``: one-at-a-time latency of the federation ÷ the central index's.

Pure arithmetic on report dictionaries: nothing here measures.
"""

from __future__ import annotations

from statistics import median
from typing import Any

SPREAD_SKIPS = frozenset(
    {"statuses", "not_answered", "refused_by_reason", "searches", "offered_rate", "opened", "client_connections"}
)
"""Counts keyed by what happened (absent means none) and the settings themselves: not figures to spread."""


def _ratio(numerator: float, denominator: float | None, digits: int = 3) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


def point_ratios(
    point: dict[str, Any], authorities: int, floor_ms: float | None, loop_ms: float | None
) -> dict[str, float | None]:
    """The ratios of one measurement (one at a time, or one offered rate)."""
    broker, nodes = point["broker_cpu_ms_per_search"], point["nodes_cpu_ms_per_search"]
    return {
        "broker_cpu_over_floor": _ratio(broker, floor_ms),
        "broker_cpu_us_per_authority": _ratio(broker * 1000, authorities, 1),
        "nodes_cpu_us_per_authority": _ratio(nodes * 1000, authorities, 1),
        "cpu_over_python_loop": _ratio(broker + nodes, loop_ms),
    }


def latency_ratio(federated: dict[str, Any], central: dict[str, Any]) -> dict[str, float | None]:
    """Federated ÷ central latency, p50 and p99, of two measurements."""
    fed, cen = federated["latency_ms"], central["latency_ms"]
    return {q: _ratio(fed[q], cen[q], 2) for q in ("p50", "p99")}


def rate_key(rate: float | None) -> str:
    return "one at a time" if rate is None else f"{rate:g}/s"


def run_ratios(run: dict[str, Any], authorities: int, floor_ms: float | None, loop_ms: float | None) -> dict[str, Any]:
    """Every ratio of one run of ``signpost bench scale``: its serial measurement, each load, and the central one."""
    fed = run["federated"]
    ratios: dict[str, Any] = {
        "serial": point_ratios(fed["serial"], authorities, floor_ms, loop_ms),
        "loads": {
            rate_key(load["offered_rate"]): point_ratios(load, authorities, floor_ms, loop_ms) for load in fed["loads"]
        },
    }
    if "central" in run:
        ratios["federated_over_central"] = latency_ratio(fed["serial"], run["central"]["serial"])
    return ratios


def flatten(report: Any, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf as ``a.b.c``; a list of loads is keyed by each one's offered rate."""
    if isinstance(report, bool):
        return {}
    if isinstance(report, int | float):
        return {prefix: float(report)}
    if isinstance(report, dict):
        found: dict[str, float] = {}
        for key, value in report.items():
            if key not in SPREAD_SKIPS:
                found.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return found
    if isinstance(report, list):
        found = {}
        for i, item in enumerate(report):
            key = rate_key(item["offered_rate"]) if isinstance(item, dict) and "offered_rate" in item else str(i)
            found.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return found
    return {}


def spread(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Least, median and greatest of every figure that every run has (a run cut short has fewer)."""
    flat = [flatten(run) for run in runs]
    common = [path for path in flat[0] if all(path in f for f in flat[1:])] if flat else []
    return {
        path: {
            "min": min(values),
            "median": round(median(values), 4),
            "max": max(values),
        }
        for path in common
        for values in [[f[path] for f in flat]]
    }
