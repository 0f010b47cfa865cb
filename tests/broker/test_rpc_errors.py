"""broker.rpc_errors: each grpc status, and each rule for UNAVAILABLE's detail text, to the broker's error.

The texts marked "seen" are grpc 1.85's own, recorded while tests/e2e/test_faults.py,
test_federation_failures.py and test_match_stream.py ran; the others pin each marker of a rule.
"""

from __future__ import annotations

import grpc
import pytest

from broker.errors import NodeCallError, NodeFailed, NodeRefused, NodeTimeout, NodeUnavailable
from broker.rpc_errors import UNAVAILABLE_RULES, status_code, translate, translate_status, unavailable_rule

NODE_TEXT = "patient Amelia Smith 2014-03-09 not found in table people"


@pytest.mark.parametrize(
    ("details", "rule", "error"),
    [
        # certificate judged: refused, even when the connection was torn down after the verdict
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:37485: Tls handshake failed "
            "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: "
            "unable to get local issuer certificate: OK",
            "certificate judged",
            NodeRefused,
        ),  # seen: node's CA not ours
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:46385: Custom verification check "
            "failed with error: UNAUTHENTICATED: Hostname Verification Check failed.",
            "certificate judged",
            NodeRefused,
        ),  # seen: another authority's valid certificate
        (
            "Ssl handshake failed: SSL_ERROR_SSL: error:10000410:SSL routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE",
            "certificate judged",
            NodeRefused,
        ),  # the node would not have our certificate
        (
            "Peer name kent.node.signpost.test is not in peer certificate; connection reset by peer",
            "certificate judged",
            NodeRefused,
        ),
        # connection broke: unavailable (retried), even when it broke mid-handshake
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:58755: Failed to connect to remote "
            "host: Connection refused",
            "connection broke",
            NodeUnavailable,
        ),  # seen: node stopped
        (
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:36887: Handshake read failed "
            "(recvmsg:Connection reset by peer (104))",
            "connection broke",
            NodeUnavailable,
        ),  # seen: proxy reset
        (
            "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:37875: Handshake read failed "
            "(Socket closed)",
            "connection broke",
            NodeUnavailable,
        ),  # seen
        ("Stream removed (recvmsg:Connection reset by peer (104))", "connection broke", NodeUnavailable),  # seen
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:40451: Failed to connect to remote "
            "host: getsockopt(SO_ERROR): Connection reset by peer",
            "connection broke",
            NodeUnavailable,
        ),  # seen
        ("Ssl handshake failed: (sendmsg: Broken pipe)", "connection broke", NodeUnavailable),
        ("End of TCP stream", "connection broke", NodeUnavailable),
        ("Connection aborted", "connection broke", NodeUnavailable),
        # handshake refused, with no sign of a broken connection
        ("Handshake failed with fatal error TSI_PROTOCOL_FAILURE", "handshake refused", NodeRefused),
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50051: Ssl handshake failed",
            "handshake refused",
            NodeRefused,
        ),
        ("Unauthenticated: the peer did not authenticate", "handshake refused", NodeRefused),
        # nothing recognised: unavailable
        ("failed to connect to all addresses", None, NodeUnavailable),
        ("", None, NodeUnavailable),
    ],
)
def test_unavailable_rules(details: str, rule: str | None, error: type[NodeCallError]) -> None:
    decided = unavailable_rule(details)
    assert (decided.name if decided else None) == rule
    assert type(translate_status(grpc.StatusCode.UNAVAILABLE, details)) is error


def test_every_rule_is_exercised() -> None:
    assert [r.name for r in UNAVAILABLE_RULES] == ["certificate judged", "connection broke", "handshake refused"]


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        (grpc.StatusCode.DEADLINE_EXCEEDED, NodeTimeout, "no answer before the deadline"),
        (grpc.StatusCode.PERMISSION_DENIED, NodeRefused, "the node refused the broker"),
        (grpc.StatusCode.UNAUTHENTICATED, NodeRefused, "the node refused the broker"),
        (grpc.StatusCode.CANCELLED, NodeUnavailable, "the node went away mid-call"),
        (grpc.StatusCode.ABORTED, NodeUnavailable, "the node went away mid-call"),
        (grpc.StatusCode.INTERNAL, NodeFailed, "the node answered INTERNAL"),
        (grpc.StatusCode.INVALID_ARGUMENT, NodeFailed, "the node answered INVALID_ARGUMENT"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, NodeFailed, "the node answered RESOURCE_EXHAUSTED"),
    ],
)
def test_codes(code: grpc.StatusCode, error: type[NodeCallError], message: str) -> None:
    translated = translate_status(code, NODE_TEXT)
    assert type(translated) is error and str(translated) == message


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_a_nodes_text_never_reaches_the_message(code: grpc.StatusCode) -> None:
    assert "Amelia" not in str(translate_status(code, NODE_TEXT))


def test_translate_reads_a_failed_calls_code_and_details() -> None:
    exc = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="Handshake failed with fatal error TSI_PROTOCOL_FAILURE",
    )
    assert isinstance(translate(exc), NodeRefused)
    no_details = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())
    assert isinstance(translate(no_details), NodeUnavailable)


def test_status_code_of_a_number() -> None:
    assert status_code(7) is grpc.StatusCode.PERMISSION_DENIED
    assert status_code(13) is grpc.StatusCode.INTERNAL
    assert status_code(999) is grpc.StatusCode.UNKNOWN
