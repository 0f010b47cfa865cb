"""What the searcher sees when authorities cannot be asked, and who may talk to whom.

Every case runs through real mTLS: real certificates, real node servers, the real broker.
"""

from __future__ import annotations

import socket
import ssl

import aiohttp
import pytest

from broker.registry import Authority
from certs.identity import Role, node_dns_name
from tests.conftest import row

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_node_down_is_listed_in_coverage_and_search_still_answers(federation):
    down = Authority("HACKNEY", "Hackney", f"127.0.0.1:{free_port()}", node_dns_name("HACKNEY"))
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1", given_name="Oliver")]}, extra=[down])
    status, body = await fed.search(AMELIA)
    assert status == 200
    assert [r["authority"]["code"] for r in body["results"]] == ["LEEDS"]
    assert body["coverage"]["asked"] == 3 and body["coverage"]["answered"] == 2
    assert body["coverage"]["not_answered"] == [{"code": "HACKNEY", "name": "Hackney", "reason": "unavailable"}]


async def test_node_stopped_mid_life_is_reported_not_read_as_no_contact(federation):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]})
    await fed.nodes["KENT"].stop(grace=0)
    status, body = await fed.search(AMELIA)
    assert status == 200
    assert {r["authority"]["code"] for r in body["results"]} == {"LEEDS"}
    assert body["coverage"]["not_answered"][0]["code"] == "KENT"
    assert body["coverage"]["not_answered"][0]["reason"] == "unavailable"


async def test_every_node_down_is_503_with_coverage(federation):
    fed = await federation({"LEEDS": [row()]})
    await fed.nodes["LEEDS"].stop(grace=0)
    status, body = await fed.search(AMELIA)
    assert status == 503
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["coverage"]["not_answered"][0]["code"] == "LEEDS"


async def test_node_with_certificate_from_another_ca_is_refused(federation, foreign):
    fed = await federation(
        {"LEEDS": [row()], "KENT": [row(record_id="K1", given_name="Oliver")]}, node_files={"LEEDS": foreign.node_leeds}
    )
    status, body = await fed.search(AMELIA)
    assert status == 200
    assert body["results"] == []  # the impostor's records must never reach the searcher
    assert body["coverage"]["not_answered"] == [{"code": "LEEDS", "name": "Leeds", "reason": "refused"}]


async def test_node_presenting_another_authoritys_certificate_is_refused(federation, pki):
    # KENT's node runs with LEEDS's valid certificate: right CA, wrong authority.
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]}, node_files={"KENT": pki.nodes["LEEDS"]})
    status, body = await fed.search(AMELIA)
    assert status == 200
    assert [r["authority"]["code"] for r in body["results"]] == ["LEEDS"]
    assert body["coverage"]["not_answered"] == [{"code": "KENT", "name": "Kent", "reason": "refused"}]


async def test_node_refuses_a_client_that_is_not_the_broker(federation, pki):
    """A practitioner's valid certificate may not call a node directly."""
    import grpc

    from protos.signpost.v1 import node_pb2, node_pb2_grpc

    fed = await federation({"LEEDS": [row()]})
    user = pki.users[Role.PRACTITIONER]
    creds = grpc.ssl_channel_credentials(pki.ca.cert.read_bytes(), user.key.read_bytes(), user.cert.read_bytes())
    async with grpc.aio.secure_channel(
        fed.nodes["LEEDS"].address, creds, options=[("grpc.ssl_target_name_override", node_dns_name("LEEDS"))]
    ) as ch:
        stub = node_pb2_grpc.NodeServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Match(node_pb2.MatchRequest(subject=node_pb2.Subject(family_name="Smith")), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_node_rejects_a_client_without_certificate(federation, pki):
    import grpc

    from protos.signpost.v1 import node_pb2, node_pb2_grpc

    fed = await federation({"LEEDS": [row()]})
    creds = grpc.ssl_channel_credentials(pki.ca.cert.read_bytes())
    async with grpc.aio.secure_channel(
        fed.nodes["LEEDS"].address, creds, options=[("grpc.ssl_target_name_override", node_dns_name("LEEDS"))]
    ) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await node_pb2_grpc.NodeServiceStub(ch).Describe(node_pb2.DescribeRequest(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_practitioner_without_certificate_gets_401(federation):
    fed = await federation({"LEEDS": [row()]})
    session = fed.session(role=None)
    async with session.post(f"{fed.url}/v1/searches", json={"subject": AMELIA}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthenticated"


async def test_practitioner_with_foreign_certificate_is_refused_at_the_handshake(federation, foreign):
    """A certificate from another CA never completes TLS, so it never reaches any handler.

    Python's ssl module has no verify callback, so this cannot be turned into an
    HTTP 401; it is refused earlier, which is stronger. Documented in the README.
    """
    fed = await federation({"LEEDS": [row()]})
    session = fed.session(foreign.practitioner)
    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
        async with session.post(f"{fed.url}/v1/searches", json={"subject": AMELIA}) as resp:
            await resp.read()


async def test_node_certificate_is_not_a_user_401(federation, pki):
    fed = await federation({"LEEDS": [row()]})
    async with fed.session(pki.nodes["KENT"]).post(f"{fed.url}/v1/searches", json={}) as resp:
        assert resp.status == 401


async def test_wrong_role_is_403(federation):
    fed = await federation({"LEEDS": [row()]})
    status, body = await fed.search(AMELIA, role=Role.AUDITOR)
    assert status == 403 and body["error"]["code"] == "forbidden"
    async with fed.session(role=Role.PRACTITIONER).get(f"{fed.url}/v1/nodes") as resp:
        assert resp.status == 403


async def test_operator_sees_node_status(federation):
    fed = await federation({"LEEDS": [row(), row(record_id="R2", given_name="Ben")], "KENT": [row(record_id="K1")]})
    await fed.nodes["KENT"].stop(grace=0)
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/v1/nodes?refresh=true") as resp:
        body = await resp.json()
    by_code = {n["code"]: n for n in body["nodes"]}
    assert by_code["LEEDS"]["status"] == "up" and by_code["LEEDS"]["record_count"] == 2
    assert by_code["LEEDS"]["cert_expires"] and by_code["LEEDS"]["software_version"]
    assert by_code["LEEDS"]["latency_ms"]["p50"] is not None and by_code["LEEDS"]["error_rate"] == 0.0
    # Background polls may already have opened its circuit: either way it is shown as not answering.
    assert by_code["KENT"]["status"] in ("down", "circuit_open") and by_code["KENT"]["reason"] == "unavailable"


async def test_healthz_needs_no_certificate_and_says_nothing_about_data(federation):
    fed = await federation({"LEEDS": [row()]})
    async with fed.session(role=None).get(f"{fed.url}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_a_busy_broker_refuses_at_once_rather_than_queueing(federation):
    import asyncio

    from broker.appkeys import AUDIT

    fed = await federation({"LEEDS": [row()]}, deadline=3.0, max_in_flight=1)
    app = fed.server.app
    fed.nodes["LEEDS"].service.answer_floor_seconds = 0.5
    first = asyncio.create_task(fed.search(AMELIA))
    await asyncio.sleep(0.15)
    session = fed.session()
    body = {"subject": AMELIA, "purpose": {"code": "missing-child", "justification": "Missing since Friday"}}
    async with session.post(f"{fed.url}/v1/searches", json=body) as resp:
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"]["code"] == "overloaded"
    status, answer = await first
    assert status == 200 and answer["results"]
    outcomes = [e.entry["outcome"] for e in await app[AUDIT].entries()]
    assert sorted(outcomes) == ["answered", "started", "unavailable"]  # the refusal is audited too
