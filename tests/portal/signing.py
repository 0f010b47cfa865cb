"""A harness federation whose broker signs people in through the real OpenID providers, and a browser's
steps through that sign-in (aiohttp with a cookie jar; the provider's pages walked by ``drive_login``).

The broker's ``[portal]`` lists Leeds's and Kent's real providers (and Cornwall's, which is down):
``create_app`` builds the OpenID Connect sign-in from it, as ``signpost broker serve`` does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from broker.portal.config import PortalConfig
from broker.portal.paths import SIGN_IN_CALLBACK, SIGN_IN_START
from broker.portal.signin import FLOW_COOKIE
from tests.portal.conftest import DATA, Portal
from tests.portal.op.harness import MintingIdp, Providers, authority, drive_login, portal_config

MakePortal = Callable[..., Awaitable[Portal]]
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def sign_in_config(providers: Providers) -> PortalConfig:
    down = await MintingIdp().start()
    await down.stop()  # an identity provider that is not there: nothing listens at its address
    return portal_config(
        authority("LEEDS", providers.leeds.issuer, providers.secret_file),
        authority("KENT", providers.kent.issuer, providers.secret_file, token_auth_method="client_secret_post"),
        authority("CORNWALL", down.url, providers.secret_file),
        public_url=providers.portal_url,
    )


@pytest.fixture(name="signing")
async def signing_fixture(portal: MakePortal, providers: Providers) -> Portal:
    """A harness federation whose broker signs people in through the real providers."""
    return await portal(DATA, portal=await sign_in_config(providers), port=providers.portal_port)


async def start(p: Portal, client: aiohttp.ClientSession, code: str) -> str:
    """GET the sign-in start for ``code``: the provider's address (the flow cookie checked on the way)."""
    async with client.get(f"{p.origin}{SIGN_IN_START}?authority={code}", allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        cookie = response.cookies[FLOW_COOKIE]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
        assert cookie["path"] == SIGN_IN_CALLBACK and 0 < int(cookie["max-age"]) <= 600
        return response.headers["Location"]


async def come_back(client: aiohttp.ClientSession, redirect: str) -> tuple[int, str, str, Any]:
    """The browser following the provider's redirect to the broker's callback."""
    async with client.get(redirect, allow_redirects=False) as response:
        return response.status, response.headers.get("Location", ""), await response.text(), response.cookies


async def sign_in_as(p: Portal, code: str, login: str) -> aiohttp.ClientSession:
    """A browser signed in as ``login`` through ``code``'s real provider: the whole flow, nothing made directly."""
    client = p.browser()
    location = await start(p, client, code)
    status, where, _, _ = await come_back(client, await drive_login(location, login, p.origin + SIGN_IN_CALLBACK))
    assert (status, where) == (303, "/portal/search")
    return client


async def csrf_token(p: Portal, client: aiohttp.ClientSession) -> str:
    """The CSRF token of the browser's session, read from the search form as a browser would have it."""
    async with client.get(p.origin + "/portal/search", allow_redirects=False) as response:
        assert response.status == 200
        found = _CSRF.search(await response.text())
    assert found is not None
    return found.group(1)
