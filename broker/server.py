"""Run the broker: the aiohttp app behind TLS that asks for (but does not demand) a client certificate.

Connections come in through broker.door (caps per address and in all, handshake and read deadlines).
``CERT_OPTIONAL`` lets a caller with no certificate reach the app and get the
contract's 401 JSON; a certificate that does not chain to the federation CA
still fails the handshake, before any HTTP is spoken. A renewed certificate
and key are loaded into the HTTPS context while running (:class:`ServingCertificate`),
as broker.watcher does for the channels to nodes: no restart.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from broker.app import BrokerRunner, create_app
from broker.config import BrokerConfig
from broker.door import Door, DoorSite
from certs.tls import server_ssl_context
from core.files import StartupError, reason
from core.lifecycle import stop_on_signals
from core.tasks import BackgroundLoop

log = structlog.get_logger("signpost.broker")
DRAIN_SECONDS = 5.0
YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations (less deallocations) between two of the cycle collector's young passes: Python's default of 700
ran one about ten times a search over 152 nodes, each walking every object of the searches in flight."""


class ServingCertificate:
    """Loads the broker's certificate and key into its HTTPS context again when either file changes.

    ``SSLContext.load_cert_chain`` on a live context applies to every later handshake; connections open
    keep theirs. A half-copied pair (the certificate new, the key not yet) fails to load: the old pair
    stays and the next check tries again, so renewal is just copying the two files in.
    """

    def __init__(self, context: ssl.SSLContext, cert: Path, key: Path, interval: float) -> None:
        self.context, self.cert, self.key, self.interval = context, cert, key, interval
        self._stamp = self._mtimes()
        self._loop = BackgroundLoop("signpost-serving-certificate", self._run)

    def _mtimes(self) -> tuple[float, float]:
        try:
            return self.cert.stat().st_mtime, self.key.stat().st_mtime
        except OSError:
            return -1.0, -1.0

    def check(self) -> bool:
        """Reload now if the files changed; True if the context now serves the new pair."""
        stamp = self._mtimes()
        if stamp == self._stamp:
            return False
        try:
            self.context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            log.error("certificate_reload_failed", error_type=type(exc).__name__)
            return False
        self._stamp = stamp
        log.info("certificate_reloaded", which="https")
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


@dataclass
class RunningBroker:
    runner: web.AppRunner
    port: int
    serving: ServingCertificate | None = field(default=None)

    async def stop(self) -> None:
        if self.serving is not None:
            await self.serving.stop()
        await self.runner.cleanup()


async def start_broker(config: BrokerConfig, app: web.Application | None = None) -> RunningBroker:
    # In-flight searches get this long to finish when the broker is stopped (SIGTERM). aiohttp closes a
    # connection still waiting for a whole request head when its keep-alive timer runs out, from the handshake
    # on: that timer is the header-read timeout (broker.door).
    # BrokerRunner: aiohttp's own protocol-error pages (which quote the request line) become the contract's JSON.
    runner = BrokerRunner(
        app or create_app(config),
        access_log=None,
        shutdown_timeout=DRAIN_SECONDS,
        keepalive_timeout=config.limits.header_read_timeout_seconds,
    )
    await runner.setup()
    host, port = config.listen
    context = server_ssl_context(config.tls)
    site = DoorSite(runner, host, port, ssl_context=context, door=Door(config.limits))
    try:
        await site.start()
    except OSError as exc:  # the port is taken, or not ours to bind: one sentence, not a traceback
        await runner.cleanup()
        raise StartupError(f"listen: cannot listen on {host}:{port} ({reason(exc)})") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    serving = ServingCertificate(context, config.tls.cert, config.tls.key, config.reload_interval_seconds)
    serving.start()
    log.info("broker_started", port=bound)
    return RunningBroker(runner, int(bound), serving)


def settle_heap() -> None:
    """Put what start-up built beyond the cycle collector, and let its young passes run less often.

    Process-wide, so called by whoever owns the process once the broker has started (serve_forever, the
    benchmarks' broker process), never by start_broker itself: a test or the demo runs brokers beside
    other work in one process.

    A broker's long-lived objects (modules, 152 channels, the app) were walked by every full pass — about
    100 ms each — and the default young threshold ran a pass about ten times a search: together about a
    seventh of a busy broker's CPU (gc.callbacks, 152 nodes on loopback). ``gc.freeze`` moves what exists now
    to a generation the collector never scans (freed by reference counting as ever); cycles made later are
    collected as before, only in bigger, rarer passes. A frozen object later dropped in a reference cycle is
    never freed: at most the node clients a registry reload or certificate rotation retires, a few KB each.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


async def serve_forever(config: BrokerConfig) -> None:
    broker = await start_broker(config)
    settle_heap()  # the process is the broker's alone (not so for start_broker in a test or the demo)
    stop = stop_on_signals()
    await stop.wait()
    log.info("broker_stopping")
    await broker.stop()
