"""Deleting the node's journal rows once they are older than the authority's retention period.

A background loop that asks :meth:`node.journal.Journal.expire` to delete what is older than
``[retention] journal_days`` (:mod:`node.config`), once at start and then every ``interval``. It
never deletes an alert nobody has acknowledged (the journal's rule), and a failure is logged and
tried again on the next turn: it must never stop the node answering.
"""

from __future__ import annotations

import asyncio

import structlog

from core.tasks import BackgroundLoop
from node.errors import StoreError
from node.journal import Journal

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
