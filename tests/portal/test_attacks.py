"""The portal attacked as a hostile user or site would: each test here failed before its fix.

The broker is tests.portal.signing's (real OpenID providers, the real broker over HTTPS) or the plain
portal harness with a session made directly. Protections found sound are not re-tested here; the review
report lists them.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broker.portal.paths import SIGN_IN_CALLBACK, SIGN_IN_START
from broker.portal.sessions import COOKIE
from tests.portal.conftest import CHILD, PURPOSE, Portal
from tests.portal.op.harness import Providers, drive_login, providers_fixture  # noqa: F401  (the `providers` fixture)
from tests.portal.signing import come_back, signing_fixture, start  # noqa: F401  (the `signing` fixture)

ONE_YEAR = 365 * 24 * 3600


def without(url: str, name: str) -> str:
    """``url`` with the query parameter ``name`` taken out (as a man in the middle of a mix-up would)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k != name]
    return urlunsplit(parts._replace(query=urlencode(kept)))


async def test_a_return_without_iss_from_a_provider_that_always_sends_it_is_refused(signing: Portal) -> None:
    # RFC 9207 2.4: a provider advertising authorization_response_iss_parameter_supported (oidc-provider
    # does) always names itself in its answer; one without iss did not come from it (a mix-up).
    client = signing.browser()
    location = await start(signing, client, "LEEDS")
    redirect = await drive_login(location, "pat", signing.origin + SIGN_IN_CALLBACK)
    assert "iss" in dict(parse_qsl(urlsplit(redirect).query))  # the real provider does send it
    status, _, text, set_cookies = await come_back(client, without(redirect, "iss"))

    assert status == 403 and "did not come from" in text
    assert len(signing.store) == 0 and COOKIE not in set_cookies
    assert await signing.audit_entries() == []


async def test_every_page_tells_browsers_to_use_https_only(signing: Portal) -> None:
    # Without HSTS, a practitioner typing the address gets http:// first, which a network attacker can
    # answer (a fake sign-in page, or a planted cookie).
    client = signing.browser()
    for path in ("/portal", "/portal/sign-in", f"{SIGN_IN_START}?authority=NOWHERE"):
        async with client.get(signing.origin + path, allow_redirects=False) as response:
            hsts = response.headers.get("Strict-Transport-Security", "")
            directives = dict(p.strip().partition("=")[::2] for p in hsts.split(";") if p.strip())
            assert int(directives.get("max-age") or 0) >= ONE_YEAR, (path, hsts)


async def test_the_session_cookie_ends_when_the_browser_is_closed(signing: Portal) -> None:
    # A persistent cookie outlives the browser on a shared computer: the next person to open it within the
    # idle timeout would be the practitioner. The server enforces the 8 hours; the cookie needs no date.
    client = signing.browser()
    location = await start(signing, client, "LEEDS")
    status, _, _, set_cookies = await come_back(
        client, await drive_login(location, "pat", signing.origin + SIGN_IN_CALLBACK)
    )
    assert status == 303 and set_cookies[COOKIE].value
    assert set_cookies[COOKIE]["max-age"] == "" and set_cookies[COOKIE]["expires"] == ""


async def test_the_sign_in_cookie_cannot_be_planted_over_plain_http(signing: Portal) -> None:
    # The handle in this cookie is the login-CSRF defence: a browser holding an attacker's handle, sent to
    # the attacker's return, is signed in as the attacker. Only a __Secure- name makes browsers refuse it
    # from http:// (any port of the host, or a man in the middle); the session cookie has it already.
    client = signing.browser()
    async with client.get(f"{signing.origin}{SIGN_IN_START}?authority=LEEDS", allow_redirects=False) as response:
        assert response.status == 302
        names = [c.key for c in response.cookies.values()]
    assert names and all(name.startswith("__Secure-") for name in names), names


async def test_a_justification_giving_the_child_s_postcode_is_refused_and_never_stored(portal) -> None:
    # The justification is kept in clear in the audit log and the nodes' journals, so it must not say where
    # the child lives, whatever the spacing or case: the postcode is one of the child's details.
    p = await portal()
    client = p.browser()
    session = p.sign_in(client)
    for written in ("LS6 2AB", "ls62ab", "Ls6-2Ab"):
        form = {**CHILD, **PURPOSE, "postcode": "LS6 2AB", "justification": f"Home visit at {written}, case 2291"}
        async with client.post(p.origin + "/portal/search", data={**form, "csrf_token": session.csrf_token}) as r:
            status, page = r.status, await r.text()
        assert status == 400 and "Justification must not contain the child" in page, written
    stored = json.dumps(await p.audit_entries()).lower()
    assert "ls6" not in stored.replace(" ", "") and await p.audit_entries() != []  # refused attempts, audited
