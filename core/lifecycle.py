"""Stopping a service on SIGINT or SIGTERM: one way for the broker, the nodes and the demo."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from core.files import StartupError


def stop_on_signals(*, on_hangup: Callable[[], None] | None = None) -> asyncio.Event:
    """An event set by SIGINT or SIGTERM on the running loop; SIGHUP calls ``on_hangup`` if given.

    Services wait on the event and then shut down gracefully themselves, so an
    orchestrator's SIGTERM drains in-flight work instead of killing it.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if on_hangup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    return stop


def run_service(main: Coroutine[Any, Any, None]) -> int:
    """Run a service's ``main`` to the end; exit status 0, or 1 if it could not start.

    Once a service's stderr is its JSON log, a start-up failure found late (a port already taken) is one
    more JSON line, ``startup_failed`` with the sentence, rather than plain text in the middle of the log.
    """
    try:
        asyncio.run(main)
    except StartupError as exc:
        structlog.get_logger("signpost").error("startup_failed", error=str(exc))
        return 1
    return 0
