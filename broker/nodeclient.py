"""Talking to one authority's node: the broker's only module that uses ``grpc.aio``.

A NodeClient holds one long-lived mTLS channel to a node; searches go out on a MatchPipe, batched on one
long-lived MatchStream call, as MatchBatch messages spliced from requests serialised once per search
(batch_piece). Every call has an explicit deadline, and every failure reaches the caller as the broker's
own error (broker.rpc_errors) — never a grpc one, and never "no contact".

Each channel dials the node's address but verifies its certificate against the registered identity
(``grpc.ssl_target_name_override``): a valid certificate of another authority fails the TLS handshake, and
we report that node as refused.

This module must never decide what a failure means for the node's health or for a search: that is
broker.fanout's and broker.health's.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple, TypeAlias

import grpc
import structlog
from grpc_health.v1 import health_pb2

from broker.errors import NodeCallError, NodeFailed, NodeRefused, NodeTimeout, NodeUnavailable
from broker.registry import Authority
from broker.rpc_errors import status_code, translate, translate_status
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.broker")
STREAM_METHOD = "/signpost.v1.NodeService/MatchStream"
DESCRIBE_METHOD = "/signpost.v1.NodeService/Describe"
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
SERVICE = "signpost.v1.NodeService"
BANDS = frozenset({"match", "possible"})

# MatchBatch's wire tags, from the generated descriptor so that a change to the proto cannot leave the
# splice behind: (field number << 3) | wire type, 0 for a varint, 2 for length-delimited bytes.
_BATCH_FIELDS = node_pb2.MatchBatch.DESCRIPTOR.fields_by_name
assert _BATCH_FIELDS["batch_id"].type == _BATCH_FIELDS["batch_id"].TYPE_UINT64
assert _BATCH_FIELDS["requests"].type == _BATCH_FIELDS["requests"].TYPE_BYTES


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BATCH_ID_TAG = _varint(_BATCH_FIELDS["batch_id"].number << 3 | 0)
_REQUEST_TAG = _varint(_BATCH_FIELDS["requests"].number << 3 | 2)


def batch_piece(request: bytes) -> bytes:
    """One serialised MatchRequest as a MatchBatch ``requests`` field, ready to splice into any node's batch.

    Protobuf's wire format lets a message be built by concatenating its fields, so each search is
    serialised (and signed) once and every node's batch is a join of pieces, not a re-encoding. Measured
    (protobuf 7.36, upb; ~290-byte requests): the join costs 0.9 µs a batch of 1 and 4.1 µs of 64, where
    ``MatchBatch(batch_id=..., requests=[...]).SerializeToString()`` costs 2.6 and 5.8 µs — per node, per batch.
    """
    return _REQUEST_TAG + _varint(len(request)) + request


def batch_bytes(batch_id: int, pieces: list[bytes]) -> bytes:
    """A serialised MatchBatch: the same bytes as MatchBatch(batch_id=..., requests=[...]).SerializeToString()."""
    return _BATCH_ID_TAG + _varint(batch_id) + b"".join(pieces)


STREAM_STALL_SECONDS = 10.0
"""A stream whose oldest batch has gone this long unanswered on a live connection is stuck (every search on it
has long passed its deadline): it is cancelled and the next batch opens a new one, so one stuck call cannot
hold a node's searches behind it until the connection is next recycled."""
MAX_BATCH = 64
MAX_BATCH_BYTES = 48 * 1024
"""A batch stays under a node's largest accepted message (``max_message_bytes``, 64 KiB by default): a
search names its whole audience (every authority asked), about 2.4 KB at 152 authorities, so 64 of them
would not fit. A single search larger than this still goes, alone."""
MAX_BATCHES_IN_FLIGHT = 1
"""Per node. Searches that arrive while a batch awaits its answer wait and go out together in the next:
one search at a time goes alone; under load each message carries several, and the busier the machine
the more, which is what lets it keep up (group commit, in effect)."""

BatchCall: TypeAlias = grpc.aio.StreamStreamCall[bytes, node_pb2.MatchBatchResult]
"""A MatchStream call: spliced MatchBatch bytes out, MatchBatchResult messages in."""
Answered = tuple[node_pb2.MatchResponse, float]
"""A node's answer and when it arrived (time.perf_counter)."""
PER_SEARCH_WEIGHT = 0.2
"""Weight of the latest batch in StreamLoad.per_search's moving average: about the last five batches."""


