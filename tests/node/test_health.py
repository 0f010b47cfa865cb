"""grpc.health.v1 on a node answers the broker's certificate only, and not once it is revoked.

Any federation certificate (a practitioner's, an auditor's, another authority's admin) used to get
an answer: a probe of which authorities are up, and of when a node restarts, that only the broker's
health monitor needs.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from certs.identity import Role, node_dns_name
from signpost.federation import create_pki
from tests.conftest import AUTHORITIES, row


def _channel(fed, pki, files) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(pki.ca.cert.read_bytes(), files.key.read_bytes(), files.cert.read_bytes())
    return grpc.aio.secure_channel(
        fed.nodes["LEEDS"].address, creds, options=[("grpc.ssl_target_name_override", node_dns_name("LEEDS"))]
    )


async def _check(fed, pki, files, service: str = "") -> health_pb2.HealthCheckResponse:
    async with _channel(fed, pki, files) as channel:
        return await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )


async def test_the_broker_gets_an_answer(federation, pki):
    fed = await federation({"LEEDS": [row()]})
    assert (await _check(fed, pki, pki.broker)).status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("who", [Role.PRACTITIONER, Role.AUDITOR, Role.NODE_ADMIN])
@pytest.mark.parametrize("service", ["", "signpost.v1.NodeService"])
async def test_any_other_federation_certificate_is_refused(federation, pki, who, service):
    fed = await federation({"LEEDS": [row()]})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _check(fed, pki, pki.users[who], service)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_watch_is_refused_too(federation, pki):
    fed = await federation({"LEEDS": [row()]})
    async with _channel(fed, pki, pki.users[Role.PRACTITIONER]) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_a_revoked_broker_certificate_is_refused(federation, tmp_path):
    own = create_pki(tmp_path / "pki", AUTHORITIES)  # revokes: must not touch the shared CRL
    fed = await federation({"LEEDS": [row()]}, pki=own)
    assert (await _check(fed, own, own.broker)).status == health_pb2.HealthCheckResponse.SERVING
    own.revoke(x509.load_pem_x509_certificate(own.broker.cert.read_bytes()).serial_number)
    deadline = time.monotonic() + 10  # the CRL is re-read at most once a second
    while True:
        try:
            await _check(fed, own, own.broker)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is grpc.StatusCode.PERMISSION_DENIED
            break
        assert time.monotonic() < deadline, "a revoked broker still gets health answers"
        await asyncio.sleep(0.1)
