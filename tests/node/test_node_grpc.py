"""The node's own defences, called directly over mTLS as the broker would."""

from __future__ import annotations

import time

import grpc
import pytest

from certs.assertions import AssertionSigner, create_assertion_key, load_private_key
from certs.identity import node_dns_name
from protos.signpost.v1 import node_pb2, node_pb2_grpc
from tests.conftest import row


@pytest.fixture
async def stub(federation, pki):
    fed = await federation(
        {
            "LEEDS": [
                row(),
                row(record_id="R2", given_name="Ben", shielded="true"),
                row(record_id="R3", given_name="Cara", service="Sexual health", sensitive="true"),
            ]
        }
    )
    creds = grpc.ssl_channel_credentials(
        pki.ca.cert.read_bytes(), pki.broker.key.read_bytes(), pki.broker.cert.read_bytes()
    )
    channel = grpc.aio.secure_channel(
        fed.nodes["LEEDS"].address, creds, options=[("grpc.ssl_target_name_override", node_dns_name("LEEDS"))]
    )
    yield node_pb2_grpc.NodeServiceStub(channel)
    await channel.close()


SIGNER: AssertionSigner | None = None


@pytest.fixture(autouse=True)
def signer(pki):
    global SIGNER
    SIGNER = AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: ["LEEDS"])
    return SIGNER


def request(*, sign: bool = True, **subject: str) -> node_pb2.MatchRequest:
    req = node_pb2.MatchRequest(
        search_id="t",
        subject=node_pb2.Subject(**subject),
        purpose=node_pb2.Purpose(code="missing-child", justification="test search"),
        requester=node_pb2.Requester(user_id="pat", role="practitioner"),
    )
    if sign:
        assert SIGNER is not None
        SIGNER.sign(req)
    return req


AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}


async def expect_denied(stub, req, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Match(req, timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason in caught.value.details()


async def test_unsigned_request_is_refused(stub):
    await expect_denied(stub, request(sign=False, **AMELIA), "no broker assertion")


async def test_replayed_request_is_refused(stub):
    req = request(**AMELIA)
    assert (await stub.Match(req, timeout=5)).candidates
    await expect_denied(stub, req, "used before")


async def test_altered_request_is_refused(stub):
    req = request(**AMELIA)
    req.subject.given_name = "Ben"
    await expect_denied(stub, req, "does not match")
    req = request(**AMELIA)
    req.purpose.code = "early-help-assessment"
    await expect_denied(stub, req, "does not match")


async def test_stale_request_is_refused(stub, pki):
    old = AssertionSigner(
        load_private_key(pki.assertion_key), audience=lambda: ["LEEDS"], clock=lambda: time.time() - 120
    )
    req = request(sign=False, **AMELIA)
    old.sign(req)
    await expect_denied(stub, req, "not fresh")


async def test_request_signed_by_another_key_is_refused(stub, tmp_path):
    key_path, _ = create_assertion_key(tmp_path)
    req = request(sign=False, **AMELIA)
    AssertionSigner(load_private_key(key_path), audience=lambda: ["LEEDS"]).sign(req)
    await expect_denied(stub, req, "unknown broker key")


async def test_forged_signature_is_refused(stub):
    req = request(**AMELIA)
    req.assertion_signature = bytes(64)
    await expect_denied(stub, req, "signature is not valid")


def broker_stub(fed, pki, code: str) -> tuple[grpc.aio.Channel, node_pb2_grpc.NodeServiceStub]:
    creds = grpc.ssl_channel_credentials(
        pki.ca.cert.read_bytes(), pki.broker.key.read_bytes(), pki.broker.cert.read_bytes()
    )
    channel = grpc.aio.secure_channel(
        fed.nodes[code].address, creds, options=[("grpc.ssl_target_name_override", node_dns_name(code))]
    )
    return channel, node_pb2_grpc.NodeServiceStub(channel)


async def test_a_search_signed_for_leeds_is_refused_by_kent(federation, pki):
    # The finding: bytes signed for LEEDS were accepted by KENT within the 60 s window.
    fed = await federation({"LEEDS": [row()], "KENT": [row()]})
    (leeds_channel, leeds), (kent_channel, kent) = broker_stub(fed, pki, "LEEDS"), broker_stub(fed, pki, "KENT")
    try:
        for_leeds = request(**AMELIA)  # the fixture's signer addresses LEEDS only
        await expect_denied(kent, for_leeds, "not addressed to this authority")
        assert (await leeds.Match(for_leeds, timeout=5)).candidates  # and KENT's refusal did not spend it
        for_both = request(sign=False, **AMELIA)
        AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: ["KENT", "LEEDS"]).sign(for_both)
        assert (await kent.Match(for_both, timeout=5)).candidates
        assert (await leeds.Match(for_both, timeout=5)).candidates
    finally:
        await leeds_channel.close()
        await kent_channel.close()


async def test_a_search_addressed_to_nobody_is_refused(stub, pki):
    req = request(sign=False, **AMELIA)
    AssertionSigner(load_private_key(pki.assertion_key), audience=list).sign(req)
    await expect_denied(stub, req, "not addressed to this authority")


async def test_describe_gives_code_count_freshness_and_version(stub):
    info = await stub.Describe(node_pb2.DescribeRequest(), timeout=5)
    assert (info.authority_code, info.authority_name, info.record_count) == ("LEEDS", "Leeds", 3)
    assert info.data_as_of and info.software_version


@pytest.mark.parametrize(
    "subject",
    [
        {"given_name": "Amelia", "date_of_birth": "2014-03-09"},  # no family name, no NHS number
        {"family_name": "Smith"},  # below the minimum query (core.subject)
        {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "1899-12-31"},  # before the window
        {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2112-03-09"},  # in the future
        {"family_name": "Smith", "postcode": "LS6 2AB"},  # a family name and a place: a trawl
        {"family_name": "Smith", "date_of_birth": "2014-13-09"},  # impossible date
        {"family_name": "Smith", "nhs_number": "1234567890"},  # bad check digit
        {"family_name": "Smith", "sex": "Z"},
    ],
)
async def test_bad_subject_is_invalid_argument_without_echo(stub, subject):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Match(request(**subject), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    for value in subject.values():
        assert value not in caught.value.details()


async def test_oversized_message_is_refused(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Match(request(family_name="Smith", address="x" * 100_000), timeout=5)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_shielded_answers_as_no_match_and_sensitive_is_never_disclosed(stub):
    shielded = await stub.Match(request(given_name="Ben", family_name="Smith", date_of_birth="2014-03-09"), timeout=5)
    sensitive = await stub.Match(request(given_name="Cara", family_name="Smith", date_of_birth="2014-03-09"), timeout=5)
    assert list(shielded.candidates) == [] and list(sensitive.candidates) == []
    found = await stub.Match(request(given_name="Amelia", family_name="Smith", date_of_birth="2014-03-09"), timeout=5)
    assert [c.band for c in found.candidates] == ["match"]