class StreamLoad(NamedTuple):
    """Work outstanding at one node, as its pipe sees it: raw facts; what they mean is broker.admission's.
    (A tuple: admission reads one per node up to every 20 ms, and a frozen dataclass costs five times as much.)"""

    out: int
    """Searches in the batches sent and not yet answered."""
    queued: int
    """Searches waiting for those to be answered, to go in the next batch."""
    oldest_age: float
    """Seconds the oldest unanswered batch has been out (0: none)."""
    per_search: float
    """Recent seconds from a batch's write to its answer, per search in it (moving average; 0 before the first)."""


class _Stream:
    """One MatchStream call and the batches sent on it that await answers."""

    def __init__(self, call: BatchCall) -> None:
        self.call = call
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

    def __init__(
        self,
        open_stream: Callable[[], BatchCall],
        convert: Callable[[node_pb2.MatchOutcome], node_pb2.MatchResponse],
        *,
        max_batch: int = MAX_BATCH,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_in_flight: int = MAX_BATCHES_IN_FLIGHT,
        stall_after: float = STREAM_STALL_SECONDS,
    ) -> None:
        self._open, self._convert, self.stall_after = open_stream, convert, stall_after
        self.max_batch, self.max_in_flight = max_batch, max_in_flight
        self.max_batch_bytes = max_batch_bytes
        self._queue: deque[tuple[bytes, asyncio.Future[Answered]]] = deque()
        self._stream: _Stream | None = None
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer: asyncio.Task[None] | None = None
        self._sent: dict[int, tuple[float, int]] = {}
        """When each unanswered batch was written (time.perf_counter) and its searches, oldest first."""
        self._per_search = 0.0

    def load(self, now: float) -> StreamLoad:
        """What is outstanding at the node now (``now``: time.perf_counter)."""
        sent = self._sent
        if not sent:  # the usual case between batches; admission reads 152 of these up to 50 times a second
            return StreamLoad(0, len(self._queue), 0.0, self._per_search)
        out = 0
        for _, searches in sent.values():
            out += searches
        oldest = next(iter(sent.values()))[0]
        return StreamLoad(out, len(self._queue), now - oldest, self._per_search)

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

    def retire(self) -> None:
        """The connection under the stream is going away (NodeClient saw the node's GOAWAY): later batches
        go on a new stream, and this one is half-closed now if idle, else by its reader once its batches
        are answered — inside the grace the node gives calls open on a recycled connection."""
        stream, self._stream = self._stream, None
        if stream is not None and not stream.in_flight:
            self._spawn(self._quietly(stream.half_close()))

    def _current(self) -> _Stream:
        stream = self._stream
        if stream is not None and stream.in_flight:
            sent = self._sent.get(next(iter(stream.in_flight)))
            if sent is not None and time.perf_counter() - sent[0] > self.stall_after:
                log.warning("node_stream_stalled")
                stream.call.cancel()  # its reader fails what is left on it (all timed out by now)
                self._stream = stream = None
        if stream is None:
            stream = self._stream = _Stream(self._open())
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
                pieces, futures = self._next_batch()
                if not pieces:
                    continue
                batch_id = next(self._ids)
                stream.in_flight[batch_id] = futures
                self._sent[batch_id] = (time.perf_counter(), len(futures))
                try:
                    await stream.call.write(batch_bytes(batch_id, pieces))
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    # The call has ended; its reader reports why to every batch on it. Queue to a new one.
                    if self._stream is stream:
                        self._stream = None

    def _next_batch(self) -> tuple[list[bytes], list[asyncio.Future[Answered]]]:
        """The queued searches that go in the next message: at most max_batch, and max_batch_bytes unless alone."""
        pieces: list[bytes] = []
        futures: list[asyncio.Future[Answered]] = []
        size = 0
        while self._queue and len(pieces) < self.max_batch:
            piece, future = self._queue[0]
            if pieces and size + len(piece) > self.max_batch_bytes:
                break
            self._queue.popleft()
            if not future.done():  # a search that timed out while queued is not sent
                pieces.append(piece)
                futures.append(future)
                size += len(piece)
        return pieces, futures

    async def _read_loop(self, stream: _Stream) -> None:
        error: NodeCallError = NodeUnavailable("the node closed the stream")
        try:
            while True:
                if stream is not self._stream and not stream.in_flight:
                    await stream.half_close()  # retired and drained: let the node end it
                result = await stream.call.read()
                if not isinstance(result, node_pb2.MatchBatchResult):
                    break  # grpc.aio.EOF: the node ended the call
                futures = stream.in_flight.pop(result.batch_id, None)
                sent = self._sent.pop(result.batch_id, None)
                if futures is None or len(futures) != len(result.outcomes):
                    error = NodeFailed("malformed answer")
                    stream.call.cancel()
                    break
                answered_at = time.perf_counter()
                if sent is not None:
                    per_search = (answered_at - sent[0]) / max(1, sent[1])
                    self._per_search += PER_SEARCH_WEIGHT * (per_search - self._per_search)
                for future, outcome in zip(futures, result.outcomes, strict=False):
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
            for batch_id, futures in stream.in_flight.items():
                self._sent.pop(batch_id, None)
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
        stream: grpc.aio.StreamStreamMultiCallable[bytes, node_pb2.MatchBatchResult] = self.channel.stream_stream(
            STREAM_METHOD, request_serializer=None, response_deserializer=node_pb2.MatchBatchResult.FromString
        )
        self._pipe: MatchPipe | None = None
        self._watch: asyncio.Task[None] | None = None
        self._open_stream = lambda: stream()
        self._describe = self.channel.unary_unary(
            DESCRIBE_METHOD,
            request_serializer=node_pb2.DescribeRequest.SerializeToString,
            response_deserializer=node_pb2.DescribeResponse.FromString,
        )
        # grpc.health.v1 called by name: the health package's type stubs leave HealthStub's methods out.
        self._health_check = self.channel.unary_unary(
            HEALTH_CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    def load(self, now: float) -> StreamLoad:
        """Work outstanding at this node (broker.admission reads it; ``now``: time.perf_counter)."""
        return self._pipe.load(now) if self._pipe is not None else StreamLoad(0, 0, 0.0, 0.0)

    def submit(self, piece: bytes, timeout: float | None) -> asyncio.Future[Answered]:
        """Send one search (a batch_piece); the future fails with NodeTimeout if no answer within ``timeout``.

        With ``timeout`` None the caller expires the future itself (FanOut: one timer per search, not per node).
        """
        if self._pipe is None:
            self._pipe = MatchPipe(self._open_stream, self._outcome)
            self._watch = asyncio.get_running_loop().create_task(self._retire_on_goaway(self._pipe))
        future = self._pipe.submit(piece)
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(timeout, expire, future)
            future.add_done_callback(lambda _: timer.cancel())
        return future

    async def _retire_on_goaway(self, pipe: MatchPipe) -> None:
        """Retire the pipe's stream whenever the channel leaves READY.

        A node recycles its connections (max_connection_age, so rotated certificates take over) by sending
        GOAWAY: the channel goes IDLE at once while calls already open carry on until the node's grace ends
        them. Retiring the stream then — half-closed once its batches are answered, the next batch going on
        a new connection — is all a recycle needs, so a stream lives as long as its connection, not a fixed
        few seconds, and nothing here depends on how long the node's grace is. Losing the connection
        (READY to TRANSIENT_FAILURE) retires a stream that is failing anyway. Waiting costs nothing: grpc
        wakes this task only on a change of state.
        """
        ready = grpc.ChannelConnectivity.READY
        state = self.channel.get_state()
        while True:
            await self.channel.wait_for_state_change(state)
            was, state = state, self.channel.get_state()
            if was is ready and state is not ready:
                pipe.retire()

    async def match(self, request: bytes, timeout: float) -> node_pb2.MatchResponse:
        response, _ = await self.submit(batch_piece(request), timeout)
        return response

    def _outcome(self, outcome: node_pb2.MatchOutcome) -> node_pb2.MatchResponse:
        if not outcome.HasField("response"):
            raise translate_status(status_code(outcome.status_code), outcome.status_message)
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

    async def probe(self, timeout: float, *, describe: bool = True) -> dict[str, Any]:
        """The health monitor's check: grpc.health.v1 for the NodeService, then Describe if asked ({} if not)."""
        try:
            status = await self._health_check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        if status.status != health_pb2.HealthCheckResponse.SERVING:
            raise NodeUnavailable("not serving")
        if not describe:
            return {}
        info = await self.describe(timeout)
        return {
            "record_count": info.record_count,
            "data_as_of": info.data_as_of or None,
            "software_version": info.software_version,
            "cert_expires": info.certificate_expires or None,
            # A node fed by [source]: its last load's outcome ("ok"/"failed") and time; None for a CSV-fed node.
            "source_sync": info.source_sync or None,
            "source_sync_at": info.source_sync_at or None,
        }

    async def close(self, grace: float | None = None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self._pipe is not None:
            await self._pipe.close()
        await self.channel.close(grace)


def expire(future: asyncio.Future[Answered]) -> None:
    """Time a node's answer out, unless it came (FanOut: one timer per search, not per node)."""
    if not future.done():
        future.set_exception(NodeTimeout("no answer before the deadline"))
