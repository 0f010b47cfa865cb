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


async def turns(n: int = 5) -> None:
    """Let the event loop run ``n`` times round, no timer involved: what "at once" means here."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_once_the_window_has_passed_a_new_search_goes_at_once():
    gate = DispatchGate(0.05)
    await gate.enter()  # never leaves
    await asyncio.sleep(0.2)  # the window's timer is due first, so it has fired by now (timers run in order)
    entered = asyncio.ensure_future(gate.enter())
    await turns()
    assert entered.done() and gate.waiting == 0  # no new window waited out: only the loop went round


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
    groups = [await asyncio.wait_for(gate.enter(), timeout=5) for _ in range(3)]
    assert gate.waiting == 0 and len(groups) == 3


async def test_a_search_cancelled_in_the_same_turn_as_its_release_ends_cancelled_and_leaves_nothing_behind():
    gate = DispatchGate(LONG)
    first = await gate.enter()
    waiter = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)  # it is waiting now
    waiter.cancel()
    gate.leave(first)  # releases the dispatch in the same turn, before the cancelled waiter runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.waiting == 0
    await asyncio.wait_for(gate.enter(), timeout=5)  # nothing is out: the next search goes at once


async def test_a_search_admitted_then_cancelled_before_it_runs_leaves_its_dispatch():
    gate = DispatchGate(LONG)
    first = await gate.enter()
    waiter = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)
    gate.leave(first)  # admits the waiter...
    waiter.cancel()  # ...which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # Its dispatch had one member and it has left, so the next search must not wait out the window.
    await asyncio.wait_for(gate.enter(), timeout=5)


async def test_nodes_never_asked_for_want_of_time_are_not_counted_as_failing():
    from types import SimpleNamespace

    from broker.fanout import MIN_ATTEMPT_SECONDS, RESERVE_SECONDS, FanOut
    from broker.registry import Authority
    from protos.signpost.v1 import node_pb2

    client = SimpleNamespace(authority=Authority("LEEDS", "Leeds", "127.0.0.1:1", "leeds.node.signpost"))
    fanout = FanOut([client], dispatch_window=0)  # type: ignore[list-item]
    for _ in range(10):  # twice the breaker's threshold
        [outcome] = (
            await fanout.search(node_pb2.MatchRequest(search_id="s"), RESERVE_SECONDS + MIN_ATTEMPT_SECONDS / 2)
        ).outcomes
        assert outcome.response is None and outcome.error is not None and outcome.error.reason == "timeout"
    health = fanout.health_of("LEEDS")
    assert health is not None and health.breaker.failures == 0 and health.breaker.allow()
