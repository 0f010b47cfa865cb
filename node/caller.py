"""Who is calling this node: the Signpost identity in the peer's client certificate.

TLS has already verified the certificate against the federation CA; this module only reads the
identity it names. Deciding what that identity may do is the callers' job (:mod:`node.policy` for
NodeService, :mod:`node.admin` for the journal). It never refuses anyone itself and never logs.
"""

from __future__ import annotations

import functools
from typing import Any

import grpc

from certs.identity import Identity, IdentityError, identity_from_pem


@functools.lru_cache(maxsize=256)
def _identity_of_pem(pem: bytes) -> Identity | None:
    try:
        return identity_from_pem(pem)
    except (IdentityError, ValueError):
        return None


def caller_identity(context: grpc.aio.ServicerContext[Any, Any]) -> Identity | None:
    """The Signpost identity in the peer's client certificate, or None.

    Parsed once per certificate: the broker presents the same one on every call, and parsing it
    each time was a noticeable share of a node's CPU at 150 calls a search.
    """
    pem = next(iter(context.auth_context().get("x509_pem_cert") or ()), None)
    return _identity_of_pem(pem) if pem else None
