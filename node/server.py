"""Run one authority's node: gRPC over mutual TLS, NodeService plus grpc.health.v1.

The server requires a client certificate chained to the federation CA; NodeService
and the health service then admit only the broker's (:mod:`node.gate`). Message
sizes are capped so that a hostile or broken peer cannot make the node allocate
without bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from certs.assertions import AssertionVerifier, load_public_key
from certs.revocation import RevocationList
from certs.tls import TLSConfig, rotating_server_credentials, server_certificate_configuration
from core.files import StartupError
from core.lifecycle import stop_on_signals
from node.admin import NodeAdminService
from node.config import NodeConfig
from node.errors import SourceUnusable, StoreError
from node.health import BrokerOnlyHealth
from node.journal import Journal
from node.metrics import MeteredJournal, MeteredRefresher, MetricsServer, NodeMetrics, serve_metrics
from node.notify import Notifier, NotifyMetrics
from node.refresh import Refresher, build_generation, settle_heap
from node.retention import JournalRetention, RecordRetention
from node.service import NodeService
from node.source_sync import SourceSync
from node.store import RecordStore
from node.timing import TIMER
from protos.signpost.v1 import node_pb2, node_pb2_grpc

log = structlog.get_logger("signpost.node")
SERVICE_NAME = node_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name
CONNECTION_AGE_GRACE_SECONDS = 10.0
"""How long calls open on a connection past its max_connection_age may go on. The broker retires its stream
as soon as the connection's GOAWAY arrives and sends nothing more on it (broker.nodeclient), so this only has
to outlast the batches already out: a search's deadline (2 s by default)."""


