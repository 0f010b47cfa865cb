"""Sign-in by OpenID Connect against each authority's own identity provider.

:class:`OidcSignIn` implements :class:`broker.portal.signin.SignIn` with the authorisation code flow and
PKCE (S256): ``begin`` keeps a fresh state, nonce and code verifier server-side (:mod:`oidc_pending`),
gives the browser a short-lived cookie holding only a handle to them, and redirects it to the chosen
authority's identity provider; ``complete`` takes that sign-in out (single use), checks the returned
``state`` (and the RFC 9207 ``iss``: when sent, and always from a provider that says it sends it),
trades the code and verifier for tokens (:mod:`oidc_provider`) and accepts the user only if the ID token
passes every check of :mod:`oidc_tokens`. The organisation of the user is the authority the browser
chose and whose issuer signed the token, never anything the user or their identity provider says about it.

Every refusal is a SignInError with a plain sentence (the callback answers 4xx with it), and nothing it
logs carries a token, a code, a secret or a claim's value.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web

from broker.portal.config import AuthorityIdp, PortalConfig
from broker.portal.oidc_pending import PendingSignIn, PendingSignIns
from broker.portal.oidc_provider import IdentityProviders
from broker.portal.oidc_tokens import token_header, user_from_claims, verify_id_token
from broker.portal.paths import SIGN_IN_CALLBACK
from broker.portal.signin import FLOW_COOKIE, PortalUser, SignIn, SignInError

log = structlog.get_logger("broker.portal.oidc")


class OidcSignIn:
    """The portal's sign-in through every configured authority's OpenID provider."""

    def __init__(
        self,
        config: PortalConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is wall time (token ``exp``/``iat``); ``monotonic`` times pending sign-ins and caches."""
        self.config, self._clock = config, clock
        self.providers = IdentityProviders(config, session=session, clock=monotonic)
        self.pending = PendingSignIns(
            ttl_seconds=config.sign_in_seconds, capacity=config.max_pending_sign_ins, clock=monotonic
        )

    async def close(self) -> None:
        await self.providers.close()

    def authorities(self) -> list[tuple[str, str]]:
        return [(a.code, a.name) for a in self.config.authorities]

    async def begin(self, request: web.Request, authority: str) -> web.StreamResponse:
        idp = self.config.authority(authority)
        if idp is None:
            raise SignInError("Signpost does not know that organisation. Choose yours from the list.")
        meta = await self.providers.metadata(idp)
        handle, pending = self.pending.start(idp.code)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": idp.client_id,
                "redirect_uri": self.config.redirect_uri,
                "scope": " ".join(idp.scopes),
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": s256_challenge(pending.verifier),
                "code_challenge_method": "S256",
                # Ask for the password every time, even if the browser still holds a session at the provider:
                # practitioners share computers, and signing out of Signpost does not sign them out there, so
                # without it the next person at the desk would be signed straight back in as the last one.
                "prompt": "login",
            }
        )
        separator = "&" if "?" in meta.authorization_endpoint else "?"
        location = f"{meta.authorization_endpoint}{separator}{query}"
        response = web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
        # Only the handle of this browser's pending sign-in, sent back only to the callback.
        response.set_cookie(
            FLOW_COOKIE,
            handle,
            max_age=int(self.config.sign_in_seconds),
            path=SIGN_IN_CALLBACK,
            secure=True,
            httponly=True,
            samesite="Lax",  # Lax, not Strict: the identity provider's redirect back is a cross-site navigation
        )
        log.info("portal_sign_in_started", authority=idp.code)
        return response

    async def complete(self, request: web.Request) -> PortalUser:
        handle = request.cookies.get(FLOW_COOKIE, "")
        pending = self.pending.take(handle) if handle else None
        if pending is None:
            log.warning("portal_sign_in_refused", reason="no sign-in in progress for this browser")
            raise SignInError("This sign-in has expired or was already used. Please sign in again.")
        idp = self.config.authority(pending.authority)
        if idp is None:  # the configuration was reloaded without this authority mid-sign-in
            raise SignInError("Signpost no longer accepts sign-ins from that organisation.")
        try:
            user = await self._complete(request, idp, pending)
        except SignInError as exc:
            log.warning("portal_sign_in_refused", authority=idp.code, reason=exc.reason)
            raise
        log.info("portal_sign_in", authority=idp.code, role=user.identity.role.value)
        return user

    async def _complete(self, request: web.Request, idp: AuthorityIdp, pending: PendingSignIn) -> PortalUser:
        query = request.query
        if not hmac.compare_digest(query.get("state", "").encode(), pending.state.encode()):
            raise SignInError("This sign-in did not match the one started in this browser. Please sign in again.")
        meta = await self.providers.metadata(idp)
        iss = query.get("iss")
        if (iss is None and meta.sends_iss) or (iss is not None and iss != idp.issuer):
            # RFC 9207: the answer came from another identity provider than the one this sign-in went to, or
            # lacks the iss this one always sends (2.4: such an answer must be refused too).
            raise SignInError(f"The answer did not come from {idp.name}'s sign-in service. Please sign in again.")
        if "error" in query:
            # The identity provider's own words are not shown: error_description is free text it chose.
            raise SignInError(f"{idp.name}'s sign-in service did not sign you in. Please try again.")
        code = query.get("code", "")
        if not code:
            raise SignInError("The sign-in service sent no authorisation code. Please sign in again.")
        tokens = await self.providers.exchange_code(
            idp, meta, code=code, verifier=pending.verifier, redirect_uri=self.config.redirect_uri
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError(f"{idp.name}'s sign-in service sent no ID token. Tell the Signpost operators.")
        kid = token_header(id_token, meta.algorithms).get("kid")
        keys = await self.providers.key_set(idp, meta, kid if isinstance(kid, str) else None)
        claims = verify_id_token(
            id_token,
            keys=keys,
            algorithms=meta.algorithms,
            idp=idp,
            nonce=pending.nonce,
            now=self._clock(),
            leeway=self.config.clock_leeway_seconds,
        )
        return user_from_claims(claims, idp)


def s256_challenge(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL(SHA256(verifier)), unpadded. The identity provider sees only this."""
    return urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def _is_a_sign_in(sign_in: OidcSignIn) -> SignIn:
    return sign_in  # mypy checks here that OidcSignIn keeps to the portal's SignIn protocol
