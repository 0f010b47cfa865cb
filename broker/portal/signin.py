"""The seam between the practitioner portal's pages and its sign-in: who is signed in, and how they got so.

The portal (pages, sessions, CSRF: :mod:`broker.portal`) and the OpenID Connect sign-in
(:mod:`broker.portal.oidc`) meet only here. A sign-in turns a browser's return from an authority's
identity provider into a :class:`PortalUser`; the session module keeps it server-side and hands it to
each page. Every search a portal user makes goes through the same search path as the API's
(one policy, whichever door), with ``PortalUser.identity`` as the requester.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from certs.identity import Identity

FLOW_COOKIE = "__Secure-signpost-signin"
"""A sign-in in progress may keep a handle in this cookie, ``Path`` the callback's
(:data:`broker.portal.paths.SIGN_IN_CALLBACK`); the callback route clears it whatever the outcome.
``__Secure-``: browsers take it only from HTTPS, so no http:// answer for this host (any port, or a
man in the middle) can plant an attacker's handle, which would sign the browser in as the attacker."""


class SignInError(Exception):
    """A sign-in that must not succeed (untrusted issuer, bad token, replayed nonce...).

    ``reason`` is words for the log and the page, never a token or a claim's value.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PortalUser:
    """A practitioner (or auditor, operator) signed in by their own authority's identity provider."""

    identity: Identity
    """As a certificate would name them: role from the authority's claim mapping, ``id`` the issuer and
    subject joined (``f"{issuer}#{subject}"``), name, organisation = the authority whose issuer signed."""
    issuer: str
    subject: str
    authority: str
    """The registry code of the authority whose identity provider signed the token."""


class SignIn(Protocol):
    """How a browser signs in. The portal's routes call these; the OIDC module implements them."""

    def authorities(self) -> list[tuple[str, str]]:
        """(code, display name) of each authority a user may sign in through, for the sign-in page."""
        ...

    async def begin(self, request: web.Request, authority: str) -> web.StreamResponse:
        """Start signing in through ``authority``'s identity provider: a redirect (state, nonce and PKCE
        verifier kept server-side, bound to this browser). SignInError for an unknown authority."""
        ...

    async def complete(self, request: web.Request) -> PortalUser:
        """The user the identity provider's redirect back (``request`` at the callback URL) vouches for;
        SignInError for anything that does not fully validate."""
        ...
