"""Picking up operators' changes without a restart: the registry and the broker's own certificate.

Every ``interval`` seconds the watcher compares modification times. A changed
registry is re-read (a broken one is refused with an error log and the last
good registry kept) and the fan-out's clients are replaced: unchanged
authorities keep their warm channels, new or moved ones get new channels,
removed ones are closed once searches in flight have had time to finish. A
changed broker certificate, key or CA rebuilds every channel with the new
credentials the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import structlog

from broker.config import BrokerConfig
from broker.fanout import FanOut
from broker.nodeclient import NodeClient
from broker.registry import load_registry
from certs.tls import channel_credentials
from core.config import ConfigError
from core.tasks import BackgroundLoop

log = structlog.get_logger("signpost.broker")


def _mtimes(*paths: Path) -> tuple[float, ...]:
    stamps = []
    for path in paths:
        try:
            stamps.append(path.stat().st_mtime)
        except OSError:
            stamps.append(-1.0)
    return tuple(stamps)


class ConfigWatcher:
    def __init__(
        self,
        config: BrokerConfig,
        fanout: FanOut,
        *,
        interval: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config, self.fanout, self.interval, self._sleep = config, fanout, interval, sleep
        self._registry_stamp = _mtimes(config.registry)
        self._tls_stamp = _mtimes(config.tls.cert, config.tls.key, config.tls.ca)
        self._credentials: grpc.ChannelCredentials | None = None
        self._loop = BackgroundLoop("signpost-config-watcher", self._run)
        self.start = self._loop.start
        self._closing: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        await self._loop.stop()
        for task in self._closing:
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._sleep(self.interval)
            self.check()

    def check(self) -> bool:
        """Apply any change now; True if the fan-out was changed."""
        registry_stamp = _mtimes(self.config.registry)
        tls_stamp = _mtimes(self.config.tls.cert, self.config.tls.key, self.config.tls.ca)
        rotate = tls_stamp != self._tls_stamp
        if registry_stamp == self._registry_stamp and not rotate:
            return False
        self._registry_stamp, self._tls_stamp = registry_stamp, tls_stamp
        try:
            authorities = load_registry(self.config.registry)
            if rotate or self._credentials is None:
                self._credentials = channel_credentials(self.config.tls)
        except (ConfigError, OSError, ValueError) as exc:
            log.error("reload_refused", reason=str(exc))
            return False
        current = {c.authority.code: c for c in self.fanout.clients}
        clients = []
        for authority in authorities:
            existing = current.get(authority.code)
            keep = existing is not None and existing.authority == authority and not rotate
            clients.append(existing if keep and existing is not None else NodeClient(authority, self._credentials))
        retired = self.fanout.replace(clients)
        log.info("registry_applied", authorities=len(clients), replaced=len(retired), rotated=rotate)
        self._close_later(retired)
        return True

    def _close_later(self, clients: list[NodeClient]) -> None:
        # Searches already under way hold these clients until their deadline: close after it.
        grace = self.config.search_deadline_seconds + 1.0

        async def close() -> None:
            await self._sleep(grace)
            await asyncio.gather(*(c.close() for c in clients))

        task = asyncio.create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
