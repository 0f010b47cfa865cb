"""The broker's dispatch gate: a search alone goes at once; searches arriving while one is out go together."""

from __future__ import annotations

import asyncio

import pytest

from broker.dispatch import DispatchGate

LONG = 30.0
"""A window no test waits out: a search that goes before it has not waited for it."""


async def test_a_search_alone_goes_at_once():
    gate = DispatchGate(LONG)
    group = await asyncio.wait_for(gate.enter(), timeout=5)
    gate.leave(group)
    assert await asyncio.wait_for(gate.enter(), timeout=5) != group  # a new dispatch, with no wait


async def test_searches_arriving_together_go_in_one_dispatch():
    gate = DispatchGate(LONG)
    groups = await asyncio.wait_for(asyncio.gather(*(gate.enter() for _ in range(5))), timeout=5)
    assert len(set(groups)) == 1


async def test_searches_arriving_while_one_is_out_wait_for_it_and_then_go_together():
    gate = DispatchGate(LONG)
    first = await gate.enter()
    later = [asyncio.ensure_future(gate.enter()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in later) and gate.waiting == 3
    gate.leave(first)
    groups = await asyncio.wait_for(asyncio.gather(*later), timeout=5)
    assert len(set(groups)) == 1 and groups[0] != first
    # The next dispatch waits for all three of those to leave, not just one.
    after = asyncio.ensure_future(gate.enter())
    gate.leave(groups[0])
    gate.leave(groups[1])
    await asyncio.sleep(0.05)
    assert not after.done()
    gate.leave(groups[2])
    assert await asyncio.wait_for(after, timeout=5) not in (first, groups[0])


async def test_a_dispatch_that_is_never_answered_holds_the_next_for_the_window_only():
    window = 0.2
    gate = DispatchGate(window)
    stuck = await gate.enter()
    loop = asyncio.get_running_loop()
    began = loop.time()
    group = await asyncio.wait_for(gate.enter(), timeout=5)
    assert loop.time() - began >= window * 0.9  # the event loop's timer may fire up to a tick early
    assert group != stuck
    gate.leave(stuck)  # late: the window already moved on, and this must not release anyone else
    blocked = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.05)
    assert not blocked.done()
    gate.leave(group)
    await asyncio.wait_for(blocked, timeout=5)


async def test_once_the_window_has_passed_a_new_search_goes_at_once():
    gate = DispatchGate(0.05)
    await gate.enter()  # never leaves
    await asyncio.sleep(0.2)
    await asyncio.wait_for(gate.enter(), timeout=0.04)


async def test_a_search_cancelled_while_waiting_does_not_hold_up_its_dispatch():
    gate = DispatchGate(LONG)
    first = await gate.enter()
    cancelled = asyncio.ensure_future(gate.enter())
    kept = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.leave(first)
    group = await asyncio.wait_for(kept, timeout=5)
    gate.leave(group)  # the only member of its dispatch: the next search must go at once
    await asyncio.wait_for(gate.enter(), timeout=5)
    with pytest.raises(asyncio.CancelledError):
        await cancelled


async def test_window_zero_sends_every_search_at_once():
    gate = DispatchGate(0.0)
    groups = [await asyncio.wait_for(gate.enter(), timeout=1) for _ in range(3)]
    assert gate.waiting == 0 and len(groups) == 3
