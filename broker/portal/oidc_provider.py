"""Talking to authorities' identity providers: discovery, signing keys, the token endpoint.

The only module of the portal that makes HTTP calls to an identity provider, and the one place their
failures (refused connections, timeouts, error answers, bodies that are not JSON) become a
:class:`~broker.portal.signin.SignInError` with a plain sentence for the practitioner. It never logs or
puts in an error a token, a code, a secret or any claim.

Discovery documents and key sets are cached per issuer for ``discovery_max_age_seconds``. A token naming
a key (``kid``) not in the cached set makes the key set be fetched again, at most once per
``jwks_min_refetch_seconds`` per issuer, so an identity provider that rotates its keys is followed while
tokens carrying made-up ``kid``s cannot turn the broker into a client hammering it.

A provider that cannot be reached is remembered as down for ``DISCOVERY_RETRY_SECONDS``: while an
authority's identity provider is down, every practitioner pressing "Sign in" would otherwise wait the
full ``http_timeout_seconds`` for the same failure, and the broker would hold one outbound call open
for each of them. Fetches for one issuer go one at a time, so a crowd arriving together makes one call.
"""

from __future__ import annotations

import asyncio
import json
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.portal.config import AuthorityIdp, PortalConfig, allowed_url
from broker.portal.signin import SignInError

MAX_BODY_BYTES = 512 * 1024
"""Discovery documents, key sets and token answers are a few KB; anything this large is not one."""
ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC"})
"""Key types an ID token may be verified with. A shared-secret ("oct") key in a published key set is
ignored: a key anyone can read must never verify a MAC (the HS256-with-the-public-key attack)."""
DISCOVERY_RETRY_SECONDS = 10.0
"""After a failed discovery fetch, sign-ins to that issuer fail at once with the same sentence for this
long; short, so a provider that comes back is used again within seconds."""
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
"""Never ``none`` and never HS*: an ID token must be signed by a key only its identity provider holds."""


