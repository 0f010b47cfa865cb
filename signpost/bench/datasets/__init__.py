"""Development data sets for tuning and measuring the matcher: FEBRL1-3, pseudopeople samples, synth.

``load(name)`` gives a :class:`~signpost.bench.datasets.base.Dataset`: each authority's held records
(validated as the node's importer validates) and queries as the broker receives them, with the
right answer of each. One module per source; each module's docstring writes down how its fields map.

It must never load the sets reserved for independent evaluation — FEBRL4 and pseudopeople's
decennial census — under any spelling: :func:`load` refuses them before touching any package.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from signpost.bench.datasets.base import Dataset, Query

NAMES = ("febrl1", "febrl2", "febrl3", "pseudopeople-acs", "pseudopeople-cps", "pseudopeople-wic", "synth")
# Reserved for independent evaluation: FEBRL4 (either half) and the decennial census, by any name.
_RESERVED = re.compile(r"febrl\W*4|decennial|census", re.IGNORECASE)
RESERVED_MESSAGE = (
    "{name!r} is reserved for independent evaluation (FEBRL4 and pseudopeople's decennial census are "
    "never loaded for development); choose one of: {names}"
)


class ReservedDataset(ValueError):
    """A data set kept out of development was asked for."""


def check_name(name: str) -> None:
    """Refuse a reserved data set (ReservedDataset) or an unknown one (ValueError), naming the choices."""
    if _RESERVED.search(name):
        raise ReservedDataset(RESERVED_MESSAGE.format(name=name, names=", ".join(NAMES)))
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(NAMES)}")


def load(name: str, **options: Any) -> Dataset:
    """The named development data set; ``options`` go to its module's loader (e.g. ``limit``)."""
    check_name(name)
    loader: Callable[..., Dataset]
    if name.startswith("febrl"):
        from signpost.bench.datasets import febrl

        return febrl.load(name, **options)
    if name.startswith("pseudopeople-"):
        from signpost.bench.datasets import pseudopeople_samples

        return pseudopeople_samples.load(name, **options)
    from signpost.bench.datasets import synth

    loader = synth.load
    return loader(**options)


__all__ = ["NAMES", "Dataset", "Query", "ReservedDataset", "check_name", "load"]
