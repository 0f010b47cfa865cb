"""Keeping a serving node in step with its authority's database (``[source]``).

A full load at start-up, then one every ``refresh_seconds``: the source is read (:mod:`node.source`)
in a worker thread, its good records replace the store's in one transaction, exactly as
``signpost node import --replace`` does, and the refresher is poked, so the new generation is swapped
in atomically as after any import (:mod:`node.refresh`): no search is ever half-answered from two loads.

With a ``change_column`` the loads between full ones are incremental: only the records with a row
changed since the last load's watermark are fetched, and they replace just those records (as a
``signpost node import`` without ``--replace`` does); a load that finds nothing changed writes nothing,
so the index is not rebuilt. Every ``full_refresh_seconds`` a full load reconciles, removing the
records deleted or withdrawn at source, which an incremental load cannot see.

Every load applies ``[retention] disclose_ended_years`` in its own transaction (:mod:`node.policy`
rule 6): involvements that ended longer ago, and records left with none, are never written, and a
record that has just expired at source is removed by the incremental load that fetched it.

A load that fails (the source down, a bad password, a timeout, a view changed under us) leaves the
store, and so every answer, as it was: the last good data keeps serving. An unavailable source is
retried with exponential backoff (tenacity) within the turn; whatever happens is logged and kept in
:attr:`SourceSync.status` (the data's age and the last outcome). Only a config that does not fit the
source at start-up stops the node, with the one sentence that names the key.

Never logs a value from a row or the password: outcomes, counts, and rejected rows' numbers and
reasons only (the reasons name columns, never values).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from core.tasks import BackgroundLoop
from node.config import SourceConfig
from node.errors import NodeError, SourceUnavailable, SourceUnusable
from node.importer import count_expired
from node.policy import disclosure_cutoff
from node.source import Changes, SourceRead, read_source
from node.store import RecordStore

log = structlog.get_logger("signpost.node")
LOGGED_REJECTIONS = 5
"""Rejected rows named in the log per load; ``signpost node check-source`` lists them all."""


@dataclass(frozen=True)
class SyncStatus:
    """How the node's data stands against its source; safe to show an operator (no values, no password)."""

    outcome: str = "never"
    """``ok``, ``failed`` (the last good data is still served), or ``never`` (no load yet in this run)."""
    attempted_at: str = ""
    """RFC 3339 time the last load finished or gave up."""
    data_as_of: str = ""
    """RFC 3339 time of the data served: the last good load (perhaps by an earlier run of the node)."""
    detail: str = ""
    """Why the last load failed: one sentence naming the config key."""
    rows_rejected: int = 0


def _later(a: Any, b: Any) -> Any:
    """The later of two watermarks, either perhaps None (values of one column, so they compare)."""
    return b if a is None else a if b is None else max(a, b)


def _now(clock: Callable[[], float]) -> str:
    return dt.datetime.fromtimestamp(clock(), dt.UTC).isoformat(timespec="seconds")