def join_host_port(host: str, port: int) -> str:
    """gRPC wants IPv6 literals in brackets: '[::]:50051'."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def certificate_expiry(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc.isoformat(timespec="seconds")


class CredentialFiles:
    """The node's TLS files, re-read for new handshakes when any of them changes (rotation without restart)."""

    def __init__(self, tls: TLSConfig, service: NodeService) -> None:
        self.tls, self.service = tls, service
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime for p in (self.tls.cert, self.tls.key, self.tls.ca))

    def initial(self) -> grpc.ServerCertificateConfiguration:
        return server_certificate_configuration(self.tls)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by grpc before each new handshake (on a grpc thread): None keeps the current files."""
        try:
            stamp = self._mtimes()
            if stamp == self._stamp:
                return None
            config = self.initial()
            self.service.certificate_expires = certificate_expiry(self.tls.cert)
        except (OSError, ValueError) as exc:  # half-written files: keep serving with the old ones
            log.error("certificate_reload_failed", error_type=type(exc).__name__)
            return None
        self._stamp = stamp
        log.info("certificate_reloaded", expires=self.service.certificate_expires)
        return config

    def credentials(self) -> grpc.ServerCredentials:
        return rotating_server_credentials(self.initial(), self.fetch)


@dataclass
class RunningNode:
    """A started node server; ``port`` is the bound port (useful with port 0)."""

    config: NodeConfig
    server: grpc.aio.Server
    service: NodeService
    health: health.aio.HealthServicer
    store: RecordStore
    port: int
    refresher: Refresher
    retention: JournalRetention
    metrics: NodeMetrics
    metrics_server: MetricsServer | None = None
    notifier: Notifier | None = None
    """Pushes alerts and digests (``[notify]``); None when the node has no [notify] table."""
    source_sync: SourceSync | None = None
    """Loads ``[source]`` while serving; None when the node is fed by ``signpost node import``."""
    record_retention: RecordRetention | None = None
    """Sweeps out involvements past ``[retention] disclose_ended_years``; None when none is configured."""

    @property
    def address(self) -> str:
        return join_host_port(self.config.listen[0], self.port)

    async def stop(self, grace: float = 1.0) -> None:
        # Say NOT_SERVING first so health-checking clients stop sending, then let in-flight calls drain.
        await self.health.enter_graceful_shutdown()
        self.service.close_streams()  # long-lived streams would otherwise hold the server for all of the grace
        await self.refresher.stop()
        await self.retention.stop()
        if self.record_retention is not None:
            await self.record_retention.stop()
        if self.notifier is not None:
            await self.notifier.stop()
        if self.source_sync is not None:
            await self.source_sync.stop()
        await self.server.stop(grace)
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        self.service.generation.close()
        self.store.close()
        self.service.journal.close()


async def start_node(config: NodeConfig) -> RunningNode:
    """Open the store, build the match index and start serving; the caller must ``stop()``."""
    store = RecordStore(config.store)
    metrics = NodeMetrics()
    source_sync = await _start_up_source(config, store, metrics)
    record_retention = await _start_up_retention(config)
    generation = await asyncio.to_thread(build_generation, store, config.matching)
    settle_heap()
    verifier = AssertionVerifier((load_public_key(p) for p in config.broker_public_keys), authority=config.code)
    revocations = RevocationList(config.tls.crl, config.tls.ca)
    journal = MeteredJournal(config.journal, metrics)
    service = NodeService(
        config.code,
        config.name,
        generation,
        verifier=verifier,
        revocations=revocations,
        journal=journal,
        front_door=config.front_door,
        answer_floor_seconds=config.answer_floor_seconds,
        timer=TIMER,
    )
    service.certificate_expires = certificate_expiry(config.tls.cert)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
        # Connections are recycled, so rotated certificates take over within a bounded time.
        ("grpc.max_connection_age_ms", int(config.max_connection_age_seconds * 1000)),
        ("grpc.max_connection_age_grace_ms", int(CONNECTION_AGE_GRACE_SECONDS * 1000)),
    ]
    server = grpc.aio.server(options=options)
    node_pb2_grpc.add_NodeServiceServicer_to_server(service, server)
    node_pb2_grpc.add_NodeAdminServiceServicer_to_server(NodeAdminService(config.code, journal, revocations), server)
    health_servicer = BrokerOnlyHealth(revocations)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    host, port = config.listen
    try:
        bound = server.add_secure_port(join_host_port(host, port), CredentialFiles(config.tls, service).credentials())
    except RuntimeError:  # grpc's "Failed to bind" (older versions returned 0 instead)
        bound = 0
    if bound == 0:
        if source_sync is not None:
            await source_sync.stop()
        if record_retention is not None:
            await record_retention.stop()
        generation.close()
        store.close()
        journal.close()
        # grpc says no more than that: the usual cause is a port already taken. One sentence, not a traceback.
        raise StartupError(f"listen: cannot listen on {host}:{port} (in use, or not an address of this host)")
    metrics.watch(service)
    try:
        metrics_server = await serve_metrics(metrics, config.metrics_listen) if config.metrics_listen else None
    except OSError as exc:
        if source_sync is not None:
            await source_sync.stop()
        if record_retention is not None:
            await record_retention.stop()
        generation.close()
        store.close()
        journal.close()
        where = ":".join(str(part) for part in config.metrics_listen or ())
        raise StartupError(f"metrics_listen: cannot listen on {where} ({exc.strerror or 'in use'})") from exc
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    refresher = MeteredRefresher(
        store, service, metrics, interval=config.refresh_interval_seconds, settings=config.matching
    )
    refresher.start()
    retention = JournalRetention(journal, keep_days=config.journal_days)
    retention.start()
    if record_retention is not None:
        record_retention.on_expired = refresher.poke
        record_retention.start()
    if source_sync is not None:
        service.source_status = source_sync.outcome
        source_sync.start(on_loaded=refresher.poke)
    if config.front_door is None:
        # Not fatal: the node still answers, and a possible names the authority for the practitioner to ask.
        log.warning(
            "front_door_not_configured",
            authority=config.code,
            detail="a possible will carry no contact; set [front_door] service and phone or email",
        )
    notifier = start_notifier(config, journal, service, metrics)
    log.info("node_started", authority=config.code, port=bound, records=generation.matcher.size)
    return RunningNode(
        config,
        server,
        service,
        health_servicer,
        store,
        bound,
        refresher,
        retention,
        metrics,
        metrics_server,
        notifier=notifier,
        source_sync=source_sync,
        record_retention=record_retention,
    )


def start_notifier(config: NodeConfig, journal: Journal, service: NodeService, metrics: NodeMetrics) -> Notifier | None:
    """Start pushing alerts and digests if ``[notify]`` asks; otherwise say once that nobody is told."""
    if config.notify is None:
        log.info("notify_not_configured", authority=config.code, detail="alerts are pulled with signpost node alerts")
        return None
    notifier = Notifier(
        config.notify,
        journal,
        code=config.code,
        name=config.name,
        # The generation serving now: a practitioner's email as the latest import has it.
        involvements_of=lambda record_id: service.generation.store.involvements(record_id),
        # Its counters in the node's own registry, so the node's one metrics endpoint serves them.
        metrics=NotifyMetrics(registry=metrics.registry),
    )
    notifier.start()
    return notifier


async def _start_up_source(config: NodeConfig, store: RecordStore, metrics: NodeMetrics) -> SourceSync | None:
    """The first load from ``[source]``, before the index is built; a config that does not fit stops the node."""
    if config.source is None:
        return None
    metrics.watch_source()
    # A writer of its own, as `signpost node import` is: the serving connection never sees a half-written load.
    source_sync = SourceSync(
        config.source,
        RecordStore(config.store),
        disclose_ended_years=config.disclose_ended_years,
        observe=metrics.source_loaded,
    )
    try:
        await source_sync.start_up()
    except BaseException as exc:
        await source_sync.stop()
        store.close()
        if isinstance(exc, SourceUnusable):  # a config that does not fit the database: one sentence, no traceback
            raise StartupError(str(exc)) from None
        raise
    return source_sync


async def _start_up_retention(config: NodeConfig) -> RecordRetention | None:
    """Sweep expired involvements out before the first index is built: a node restarted after a long stop
    must not serve, even for a moment, what has expired meanwhile."""
    if config.disclose_ended_years is None:
        return None
    # A writer of its own, like the source's: the serving connection only ever reads.
    record_retention = RecordRetention(RecordStore(config.store), years=config.disclose_ended_years)
    try:
        await record_retention.sweep()
    except StoreError as exc:  # the loop tries again; the node still starts
        log.error("record_expiry_failed", error_type=type(exc.__cause__).__name__)
    return record_retention


async def serve_forever(config: NodeConfig) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully; SIGHUP checks for new data now."""
    node = await start_node(config)
    stop = stop_on_signals(on_hangup=node.refresher.poke)
    await stop.wait()
    log.info("node_stopping", authority=config.code)
    await node.stop(grace=5.0)
