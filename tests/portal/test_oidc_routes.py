"""The sign-in routes over HTTP, with the real OpenID providers: a browser's round trip, and its refusals.

``on_signed_in`` stands in for the portal's ``start_session`` (on another branch until the merge): it
records who was signed in, so each refusal can be shown to have started no session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broker.portal.oidc import FLOW_COOKIE
from broker.portal.oidc_routes import install_oidc_sign_in
from broker.portal.signin import PortalUser
from tests.portal.op.harness import (
    REDIRECT_URI,
    MintingIdp,
    Providers,
    authority,
    drive_login,
    portal_config,
    providers_fixture,  # noqa: F401  (the `providers` fixture)
)


@dataclass
class Portal:
    client: TestClient[web.Request, web.Application]
    sessions: list[PortalUser] = field(default_factory=list)

    async def start(self, code: str) -> tuple[str, str]:
        """GET the sign-in route: the provider's address and this browser's sign-in cookie."""
        response = await self.client.get(f"/portal/sign-in/{code}", allow_redirects=False)
        assert response.status == 302, await response.text()
        cookie = response.cookies[FLOW_COOKIE]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
        assert cookie["path"] == "/portal/callback" and 0 < int(cookie["max-age"]) <= 600
        return response.headers["Location"], cookie.value

    async def come_back(self, redirect: str, handle: str | None) -> web.StreamResponse:
        """The browser following the provider's redirect to the callback (with its cookie, or without)."""
        parts = urlsplit(redirect)
        headers = {"Cookie": f"{FLOW_COOKIE}={handle}"} if handle else {}
        return await self.client.get(f"{parts.path}?{parts.query}", headers=headers, allow_redirects=False)


@pytest.fixture
async def portal(providers: Providers, tmp_path) -> AsyncIterator[Portal]:  # type: ignore[no-untyped-def]
    down = await MintingIdp().start()
    await down.stop()  # an identity provider that is not there: nothing listens at its address
    config = portal_config(
        authority("LEEDS", providers.leeds.issuer, providers.secret_file),
        authority("KENT", providers.kent.issuer, providers.secret_file, token_auth_method="client_secret_post"),
        authority("CORNWALL", down.url, providers.secret_file),
    )
    sessions: list[PortalUser] = []

    async def start_session(request: web.Request, user: PortalUser) -> web.StreamResponse:
        sessions.append(user)
        return web.Response(status=303, headers={"Location": "/portal/search"})

    app = web.Application()
    install_oidc_sign_in(app, config, start_session)
    async with TestClient(TestServer(app)) as client:
        yield Portal(client, sessions)


async def test_a_browser_signs_in_and_a_session_is_started(portal: Portal) -> None:
    location, handle = await portal.start("LEEDS")
    redirect = await drive_login(location, "pat", REDIRECT_URI)
    response = await portal.come_back(redirect, handle)

    assert response.status == 303 and response.headers["Location"] == "/portal/search"
    assert [(u.authority, u.identity.organisation) for u in portal.sessions] == [("LEEDS", "Leeds Council")]
    assert response.cookies[FLOW_COOKIE].value == ""  # the sign-in cookie is cleared


async def test_a_forged_return_is_a_403_page_and_starts_no_session(portal: Portal) -> None:
    location, handle = await portal.start("LEEDS")
    redirect = await drive_login(location, "pat", REDIRECT_URI)
    forged = redirect.replace("state=", "state=x")
    response = await portal.come_back(forged, handle)

    assert response.status == 403
    assert "did not match the one started in this browser" in await response.text()
    assert portal.sessions == []


async def test_a_return_to_a_browser_that_never_started_signing_in_is_refused(portal: Portal) -> None:
    location, _ = await portal.start("LEEDS")
    redirect = await drive_login(location, "pat", REDIRECT_URI)
    response = await portal.come_back(redirect, None)
    assert response.status == 403 and portal.sessions == []


async def test_an_unknown_authority_is_a_404(portal: Portal) -> None:
    response = await portal.client.get("/portal/sign-in/NOWHERE", allow_redirects=False)
    assert response.status == 404 and FLOW_COOKIE not in {c.key for c in portal.client.session.cookie_jar}


async def test_an_identity_provider_that_is_down_is_a_plain_page_never_a_5xx(portal: Portal) -> None:
    response = await portal.client.get("/portal/sign-in/CORNWALL", allow_redirects=False)
    assert response.status == 400
    assert "could not reach Cornwall Council" in await response.text()


async def test_an_identity_provider_s_error_is_refused_without_echoing_its_words(portal: Portal) -> None:
    location, handle = await portal.start("LEEDS")
    state = parse_qs(urlsplit(location).query)["state"][0]
    words = "<script>alert(1)</script>"
    back = f"{REDIRECT_URI}?{urlencode({'error': 'access_denied', 'error_description': words, 'state': state})}"
    response = await portal.come_back(back, handle)

    text = await response.text()
    assert response.status == 403 and "did not sign you in" in text
    assert "alert(1)" not in text and portal.sessions == []