@dataclass(frozen=True)
class ProviderMetadata:
    """What the broker uses from an issuer's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    """Signing algorithms the broker accepts from this issuer: its advertised ones, within SIGNING_ALGORITHMS."""
    sends_iss: bool = False
    """RFC 9207 ``authorization_response_iss_parameter_supported``: its every answer names it in ``iss``, so
    an answer without one did not come from it (a mix-up) and must be refused."""


@dataclass
class _Keys:
    keys: KeySet
    kids: frozenset[str]
    fetched_at: float


class IdentityProviders:
    """Cached discovery and key sets for every configured issuer, and the token exchange."""

    def __init__(
        self,
        config: PortalConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config, self._clock = config, clock
        self._session, self._own_session = session, session is None
        self._metadata: dict[str, tuple[ProviderMetadata, float]] = {}
        self._keys: dict[str, _Keys] = {}
        self._down: dict[str, tuple[SignInError, float]] = {}
        """Issuers whose discovery fetch failed: the error and when."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._discovery_locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def metadata(self, idp: AuthorityIdp) -> ProviderMetadata:
        """The issuer's discovery document, fetched and checked, cached for ``discovery_max_age_seconds``."""
        async with self._discovery_locks.setdefault(idp.issuer, asyncio.Lock()):
            cached, now = self._metadata.get(idp.issuer), self._clock()
            if cached and now - cached[1] < self._config.discovery_max_age_seconds:
                return cached[0]
            down = self._down.get(idp.issuer)
            if down and now - down[1] < DISCOVERY_RETRY_SECONDS:
                # A fresh error each time: the stored one raised again would gather every sign-in's
                # frames (and their requests) onto its traceback for as long as the provider is down.
                raise SignInError(down[0].reason)
            try:
                meta = _parse_metadata(idp, await self._get_json(idp, idp.discovery))
            except SignInError as exc:
                self._down[idp.issuer] = (exc, self._clock())
                raise
            self._down.pop(idp.issuer, None)
            self._metadata[idp.issuer] = (meta, self._clock())
            return meta

    async def key_set(self, idp: AuthorityIdp, meta: ProviderMetadata, kid: str | None) -> KeySet:
        """The issuer's signing keys; fetched again when ``kid`` is unknown (rate-limited) or the set is old."""
        async with self._locks.setdefault(idp.issuer, asyncio.Lock()):
            cached, now = self._keys.get(idp.issuer), self._clock()
            if cached is None or now - cached.fetched_at >= self._config.discovery_max_age_seconds:
                cached = await self._fetch_keys(idp, meta)
            elif kid is not None and kid not in cached.kids:
                if now - cached.fetched_at >= self._config.jwks_min_refetch_seconds:
                    cached = await self._fetch_keys(idp, meta)
            return cached.keys

    async def exchange_code(
        self, idp: AuthorityIdp, meta: ProviderMetadata, *, code: str, verifier: str, redirect_uri: str
    ) -> Mapping[str, Any]:
        """Trade an authorisation code (and its PKCE verifier) for tokens at the issuer's token endpoint."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"Accept": "application/json"}
        secret = _read_secret(idp)
        if idp.token_auth_method == "client_secret_post":
            form |= {"client_id": idp.client_id, "client_secret": secret}
        else:
            # RFC 6749 2.3.1: each half form-encoded before the Basic encoding.
            pair = f"{quote_plus(idp.client_id)}:{quote_plus(secret)}".encode()
            headers["Authorization"] = "Basic " + b64encode(pair).decode("ascii")
        return await self._request_json(idp, "POST", meta.token_endpoint, data=form, headers=headers)

    async def _fetch_keys(self, idp: AuthorityIdp, meta: ProviderMetadata) -> _Keys:
        document = await self._get_json(idp, meta.jwks_uri)
        raw = document.get("keys")
        if not isinstance(raw, list):
            raise _unusable(idp)
        usable = [
            k
            for k in raw
            if isinstance(k, dict) and k.get("kty") in ASYMMETRIC_KEY_TYPES and k.get("use", "sig") == "sig"
        ]
        try:
            keys = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as exc:
            raise _unusable(idp) from exc
        if any(k.is_private for k in keys.keys):
            raise _unusable(idp)  # a provider publishing private keys cannot be trusted to sign anything
        fetched = _Keys(keys, frozenset(str(k.kid) for k in keys.keys), self._clock())
        self._keys[idp.issuer] = fetched
        return fetched

    async def _get_json(self, idp: AuthorityIdp, url: str) -> Mapping[str, Any]:
        return await self._request_json(idp, "GET", url, headers={"Accept": "application/json"})

    async def _request_json(self, idp: AuthorityIdp, method: str, url: str, **kwargs: Any) -> Mapping[str, Any]:
        """One call to the identity provider; every way it can fail becomes one SignInError."""
        session = self._client()
        timeout = aiohttp.ClientTimeout(total=self._config.http_timeout_seconds)
        try:
            async with session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs) as response:
                body = await _read_capped(response)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise SignInError(
                f"We could not reach {idp.name}'s sign-in service. Please try again in a few minutes."
            ) from exc
        if status != 200:
            raise SignInError(
                f"{idp.name}'s sign-in service did not accept the sign-in (HTTP {status}). Please sign in again."
            )
        try:
            document = json.loads(body)
        except ValueError:
            raise _unusable(idp) from None
        if not isinstance(document, dict):
            raise _unusable(idp)
        return document

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ValueError("identity provider answer too large")
    return bytes(body)


def _read_secret(idp: AuthorityIdp) -> str:
    try:
        secret = idp.client_secret_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SignInError("Signing in is not set up correctly on this server; tell the Signpost operators.") from exc
    if not secret:
        raise SignInError("Signing in is not set up correctly on this server; tell the Signpost operators.")
    return secret


def _parse_metadata(idp: AuthorityIdp, document: Mapping[str, Any]) -> ProviderMetadata:
    # OpenID Connect Discovery 4.3: the document's issuer must be exactly the one asked about, or a
    # document served at one address could vouch for another issuer's tokens.
    if document.get("issuer") != idp.issuer:
        raise _unusable(idp)
    urls = [document.get(k) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
    if not all(isinstance(u, str) and allowed_url(u) for u in urls):
        raise _unusable(idp)
    advertised = document.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = tuple(a for a in SIGNING_ALGORITHMS if isinstance(advertised, list) and a in advertised)
    if not algorithms:
        raise _unusable(idp)
    sends_iss = document.get("authorization_response_iss_parameter_supported") is True
    return ProviderMetadata(idp.issuer, str(urls[0]), str(urls[1]), str(urls[2]), algorithms, sends_iss)


def _unusable(idp: AuthorityIdp) -> SignInError:
    return SignInError(f"{idp.name}'s sign-in service gave an answer Signpost cannot use. Tell the Signpost operators.")
