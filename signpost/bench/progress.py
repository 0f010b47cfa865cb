"""Progress on stderr for the benchmarks' long steps, and the check of optional dependencies at the start.

A benchmark at full size runs for many minutes: generating millions of rows,
importing them, building indexes, then minutes of load per step. Each such
step shows a tqdm bar (or, where the work cannot be counted from outside, a
ticking elapsed time) on stderr, so stdout keeps only the figures. And a
benchmark that needs an optional package says so before it spends any time,
in one sentence with the command that installs it, rather than failing at
the end and losing the run.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
INSTALL = "pip install -e '.[bench]'"


@contextmanager
def step(description: str, total: int | None = None, unit: str | None = None) -> Iterator[tqdm[Any]]:
    """A bar for one step of ``total`` ``unit``s (no total: a count), redrawn every second even when nothing
    advances, so a step that is planning or waiting still shows its elapsed time. With neither total nor
    unit the step is not counted at all: only its elapsed time is shown."""
    done = threading.Event()
    elapsed_only = "{desc}: {elapsed} elapsed" if total is None and unit is None else None
    with tqdm(
        total=total,
        desc=description,
        unit=unit or "it",
        bar_format=elapsed_only,
        file=sys.stderr,
        mininterval=1.0,
        dynamic_ncols=True,
    ) as progress:

        def tick() -> None:
            while not done.wait(1.0):
                progress.refresh()

        ticker = threading.Thread(target=tick, name="progress", daemon=True)
        ticker.start()
        try:
            yield progress
        finally:
            done.set()
            ticker.join(timeout=2)


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = " items") -> Iterator[T]:
    """``items``, advancing a bar for each."""
    with step(description, total, unit) as progress:
        for item in items:
            yield item
            progress.update(1)


class MissingDependency(Exception):
    """An optional package a benchmark needs is not installed; the message says how to install it."""


def require(benchmark: str, modules: Iterable[tuple[str, str]]) -> None:
    """Raise MissingDependency naming every (module, what it is for) that cannot be imported."""
    missing = [(m, why) for m, why in modules if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(f"{m} ({why})" for m, why in missing)
        raise MissingDependency(f"signpost bench {benchmark} needs {names}, not installed here: run {INSTALL}")
