"""Splink beside Signpost on the same held records and queries (filled in by the next commit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signpost.bench.datasets import Dataset


def run(data: Dataset, progress: Callable[[str], None]) -> dict[str, Any]:
    raise NotImplementedError("the Splink comparison is not written yet")
