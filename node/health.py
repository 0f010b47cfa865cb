"""grpc.health.v1 for a node, answered to the broker's certificate only.

The broker's health monitor polls it to learn which nodes are serving and to close a breaker; nobody
else needs it. Answered to any federation certificate, it let a practitioner map which authorities
are up and notice when one restarts. Check and Watch are refused like NodeService's calls
(:mod:`node.gate`): not the broker, or a revoked broker, gets PERMISSION_DENIED. Setting a status
(serving, graceful shutdown) is grpc_health's own.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from certs.revocation import RevocationList
from node.gate import require_broker


class BrokerOnlyHealth(health.aio.HealthServicer):
    """grpc_health's servicer behind the broker-only gate."""

    def __init__(self, revocations: RevocationList) -> None:
        super().__init__()
        self.revocations = revocations

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        await require_broker(context, self.revocations)
        return await super().Check(request, context)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await require_broker(context, self.revocations)
        await super().Watch(request, context)
