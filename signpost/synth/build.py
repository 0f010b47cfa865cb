"""Running the generator: the whole data set in memory, or streamed straight into files.

Both paths run the same plan and renderer in the same order, so
``generate_to(config, out)`` writes the bytes of ``write(generate(config), out)``;
it must never read the clock or the global random state.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from signpost.synth.config import SynthConfig, SynthResult
from signpost.synth.files import write_csv, write_json
from signpost.synth.plan import Plan
from signpost.synth.queries import agree_with_records
from signpost.synth.render import Renderer

RowWatch = Callable[[str, Iterable[dict[str, str]]], Iterable[dict[str, str]]]
"""Given an authority's code and its rows as they are rendered, yields the same rows."""


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Millions of small acyclic objects make the cyclic collector rescan the heap for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate(config: SynthConfig) -> SynthResult:
    """Build the whole synthetic data set in memory (about 1 KB per row)."""
    with _without_cyclic_gc():
        plan = Plan(config)
        renderer = Renderer(plan)
        rows = {code: list(renderer.rows(n)) for n, (code, _) in enumerate(config.authorities)}
        agree_with_records(plan.queries, renderer.exact_identities)
        return SynthResult(rows=rows, truth=dict(plan.truth()), queries=plan.queries)


def generate_to(config: SynthConfig, out_dir: Path, *, watch: RowWatch | None = None) -> dict[str, int]:
    """Like write(generate(config), out_dir), byte for byte, without holding rows in memory.

    ``watch`` sees each authority's rows on their way to the file (the benchmarks count them for a progress
    bar); it must pass every row on unchanged.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    passing = watch or (lambda _code, rows: rows)
    with _without_cyclic_gc():
        plan = Plan(config)
        renderer = Renderer(plan)
        counts = {
            code: write_csv(out_dir / f"{code}.csv", passing(code, renderer.rows(n)))
            for n, (code, _) in enumerate(config.authorities)
        }
        # After the rows: an exact query copies its child's record as rendered.
        agree_with_records(plan.queries, renderer.exact_identities)
        write_json(out_dir, plan.truth(), plan.queries)
        return counts
