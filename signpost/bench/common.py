"""Small helpers shared by the benchmarks: percentiles, memory, JSON output, and the shape they share.

Every benchmark is a command: ``add_arguments(parser)`` ending with
:func:`add_out_argument`, and ``run(args) -> int`` that measures, then hands the
report to :func:`publish`. Nothing here measures anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
from collections.abc import Callable
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
    """What the figures were measured on; how fast it was at the time is the calibration's business."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _proc_field(path: str, name: str) -> str | None:
    """The first ``name: value`` line of a /proc file, or None where there is no such file (not Linux)."""
    try:
        with open(path) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def _memory_gib() -> float | None:
    total = _proc_field("/proc/meminfo", "MemTotal")  # "24554408 kB"
    return None if total is None else round(int(total.split()[0]) / 2**20, 1)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwrote {path}")


def save_partial(path: Path, data: dict[str, Any]) -> None:
    """Write the figures so far (``"complete": false``) without a word on stdout; replaced whole, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**data, "complete": False}, indent=2) + "\n")
    tmp.replace(path)


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out``, the last argument of every benchmark: where its JSON goes (bench-results/<name>.json)."""
    parser.add_argument("--out", type=Path, default=Path(f"bench-results/{name}.json"))


def publish(report: dict[str, Any], out: Path, show: Callable[[dict[str, Any]], None]) -> None:
    """Print the figures, then write the whole report as JSON."""
    show(report)
    write_json(out, report)
