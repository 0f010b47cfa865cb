"""Whether the broker takes on one more search now, and whether a node's silence is held against it.

The rule a practitioner sees: **admitted means heard**. A search is either refused at once (503
``overloaded``, Retry-After) or it has time to hear from every authority that is up. A search admitted
into a federation that cannot carry it waits the whole deadline and still misses a third of England,
and its timeouts would open the circuits of nodes whose only fault was the broker's machine; refusing
it costs the practitioner a retry a second later.

So admission is decided *before* anything fails, from what is outstanding now (``Admission.admit``):

1. **Work outstanding at the nodes.** Each node's stream (broker.nodeclient's StreamLoad) knows the
   searches in the batch it has out and how long that batch has been out, the searches queued for the
   next batch, and how long its recent batches took per search in them. A new search goes in the next
   batch, so that node answers it after the batch now out (its searches times the time per search, or
   longer if it is already late) and then the searches queued and itself (``node_expected``):
   ``max(oldest_age, out x per_search) + (queued + 1) x per_search``, plus ``per_search`` for each
   search admitted that has not reached the nodes yet (waiting for its audit entry or at the dispatch
   gate: a burst admitted together must see itself). Per search, because once the machine is busy a
   batch costs a node about its searches' worth of work, while a search alone costs a whole round trip.
   The federation's figure (``expected_seconds``) is the slowest of the nodes that are up (circuit
   closed, last call answered, not on probation) — admitted means heard from all of them — except that
   nodes which could not answer within a whole deadline anyway are left out while they are at most
   OUTLIER_SHARE of them: a saturated machine makes every node late together, while one hung node (its
   own fault, its own circuit) must not close the door on everybody else.
2. **The broker's own event-loop lag** (``LoopLag``): how late a timer set every LAG_INTERVAL seconds
   fires. Every step of a search, every node's answer included, waits that long in the broker before
   it is even read. It rises when the broker's process is saturated *or* starved of CPU by the rest of
   a shared machine, which the process's own CPU share would not show, so it is the signal used.
3. **The audit log's commits** (``Waits``): no node is asked until the search's first entry is
   committed, and every awaited entry (refusals' too: past what the machine carries, most of them)
   shares those commits, so the same rule as for a node: the oldest wait under way plus the recent
   wait. That wait has a bound of its own (``audit_timeout``, a quarter of the deadline), past which the
   search fails unheard, so with the lag it must also fit ADMIT_SHARE of that bound.
4. The dispatch window (broker.dispatch): a search may wait that long to go out with others.

A search is admitted only if these add up to at most ADMIT_SHARE of what is left of its deadline (less
than the whole deadline if the request itself waited to be read): the other half is the margin for the
estimate being wrong (load arriving with it, a slower batch than the last five). A search that arrives
when none is under way is always admitted: nothing is ahead of it, and the moving averages a busy spell
left behind are only brought up to date by searches that go.

Behind that, as a backstop, the outcome signal still works: the **AIMD limit** (``AdmissionLimit``) on
searches in flight starts at ``max_searches_in_flight``, is cut by 0.7 for each search that comes back
*congested* (``congested``: many timeouts together and slow answers; the searches already under way
when it was cut count once) and grows back by 0.2 with each search answered in time.

**Whose fault a timeout is** (``excused``). A node that did not answer in time is always reported
(``timeout``, never "no contact") and kept in its error rate, but it is held against its circuit
breaker only when the broker can tell it was the node: not when the search was congested (above), and
never when the broker's own loop lagged by LAG_EXCUSE_SECONDS or more while the search was out (the
answer may have been waiting, unread, in the broker's socket). A busy minute must not open every
circuit and leave the next searches unable to ask anyone; a node that is really down is still found by
the health monitor's polls and by searches on a responsive broker.

Every rule here depends only on counts and timing, never on what is searched for.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

CONGESTED_MIN_TIMEOUTS = 8
"""Fewer timeouts than this in one search are the nodes' own (a small federation never reads as congested)."""
CONGESTED_SHARE = 0.25
"""...and at least this share of the authorities asked must have timed out..."""
CONGESTED_SLOW_SHARE = 0.25
"""...and the authorities that answered must have taken, at the median, this share of the time they had."""

