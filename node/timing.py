"""Waking at a precise moment, whatever the event loop was doing before.

``asyncio.sleep`` hands its timeout to epoll in whole milliseconds, rounded up
from the instant the loop last polled, so the wake-up time keeps the
sub-millisecond phase of whatever work came before — exactly the difference a
shielded child's record makes (it is found and scored; an absent child's is
not). One background thread waits on a condition with sub-millisecond timeouts
and wakes each waiter at its deadline, so how long an answer takes depends on
the deadline alone.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time


class PreciseTimer:
    """One timer thread for every node in the process; waiters are woken in deadline order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    async def wait_until(self, deadline: float) -> None:
        """Return at ``deadline`` on the ``time.perf_counter`` clock (at once if it has passed)."""
        if deadline <= time.perf_counter():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._counter), loop, future))
            if earliest:  # otherwise the thread already wakes in time for this one
                self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="signpost-precise-timer", daemon=True)
                self._thread.start()
        await future

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                now = time.perf_counter()
                remaining = self._heap[0][0] - now
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                # Every waiter now due goes in one hand-over per event loop: a host of many nodes has
                # dozens due together, and each call_soon_threadsafe is a wake-up write of its own.
                due: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
                while self._heap and self._heap[0][0] <= now:
                    _, _, loop, future = heapq.heappop(self._heap)
                    due.setdefault(loop, []).append(future)
                for loop, futures in due.items():
                    try:
                        loop.call_soon_threadsafe(_release, futures)
                    except RuntimeError:
                        pass  # that loop has closed: nobody is waiting there any more


def _release(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # the call may have been cancelled meanwhile
            future.set_result(None)


TIMER = PreciseTimer()
"""Shared by every node server in the process."""
