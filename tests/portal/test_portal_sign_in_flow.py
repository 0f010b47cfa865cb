"""The portal with nothing made directly: a practitioner signs in through their authority's real OpenID
provider (``oidc-provider`` under Node), then searches, and each protection holds on that real session.

The browser is aiohttp (no page needs a browser here; tests/portal/test_portal_browser_sign_in.py runs
the same flow in Chromium). Each refusal asserts what a user would notice and that nothing was audited
as a search and no node was asked.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from broker.portal.sessions import COOKIE
from tests.portal.conftest import CHILD, PURPOSE, Portal
from tests.portal.op.harness import Providers, providers_fixture  # noqa: F401  (the `providers` fixture)
from tests.portal.signing import csrf_token, sign_in_as, signing_fixture  # noqa: F401  (the `signing` fixture)


async def get(p: Portal, client: aiohttp.ClientSession, path: str) -> tuple[int, str]:
    async with client.get(p.origin + path, allow_redirects=False) as response:
        return response.status, response.headers.get("Location", "")


async def post_search(p: Portal, client: aiohttp.ClientSession, form: dict[str, str]) -> tuple[int, str]:
    async with client.post(p.origin + "/portal/search", data=form, allow_redirects=False) as response:
        return response.status, await response.text()


async def nothing_searched(p: Portal) -> bool:
    asked = [row for node in p.fed.nodes.values() for row in node.service.journal.access_log()]
    return await p.audit_entries() == [] and asked == []


def session_cookie(client: aiohttp.ClientSession) -> str:
    return next(c.value for c in client.cookie_jar if c.key == COOKIE)


async def test_the_requester_everywhere_is_the_oidc_identity(signing: Portal, providers: Providers) -> None:
    client = await sign_in_as(signing, "LEEDS", "pat")
    status, page = await post_search(
        signing, client, {**CHILD, **PURPOSE, "csrf_token": await csrf_token(signing, client)}
    )

    assert status == 200 and "Jo Bloggs" in page  # the contact at the node that holds the child
    identity = f"{providers.leeds.issuer}#pat"  # issuer + subject, as the token's iss and sub said
    entries = await signing.audit_entries()
    assert [e["outcome"] for e in entries] == ["started", "answered"]
    assert entries[-1]["actor"] == {
        "user_id": identity,
        "name": "Pat",
        "organisation": "Leeds Council",
        "role": "practitioner",
        "email": "pat@leeds.example",
    }
    # The node checked the broker's signed assertion, and journals the same requester.
    rows = signing.fed.nodes["LEEDS"].service.journal.access_log()
    assert [(r.requester_id, r.requester_name, r.requester_organisation, r.requester_role) for r in rows] == [
        (identity, "Pat", "Leeds Council", "practitioner")
    ]


async def test_the_organisation_is_the_signing_issuer_s_not_the_token_s_claim(signing: Portal) -> None:
    """Leeds's provider puts ``"organisation": "KENT"`` in Pat's token: Pat still searches as Leeds."""
    client = await sign_in_as(signing, "LEEDS", "pat")
    session = signing.store.get(session_cookie(client))
    assert session is not None
    assert (session.user.authority, session.user.identity.organisation) == ("LEEDS", "Leeds Council")
    kim = signing.store.get(session_cookie(await sign_in_as(signing, "KENT", "kim")))
    assert kim is not None and (kim.user.authority, kim.user.identity.organisation) == ("KENT", "Kent Council")


async def test_a_post_without_the_csrf_token_is_refused_and_nothing_is_searched(signing: Portal) -> None:
    client = await sign_in_as(signing, "LEEDS", "pat")
    for forged in ({}, {"csrf_token": "not-the-session-s"}):
        status, page = await post_search(signing, client, {**CHILD, **PURPOSE, **forged})
        assert status == 403 and "did not come from this service" in page
    assert await nothing_searched(signing)


async def test_a_session_used_after_sign_out_goes_back_to_sign_in(signing: Portal) -> None:
    client = await sign_in_as(signing, "LEEDS", "pat")
    copied = session_cookie(client)
    async with client.post(
        signing.origin + "/portal/sign-out",
        data={"csrf_token": await csrf_token(signing, client)},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
    replay = signing.browser()
    replay.cookie_jar.update_cookies({COOKIE: copied}, response.url.with_path("/portal/"))
    assert await get(signing, replay, "/portal/search") == (303, "/portal/sign-in")
    status, _ = await post_search(signing, replay, {**CHILD, **PURPOSE, "csrf_token": "anything"})
    assert status == 303 and await nothing_searched(signing)


async def test_a_session_idle_too_long_goes_back_to_sign_in(signing: Portal, monkeypatch: Any) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(signing.store, "clock", lambda: now[0])
    client = await sign_in_as(signing, "LEEDS", "pat")
    now[0] += 14 * 60
    assert (await get(signing, client, "/portal/search"))[0] == 200
    now[0] += 15 * 60
    assert await get(signing, client, "/portal/search") == (303, "/portal/sign-in")


async def test_a_practitioner_s_session_opens_no_operator_route(signing: Portal) -> None:
    client = await sign_in_as(signing, "LEEDS", "pat")
    for path in ("/v1/nodes", "/dashboard", "/metrics", "/v1/audit/entries"):
        assert (await get(signing, client, path))[0] == 401, path


async def test_a_tampered_cookie_is_signed_out(signing: Portal) -> None:
    client = await sign_in_as(signing, "LEEDS", "pat")
    real = session_cookie(client)
    tampered = real[:-1] + ("A" if real[-1] != "A" else "B")
    client.cookie_jar.update_cookies({COOKIE: tampered}, aiohttp.client.URL(signing.origin + "/portal/"))
    assert await get(signing, client, "/portal/search") == (303, "/portal/sign-in")
    status, _ = await post_search(signing, client, {**CHILD, **PURPOSE, "csrf_token": "anything"})
    assert status == 303 and await nothing_searched(signing)
