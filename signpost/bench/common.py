"""Small helpers shared by the benchmarks: percentiles, memory, JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
from pathlib import Path
from typing import Any

from core import stats


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank (:func:`core.stats.percentile`); 0 for no values."""
    found = stats.percentile(values, q)
    return 0.0 if found is None else found


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwrote {path}")
