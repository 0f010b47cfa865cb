"""Background loops that start with a service and stop cleanly with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundLoop:
    """Runs ``body`` as one named task from ``start()`` until ``stop()`` cancels and awaits it.

    Shared by the broker's health monitor and config watcher and the node's data refresher,
    so each says only what it does on every turn.
    """

    def __init__(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name, self._body = name, body
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop; starting it again replaces the running one (e.g. after a settings change)."""
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.create_task(self._body(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
