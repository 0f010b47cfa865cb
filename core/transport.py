"""Which of grpc's two TCP transports this process uses: chosen once, before grpc is loaded.

grpc 1.85 carries two implementations of its TCP endpoints: the EventEngine one (its default for
client and listener connections) and the older iomgr one, which grpc still ships and tests. For
Signpost's traffic — a broker holding one long-lived stream to each of 152 nodes, and a process
hosting dozens of node servers, each message a few hundred bytes — the older one costs less CPU
per message on both ends (``signpost bench grpc-floor``, 76 mTLS echo streams, measured A/B in
one session: caller 183–200 → 135–145 µs a message, servers 172–216 → 125–128 µs), because
EventEngine hands each read and write to a thread pool of its own before grpc.aio's poller
thread sees it. Nothing else changes: the same TLS, certificates, options and status codes.

grpc reads ``GRPC_EXPERIMENTS`` once, when it is first loaded, so this must run in each entry point
before anything imports grpc (processes started from there inherit the environment). An operator's
own ``GRPC_EXPERIMENTS`` is left as it is: setting it, even empty, is how to go back to grpc's default.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping

LEAN_EXPERIMENTS = "-event_engine_client,-event_engine_listener"
"""grpc experiments switched off: TCP clients and listeners on the iomgr transport."""


def choose_grpc_transport(environ: MutableMapping[str, str]) -> bool:
    """Ask for the leaner transport unless the operator chose; True if grpc will load with our choice.

    False when grpc was already loaded (too late to choose) or the operator set their own.
    """
    if "GRPC_EXPERIMENTS" in environ or "grpc" in sys.modules:
        return False
    environ["GRPC_EXPERIMENTS"] = LEAN_EXPERIMENTS
    return True
