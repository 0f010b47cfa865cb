"""Waking at a precise moment, whatever the event loop was doing before.

``asyncio.sleep`` hands its timeout to epoll in whole milliseconds, rounded up
from the instant the loop last polled, so the wake-up time keeps the
sub-millisecond phase of whatever work came before — exactly the difference a
shielded child's record makes (it is found and scored; an absent child's is
not). The waiters here are woken at their deadline on the ``time.perf_counter``
clock, so how long an answer takes depends on the deadline alone.

On Linux each event loop gets one kernel timer (``timerfd``, nanosecond
deadlines on CLOCK_MONOTONIC, the clock ``perf_counter`` reads) armed for its
earliest waiter and watched by the loop itself: a wake-up is one readable file
descriptor. Elsewhere one background thread waits on a condition with
sub-millisecond timeouts and hands the due waiters to their loop. The kernel
timer is the cheaper by far: the thread cost every answer a lock, a condition
signal, a thread wake-up and a cross-thread hand-over (about 85 µs of CPU an
answer on a host of 30 nodes, measured with py-spy and per-thread CPU).
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import sys
import threading
import time
import weakref
from typing import Any


class PreciseTimer:
    """One for every node in the process; waiters are woken in deadline order, none before its deadline."""

    def __init__(self, *, kernel: bool | None = None) -> None:
        """``kernel``: use a timerfd per loop (None: where the platform has one), else the timer thread."""
        self._kernel = _TIMERFD is not None if kernel is None else kernel
        if self._kernel and _TIMERFD is None:
            raise RuntimeError("no timerfd on this platform")
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _KernelTimer] = weakref.WeakKeyDictionary()
        self._thread = _ThreadTimer()

    async def wait_until(self, deadline: float) -> None:
        """Return at ``deadline`` on the ``time.perf_counter`` clock (at once if it has passed)."""
        if deadline <= time.perf_counter():
            return
        if not self._kernel:
            await self._thread.wait_until(deadline)
            return
        loop = asyncio.get_running_loop()
        timer = self._per_loop.get(loop)
        if timer is None:
            timer = self._per_loop[loop] = _KernelTimer(loop)
        await timer.wait_until(deadline)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd_functions() -> tuple[Any, Any] | None:
    """libc's timerfd_create and timerfd_settime, if this is Linux and perf_counter reads CLOCK_MONOTONIC.

    Linux alone: another system's libc may have timerfd too (FreeBSD's since 14, NetBSD's), with its own
    numbering of the clocks and flags used below, and a wrong clock id would fail every answer.
    """
    if not sys.platform.startswith("linux"):
        return None
    if "CLOCK_MONOTONIC" not in time.get_clock_info("perf_counter").implementation:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None


_TIMERFD = _timerfd_functions()
_CLOCK_MONOTONIC = getattr(time, "CLOCK_MONOTONIC", 1)  # 1 on Linux, where alone it is used
_TFD_TIMER_ABSTIME = 1


class _KernelTimer:
    """One loop's waiters, woken by one timerfd armed for the earliest of them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _TIMERFD is not None
        self._create, self._settime = _TIMERFD
        fd = self._create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd
        weakref.finalize(self, os.close, fd)  # when the loop (which holds the only reference) is gone
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._armed_for: float | None = None
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._fire)

    async def wait_until(self, deadline: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (deadline, next(self._counter), future))
        if self._armed_for is None or deadline < self._armed_for:
            self._arm(deadline)
        await future

    def _arm(self, deadline: float) -> None:
        seconds = int(deadline)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = max(1, int((deadline - seconds) * 1e9))  # all zeros would disarm it
        if self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._armed_for = deadline

    def _fire(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass  # re-armed since it fired: the due waiters are released below all the same
        now, heap = time.perf_counter(), self._heap
        while heap and heap[0][0] <= now:
            future = heapq.heappop(heap)[2]
            if not future.done():  # the call may have been cancelled meanwhile
                future.set_result(None)
        self._armed_for = None
        if heap:
            self._arm(heap[0][0])


class _ThreadTimer:
    """One timer thread for every loop in the process (where there is no timerfd)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    async def wait_until(self, deadline: float) -> None:
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
