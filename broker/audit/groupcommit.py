"""Group commit: appends that arrive while one transaction is under way share the next.

A store hands ``GroupCommit`` its own ``write(group)``, which seals and commits
a whole group in one transaction (``sealing.seal_group``) and answers per entry.
``GroupCommit`` only queues, batches (at most ``MAX_GROUP``) and hands each
caller its answer; it knows nothing of any database.

It must never let a caller wait in vain (every queued entry is answered, with
its Sealed or an AuditWriteError), never report an entry written that was not
committed, never drop an entry whose caller stopped waiting, and never put an
entry's body in an error message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from broker.audit.errors import AuditIntegrityError, AuditWriteError, write_failed
from broker.audit.sealing import HeadSign, Pending, Sealed

MAX_GROUP = 64
"""Most entries committed in one transaction."""


class GroupCommit:
    """Appends that arrive while a commit is under way wait for it and go together in the next.

    One transaction, one fsync, for every search that finished meanwhile — as a database's group
    commit does. Each entry is still sealed alone, at its own index with its own signed head, so the
    log is exactly what one append at a time would have made. ``write`` commits a group and returns,
    per entry, its Sealed or the AuditWriteError that refused that entry alone (one that ``seal``
    finds malformed fails by itself); if ``write`` raises — the database refused something —
    nothing of the group was committed and every entry in it fails. An entry is committed even if
    its caller stops waiting, as one being written always was.
    """

    def __init__(
        self, write: Callable[[list[Pending]], Awaitable[list[Sealed | AuditWriteError]]], *, max_group: int = MAX_GROUP
    ) -> None:
        self._write, self.max_group = write, max_group
        self._queue: deque[tuple[Pending, asyncio.Future[Sealed]]] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, entry: Mapping[str, Any], sign: HeadSign) -> Sealed:
        if self._closed:
            raise AuditWriteError("audit entry not written: the audit log is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sealed] = loop.create_future()
        self._queue.append(((entry, sign), future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            group = [self._queue.popleft() for _ in range(min(self.max_group, len(self._queue)))]
            try:
                results = await self._write([pending for pending, _ in group])
                if len(results) != len(group):
                    raise AuditIntegrityError("the store answered for a different number of entries")
                for (_, future), result in zip(group, results, strict=False):
                    if future.done():
                        continue
                    if isinstance(result, AuditWriteError):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            except BaseException as exc:
                # Whatever went wrong, nobody waits in vain: every entry not yet answered is told it failed.
                failed = exc if isinstance(exc, AuditWriteError) else write_failed(exc)
                stopping = not isinstance(exc, Exception)  # cancelled: the loop is closing
                stranded = [*group, *self._queue] if stopping else group
                for _, future in stranded:
                    if not future.done():
                        future.set_exception(AuditWriteError(str(failed)))
                if stopping:
                    self._queue.clear()
                    raise

    async def close(self) -> None:
        """Refuse new appends, and let those already queued finish."""
        self._closed = True
        if self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)
