"""The portal's sign-in routes with the real OpenID providers, in the real broker: a browser's round trip,
and its refusals, each a GOV.UK page (never a 5xx) that starts no session.

The broker is tests.portal.signing's: a harness federation whose ``[portal]`` lists real providers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from broker.portal.paths import SIGN_IN_CALLBACK, SIGN_IN_START
from broker.portal.sessions import COOKIE
from broker.portal.signin import FLOW_COOKIE
from tests.portal.conftest import Portal
from tests.portal.op.harness import Providers, drive_login, providers_fixture  # noqa: F401  (the `providers` fixture)
from tests.portal.signing import come_back, signing_fixture, start  # noqa: F401  (the `signing` fixture)


def cookies(client: aiohttp.ClientSession) -> dict[str, Any]:
    return {c.key: c for c in client.cookie_jar}


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


async def test_an_identity_provider_s_error_is_refused_without_echoing_its_words(
    signing: Portal, providers: Providers
) -> None:
    client = signing.browser()
    location = await start(signing, client, "LEEDS")
    state = parse_qs(urlsplit(location).query)["state"][0]
    words = "<script>alert(1)</script>"
    # As the provider's error answer comes: with its iss (RFC 9207), which it sends on every answer.
    query = urlencode(
        {"error": "access_denied", "error_description": words, "state": state, "iss": providers.leeds.issuer}
    )
    status, _, text, _ = await come_back(client, f"{signing.origin}{SIGN_IN_CALLBACK}?{query}")

    assert status == 403 and "did not sign you in" in text
    assert "alert(1)" not in text and len(signing.store) == 0


async def test_the_provider_asks_for_the_password_again_at_the_next_sign_in_from_the_same_browser(
    signing: Portal,
) -> None:
    # A shared computer: the last practitioner signed out of Signpost, but the browser still holds their
    # session at the identity provider. The next sign-in must ask for a password, not reuse that session.
    at_provider = aiohttp.CookieJar(unsafe=True)
    for _ in range(2):
        client = signing.browser()
        asked: list[str] = []
        location = await start(signing, client, "LEEDS")
        assert "prompt=login" in location
        redirect = await drive_login(location, "pat", signing.origin + SIGN_IN_CALLBACK, jar=at_provider, asked=asked)
        status, where, _, _ = await come_back(client, redirect)
        assert (status, where) == (303, "/portal/search")
        assert "login" in asked, "the provider signed the browser in without asking for a password"
    assert len(at_provider) > 0, "the test's browser kept no session at the provider: it proves nothing"
