"""The precise timer behind the nodes' answer floor: nobody is woken early, and waiters wake in deadline order."""

from __future__ import annotations

import asyncio
import random
import sys
import time

import pytest

from node import timing
from node.timing import _TIMERFD, PreciseTimer


@pytest.fixture(params=["kernel", "thread"])
def timer(request: pytest.FixtureRequest) -> PreciseTimer:
    """Both ways of waking: a timerfd per loop (Linux) and the timer thread (elsewhere)."""
    if request.param == "kernel" and _TIMERFD is None:
        pytest.skip("no timerfd on this platform")
    return PreciseTimer(kernel=request.param == "kernel")


async def test_many_waiters_each_wake_at_or_after_their_deadline_in_order(timer: PreciseTimer):
    rng = random.Random(7)
    start = time.perf_counter()
    # Many deadlines close together, as a host of many nodes has them: several fall due in one wake-up.
    # The first is well in the future, so none has passed before every waiter is queued.
    deadlines = sorted(start + 0.1 + rng.random() * 0.010 for _ in range(200))
    woken: list[tuple[float, float]] = []

    async def wait(deadline: float) -> None:
        await timer.wait_until(deadline)
        woken.append((deadline, time.perf_counter()))

    await asyncio.gather(*(wait(d) for d in rng.sample(deadlines, len(deadlines))))
    assert len(woken) == len(deadlines)
    assert all(at >= deadline for deadline, at in woken)
    assert [deadline for deadline, _ in woken] == deadlines


async def test_a_cancelled_waiter_does_not_hold_up_the_others(timer: PreciseTimer):
    now = time.perf_counter()
    cancelled = asyncio.ensure_future(timer.wait_until(now + 0.005))
    kept = asyncio.ensure_future(timer.wait_until(now + 0.005))
    await asyncio.sleep(0)
    cancelled.cancel()
    await kept
    assert cancelled.cancelled() and time.perf_counter() >= now + 0.005


async def test_a_deadline_already_past_returns_at_once(timer: PreciseTimer):
    await asyncio.wait_for(timer.wait_until(time.perf_counter() - 1.0), timeout=5)


async def test_an_earlier_deadline_wakes_the_sleeping_timer(timer: PreciseTimer):
    now = time.perf_counter()
    late = asyncio.ensure_future(timer.wait_until(now + 2.0))
    await asyncio.sleep(0.02)  # the timer is now asleep (or armed) until the late deadline
    await asyncio.wait_for(timer.wait_until(time.perf_counter() + 0.02), timeout=1.5)
    assert not late.done()
    late.cancel()


def test_each_event_loop_has_its_own_kernel_timer():
    if _TIMERFD is None:
        pytest.skip("no timerfd on this platform")
    timer = PreciseTimer(kernel=True)

    async def wait() -> float:
        deadline = time.perf_counter() + 0.01
        await timer.wait_until(deadline)
        return time.perf_counter() - deadline

    # A timer made for one loop would never fire in the next (a test's, or a restarted server's).
    assert asyncio.run(wait()) >= 0
    assert asyncio.run(asyncio.wait_for(wait(), timeout=5)) >= 0


def test_the_kernel_timer_is_used_on_linux_alone(monkeypatch: pytest.MonkeyPatch):
    """timerfd's clock ids are the platform's own: FreeBSD (whose libc has timerfd_create since 14) numbers
    CLOCK_MONOTONIC 4, where 1 is CLOCK_VIRTUAL and every answer would fail; elsewhere the thread wakes."""
    monkeypatch.setattr(sys, "platform", "freebsd14")
    assert timing._timerfd_functions() is None
    if _TIMERFD is not None:
        assert timing._CLOCK_MONOTONIC == time.CLOCK_MONOTONIC
