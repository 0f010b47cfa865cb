"""Run one authority's node: gRPC over mutual TLS, NodeService plus grpc.health.v1.

The server requires a client certificate chained to the federation CA; the
service then admits only the broker's. Message sizes are capped so that a
hostile or broken peer cannot make the node allocate without bound.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from certs.assertions import AssertionVerifier, load_public_key
from certs.revocation import RevocationList
from node.admin import NodeAdminService
from node.config import NodeConfig, TLSConfig
from node.journal import Journal
from node.matching import build_matcher
from node.service import NodeService
from node.store import RecordStore
from protos.signpost.v1 import node_pb2, node_pb2_grpc

log = structlog.get_logger("signpost.node")
SERVICE_NAME = node_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name


def join_host_port(host: str, port: int) -> str:
    """gRPC wants IPv6 literals in brackets: '[::]:50051'."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=tls.ca.read_bytes(),
        require_client_auth=True,
    )


@dataclass
class RunningNode:
    """A started node server; ``port`` is the bound port (useful with port 0)."""

    config: NodeConfig
    server: grpc.aio.Server
    service: NodeService
    health: health.aio.HealthServicer
    store: RecordStore
    port: int

    @property
    def address(self) -> str:
        return join_host_port(self.config.listen[0], self.port)

    async def stop(self, grace: float = 1.0) -> None:
        # Say NOT_SERVING first so health-checking clients stop sending before the port closes.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self.store.close()
        self.service.journal.close()


async def start_node(config: NodeConfig) -> RunningNode:
    """Open the store, build the match index and start serving; the caller must ``stop()``."""
    store = RecordStore(config.store)
    matcher = build_matcher(store.identities())
    verifier = AssertionVerifier(load_public_key(p) for p in config.broker_public_keys)
    revocations = RevocationList(config.tls.crl, config.tls.ca)
    journal = Journal(config.journal)
    service = NodeService(config.code, config.name, matcher, store, verifier=verifier, revocations=revocations,
                          journal=journal, answer_floor_seconds=config.answer_floor_seconds)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    node_pb2_grpc.add_NodeServiceServicer_to_server(service, server)
    node_pb2_grpc.add_NodeAdminServiceServicer_to_server(NodeAdminService(config.code, journal, revocations), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    host, port = config.listen
    bound = server.add_secure_port(join_host_port(host, port), server_credentials(config.tls))
    if bound == 0:
        store.close()
        raise OSError(f"node {config.code}: cannot listen on {host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("node_started", authority=config.code, port=bound, records=matcher.size)
    return RunningNode(config, server, service, health_servicer, store, bound)


async def serve_forever(config: NodeConfig) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully."""
    node = await start_node(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("node_stopping", authority=config.code)
    await node.stop(grace=5.0)
