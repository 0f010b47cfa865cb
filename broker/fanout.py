"""Asking every authority's node at once, and answering by the search's deadline.

FanOut sends each search to every node's NodeClient (broker.nodeclient), gives each node its share of the
deadline, retries a node found unreachable while time remains, skips open circuits, and records what each
outcome says of the node's health (broker.health). An authority that does not answer in time, cannot be
reached, or refuses us is reported as such — never as "no contact".

This module must never talk grpc itself: calls and their errors are broker.nodeclient's and
broker.rpc_errors'.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from broker.admission import Load, LoopLag, congested, excused, node_expected
from broker.breaker import BreakerState, CircuitBreaker
from broker.dispatch import DISPATCH_WINDOW_SECONDS, DispatchGate
from broker.errors import NodeCallError, NodeCircuitOpen, NodeTimeout, NodeUnavailable
from broker.health import HealthSettings, NodeHealth, Peers
from broker.nodeclient import Answered, NodeClient, batch_piece, expire
from broker.registry import Authority
from certs.tls import TLSConfig, channel_credentials
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.broker")


Judgement = Literal["judged", "congestion", "not_sent"]
"""What a node's outcome says of its health: a failure counts against it (``judged``); a timeout the
broker cannot blame on the node — a congested search, or the broker's own loop lagging — only enters
its error rate (``congestion``, broker.admission's ``excused``); a node the search had no time left to
ask, nothing (``not_sent``)."""


@dataclass(frozen=True)
class Fanned:
    """Every authority's outcome of one search, in registry order, and whether the search was congested."""

    outcomes: list[Outcome]
    congested: bool


@dataclass(frozen=True)
class Outcome:
    """One authority's part in a search: an answer, or why there is none."""

    authority: Authority
    response: node_pb2.MatchResponse | None
    error: NodeCallError | None
    ms: float


_Waiting = tuple[NodeClient, NodeHealth, float, asyncio.Future[Answered]]
"""A first attempt under way: the node, its health, the end of its budget, the answer to come."""

RESERVE_SECONDS = 0.05
"""Of a search's deadline, kept back for assembling, auditing and sending the answer."""
RETRY_WINDOW_SECONDS = 1.0
"""How long an unreachable node is retried within one search: long enough to outlast grpc's reconnect
backoff and a quick restart, short enough that a dead node does not hold every search to the deadline
before its circuit opens."""
MIN_ATTEMPT_SECONDS = 0.02
"""Do not start (or retry) a call with less time than this left."""
LOAD_INTERVAL = 0.02
"""FanOut.load reads every node's stream at most this often: a look at 152 nodes costs about 0.25 ms of
CPU (measured on the development machine), so at most 12 ms a second however many searches arrive."""


class FanOut:
    """Sends one search to every authority concurrently and answers by the deadline.

    Per-node timeouts come from the time left; a node that is merely unreachable
    (UNAVAILABLE before any response) is retried with backoff while time remains;
    a refused handshake is not retried. Open circuits are skipped, and nodes on
    probation get at most ``probation_timeout`` of the deadline.
    """

    def __init__(
        self,
        clients: Iterable[NodeClient],
        *,
        settings: HealthSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_attempts: int = 8,
        retry_window: float = RETRY_WINDOW_SECONDS,
        max_retrying: int = 1,
        dispatch_window: float = DISPATCH_WINDOW_SECONDS,
    ) -> None:
        self.settings = settings or HealthSettings()
        self.gate = DispatchGate(dispatch_window)
        self._clock, self._wall_clock, self._sleep = clock, wall_clock, sleep
        self.max_attempts, self.retry_window, self.max_retrying = max_attempts, retry_window, max_retrying
        self._clients: dict[str, NodeClient] = {}
        self._health: dict[str, NodeHealth] = {}
        self._peers = Peers(self.settings, clock=clock)
        self.lag = LoopLag(clock=clock)
        """The broker's event-loop lateness: started with the app (broker.app), read by admission and _settle."""
        self._nodes: tuple[tuple[float, float], ...] = ()
        self._nodes_at = float("-inf")
        for client in clients:
            self._add(client)

    def _add(self, client: NodeClient) -> None:
        code = client.authority.code
        self._clients[code] = client
        if code not in self._health or self._health[code].authority != client.authority:
            breaker = CircuitBreaker(
                failure_threshold=self.settings.failure_threshold,
                reset_after=self.settings.reset_after,
                clock=self._clock,
            )
            self._health[code] = NodeHealth(
                client.authority, breaker, self.settings, self._wall_clock, peers=self._peers
            )

    @property
    def clients(self) -> Sequence[NodeClient]:
        return tuple(self._clients.values())

    def health_of(self, code: str) -> NodeHealth | None:
        return self._health.get(code)

    def load(self) -> Load:
        """What a search admitted now would wait for (broker.admission): the nodes' outstanding work, the loop's
        lag and the dispatch window. The nodes counted are those up: circuit closed, last call answered, not on
        probation."""
        now = self._clock()
        if now - self._nodes_at >= LOAD_INTERVAL:
            at = time.perf_counter()
            up = [
                client.load(at)
                for code, client in self._clients.items()
                if (health := self._health[code]).reachable
                and not health.probation
                and health.breaker.state is BreakerState.CLOSED
            ]
            self._nodes = tuple((node_expected(s.out, s.queued, s.oldest_age, s.per_search), s.per_search) for s in up)
            self._nodes_at = now
        return Load(self._nodes, self.gate.waiting, self.lag.recent, self.gate.window if self.gate.busy else 0.0)

    def replace(self, clients: Iterable[NodeClient]) -> list[NodeClient]:
        """Swap in a new set of clients (registry reload, credential rotation); return the old ones to close."""
        old = list(self._clients.values())
        self._clients = {}
        for client in clients:
            self._add(client)
        for code in set(self._health) - set(self._clients):
            del self._health[code]
            self._peers.members.pop(code, None)
        return [c for c in old if self._clients.get(c.authority.code) is not c]

    async def _retry(
        self,
        client: NodeClient,
        piece: bytes,
        budget_end: float,
        resign: Callable[[], bytes] | None,
        health: NodeHealth,
    ) -> Answered:
        """After a first attempt found the node unreachable: retry within the window, if no other search is."""
        retry_until = min(budget_end, self._clock() + self.retry_window)
        retrying = False

        def give_up(state: RetryCallState) -> bool:
            nonlocal retrying
            if not retrying:
                # One search at a time rides out a blip for the node; the others in flight fail fast, so
                # a node that has died costs one search the retry window, not every search.
                if health.retrying >= self.max_retrying:
                    return True
                health.retrying, retrying = health.retrying + 1, True
            # Stop while an attempt would still have time to answer, so the reason stays "unavailable".
            return (
                state.attempt_number + 1 >= self.max_attempts or retry_until - self._clock() < MIN_ATTEMPT_SECONDS + 0.1
            )

        if give_up(RetryCallState(None, None, (), {})):  # type: ignore[arg-type]
            raise NodeUnavailable("not reachable")
        try:
            await self._sleep(0.05)
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(NodeUnavailable),
                stop=give_up,
                wait=wait_exponential(multiplier=0.1, max=0.25),
                sleep=self._sleep,
                reraise=True,
            ):
                with attempt:
                    remaining = budget_end - self._clock()
                    if remaining < MIN_ATTEMPT_SECONDS:
                        raise NodeTimeout("no time left before the deadline")
                    # A retry carries a fresh assertion: if the first attempt did reach the node, the same
                    # nonce again would (rightly) be refused as a replay.
                    return await client.submit(batch_piece(resign()) if resign else piece, remaining)
        finally:
            if retrying:
                health.retrying -= 1
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _outcome(
        self,
        client: NodeClient,
        health: NodeHealth,
        search_id: str,
        started: float,
        answered: Answered | None,
        error: BaseException | None,
        debug: bool = False,
        judge: Judgement = "judged",
    ) -> Outcome:
        """One node's part, and what it says of the node's health (see Judgement)."""
        if error is not None and not isinstance(error, NodeCallError):
            raise error
        response = answered[0] if answered else None
        ms = ((answered[1] if answered else time.perf_counter()) - started) * 1000
        if error is None:
            health.succeeded(ms)
        elif isinstance(error, NodeCircuitOpen):
            pass
        elif judge == "judged":
            health.failed(error)
        elif judge == "congestion":
            health.missed_in_congestion(error)
        else:
            health.breaker.release()  # never sent: a half-open circuit's probe goes to the next search
        # 150 authorities answer every search: their answers are debug detail (search_completed has the
        # counts); an authority that did not answer is worth a line at info.
        if error is not None or debug:  # skip building 150 debug events per search when nobody reads them
            (log.debug if error is None else log.info)(
                "node_outcome",
                search_id=search_id,
                authority=client.authority.code,
                outcome="answered" if error is None else error.reason,
                ms=round(ms, 1),
            )
        return Outcome(client.authority, response, error, ms)

    async def search(
        self, request: node_pb2.MatchRequest, deadline_seconds: float, resign: Callable[[], bytes] | None = None
    ) -> Fanned:
        """Ask every node; ``resign`` gives a freshly signed copy of the request for retries.

        The query is serialised once and every first attempt is a future on the node's MatchPipe — no
        task per node; only the rare node found unreachable gets a task, to retry within the deadline.
        """
        piece = batch_piece(request.SerializeToString())
        search_id = request.search_id
        began = self._clock()
        deadline_at = began + deadline_seconds
        # Under load, wait for the dispatch out to be answered and go with the searches that arrive
        # meanwhile (broker.dispatch); the wait is part of the deadline, not of any node's latency.
        # Leave once the first attempts are in: retries of an unreachable node hold up nobody else.
        group = await self.gate.enter()
        started, clients = time.perf_counter(), self.clients
        budget_ms = (deadline_at - RESERVE_SECONDS - self._clock()) * 1000
        try:
            outcomes, waiting = await self._first_attempts(clients, piece, search_id, started, deadline_at)
        finally:
            self.gate.leave(group)
        was_congested = self._congested(outcomes, waiting, started, budget_ms)
        blameless = excused(was_congested, self.lag.worst_since(began))
        await self._settle(outcomes, waiting, piece, search_id, started, resign, blameless)
        return Fanned([outcomes[c.authority.code] for c in clients], was_congested)

    @staticmethod
    def _congested(outcomes: dict[str, Outcome], waiting: list[_Waiting], started: float, budget_ms: float) -> bool:
        """broker.admission's rule, on the first attempts: nodes not sent for lack of time count as timeouts."""
        not_sent = sum(isinstance(o.error, NodeTimeout) for o in outcomes.values())
        timeouts, answer_ms = not_sent, []
        for *_, future in waiting:
            error = future.exception()
            if error is None:
                answer_ms.append((future.result()[1] - started) * 1000)
            elif isinstance(error, NodeTimeout):
                timeouts += 1
        return congested(timeouts, not_sent + len(waiting), answer_ms, budget_ms)

    async def _first_attempts(
        self, clients: Sequence[NodeClient], piece: bytes, search_id: str, started: float, deadline_at: float
    ) -> tuple[dict[str, Outcome], list[_Waiting]]:
        """Every node's first attempt, answered or expired by its budget; open circuits answered at once."""
        now = self._clock()
        outcomes: dict[str, Outcome] = {}
        common_end = deadline_at - RESERVE_SECONDS
        probation_end = min(common_end, now + self.settings.probation_timeout)
        self._peers.refresh()  # once a search, not once a node: each node's probation is read below
        health_of = self._health
        waiting: list[_Waiting] = []
        for client in clients:
            health = health_of[client.authority.code]
            if not health.breaker.allow():
                outcomes[client.authority.code] = self._outcome(
                    client, health, search_id, started, None, NodeCircuitOpen("circuit open after repeated failures")
                )
                continue
            budget_end = probation_end if health.probation else common_end
            if budget_end - now < MIN_ATTEMPT_SECONDS:
                # The search's own time ran out before this node was asked: not the node's failure.
                outcomes[client.authority.code] = self._outcome(
                    client,
                    health,
                    search_id,
                    started,
                    None,
                    NodeTimeout("no time left before the deadline"),
                    judge="not_sent",
                )
                continue
            # Nodes on probation have a timer of their own; the rest share the search's (below).
            waiting.append(
                (
                    client,
                    health,
                    budget_end,
                    client.submit(piece, None if budget_end == common_end else budget_end - now),
                )
            )
        if waiting:
            await asyncio.wait([future for *_, future in waiting], timeout=max(0.0, common_end - now))
            for *_, future in waiting:
                expire(future)
        return outcomes, waiting

    async def _settle(
        self,
        outcomes: dict[str, Outcome],
        waiting: list[_Waiting],
        piece: bytes,
        search_id: str,
        started: float,
        resign: Callable[[], bytes] | None,
        blameless: bool,
    ) -> None:
        """Each remaining node's outcome into ``outcomes``, retrying (within its budget) the unreachable ones.

        In a congested search, or one during which the broker's loop lagged (broker.admission's ``excused``),
        timeouts are reported as ever but not held against each node's circuit, or a busy minute would
        open them all.
        """
        debug = log.is_enabled_for(10)  # once a search: each look at the lazy logger proxy binds anew
        timeout_judgement: Judgement = "congestion" if blameless else "judged"
        retries: list[tuple[NodeClient, NodeHealth, asyncio.Task[Answered]]] = []
        answered_at = self._wall_clock()  # once a search: every answer below came within it
        for client, health, budget_end, future in waiting:
            error = future.exception()
            if error is None and not debug:
                # The usual case, 150 times a search: straight to the node's record and its outcome.
                response, at = future.result()
                ms = (at - started) * 1000
                health.succeeded(ms, answered_at)
                outcomes[client.authority.code] = Outcome(client.authority, response, None, ms)
            elif isinstance(error, NodeUnavailable):
                retries.append(
                    (client, health, asyncio.ensure_future(self._retry(client, piece, budget_end, resign, health)))
                )
            else:
                outcomes[client.authority.code] = self._outcome(
                    client,
                    health,
                    search_id,
                    started,
                    None if error else future.result(),
                    error,
                    debug,
                    judge=timeout_judgement if isinstance(error, NodeTimeout) else "judged",
                )
        if retries:
            await asyncio.wait([task for *_, task in retries])
            for client, health, task in retries:
                error = task.exception()
                outcomes[client.authority.code] = self._outcome(
                    client,
                    health,
                    search_id,
                    started,
                    None if error else task.result(),
                    error,
                    judge=timeout_judgement if isinstance(error, NodeTimeout) else "judged",
                )

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients))


def build_clients(authorities: Iterable[Authority], tls: TLSConfig) -> list[NodeClient]:
    credentials = channel_credentials(tls)
    return [NodeClient(a, credentials) for a in authorities]


def build_fanout(
    authorities: Iterable[Authority],
    tls: TLSConfig,
    *,
    settings: HealthSettings | None = None,
    dispatch_window: float = DISPATCH_WINDOW_SECONDS,
) -> FanOut:
    return FanOut(build_clients(authorities, tls), settings=settings, dispatch_window=dispatch_window)
