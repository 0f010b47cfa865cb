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
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from broker.breaker import CircuitBreaker
from broker.errors import NodeCallError, NodeCircuitOpen, NodeFailed, NodeRefused, NodeTimeout, NodeUnavailable
from broker.health import HealthSettings, NodeHealth
from broker.registry import Authority
from node.config import TLSConfig
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.broker")
MATCH_METHOD = "/signpost.v1.NodeService/Match"
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
    code, details = exc.code(), (exc.details() or "")
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


def channel_credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.key.read_bytes(),
        certificate_chain=tls.cert.read_bytes(),
    )


class NodeClient:
    """One authority's node behind one channel; requests go out pre-serialised."""

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
        # request_serializer=None: the caller serialises the query once for every authority.
        self._match = self.channel.unary_unary(
            MATCH_METHOD, request_serializer=None, response_deserializer=node_pb2.MatchResponse.FromString
        )
        self._describe = self.channel.unary_unary(
            DESCRIBE_METHOD,
            request_serializer=node_pb2.DescribeRequest.SerializeToString,
            response_deserializer=node_pb2.DescribeResponse.FromString,
        )
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def match(self, request: bytes, timeout: float) -> node_pb2.MatchResponse:
        try:
            response: node_pb2.MatchResponse = await self._match(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        self._check(response)
        return response

    def _check(self, response: node_pb2.MatchResponse) -> None:
        if response.authority_code != self.authority.code:
            raise NodeRefused("answered as another authority")
        for candidate in response.candidates:
            if candidate.band not in BANDS or not 0.0 <= candidate.score <= 1.0:
                raise NodeFailed("malformed answer")

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
        await self.channel.close(grace)


@dataclass(frozen=True)
class Outcome:
    """One authority's part in a search: an answer, or why there is none."""

    authority: Authority
    response: node_pb2.MatchResponse | None
    error: NodeCallError | None
    ms: float


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
                 retry_window: float = RETRY_WINDOW_SECONDS, max_retrying: int = 1) -> None:
        self.settings = settings or HealthSettings()
        self._clock, self._wall_clock, self._sleep = clock, wall_clock, sleep
        self.max_attempts, self.retry_window, self.max_retrying = max_attempts, retry_window, max_retrying
        self._clients: dict[str, NodeClient] = {}
        self._health: dict[str, NodeHealth] = {}
        for client in clients:
            self._add(client)

    def _add(self, client: NodeClient) -> None:
        code = client.authority.code
        self._clients[code] = client
        if code not in self._health or self._health[code].authority != client.authority:
            breaker = CircuitBreaker(failure_threshold=self.settings.failure_threshold,
                                     reset_after=self.settings.reset_after, clock=self._clock)
            self._health[code] = NodeHealth(client.authority, breaker, self.settings, self._wall_clock)

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
        return [c for c in old if self._clients.get(c.authority.code) is not c]

    async def _attempts(self, client: NodeClient, request: bytes, budget_end: float,
                        resign: Callable[[], bytes] | None, health: NodeHealth) -> node_pb2.MatchResponse:
        retry_until = min(budget_end, self._clock() + self.retry_window)
        remaining = budget_end - self._clock()
        if remaining < MIN_ATTEMPT_SECONDS:
            raise NodeTimeout("no time left before the deadline")
        try:
            # The first attempt goes straight out: nearly all succeed, and building a retry
            # controller for each of 150 calls a search cost a tenth of the broker's CPU.
            return await client.match(request, remaining)
        except NodeUnavailable:
            pass
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
        await self._sleep(0.05)
        try:
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
                    return await client.match(request if resign is None else resign(), remaining)
        finally:
            if retrying:
                health.retrying -= 1
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def _one(self, client: NodeClient, request: bytes, deadline_at: float, search_id: str,
                   resign: Callable[[], bytes] | None) -> Outcome:
        started = time.perf_counter()
        health = self._health[client.authority.code]
        response: node_pb2.MatchResponse | None = None
        error: NodeCallError | None = None
        if not health.breaker.allow():
            error = NodeCircuitOpen("circuit open after repeated failures")
        else:
            budget_end = deadline_at - RESERVE_SECONDS
            if health.on_probation:
                budget_end = min(budget_end, self._clock() + self.settings.probation_timeout)
            try:
                response = await self._attempts(client, request, budget_end, resign, health)
            except NodeCallError as exc:
                error = exc
        ms = (time.perf_counter() - started) * 1000
        if error is None:
            health.succeeded(ms)
        elif not isinstance(error, NodeCircuitOpen):
            health.failed(error)
        # 150 authorities answer every search: their answers are debug detail (search_completed has the
        # counts); an authority that did not answer is worth a line at info.
        (log.debug if error is None else log.info)(
            "node_outcome", search_id=search_id, authority=client.authority.code,
            outcome="answered" if error is None else error.reason, ms=round(ms, 1))
        return Outcome(client.authority, response, error, ms)

    async def search(self, request: node_pb2.MatchRequest, deadline_seconds: float,
                     resign: Callable[[], bytes] | None = None) -> list[Outcome]:
        """Ask every node; ``resign`` gives a freshly signed copy of the request for retries."""
        payload = request.SerializeToString()
        deadline_at = self._clock() + deadline_seconds
        jobs = (self._one(c, payload, deadline_at, request.search_id, resign) for c in self.clients)
        return list(await asyncio.gather(*jobs))

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients))


def build_clients(authorities: Iterable[Authority], tls: TLSConfig) -> list[NodeClient]:
    credentials = channel_credentials(tls)
    return [NodeClient(a, credentials) for a in authorities]


def build_fanout(authorities: Iterable[Authority], tls: TLSConfig, *,
                 settings: HealthSettings | None = None) -> FanOut:
    return FanOut(build_clients(authorities, tls), settings=settings)
