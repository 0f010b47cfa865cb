"""NodeAdminService: an authority's own staff review their node's journal over mTLS.

Only a certificate with role ``node-admin`` whose id ends ``@<this authority's
code>`` may call; the broker and other authorities' admins are refused. The
journal never leaves the node any other way.
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from certs.identity import Role
from certs.revocation import RevocationList
from node.caller import caller_identity
from node.journal import Journal, JournalRow
from protos.signpost.v1 import node_pb2, node_pb2_grpc

log = structlog.get_logger("signpost.node")


def entry_of(row: JournalRow) -> node_pb2.JournalEntry:
    return node_pb2.JournalEntry(
        id=row.id,
        time=row.time,
        search_id=row.search_id,
        kind=row.kind,
        record_id=row.record_id or "",
        band=row.band or "",
        requester=node_pb2.Requester(
            user_id=row.requester_id,
            name=row.requester_name,
            organisation=row.requester_organisation,
            role=row.requester_role,
            email=row.requester_email,
        ),
        purpose=node_pb2.Purpose(code=row.purpose_code, justification=row.justification),
        acknowledged_at=row.acknowledged_at or "",
        acknowledged_by=row.acknowledged_by or "",
    )


class NodeAdminService(node_pb2_grpc.NodeAdminServiceServicer):
    def __init__(self, code: str, journal: Journal, revocations: RevocationList) -> None:
        self.code, self.journal, self.revocations = code, journal, revocations

    async def _require_admin(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        identity = caller_identity(context)
        if (
            identity is None
            or identity.role is not Role.NODE_ADMIN
            or identity.id.rpartition("@")[2] != self.code
            or self.revocations.is_revoked(identity.serial)
        ):
            log.warning("admin_refused", role=identity.role.value if identity else None)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"only a node-admin of {self.code} may review this node's journal"
            )
        assert identity is not None
        return identity.id

    async def ListAlerts(
        self, request: node_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> node_pb2.JournalEntries:
        await self._require_admin(context)
        rows = self.journal.alerts(include_acknowledged=request.include_acknowledged, limit=request.limit or 200)
        return node_pb2.JournalEntries(entries=[entry_of(r) for r in rows])

    async def AcknowledgeAlert(
        self, request: node_pb2.AcknowledgeAlertRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> node_pb2.AcknowledgeAlertResponse:
        admin = await self._require_admin(context)
        done = self.journal.acknowledge(request.alert_id, admin)
        log.info("alert_acknowledged", alert=request.alert_id, by=admin, done=done)
        return node_pb2.AcknowledgeAlertResponse(acknowledged=done)

    async def ListAccessLog(
        self, request: node_pb2.ListAccessLogRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> node_pb2.JournalEntries:
        await self._require_admin(context)
        rows = self.journal.access_log(since=request.since, limit=request.limit or 500)
        return node_pb2.JournalEntries(entries=[entry_of(r) for r in rows])