class SourceSync:
    """Loads ``config``'s source into ``store`` (a writer of its own) at ``start_up`` and every refresh."""

    def __init__(
        self,
        config: SourceConfig,
        store: RecordStore,
        *,
        read: Callable[[SourceConfig, None, Changes | None], SourceRead] = read_source,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        disclose_ended_years: int | None = None,
        observe: Callable[[str, str], None] = lambda kind, outcome: None,
    ) -> None:
        """``disclose_ended_years``: the node's retention (None keeps everything). ``observe(kind, outcome)`` is
        told of every load's end, ``kind`` ``full`` or ``incremental`` and ``outcome`` ``ok`` or ``failed``
        (the node's metrics; a turn's retries are one load)."""
        self.config, self.store, self._read, self._sleep, self._clock = config, store, read, sleep, clock
        self.disclose_ended_years, self._observe = disclose_ended_years, observe
        self.status = SyncStatus(data_as_of=store.data_as_of())
        self._changes: Changes | None = None
        """What the next incremental load asks for; None: the next load is a full one."""
        self._full_at = 0.0
        """``clock()`` of the last good full load."""
        self.on_loaded: Callable[[], None] = lambda: None
        self._inflight: asyncio.Future[SourceRead] | None = None
        """The worker thread's read-and-write: a cancelled turn cannot stop it, so ``stop`` waits for it."""
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("signpost-source-sync", self._run)

    async def start_up(self) -> None:
        """The first load, before the node serves.

        A config that does not fit the source raises :class:`SourceUnusable` (the node must not start on
        a mapping nobody checked). An unreachable source does not: the node serves what its store holds
        from the last good load, and the loop keeps trying.
        """
        try:
            await self._load()
        except SourceUnavailable as exc:
            self._failed(exc, "full")
        except SourceUnusable:
            self._observe("full", "failed")
            raise

    def start(self, on_loaded: Callable[[], None]) -> None:
        """Reload every ``refresh_seconds``; ``on_loaded`` is called after each good load (the refresher's poke)."""
        self.on_loaded = on_loaded
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        if self._inflight is not None and not self._inflight.done():
            # A load still running in its thread keeps its store until it ends (its transaction then commits
            # or rolls back whole); closing under it would break that write, not stop it.
            self._inflight.add_done_callback(self._close_after)
        else:
            self.store.close()

    def _close_after(self, load: asyncio.Future[SourceRead]) -> None:
        if not load.cancelled() and load.exception() is not None:  # retrieved, so asyncio does not report it
            log.info("source_load_ended_after_stop", error_type=type(load.exception()).__name__)
        self.store.close()

    def outcome(self) -> tuple[str, str]:
        """The last load's outcome and time, for Describe: never the reason (that stays in the node's log)."""
        status = self.status
        return ("", "") if status.outcome == "never" else (status.outcome, status.attempted_at)

    def poke(self) -> None:
        """Load now (a test, or an operator's signal)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.refresh_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.sync()
            except Exception as exc:  # a bug must not end syncing for the life of the node
                log.error("source_sync_error", error_type=type(exc).__name__)

    def _full_due(self) -> bool:
        return self._changes is None or self._clock() - self._full_at >= self.config.full_refresh_seconds

    async def sync(self, *, full: bool | None = None) -> bool:
        """One turn: load (full when due, or as ``full`` says), retrying an unavailable source with backoff.

        False, and logged, if it failed: the store and so the answers are left as they were.
        """
        full = self._full_due() if full is None else full
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(SourceUnavailable),
            stop=stop_after_attempt(self.config.retry_attempts),
            wait=wait_exponential(multiplier=self.config.retry_initial_seconds, max=self.config.refresh_seconds),
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "source_load_retrying", attempt=state.attempt_number, error_type="SourceUnavailable"
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._load(full=full)
        except NodeError as exc:  # SourceError, or StoreError writing the node's own store
            self._failed(exc, "full" if full or self._changes is None else "incremental")
            return False
        self.on_loaded()
        return True

    def _read_and_write(self, changes: Changes | None) -> SourceRead:
        """Blocking, in a worker thread: read the source and write what it gave into the store."""
        read = self._read(self.config, None, changes)
        if changes is None and read.rows_read == 0:
            # An empty view is far likelier a broken extract than an authority with no children: keep the data.
            raise SourceUnusable("source.query: the query returned no rows; the last good data is kept")
        cutoff = self.cutoff()
        count_expired(read.report, read.records, cutoff)
        if changes is None or read.records:  # an incremental load that found nothing changed writes nothing
            self.store.replace_records(read.records, replace_all=changes is None, ended_before=cutoff)
        return read

    def cutoff(self) -> str:
        """Involvements that ended before this ISO date are not stored (empty: no retention configured)."""
        if self.disclose_ended_years is None:
            return ""
        return disclosure_cutoff(dt.datetime.fromtimestamp(self._clock(), dt.UTC).date(), self.disclose_ended_years)

    async def _load(self, *, full: bool = True) -> None:
        changes = None if full else self._changes
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self._read_and_write, changes))
        read = await asyncio.shield(self._inflight)
        if changes is None:
            self._full_at = self._clock()
        self._changes = read.changes_after(self.config, _later(read.watermark, changes.since if changes else None))
        report = read.report
        now = _now(self._clock)
        self.status = SyncStatus("ok", now, self.store.data_as_of() or now, "", report.rows_rejected)
        self._observe("full" if changes is None else "incremental", "ok")
        log.info(
            "source_loaded",
            kind="full" if changes is None else "changes",
            rows=read.rows_read,
            records=report.records_loaded,
            rows_rejected=report.rows_rejected,
            rows_expired=report.rows_expired,
            rejections=[f"row {e.line}: {e.reason}" for e in report.errors[:LOGGED_REJECTIONS]],
        )

    def _failed(self, exc: NodeError, kind: str) -> None:
        self._observe(kind, "failed")
        self.status = replace(self.status, outcome="failed", attempted_at=_now(self._clock), detail=str(exc))
        log.error(
            "source_load_failed",
            error_type=type(exc).__name__,
            detail=str(exc),
            data_as_of=self.status.data_as_of or "never",
        )
