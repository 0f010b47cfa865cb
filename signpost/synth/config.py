"""What the generator is asked for and what it gives back: SynthConfig, SynthResult and the fixed day.

``config_for`` sizes a config from the reference table of English authorities.
Nothing here draws random numbers; the config must never read the clock, so
the reference date is a constant.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from signpost.synth.names import AUTHORITIES

ENGLISH_AUTHORITIES: tuple[tuple[str, str, int], ...] = tuple((a.code, a.name, a.size) for a in AUTHORITIES)
POSTCODE_DISTRICTS: dict[str, tuple[str, ...]] = {a.code: a.districts for a in AUTHORITIES}

# Ages are relative to a fixed day, not today, so that output never depends on when it runs.
REFERENCE_DATE = dt.date(2026, 1, 1)
REF_DAY = REFERENCE_DATE.toordinal()
OLDEST_DOB = dt.date(2008, 1, 2).toordinal()  # 17 years old on the reference date
_CODE = re.compile(r"^[A-Z0-9-]{2,32}$")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate."""

    authorities: tuple[tuple[str, str], ...]
    """(code, name) of each authority that gets a records CSV."""
    children: int = 2000
    """Distinct children in the whole population; not every one is held anywhere."""
    seed: int = 1
    queries: int = 200
    """Size of the query set."""
    sizes: tuple[int, ...] | None = None
    """Relative weight of each authority (same order); equal when None."""

    def __post_init__(self) -> None:
        codes = [code for code, _ in self.authorities]
        if not codes:
            raise ValueError("SynthConfig.authorities must name at least one authority")
        bad = [c for c in codes if not _CODE.match(c)]
        if bad:
            raise ValueError(f"authority codes must be 2-32 of A-Z, 0-9 and '-': {bad[0]!r}")
        if len(set(codes)) != len(codes):
            raise ValueError("authority codes must be unique")
        sizes = self.sizes
        if sizes is not None and (len(sizes) != len(codes) or min(sizes) < 0 or sum(sizes) <= 0):
            raise ValueError("sizes must give one non-negative weight per authority, not all zero")
        if self.children < 0 or self.queries < 0:
            raise ValueError("children and queries must not be negative")


@dataclass
class SynthResult:
    rows: dict[str, list[dict[str, str]]]
    """Authority code -> records CSV rows keyed by contract column."""
    truth: dict[str, list[dict[str, str]]]
    """Person id -> the records that describe that person: {"authority", "record_id"}."""
    queries: list[dict[str, Any]]
    """{"query_id", "kind", "detail", "person_id", "subject", "purpose", "expected"}. kind is exact,
    variant, moved, twin, sibling or absent; detail names the variation (nickname, new-surname,
    twin-not-held, ...); expected lists the codes holding that person, empty for absent people."""


def config_for(
    authorities: int | Sequence[str], *, children: int = 2000, seed: int = 1, queries: int = 200
) -> SynthConfig:
    """A config for the first N of ENGLISH_AUTHORITIES, or for named codes, sized realistically."""
    by_code = {a.code: a for a in AUTHORITIES}
    if isinstance(authorities, int):
        if not 1 <= authorities <= len(AUTHORITIES):
            raise ValueError(f"the number of authorities must be 1-{len(AUTHORITIES)}")
        chosen = list(AUTHORITIES[:authorities])
    else:
        unknown = [c for c in authorities if c not in by_code]
        if unknown:
            raise ValueError(f"unknown authority code {unknown[0]!r}")
        chosen = [by_code[c] for c in authorities]
    return SynthConfig(tuple((a.code, a.name) for a in chosen), children, seed, queries, tuple(a.size for a in chosen))
