"""Sending concurrent searches to the nodes together: one dispatch out at a time, the rest go as one.

Each message to a node costs the broker and the node far more than each search it carries (a gRPC
write and read, a journal commit, an answer-floor wake-up, 152 times over), so under load the
broker gathers the searches that arrive while a dispatch is out and sends them in the next one, as
a database gathers commits. A search that arrives when nothing is out goes at once, so one search
at a time waits for nothing. A dispatch counts as out until each of its searches has heard from
every node (or given up on it) — or for ``window`` seconds at most, so a slow node cannot hold
anybody back for longer than that.

Only *when* a search is sent depends on this; every search still goes to every node, on its own,
signed and checked alone. The wait depends on other searches' timing, never on any child's details.
"""

from __future__ import annotations

import asyncio

DISPATCH_WINDOW_SECONDS = 0.1
"""Default window: about two ordinary dispatches on a busy 152-authority federation, well inside a deadline."""


class DispatchGate:
    """Admits searches in dispatches: ``group = await gate.enter()``, then ``gate.leave(group)`` once answered."""

    def __init__(self, window: float) -> None:
        self.window = window
        """Longest a dispatch holds back the next one, in seconds; 0 sends every search at once."""
        self._group = 0
        self._out = 0
        """Searches of dispatch ``_group`` that have not yet left."""
        self._waiting: list[asyncio.Future[int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        """Whether a search entering now may have to wait (a dispatch is out, or searches wait already)."""
        return self.window > 0 and (self._out > 0 or bool(self._waiting))

    async def enter(self) -> int:
        """Wait for this search's dispatch and return its number, for ``leave``."""
        if self.window <= 0:
            return 0
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._waiting.append(future)
        if self._out == 0 and self._soon is None:
            # Nothing is out: go on the loop's next turn, with any search that arrived in this one.
            self._soon = loop.call_soon(self._go_now)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave(future.result())  # admitted, then cancelled before it could go
            elif future in self._waiting:  # a release in the same turn may have taken the list already
                self._waiting.remove(future)
            raise

    def leave(self, group: int) -> None:
        """This search has its first answers (or gave up on them): when its whole dispatch has, the next goes."""
        if self.window <= 0 or group != self._group:
            return  # a dispatch the window already moved on from
        self._out -= 1
        if self._out == 0:
            self._release()

    def _go_now(self) -> None:
        self._soon = None
        if self._out == 0:
            self._release()

    def _open(self, searches: int) -> None:
        self._group += 1
        self._out = searches
        self._timer = asyncio.get_running_loop().call_later(self.window, self._release)

    def _release(self) -> None:
        """The next dispatch: every search waiting now goes, together (the window's timer calls this too)."""
        waiting = [f for f in self._waiting if not f.done()]
        self._waiting = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not waiting:
            # Nobody waits: the dispatch still out (if any) no longer holds back the next search.
            self._group += 1
            self._out = 0
            return
        self._open(len(waiting))
        for future in waiting:
            future.set_result(self._group)
