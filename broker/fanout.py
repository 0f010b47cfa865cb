"""Asking every authority's node at once, over one long-lived mTLS channel each.

This is the one place grpc errors are translated into the broker's own
(:mod:`broker.errors`). Every call has an explicit deadline; an authority that
does not answer in time, cannot be reached, or refuses us is reported as such
— never as "no contact".

Each channel dials the node's address but verifies its certificate against the
registered identity (``grpc.ssl_target_name_override``): a valid certificate of
another authority fails the TLS handshake, and we report that node as refused.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from broker.admission import congested
from broker.breaker import CircuitBreaker
from broker.dispatch import DISPATCH_WINDOW_SECONDS, DispatchGate
from broker.errors import NodeCallError, NodeCircuitOpen, NodeFailed, NodeRefused, NodeTimeout, NodeUnavailable
from broker.health import HealthSettings, NodeHealth, Peers
from broker.registry import Authority
from certs.tls import TLSConfig, channel_credentials
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.broker")
STREAM_METHOD = "/signpost.v1.NodeService/MatchStream"
DESCRIBE_METHOD = "/signpost.v1.NodeService/Describe"
SERVICE = "signpost.v1.NodeService"
BANDS = frozenset({"match", "possible"})
# Text grpc puts in UNAVAILABLE when the peer's certificate was not accepted (either way round).
_REFUSAL_MARKERS = ("certificate", "verif", "alert", "ssl_error_ssl", "unauthenticated", "tsi_", "handshake failed")
# Text of a connection that broke, even mid-handshake ("Handshake read failed (recvmsg:Connection reset
# by peer)"): the node went away, which is worth retrying, not a certificate refusal.
_CONNECTION_MARKERS = ("connection reset", "broken pipe", "socket closed", "connection refused", "recvmsg",
                       "sendmsg", "end of tcp stream", "connection aborted", "failed to connect to remote host")
_EVIDENCE_OF_REFUSAL = ("certificate", "verif", "alert", "ssl_error_ssl")


def translate(exc: grpc.aio.AioRpcError) -> NodeCallError:
    """The broker's error for a failed node call (the only grpc-to-broker translation)."""
    return translate_status(exc.code(), exc.details() or "")


def translate_status(code: grpc.StatusCode, details: str) -> NodeCallError:
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return NodeTimeout("no answer before the deadline")
    if code is grpc.StatusCode.UNAVAILABLE:
        text = details.lower()
        broken = any(m in text for m in _CONNECTION_MARKERS) and not any(m in text for m in _EVIDENCE_OF_REFUSAL)
        if not broken and any(m in text for m in _REFUSAL_MARKERS):
            return NodeRefused("TLS handshake failed: certificate not accepted")
        return NodeUnavailable("not reachable")
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return NodeRefused("the node refused the broker")
    if code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED):
        return NodeUnavailable("the node went away mid-call")  # e.g. it is shutting down
    return NodeFailed(f"the node answered {code.name}")


_STATUS_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def batch_piece(request: bytes) -> bytes:
    """One serialised MatchRequest as MatchBatch field 2, ready to splice into any node's batch.

    Protobuf's wire format lets a message be built by concatenating its fields, so each search is
    serialised (and signed) once and every node's batch is a join of pieces, not a re-encoding.
    """
    return b"\x12" + _varint(len(request)) + request


def _batch_bytes(batch_id: int, pieces: list[bytes]) -> bytes:
    return b"\x08" + _varint(batch_id) + b"".join(pieces)


STREAM_LIFETIME_SECONDS = 5.0
"""A stream is retired (half-closed once its batches are answered) after this long, well inside the grace
a node gives open calls when it recycles a connection (max_connection_age_grace, 10 s), so recycling —
how rotated node certificates take over — never cuts a batch off."""
MAX_BATCH = 64
MAX_BATCHES_IN_FLIGHT = 1
"""Per node. Searches that arrive while a batch awaits its answer wait and go out together in the next:
one search at a time goes alone; under load each message carries several, and the busier the machine
the more, which is what lets it keep up (group commit, in effect)."""

Answered = tuple[node_pb2.MatchResponse, float]
"""A node's answer and when it arrived (time.perf_counter)."""


