"""Serving new data without a restart: a re-import is picked up and swapped in atomically.

A *generation* is a match index together with the store snapshot it was built
from (a pinned SQLite read transaction), so every answer's candidates and
contacts come from the same import. The refresher notices a new import (the
store's ``data_version`` counter), builds the next generation in a worker
thread while the current one keeps serving, then swaps the pair in one
assignment. Matching and reading contacts happen with no ``await`` between
them, so no query ever sees half of one generation and half of another; the
old snapshot is closed after the swap.

A small change is not rebuilt from scratch: when the store's change log (``RecordStore.changed_since``)
says which records changed since the last full build, the next generation is that build with the change
laid over it (:mod:`node.delta`), ready in well under a second at a million records where a full build
takes a minute, and answering as the full build would. A full reload (``--replace``, a source's hourly
reconciliation) writes only what differs, so it is an overlay too. Once the overlay holds more than a
small share of the records, or after a full reload, a full build is started in the background; overlays
keep coming meanwhile, and the new build replaces the old base when done (with any later change laid over
it). A restarted change log, or a change an overlay cannot represent exactly, is built in full, as before,
while the current generation keeps serving.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass

import structlog

from core.tasks import BackgroundLoop
from node.delta import OverlayBounds, base_of, build_overlay, sorted_ids
from node.errors import StoreError
from node.matching import MatchEngine, Matcher, MatchSettings, build_matcher
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


@dataclass
class Base:
    """The last full build: what overlays are laid on."""

    engine: MatchEngine
    version: int
    in_order: bool | None = None
    """Is its table in record_id order (an overlay finds rows by bisection)? Checked once, when first needed."""


def next_generation(
    store: RecordStore, base: Base | None, settings: MatchSettings | None, bounds: OverlayBounds
) -> tuple[Generation, int | None]:
    """The store as it is now: ``base`` with an overlay if it can be, else a full build (blocking).

    Returns the generation and how many records the overlay changed (None: a full build).
    """
    snapshot = store.snapshot()
    try:
        version = snapshot.data_version()
        changed = snapshot.changed_since(base.version) if base is not None else None
        if base is not None and changed is not None and not bounds.too_large(len(changed), base.engine.size):
            if base.in_order is None:
                base.in_order = sorted_ids(base.engine.table)
            if not changed:
                return Generation(base.engine, snapshot, version), 0
            overlay = build_overlay(base.engine, changed, snapshot.identities_of(changed)) if base.in_order else None
            if overlay is not None:
                return Generation(overlay, snapshot, version), len(changed)
        return Generation(build_matcher(snapshot.identities(), settings), snapshot, version), None
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
        self,
        store: RecordStore,
        target: GenerationHolder,
        *,
        interval: float,
        settings: MatchSettings | None = None,
        bounds: OverlayBounds | None = None,
    ) -> None:
        self.store, self.target, self.interval, self.settings = store, target, interval, settings
        self.bounds = bounds or OverlayBounds()
        matcher = target.generation.matcher
        # The generation a node starts with is a full build (start_node's) of its store's identities.
        self._base = Base(matcher, target.generation.version) if type(matcher) is MatchEngine else None
        self._fold: asyncio.Future[Generation] | None = None
        """A full build running in the background, to replace an overlay grown large."""
        self._turn = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("signpost-refresher", self._run)
        self.start = self._loop.start

    async def stop(self) -> None:
        await self._loop.stop()
        if self._fold is not None:  # a build in its thread cannot be stopped: close what it makes
            self._fold.add_done_callback(_close_built)

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
        # One refresh at a time (the loop's, a poke's, a test's): two would build the same generation twice,
        # and one's locals would keep a replaced index alive while the other waits on its thread.
        async with self._turn:
            return await self._refresh()

    async def _refresh(self) -> bool:
        folded = self._take_fold()
        if folded is not None:
            await self._forget_changes()
        if folded is not None and folded.version >= self.target.generation.version:
            self._swap(folded, "full")
        elif folded is not None:
            folded.close()  # newer data is serving (an overlay on the old base): laid on the new one below
        serving = self.target.generation
        on_base = self._base is None or base_of(serving.matcher) is self._base.engine
        current = self.store.data_version() == serving.version
        del serving  # not held across the build below: it may be replaced meanwhile
        if current and on_base:
            return folded is not None
        try:
            new, changed = await asyncio.to_thread(next_generation, self.store, self._base, self.settings, self.bounds)
        except Exception as exc:
            log.error("refresh_failed", error_type=type(exc).__name__)
            return folded is not None
        if changed is None and isinstance(new.matcher, MatchEngine):
            self._base = Base(new.matcher, new.version, True)
            await self._forget_changes()
        self._swap(new, "full" if changed is None else "overlay", changed)
        base = self._base
        if changed is not None and base is not None:
            # Past the bound, or after a full reconciliation (hourly for a source) if anything has changed
            # since the base: a new full build, which relearns the weights too, so an overlay's weights are
            # never older than the last reconciliation. (Same data, same seed: an unchanged one would learn
            # the same weights.)
            reconciled = changed > 0 and self.store.reconciled_after(base.version)
            if self.bounds.fold_due(changed, base.engine.size) or reconciled:
                self._start_fold()
        return True

    async def _forget_changes(self) -> None:
        """The change log up to the new base is in it: drop it, so the log stays short (not restarted)."""
        if self._base is None:
            return
        try:
            await asyncio.to_thread(self.store.forget_changes, self._base.version)
        except StoreError as exc:  # only the log's length is at stake: it restarts at its limit anyway
            log.warning("change_log_not_pruned", error_type=type(exc).__name__)

    def _swap(self, new: Generation, kind: str, changed: int | None = None) -> None:
        old, self.target.generation = self.target.generation, new
        if old.store is not new.store:
            old.close()
        del old
        settle_heap()
        log.info("data_refreshed", records=new.matcher.size, version=new.version, kind=kind, changed=changed)

    def _start_fold(self) -> None:
        if self._fold is not None:
            return
        log.info("index_fold_started", version=self.target.generation.version)
        self._fold = asyncio.ensure_future(asyncio.to_thread(build_generation, self.store, self.settings))
        self._fold.add_done_callback(lambda _: self.poke())

    def _take_fold(self) -> Generation | None:
        """A finished background build, made the base (None if none has finished, it failed, or the base is newer)."""
        if self._fold is None or not self._fold.done():
            return None
        fold, self._fold = self._fold, None
        error = None if fold.cancelled() else fold.exception()
        if fold.cancelled() or error is not None:
            log.error("index_fold_failed", error_type=type(error).__name__ if error else "cancelled")
            return None
        generation = fold.result()
        if self._base is not None and generation.version < self._base.version:
            # A full build in the foreground (a change no overlay could take) finished first: this one is
            # older. Made the base, the log (trimmed to the newer one) could not reach it: a needless rebuild.
            generation.close()
            return None
        if isinstance(generation.matcher, MatchEngine):
            self._base = Base(generation.matcher, generation.version, True)
        return generation


def _close_built(fold: asyncio.Future[Generation]) -> None:
    if not fold.cancelled() and fold.exception() is None:
        fold.result().close()


class GenerationHolder:
    """Anything that serves from a generation (the node service)."""

    generation: Generation