ADMIT_SHARE = 0.5
"""Admit a search only if it is expected to be heard from (almost) everyone within this share of the
deadline. Half: the estimate is of this moment, and the searches admitted with it add to the load it
measured; the other half absorbs an estimate wrong by up to twice."""
OUTLIER_SHARE = 0.1
"""Up to this share of the nodes that could not answer within a whole deadline are each late on their own
account (stuck, or far slower than their peers), and do not keep the door shut for everyone else: their
own timeouts open their circuits. More than this is the machine: saturation slows every node together."""
LAG_INTERVAL = 0.05
"""Seconds between the loop-lag timer's firings: 20 cheap callbacks a second."""
LAG_WEIGHT = 0.3
"""Weight of the latest lateness in LoopLag.recent: a few samples, so one stray pause refuses little."""
LAG_EXCUSE_SECONDS = 0.05
"""A loop this late while a search was out may have read an answer after its deadline: no timeout in
that search counts against a circuit. Well above a healthy loop's lateness (a few ms) and well below
any node's timeout."""
WAIT_WEIGHT = 0.2
"""Weight of the latest wait in Waits.recent: about the last five searches."""
LAG_HISTORY = 256
"""Lateness samples kept: about 13 s at LAG_INTERVAL, longer than any search's deadline."""

Refusal = Literal["backlog", "lag", "audit", "limit"]
"""Why a search was refused as overloaded: the nodes' outstanding work, the broker's loop, the audit log's
commits, the AIMD limit (``signpost_overloaded_searches_total{reason}``)."""


def congested(timeouts: int, asked: int, answer_ms: Sequence[float], budget_ms: float) -> bool:
    """Whether a search's timeouts say the federation as a whole was too busy to answer in time.

    ``answer_ms``: how long each authority that answered took; ``budget_ms``: the time they had.
    """
    if timeouts < CONGESTED_MIN_TIMEOUTS or timeouts < CONGESTED_SHARE * asked:
        return False
    return not answer_ms or statistics.median(answer_ms) >= CONGESTED_SLOW_SHARE * budget_ms


def excused(was_congested: bool, worst_lag: float) -> bool:
    """Whether a search's timeouts are the broker's or the machine's, not each silent node's: no circuit counts them."""
    return was_congested or worst_lag >= LAG_EXCUSE_SECONDS


def node_expected(out: int, queued: int, oldest_age: float, per_search: float) -> float:
    """When a node would answer a search sent now: the batch out, then the queued searches and this one."""
    return max(oldest_age, out * per_search) + (queued + 1) * per_search


def expected_seconds(nodes: Sequence[float], deadline: float) -> float:
    """The federation's expected time to answer a search sent now, from each node's ``node_expected``.

    The slowest node's, except that nodes which could not answer within the whole ``deadline`` anyway
    are left out while they are at most OUTLIER_SHARE of them: those are late on their own account.
    """
    late = sum(expected > deadline for expected in nodes)
    if late > OUTLIER_SHARE * len(nodes):
        return max(nodes)
    return max((expected for expected in nodes if expected <= deadline), default=0.0)


@dataclass(frozen=True)
class Load:
    """What a search admitted now would wait for at the nodes, in seconds (FanOut.load)."""

    nodes: Sequence[tuple[float, float]]
    """Each node's that is up: when it would answer a search sent now (``node_expected``), and its recent
    time per search (for the searches admitted and not yet sent, which will be queued ahead)."""
    waiting: int
    """Searches at the dispatch gate (broker.dispatch): admitted, not yet at any node."""
    lag: float
    """The broker's recent event-loop lateness (``LoopLag.recent``)."""
    window: float
    """The dispatch window a search may wait at the gate (0 when nothing is out)."""


class LoopLag:
    """How late the broker's event loop runs a timer: its own saturation, or starvation by the machine.

    ``start()`` on the running loop sets a timer every LAG_INTERVAL seconds; each firing records how late
    it came (``record``; tests call it directly with a fake clock). ``recent`` is a moving average for
    admission; ``worst_since`` the worst lateness since a search began, counting a timer overdue right
    now (a loop stalled for 300 ms runs the search's timeouts and the late timer in the same turn).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, interval: float = LAG_INTERVAL) -> None:
        self.clock, self.interval = clock, interval
        self.recent = 0.0
        self._samples: deque[tuple[float, float]] = deque(maxlen=LAG_HISTORY)
        self._due: float | None = None
        self._handle: asyncio.TimerHandle | None = None

    def record(self, now: float, late: float) -> None:
        self._samples.append((now, late))
        self.recent += LAG_WEIGHT * (late - self.recent)

    def worst_since(self, began: float) -> float:
        """The most the loop was late since ``began`` (same clock), an overdue timer included."""
        overdue = 0.0 if self._due is None else max(0.0, self.clock() - self._due)
        worst = overdue
        for at, late in reversed(self._samples):
            if at < began:
                break
            worst = max(worst, late)
        return worst

    def start(self) -> None:
        if self._handle is None:
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._due = None

    def _schedule(self) -> None:
        self._due = self.clock() + self.interval
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._fire)

    def _fire(self) -> None:
        now = self.clock()
        self.record(now, max(0.0, now - (self._due or now)))
        self._schedule()


class AdmissionLimit:
    """Additive increase, multiplicative decrease of the searches admitted at once (as TCP does with its window).

    ``admit`` gives each search a ticket (when it was admitted); only a search admitted after the last
    cut can cut again, so the searches already under way when the federation became congested, which
    come back congested together, cost one cut and not one each.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 4,
        backoff: float = 0.7,
        growth: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling, self.floor = ceiling, min(floor, ceiling)
        self.backoff, self.growth = backoff, growth
        self._clock = clock
        self.limit = float(ceiling)
        self._last_cut = float("-inf")
        self.congested = 0
        """Searches that came back congested, in all."""

    def admit(self, in_flight: int) -> float | None:
        """A ticket for one more search while ``in_flight`` are under way, or None: refuse it."""
        return self._clock() if in_flight < int(self.limit) else None

    def completed(self, ticket: float, was_congested: bool) -> None:
        """The search admitted with ``ticket`` has its outcomes: cut the limit if congested, else grow it back."""
        if was_congested:
            self.congested += 1
            if ticket > self._last_cut:
                self._last_cut = self._clock()
                self.limit = max(float(self.floor), self.limit * self.backoff)
        else:
            self.limit = min(float(self.ceiling), self.limit + self.growth)