class _Stream:
    """One MatchStream call and the batches sent on it that await answers."""

    def __init__(self, call: grpc.aio.StreamStreamCall, opened_at: float) -> None:
        self.call, self.opened_at = call, opened_at
        self.in_flight: dict[int, list[asyncio.Future[Answered]]] = {}
        self.half_closed = False

    async def half_close(self) -> None:
        """No more batches from us: the node answers what it has and ends the call."""
        if not self.half_closed:
            self.half_closed = True
            await self.call.done_writing()


class MatchPipe:
    """Searches to one node over one long-lived MatchStream, batched while earlier batches are in flight.

    Each search's future resolves to its own answer or its own error: an outcome the node refused for
    that search alone, or, if the stream breaks, the stream's error — never a silent "no contact".
    """

    def __init__(self, open_stream: Callable[[], grpc.aio.StreamStreamCall],
                 convert: Callable[[node_pb2.MatchOutcome], node_pb2.MatchResponse], *,
                 clock: Callable[[], float] = time.monotonic, lifetime: float = STREAM_LIFETIME_SECONDS,
                 max_batch: int = MAX_BATCH, max_in_flight: int = MAX_BATCHES_IN_FLIGHT) -> None:
        self._open, self._convert, self._clock = open_stream, convert, clock
        self.lifetime, self.max_batch, self.max_in_flight = lifetime, max_batch, max_in_flight
        self._queue: deque[tuple[bytes, asyncio.Future[Answered]]] = deque()
        self._stream: _Stream | None = None
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer: asyncio.Task[None] | None = None

    def submit(self, piece: bytes) -> asyncio.Future[Answered]:
        future: asyncio.Future[Answered] = asyncio.get_running_loop().create_future()
        self._queue.append((piece, future))
        if self._writer is None or self._writer.done():  # done: closed, or ended by an error below
            self._writer = self._spawn(self._write_loop())
        self._wake.set()
        return future

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _current(self) -> _Stream:
        stream, now = self._stream, self._clock()
        if stream is not None and now - stream.opened_at > self.lifetime:
            # Retired: half-closed now if idle, else by its reader once its batches are answered.
            if not stream.in_flight:
                self._spawn(self._quietly(stream.half_close()))
            self._stream = stream = None
        if stream is None:
            stream = self._stream = _Stream(self._open(), now)
            self._spawn(self._read_loop(stream))
        return stream

    async def _write_loop(self) -> None:
        try:
            await self._write_batches()
        except Exception as exc:  # e.g. the channel was closed under us: nothing queued may wait in vain
            log.warning("node_stream_failed", error_type=type(exc).__name__)
            self._fail_queued("the broker could not open a stream to the node")

    def _fail_queued(self, why: str) -> None:
        """Searches not yet sent, and now never to be: unavailable, said at once rather than left to time out."""
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_exception(NodeUnavailable(why))

    async def _write_batches(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                stream = self._current()
                if len(stream.in_flight) >= self.max_in_flight:
                    break  # the reader wakes us when a batch is answered
                pieces: list[bytes] = []
                futures: list[asyncio.Future[Answered]] = []
                while self._queue and len(pieces) < self.max_batch:
                    piece, future = self._queue.popleft()
                    if not future.done():  # a search that timed out while queued is not sent
                        pieces.append(piece)
                        futures.append(future)
                if not pieces:
                    continue
                batch_id = next(self._ids)
                stream.in_flight[batch_id] = futures
                try:
                    await stream.call.write(_batch_bytes(batch_id, pieces))
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    # The call has ended; its reader reports why to every batch on it. Queue to a new one.
                    if self._stream is stream:
                        self._stream = None

    async def _read_loop(self, stream: _Stream) -> None:
        error: NodeCallError = NodeUnavailable("the node closed the stream")
        try:
            while True:
                if stream is not self._stream and not stream.in_flight:
                    await stream.half_close()  # retired and drained: let the node end it
                result = await stream.call.read()
                if result is grpc.aio.EOF:
                    break
                futures = stream.in_flight.pop(result.batch_id, None)
                if futures is None or len(futures) != len(result.outcomes):
                    error = NodeFailed("malformed answer")
                    stream.call.cancel()
                    break
                answered_at = time.perf_counter()
                for future, outcome in zip(futures, result.outcomes):
                    if future.done():
                        continue  # timed out meanwhile
                    try:
                        future.set_result((self._convert(outcome), answered_at))
                    except NodeCallError as exc:
                        future.set_exception(exc)
                if self._queue:
                    self._wake.set()
        except grpc.aio.AioRpcError as exc:
            error = translate(exc)
        except asyncio.InvalidStateError:
            pass  # done_writing on a call that had already ended: the default error says so
        finally:
            if self._stream is stream:
                self._stream = None
            for futures in stream.in_flight.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(type(error)(str(error)))
            stream.in_flight.clear()
            if self._queue:
                self._wake.set()  # queued searches go out on a new stream

    @staticmethod
    async def _quietly(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the call had ended anyway; its reader reports it

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_queued("the broker closed its connection to the node")


class NodeClient:
    """One authority's node behind one channel; searches go out pre-serialised, on a MatchPipe."""

    def __init__(self, authority: Authority, credentials: grpc.ChannelCredentials) -> None:
        self.authority = authority
        self.channel = grpc.aio.secure_channel(
            authority.address,
            credentials,
            options=[
                ("grpc.ssl_target_name_override", authority.identity),
                ("grpc.default_authority", authority.identity),
                ("grpc.max_receive_message_length", 4 * 1024 * 1024),
                ("grpc.keepalive_time_ms", 30_000),
                # Reconnect quickly after a node restarts: searches should not wait out a long backoff.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1_000),
                # One retry layer per call path: FanOut's, which knows the search's deadline.
                ("grpc.enable_retries", 0),
            ],
        )
        # request_serializer=None: batches are spliced from pieces each serialised once (batch_piece).
        stream = self.channel.stream_stream(
            STREAM_METHOD, request_serializer=None, response_deserializer=node_pb2.MatchBatchResult.FromString)
        self._pipe: MatchPipe | None = None
        self._open_stream = lambda: stream()
        self._describe = self.channel.unary_unary(
            DESCRIBE_METHOD,
            request_serializer=node_pb2.DescribeRequest.SerializeToString,
            response_deserializer=node_pb2.DescribeResponse.FromString,
        )
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def submit(self, piece: bytes, timeout: float | None) -> asyncio.Future[Answered]:
        """Send one search (a batch_piece); the future fails with NodeTimeout if no answer within ``timeout``.

        With ``timeout`` None the caller expires the future itself (FanOut: one timer per search, not per node).
        """
        if self._pipe is None:
            self._pipe = MatchPipe(self._open_stream, self._outcome)
        future = self._pipe.submit(piece)
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
            future.add_done_callback(lambda _: timer.cancel())
        return future

    async def match(self, request: bytes, timeout: float) -> node_pb2.MatchResponse:
        response, _ = await self.submit(batch_piece(request), timeout)
        return response

    def _outcome(self, outcome: node_pb2.MatchOutcome) -> node_pb2.MatchResponse:
        if not outcome.HasField("response"):
            code = _STATUS_BY_VALUE.get(outcome.status_code, grpc.StatusCode.UNKNOWN)
            raise translate_status(code, outcome.status_message)
        response = outcome.response
        if response.authority_code != self.authority.code:
            raise NodeRefused("answered as another authority")
        for candidate in response.candidates:
            if candidate.band not in BANDS or not 0.0 <= candidate.score <= 1.0:
                raise NodeFailed("malformed answer")
        return response

    async def describe(self, timeout: float) -> node_pb2.DescribeResponse:
        try:
            response: node_pb2.DescribeResponse = await self._describe(node_pb2.DescribeRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        if response.authority_code != self.authority.code:
            raise NodeRefused("answered as another authority")
        return response

    async def probe(self, timeout: float) -> dict[str, Any]:
        """The health monitor's check: grpc.health.v1 for the NodeService, then Describe."""
        try:
            status = await self._health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        if status.status != health_pb2.HealthCheckResponse.SERVING:
            raise NodeUnavailable("not serving")
        info = await self.describe(timeout)
        return {"record_count": info.record_count, "data_as_of": info.data_as_of or None,
                "software_version": info.software_version, "cert_expires": info.certificate_expires or None}

    async def close(self, grace: float | None = None) -> None:
        if self._pipe is not None:
            await self._pipe.close()
        await self.channel.close(grace)


def _expire(future: asyncio.Future[Answered]) -> None:
    if not future.done():
        future.set_exception(NodeTimeout("no answer before the deadline"))


Judgement = Literal["judged", "congestion", "not_sent"]
"""What a node's outcome says of its health: a failure counts against it (``judged``); a timeout in a
congested search only enters its error rate (``congestion``, broker.admission); a node the search had
no time left to ask, nothing (``not_sent``)."""


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


class FanOut:
    """Sends one search to every authority concurrently and answers by the deadline.

    Per-node timeouts come from the time left; a node that is merely unreachable
    (UNAVAILABLE before any response) is retried with backoff while time remains;
    a refused handshake is not retried. Open circuits are skipped, and nodes on
    probation get at most ``probation_timeout`` of the deadline.
    """

    def __init__(self, clients: Iterable[NodeClient], *, settings: HealthSettings | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, max_attempts: int = 8,
                 retry_window: float = RETRY_WINDOW_SECONDS, max_retrying: int = 1,
                 dispatch_window: float = DISPATCH_WINDOW_SECONDS) -> None:
        self.settings = settings or HealthSettings()
        self.gate = DispatchGate(dispatch_window)
        self._clock, self._wall_clock, self._sleep = clock, wall_clock, sleep
        self.max_attempts, self.retry_window, self.max_retrying = max_attempts, retry_window, max_retrying
        self._clients: dict[str, NodeClient] = {}
        self._health: dict[str, NodeHealth] = {}
        self._peers = Peers(self.settings, clock=clock)
        for client in clients:
            self._add(client)

    def _add(self, client: NodeClient) -> None:
        code = client.authority.code
        self._clients[code] = client
        if code not in self._health or self._health[code].authority != client.authority:
            breaker = CircuitBreaker(failure_threshold=self.settings.failure_threshold,
                                     reset_after=self.settings.reset_after, clock=self._clock)
            self._health[code] = NodeHealth(client.authority, breaker, self.settings, self._wall_clock,
                                            peers=self._peers)

    @property
    def clients(self) -> Sequence[NodeClient]:
        return tuple(self._clients.values())

    def health_of(self, code: str) -> NodeHealth | None:
        return self._health.get(code)

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

    async def _retry(self, client: NodeClient, piece: bytes, budget_end: float,
                     resign: Callable[[], bytes] | None, health: NodeHealth) -> Answered:
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
            return (state.attempt_number + 1 >= self.max_attempts
                    or retry_until - self._clock() < MIN_ATTEMPT_SECONDS + 0.1)

        if give_up(RetryCallState(None, None, (), {})):  # type: ignore[arg-type]
            raise NodeUnavailable("not reachable")
        try:
            await self._sleep(0.05)
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(NodeUnavailable), stop=give_up,
                wait=wait_exponential(multiplier=0.1, max=0.25), sleep=self._sleep, reraise=True,
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

    def _outcome(self, client: NodeClient, health: NodeHealth, search_id: str, started: float,
                 answered: Answered | None, error: BaseException | None, debug: bool = False,
                 judge: Judgement = "judged") -> Outcome:
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
                "node_outcome", search_id=search_id, authority=client.authority.code,
                outcome="answered" if error is None else error.reason, ms=round(ms, 1))
        return Outcome(client.authority, response, error, ms)

    async def search(self, request: node_pb2.MatchRequest, deadline_seconds: float,
                     resign: Callable[[], bytes] | None = None) -> Fanned:
        """Ask every node; ``resign`` gives a freshly signed copy of the request for retries.

        The query is serialised once and every first attempt is a future on the node's MatchPipe — no
        task per node; only the rare node found unreachable gets a task, to retry within the deadline.
        """
        piece = batch_piece(request.SerializeToString())
        search_id = request.search_id
        deadline_at = self._clock() + deadline_seconds
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
        await self._settle(outcomes, waiting, piece, search_id, started, resign, was_congested)
        return Fanned([outcomes[c.authority.code] for c in clients], was_congested)

    @staticmethod
    def _congested(outcomes: dict[str, Outcome], waiting: list[_Waiting], started: float, budget_ms: float) -> bool:
        """broker.admission's rule, on the first attempts: nodes not sent for lack of time count as timeouts."""
        not_sent = sum(isinstance(o.error, NodeTimeout) for o in outcomes.values())
        timeouts = not_sent + sum(isinstance(future.exception(), NodeTimeout) for *_, future in waiting)
        answer_ms = [(future.result()[1] - started) * 1000 for *_, future in waiting if future.exception() is None]
        return congested(timeouts, not_sent + len(waiting), answer_ms, budget_ms)

    async def _first_attempts(self, clients: Sequence[NodeClient], piece: bytes, search_id: str, started: float,
                              deadline_at: float) -> tuple[dict[str, Outcome], list[_Waiting]]:
        """Every node's first attempt, answered or expired by its budget; open circuits answered at once."""
        now = self._clock()
        outcomes: dict[str, Outcome] = {}
        common_end = deadline_at - RESERVE_SECONDS
        waiting: list[_Waiting] = []
        for client in clients:
            health = self._health[client.authority.code]
            if not health.breaker.allow():
                outcomes[client.authority.code] = self._outcome(
                    client, health, search_id, started, None, NodeCircuitOpen("circuit open after repeated failures"))
                continue
            budget_end = deadline_at - RESERVE_SECONDS
            if health.on_probation:
                budget_end = min(budget_end, now + self.settings.probation_timeout)
            if budget_end - now < MIN_ATTEMPT_SECONDS:
                # The search's own time ran out before this node was asked: not the node's failure.
                outcomes[client.authority.code] = self._outcome(
                    client, health, search_id, started, None, NodeTimeout("no time left before the deadline"),
                    judge="not_sent")
                continue
            # Nodes on probation have a timer of their own; the rest share the search's (below).
            waiting.append((client, health, budget_end,
                            client.submit(piece, None if budget_end == common_end else budget_end - now)))
        if waiting:
            await asyncio.wait([future for *_, future in waiting], timeout=max(0.0, common_end - now))
            for *_, future in waiting:
                _expire(future)
        return outcomes, waiting

    async def _settle(self, outcomes: dict[str, Outcome], waiting: list[_Waiting], piece: bytes, search_id: str,
                      started: float, resign: Callable[[], bytes] | None, was_congested: bool) -> None:
        """Each remaining node's outcome into ``outcomes``, retrying (within its budget) the unreachable ones.

        In a congested search (broker.admission) timeouts are reported as ever but not held against each
        node's circuit, or a busy minute would open them all.
        """
        debug = log.is_enabled_for(10)  # once a search: each look at the lazy logger proxy binds anew
        timeout_judgement: Judgement = "congestion" if was_congested else "judged"
        retries: list[tuple[NodeClient, NodeHealth, asyncio.Task[Answered]]] = []
        for client, health, budget_end, future in waiting:
            error = future.exception()
            if isinstance(error, NodeUnavailable):
                retries.append((client, health, asyncio.ensure_future(self._retry(client, piece, budget_end, resign, health))))
            else:
                outcomes[client.authority.code] = self._outcome(
                    client, health, search_id, started, None if error else future.result(), error, debug,
                    judge=timeout_judgement if isinstance(error, NodeTimeout) else "judged")
        if retries:
            await asyncio.wait([task for *_, task in retries])
            for client, health, task in retries:
                error = task.exception()
                outcomes[client.authority.code] = self._outcome(
                    client, health, search_id, started, None if error else task.result(), error)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients))


def build_clients(authorities: Iterable[Authority], tls: TLSConfig) -> list[NodeClient]:
    credentials = channel_credentials(tls)
    return [NodeClient(a, credentials) for a in authorities]


def build_fanout(authorities: Iterable[Authority], tls: TLSConfig, *, settings: HealthSettings | None = None,
                 dispatch_window: float = DISPATCH_WINDOW_SECONDS) -> FanOut:
    return FanOut(build_clients(authorities, tls), settings=settings, dispatch_window=dispatch_window)
