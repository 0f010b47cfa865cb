"""Admitting the federation broker only: the check NodeService and the health service share.

Reads the caller with :mod:`node.caller`, applies :func:`node.policy.is_broker` and the revocation
list, and aborts the call with PERMISSION_DENIED and a fixed message otherwise. It never says more
to a refused caller than that, and logs only the caller's role.
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from certs.identity import Identity
from certs.revocation import RevocationList
from node import policy
from node.caller import caller_identity

log = structlog.get_logger("signpost.node")


async def require_broker(context: grpc.aio.ServicerContext[Any, Any], revocations: RevocationList) -> Identity:
    """The broker's identity, or the call is aborted (the abort raises, so nothing after it runs)."""
    identity = caller_identity(context)
    if not policy.is_broker(identity):
        log.warning("caller_refused", role=identity.role.value if identity else None)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, policy.BROKER_ONLY)
    assert identity is not None
    if revocations.is_revoked(identity.serial):
        log.warning("caller_refused", role=identity.role.value, reason="revoked")
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, policy.REVOKED)
    return identity
