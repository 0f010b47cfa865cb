"""Serving new data without a restart: a re-import is picked up and swapped in atomically.

A *generation* is a match index together with the store snapshot it was built
from (a pinned SQLite read transaction), so every answer's candidates and
contacts come from the same import. The refresher notices a new import (the
store's ``data_version`` counter), builds the next generation in a worker
thread while the current one keeps serving, then swaps the pair in one
assignment. Matching and reading contacts happen with no ``await`` between
them, so no query ever sees half of one generation and half of another; the
old snapshot is closed after the swap.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass

import structlog

from core.tasks import BackgroundLoop
from node.matching import Matcher, MatchSettings, build_matcher
from node.store import RecordStore

log = structlog.get_logger("signpost.node")


@dataclass(frozen=True)
class Generation:
    matcher: Matcher
    store: RecordStore
    """A pinned snapshot: read-only, consistent with ``matcher``."""
    version: int

    def close(self) -> None:
        self.store.close()


def build_generation(store: RecordStore, settings: MatchSettings | None = None) -> Generation:
    """Snapshot the store and index that snapshot (blocking: run it in a thread when serving)."""
    snapshot = store.snapshot()
    try:
        return Generation(build_matcher(snapshot.identities(), settings), snapshot, snapshot.data_version())
    except BaseException:
        snapshot.close()
        raise


def settle_heap() -> None:
    """Put the objects that exist now — chiefly a just-built match index — beyond the cycle collector.

    A node's index is millions of list slots and dict entries that live until the next import. The
    cycle collector's full passes walk every one of them (about 150 ms per million records here),
    and while they run the node answers nobody: at 11 M records on two workers that was a pause of
    about a second every few seconds, the whole of the p95. ``gc.freeze`` moves them to a generation
    the collector never scans; they are still freed by reference counting when a refresh drops them
    (the index holds no reference cycles), and new objects are collected as before.
    """
    gc.freeze()


class Refresher:
    """Watches a store for new imports and swaps a new generation into ``target``."""

    def __init__(
        self, store: RecordStore, target: GenerationHolder, *, interval: float, settings: MatchSettings | None = None
    ) -> None:
        self.store, self.target, self.interval, self.settings = store, target, interval, settings
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("signpost-refresher", self._run)
        self.start, self.stop = self._loop.start, self._loop.stop

    def poke(self) -> None:
        """Check now (SIGHUP, or a test)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.refresh_if_changed()

    async def refresh_if_changed(self) -> bool:
        if self.store.data_version() == self.target.generation.version:
            return False
        try:
            new = await asyncio.to_thread(build_generation, self.store, self.settings)
        except Exception as exc:
            log.error("refresh_failed", error_type=type(exc).__name__)
            return False
        old, self.target.generation = self.target.generation, new
        old.close()
        del old
        settle_heap()
        log.info("data_refreshed", records=new.matcher.size, version=new.version)
        return True


class GenerationHolder:
    """Anything that serves from a generation (the node service)."""

    generation: Generation
