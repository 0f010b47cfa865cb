"""The portal's sign-in routes with the real OpenID providers, in the real broker: a browser's round trip,
and its refusals, each a GOV.UK page (never a 5xx) that starts no session.

The broker here is a harness federation whose ``[portal]`` lists Leeds's and Kent's real providers
(and Cornwall's, which is down): ``create_app`` builds the OpenID Connect sign-in from that config,
as ``signpost broker serve`` does. The browser is aiohttp with a cookie jar; the provider's login and
consent pages are walked with plain HTTP (:func:`drive_login`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from broker.portal.config import PortalConfig
from broker.portal.paths import SIGN_IN_CALLBACK, SIGN_IN_START
from broker.portal.sessions import COOKIE
from broker.portal.signin import FLOW_COOKIE
from tests.portal.conftest import DATA, Portal
from tests.portal.op.harness import (
    MintingIdp,
    Providers,
    authority,
    drive_login,
    portal_config,
    providers_fixture,  # noqa: F401  (the `providers` fixture)
)

MakePortal = Callable[..., Awaitable[Portal]]


async def sign_in_config(providers: Providers) -> PortalConfig:
    down = await MintingIdp().start()
    await down.stop()  # an identity provider that is not there: nothing listens at its address
    return portal_config(
        authority("LEEDS", providers.leeds.issuer, providers.secret_file),
        authority("KENT", providers.kent.issuer, providers.secret_file, token_auth_method="client_secret_post"),
        authority("CORNWALL", down.url, providers.secret_file),
        public_url=providers.portal_url,
    )


@pytest.fixture
async def signing(portal: MakePortal, providers: Providers) -> Portal:
    """A harness federation whose broker signs people in through the real providers."""
    return await portal(DATA, portal=await sign_in_config(providers), port=providers.portal_port)


def cookies(client: aiohttp.ClientSession) -> dict[str, Any]:
    return {c.key: c for c in client.cookie_jar}


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


async def test_a_browser_signs_in_and_a_session_is_started(signing: Portal, providers: Providers) -> None:
    client = signing.browser()
    location = await start(signing, client, "LEEDS")
    redirect = await drive_login(location, "pat", signing.origin + SIGN_IN_CALLBACK)
    status, where, _, set_cookies = await come_back(client, redirect)

    assert (status, where) == (303, "/portal/search")
    assert set_cookies[FLOW_COOKIE].value == ""  # the sign-in cookie is cleared
    session = signing.store.get(cookies(client)[COOKIE].value)
    assert session is not None and session.user.authority == "LEEDS"
    assert session.user.identity.id == f"{providers.leeds.issuer}#pat"
    assert session.user.identity.organisation == "Leeds Council"


async def test_a_forged_return_is_a_403_page_and_starts_no_session(signing: Portal) -> None:
    client = signing.browser()
    location = await start(signing, client, "LEEDS")
    redirect = await drive_login(location, "pat", signing.origin + SIGN_IN_CALLBACK)
    status, _, text, set_cookies = await come_back(client, redirect.replace("state=", "state=x"))

    assert status == 403
    assert "did not match the one started in this browser" in text
    assert "Sign in with your authority" in text  # the portal's own page, with the way to start again
    assert len(signing.store) == 0 and COOKIE not in set_cookies


async def test_a_return_to_a_browser_that_never_started_signing_in_is_refused(signing: Portal) -> None:
    location = await start(signing, signing.browser(), "LEEDS")
    redirect = await drive_login(location, "pat", signing.origin + SIGN_IN_CALLBACK)
    other = signing.browser()  # never started: no flow cookie
    status, _, text, _ = await come_back(other, redirect)
    assert status == 403 and "expired or was already used" in text
    assert len(signing.store) == 0


async def test_an_unknown_authority_is_a_404(signing: Portal) -> None:
    client = signing.browser()
    async with client.get(f"{signing.origin}{SIGN_IN_START}?authority=NOWHERE", allow_redirects=False) as response:
        assert response.status == 404
        assert "does not know that organisation" in await response.text()
    assert FLOW_COOKIE not in cookies(client)


async def test_an_identity_provider_that_is_down_is_a_plain_page_never_a_5xx(signing: Portal) -> None:
    client = signing.browser()
    async with client.get(f"{signing.origin}{SIGN_IN_START}?authority=CORNWALL", allow_redirects=False) as response:
        assert response.status == 400
        assert "could not reach Cornwall Council" in await response.text()


async def test_an_identity_provider_s_error_is_refused_without_echoing_its_words(signing: Portal) -> None:
    client = signing.browser()
    location = await start(signing, client, "LEEDS")
    state = parse_qs(urlsplit(location).query)["state"][0]
    words = "<script>alert(1)</script>"
    query = urlencode({"error": "access_denied", "error_description": words, "state": state})
    status, _, text, _ = await come_back(client, f"{signing.origin}{SIGN_IN_CALLBACK}?{query}")

    assert status == 403 and "did not sign you in" in text
    assert "alert(1)" not in text and len(signing.store) == 0
