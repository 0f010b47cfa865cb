"""Run the broker: the aiohttp app behind TLS that asks for (but does not demand) a client certificate.

Connections come in through broker.door (caps per address and in all, handshake and read deadlines).
``CERT_OPTIONAL`` lets a caller with no certificate reach the app and get the
contract's 401 JSON; a certificate that does not chain to the federation CA
still fails the handshake, before any HTTP is spoken.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiohttp import web

from broker.app import BrokerRunner, create_app
from broker.config import BrokerConfig
from broker.door import Door, DoorSite
from certs.tls import server_ssl_context
from core.files import StartupError, reason
from core.lifecycle import stop_on_signals

log = structlog.get_logger("signpost.broker")
DRAIN_SECONDS = 5.0


@dataclass
class RunningBroker:
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
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
    site = DoorSite(runner, host, port, ssl_context=server_ssl_context(config.tls), door=Door(config.limits))
    try:
        await site.start()
    except OSError as exc:  # the port is taken, or not ours to bind: one sentence, not a traceback
        await runner.cleanup()
        raise StartupError(f"listen: cannot listen on {host}:{port} ({reason(exc)})") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("broker_started", port=bound)
    return RunningBroker(runner, int(bound))


async def serve_forever(config: BrokerConfig) -> None:
    broker = await start_broker(config)
    stop = stop_on_signals()
    await stop.wait()
    log.info("broker_stopping")
    await broker.stop()
