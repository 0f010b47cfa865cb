"""Who is calling the broker's HTTPS API, from their TLS client certificate.

TLS has already verified the certificate against the federation CA (a
certificate from any other CA never completes the handshake). Here we read the
Signpost identity it carries and check the route's roles (broker.policy's table): deny by default.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from broker.appkeys import REVOCATIONS
from broker.errors import Forbidden, Unauthenticated
from broker.policy import roles_for
from certs.identity import USER_ROLES, Identity, IdentityError, Role, identity_from_der

IDENTITY_KEY = web.RequestKey("identity", Identity)


def peer_identity(request: web.Request) -> Identity:
    """The caller's identity; raise Unauthenticated when there is no usable user certificate."""
    cached = request.get(IDENTITY_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
    if not der:
        raise Unauthenticated("a client certificate issued by the federation CA is required")
    try:
        identity = identity_from_der(der)
    except (IdentityError, ValueError):
        raise Unauthenticated("the client certificate does not identify a Signpost user") from None
    if identity.role not in USER_ROLES:
        raise Unauthenticated("the client certificate does not identify a Signpost user")
    if request.app[REVOCATIONS].is_revoked(identity.serial):
        raise Unauthenticated("the client certificate has been revoked")
    request[IDENTITY_KEY] = identity
    return identity


def require(request: web.Request, *roles: Role) -> Identity:
    """The caller, if their role is one of ``roles``; otherwise 401 or 403."""
    identity = peer_identity(request)
    if identity.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"this needs the role {allowed}; the certificate's role is {identity.role.value}")
    return identity


def require_route(request: web.Request) -> Identity:
    """The caller, if broker.policy admits their role to the route being called; otherwise 401 or 403."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return require(request, *roles_for(request.method, path))
