"""Deleting what the node may no longer keep or disclose, once it falls due: two hourly sweeps.

:class:`JournalRetention` asks :meth:`node.journal.Journal.expire` to delete journal rows older than
``[retention] journal_days`` (:mod:`node.config`). It never deletes an alert nobody has acknowledged
(the journal's rule).

:class:`RecordRetention` asks :meth:`node.store.RecordStore.expire` to delete involvements that ended
more than ``[retention] disclose_ended_years`` ago, and records left with none (:mod:`node.policy`
rule 6). Loads apply the same cutoff as they write; this sweep is for time passing over data nobody
reloads (a CSV imported once), so a record expires within an hour of the day it falls due.

Both run once at start and then every ``interval``; a failure is logged (its type only: a store
error may name a row) and tried again on the next turn: they must never stop the node answering.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

import structlog

from core.tasks import BackgroundLoop
from node.errors import StoreError
from node.journal import Journal
from node.policy import disclosure_cutoff
from node.store import RecordStore

log = structlog.get_logger("signpost.node")

INTERVAL_SECONDS = 3600.0
"""How often the loop expires rows: hourly is far finer than a retention period counted in days."""


class JournalRetention:
    """Runs ``journal.expire(keep_days=...)`` from ``start()`` until ``stop()``."""

    def __init__(self, journal: Journal, *, keep_days: int, interval: float = INTERVAL_SECONDS) -> None:
        self.journal, self.keep_days, self.interval = journal, keep_days, interval
        self._loop = BackgroundLoop("signpost-journal-retention", self._run)
        self.start, self.stop = self._loop.start, self._loop.stop

    async def _run(self) -> None:
        while True:
            try:
                expired = self.journal.expire(keep_days=self.keep_days)
            except StoreError as exc:
                log.error("journal_expiry_failed", error_type=type(exc.__cause__).__name__)
            else:
                if expired:
                    log.info("journal_expired", rows=expired, keep_days=self.keep_days)
            await asyncio.sleep(self.interval)


class RecordRetention:
    """Runs ``store.expire(cutoff)`` from ``start()`` until ``stop()``, in a worker thread (it writes SQLite).

    ``store`` is a writer of its own, closed by ``stop()``; ``on_expired`` is called after a sweep that
    deleted something (the refresher's poke, so the index without those records serves at once).
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        years: int,
        on_expired: Callable[[], None] = lambda: None,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.years, self.on_expired, self.interval, self._clock = store, years, on_expired, interval, clock
        self._inflight: asyncio.Future[tuple[int, int]] | None = None
        self._loop = BackgroundLoop("signpost-record-retention", self._run)
        self.start = self._loop.start

    async def stop(self) -> None:
        await self._loop.stop()
        if self._inflight is not None and not self._inflight.done():
            # A sweep in its thread ends its transaction whole before the store closes under it.
            self._inflight.add_done_callback(self._close_after)
        else:
            self.store.close()

    def _close_after(self, sweep: asyncio.Future[tuple[int, int]]) -> None:
        if not sweep.cancelled():
            sweep.exception()  # retrieved, so asyncio does not report it; the next start sweeps again
        self.store.close()

    def cutoff(self) -> str:
        return disclosure_cutoff(dt.datetime.fromtimestamp(self._clock(), dt.UTC).date(), self.years)

    async def sweep(self) -> tuple[int, int]:
        """One sweep: (involvements, records) deleted."""
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self.store.expire, self.cutoff()))
        expired = await asyncio.shield(self._inflight)
        if any(expired):
            log.info("records_expired", involvements=expired[0], records=expired[1], disclose_ended_years=self.years)
            self.on_expired()
        return expired

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except StoreError as exc:
                log.error("record_expiry_failed", error_type=type(exc.__cause__).__name__)
            await asyncio.sleep(self.interval)
