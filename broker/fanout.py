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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc
import structlog

from broker.errors import NodeCallError, NodeFailed, NodeRefused, NodeTimeout, NodeUnavailable
from broker.registry import Authority
from node.config import TLSConfig
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.broker")
MATCH_METHOD = "/signpost.v1.NodeService/Match"
DESCRIBE_METHOD = "/signpost.v1.NodeService/Describe"
BANDS = frozenset({"match", "possible"})
# Text grpc puts in UNAVAILABLE when the TLS handshake, not the network, failed.
_HANDSHAKE_MARKERS = ("handshake", "ssl", "certificate", "verification", "unauthenticated", "tsi_", "alert")


def translate(exc: grpc.aio.AioRpcError) -> NodeCallError:
    """The broker's error for a failed node call (the only grpc-to-broker translation)."""
    code, details = exc.code(), (exc.details() or "")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return NodeTimeout("no answer before the deadline")
    if code is grpc.StatusCode.UNAVAILABLE:
        if any(marker in details.lower() for marker in _HANDSHAKE_MARKERS):
            return NodeRefused("TLS handshake failed: certificate not accepted")
        return NodeUnavailable("not reachable")
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return NodeRefused("the node refused the broker")
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
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2_000),
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

    async def close(self) -> None:
        await self.channel.close()


@dataclass(frozen=True)
class Outcome:
    """One authority's part in a search: an answer, or why there is none."""

    authority: Authority
    response: node_pb2.MatchResponse | None
    error: NodeCallError | None
    ms: float


class FanOut:
    """Sends one search to every authority concurrently and waits no longer than the deadline."""

    def __init__(self, clients: Iterable[NodeClient]) -> None:
        self.clients: Sequence[NodeClient] = tuple(clients)

    async def _one(self, client: NodeClient, request: bytes, timeout: float, search_id: str) -> Outcome:
        started = time.perf_counter()
        try:
            response = await client.match(request, timeout)
            error = None
        except NodeCallError as exc:
            response, error = None, exc
        ms = (time.perf_counter() - started) * 1000
        log.info("node_outcome", search_id=search_id, authority=client.authority.code,
                 outcome="answered" if error is None else error.reason, ms=round(ms, 1))
        return Outcome(client.authority, response, error, ms)

    async def search(self, request: node_pb2.MatchRequest, deadline_seconds: float) -> list[Outcome]:
        payload = request.SerializeToString()
        jobs = (self._one(c, payload, deadline_seconds, request.search_id) for c in self.clients)
        return list(await asyncio.gather(*jobs))

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients))


def build_fanout(authorities: Iterable[Authority], tls: TLSConfig) -> FanOut:
    credentials = channel_credentials(tls)
    return FanOut(NodeClient(a, credentials) for a in authorities)
