"""The one translation of a failed gRPC call into the broker's own error (:mod:`broker.errors`).

A node that does not answer in time, cannot be reached, or refuses us is reported as such — never as
"no contact". The messages here are fixed: a node's own status text is read (to classify it) but never
passed on, so nothing a node says can reach a caller or a log line through this module.

This module must never talk to the network or import ``grpc.aio``: broker.nodeclient makes the calls and
hands their status here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

from broker.errors import NodeCallError, NodeFailed, NodeRefused, NodeTimeout, NodeUnavailable


class FailedCall(Protocol):
    """What is read of a failed call (grpc.aio.AioRpcError has both)."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...


@dataclass(frozen=True)
class TextRule:
    """UNAVAILABLE whose detail text contains any of ``markers`` (lower case) means ``error``."""

    name: str
    markers: tuple[str, ...]
    error: type[NodeCallError]
    message: str


REFUSED = "TLS handshake failed: certificate not accepted"
UNREACHABLE = "not reachable"

UNAVAILABLE_RULES: tuple[TextRule, ...] = (
    # Evidence that a certificate was judged (either way round) outweighs a connection torn down after it.
    TextRule("certificate judged", ("certificate", "verif", "alert", "ssl_error_ssl"), NodeRefused, REFUSED),
    # A connection that broke, even mid-handshake ("Handshake read failed (recvmsg:Connection reset by
    # peer)"): the node went away, which is worth retrying, not a certificate refusal.
    TextRule(
        "connection broke",
        (
            "connection reset",
            "broken pipe",
            "socket closed",
            "connection refused",
            "recvmsg",
            "sendmsg",
            "end of tcp stream",
            "connection aborted",
            "failed to connect to remote host",
        ),
        NodeUnavailable,
        UNREACHABLE,
    ),
    # A handshake that failed with no sign of a broken connection: the peer would not have us.
    TextRule("handshake refused", ("unauthenticated", "tsi_", "handshake failed"), NodeRefused, REFUSED),
)
"""Tried in order; the first that matches decides. None matching: unavailable.

Why text: grpc reports a refused TLS handshake and a dropped or refused connection alike, as UNAVAILABLE,
and a failed call (grpc.aio.AioRpcError) offers nothing more structured than its code, its detail text,
empty metadata and debug_error_string(), which (grpc 1.85) is the same text behind the code. Even the
inner "last error" code is UNKNOWN both for a certificate refused and for a connection refused.
grpc/grpc#25189 asked for the cause of a failed connection and was pointed at GRPC_TRACE logging. The
detail text is therefore the only signal; the rules are pinned, one test each, in tests/broker/test_rpc_errors.py,
with the texts grpc gave in the fault tests."""

BY_CODE: dict[grpc.StatusCode, tuple[type[NodeCallError], str]] = {
    grpc.StatusCode.DEADLINE_EXCEEDED: (NodeTimeout, "no answer before the deadline"),
    grpc.StatusCode.PERMISSION_DENIED: (NodeRefused, "the node refused the broker"),
    grpc.StatusCode.UNAUTHENTICATED: (NodeRefused, "the node refused the broker"),
    grpc.StatusCode.CANCELLED: (NodeUnavailable, "the node went away mid-call"),  # e.g. it is shutting down
    grpc.StatusCode.ABORTED: (NodeUnavailable, "the node went away mid-call"),
}
"""Codes whose meaning needs no text. UNAVAILABLE goes by UNAVAILABLE_RULES; any other is NodeFailed."""

_STATUS_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    """The StatusCode of a numeric code (as a batch's MatchOutcome carries it); unknown values are UNKNOWN."""
    return _STATUS_BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)


def unavailable_rule(details: str) -> TextRule | None:
    """The rule that decides an UNAVAILABLE with this detail text, if any."""
    text = details.lower()
    return next((rule for rule in UNAVAILABLE_RULES if any(m in text for m in rule.markers)), None)


def translate_status(code: grpc.StatusCode, details: str) -> NodeCallError:
    """The broker's error for a call that ended with ``code`` and ``details`` (never echoed)."""
    if code is grpc.StatusCode.UNAVAILABLE:
        rule = unavailable_rule(details)
        return rule.error(rule.message) if rule else NodeUnavailable(UNREACHABLE)
    if code in BY_CODE:
        error, message = BY_CODE[code]
        return error(message)
    return NodeFailed(f"the node answered {code.name}")


def translate(exc: FailedCall) -> NodeCallError:
    """The broker's error for a failed node call."""
    return translate_status(exc.code(), exc.details() or "")