class Waits:
    """Waits on a step every search shares (the audit log's commits, broker.search_audit's ``commit``):
    what one more would wait for, as for a node: the oldest wait under way plus the recent wait."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting: dict[int, float] = {}
        self._ids = itertools.count()
        self.recent = 0.0

    def begin(self) -> int:
        key = next(self._ids)
        self._waiting[key] = self._clock()
        return key

    def end(self, key: int) -> None:
        began = self._waiting.pop(key, None)
        if began is not None:
            self.recent += WAIT_WEIGHT * (self._clock() - began - self.recent)

    def expected(self) -> float:
        oldest = next(iter(self._waiting.values()), None)
        return self.recent + (0.0 if oldest is None else self._clock() - oldest)


class Admission:
    """The door's decision for each search: ``admit`` gives a ticket, or says why the search is refused.

    ``load`` reads what a search admitted now would wait for at the nodes (FanOut.load); ``audit`` is
    told when each awaited audit entry begins and ends its wait (broker.search_audit); ``deadline``
    is the search deadline and ``audit_timeout`` the first entry's own bound, in seconds. The AIMD limit
    is ``aimd``; ``completed`` tells it each search's outcome.
    """

    def __init__(
        self,
        limit: AdmissionLimit,
        load: Callable[[], Load],
        deadline: float,
        audit_timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.aimd, self._load = limit, load
        self.deadline, self.audit_timeout = deadline, audit_timeout
        self.audit = Waits(clock=clock)
        self.unsent = 0
        """Searches admitted that are not yet at the dispatch gate (waiting for their first audit entry):
        invisible to the nodes' queues, but ahead of the next search all the same."""

    @property
    def limit(self) -> float:
        return self.aimd.limit

    @property
    def congested(self) -> int:
        return self.aimd.congested

    def completed(self, ticket: float, was_congested: bool) -> None:
        self.aimd.completed(ticket, was_congested)

    def admit(self, in_flight: int, time_left: float) -> float | Refusal:
        """A ticket (float) for one more search while ``in_flight`` are under way, or the reason to refuse it.

        ``time_left``: what is left of this search's deadline for the nodes (less, if it waited to get here).
        """
        ticket = self._admit(in_flight, time_left)
        if not isinstance(ticket, str):
            self.unsent += 1
        return ticket

    def sent(self) -> None:
        """An admitted search has reached the dispatch gate, or will never go (see ``unsent``)."""
        self.unsent -= 1

    def _admit(self, in_flight: int, time_left: float) -> float | Refusal:
        if in_flight == 0:
            # Nothing is ahead of a search alone, and it measures the federation afresh: were it refused on
            # what the last busy spell left in the moving averages, nothing would ever update them again.
            return self.aimd.admit(0) or 0.0
        load, audit = self._load(), self.audit.expected()
        if audit + load.lag > ADMIT_SHARE * self.audit_timeout:
            # The first entry has a bound of its own (audit_timeout): past it the search fails, unheard.
            return "audit" if audit >= load.lag else "lag"
        ahead = self.unsent + load.waiting
        backlog = expected_seconds(
            [sent_now + ahead * per_search for sent_now, per_search in load.nodes], self.deadline
        )
        parts: dict[Refusal, float] = {"backlog": backlog + load.window, "lag": load.lag, "audit": audit}
        if sum(parts.values()) > ADMIT_SHARE * min(self.deadline, time_left):
            return max(parts, key=lambda k: parts[k])
        ticket = self.aimd.admit(in_flight)
        return "limit" if ticket is None else ticket
