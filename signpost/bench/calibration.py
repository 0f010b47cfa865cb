"""How fast this machine was while a benchmark ran: figures measured in the same run, so results travel.

A benchmark's absolute figures belong to one machine at one moment: the same code's CPU per search
has moved by about three times between virtual machines "of the same kind" (README, issue 18). So
every benchmark JSON carries a ``calibration`` block, measured in the same process just before and
just after the main measurement:

- ``python_loop_ms``: CPU time of a fixed pure-Python loop (``LOOP_OPS`` additions in a ``for``
  loop), the work most of Signpost's CPU is made of;
- ``numpy_sort_ms``: CPU time to sort ``SORT_ELEMENTS`` seeded float64 values, the index's kind of work;
- ``grpc_floor`` (``scale`` only, passed in as a collaborator): a short run of the bare N-way grpc.aio
  fan-out (``signpost bench grpc-floor``), the transport's own cost per round on this machine;
- ``load_average``: what else the machine was doing (1, 5 and 15 minutes).

Each CPU figure is the least of ``REPEATS`` tries on this thread's clock (``time.thread_time``): the
least is the try that was disturbed least, and a thread's clock leaves out the progress bars' and
gRPC's own threads. It must never run beside the main measurement: it would take the CPU being measured.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from statistics import fmean
from typing import Any

import numpy as np

LOOP_OPS = 2_000_000
"""Additions in the pure-Python loop: about 0.1-0.2 s on a 2-core cloud VM, long enough to swamp clock noise."""
SORT_ELEMENTS = 1_000_000
REPEATS = 3


def python_loop_ms(ops: int = LOOP_OPS, repeats: int = REPEATS) -> float:
    """Least CPU milliseconds of ``repeats`` runs of ``ops`` additions in a Python ``for`` loop."""
    best = float("inf")
    for _ in range(repeats):
        began = time.thread_time()
        total = 0
        for i in range(ops):
            total += i
        best = min(best, time.thread_time() - began)
    if total != ops * (ops - 1) // 2:  # uses the result, so no optimiser can drop the loop
        raise AssertionError("the calibration loop miscounted")
    return round(best * 1000, 2)


def numpy_sort_ms(elements: int = SORT_ELEMENTS, repeats: int = REPEATS) -> float:
    """Least CPU milliseconds of ``repeats`` sorts of the same ``elements`` seeded float64 values."""
    values = np.random.default_rng(18).random(elements)
    best = float("inf")
    for _ in range(repeats):
        began = time.thread_time()
        np.sort(values)
        best = min(best, time.thread_time() - began)
    return round(best * 1000, 2)


def sample(floor: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """One calibration sample now; with ``floor``, a short bare gRPC fan-out too."""
    found: dict[str, Any] = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python_loop_ops": LOOP_OPS,
        "python_loop_ms": python_loop_ms(LOOP_OPS),
        "numpy_sort_elements": SORT_ELEMENTS,
        "numpy_sort_ms": numpy_sort_ms(SORT_ELEMENTS),
    }
    if floor is not None:
        found["grpc_floor"] = floor()
    return found


def reference(before: dict[str, Any], after: dict[str, Any] | None = None) -> dict[str, float]:
    """The figures ratios are taken against: the mean of the samples before and after (either alone if one)."""
    samples = [s for s in (before, after) if s]
    ref = {
        "python_loop_ms": round(fmean(s["python_loop_ms"] for s in samples), 2),
        "numpy_sort_ms": round(fmean(s["numpy_sort_ms"] for s in samples), 2),
    }
    floors = [s["grpc_floor"]["caller_cpu_ms_per_round"] for s in samples if "grpc_floor" in s]
    if floors:
        ref["grpc_floor_cpu_ms_per_round"] = round(fmean(floors), 2)
    return ref


def block(before: dict[str, Any], after: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``calibration`` entry of a report: both samples and the reference taken from them."""
    return {"before": before, "after": after, "reference": reference(before, after)}


def calibrated(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()``'s report with a calibration sample from just before it and one from just after."""
    before = sample()
    report = measure()
    report["calibration"] = block(before, sample())
    return report


def describe(calibration: dict[str, Any]) -> str:
    """One line for the printed figures."""
    ref, before = calibration["reference"], calibration["before"]
    floor = ref.get("grpc_floor_cpu_ms_per_round")
    return (
        f"calibration: Python loop {ref['python_loop_ms']} ms ({before['python_loop_ops']:,} additions), "
        f"numpy sort {ref['numpy_sort_ms']} ms"
        + (f", gRPC floor {floor} ms CPU a round" if floor is not None else "")
        + f"; load average at start {before['load_average'][0]}"
    )
