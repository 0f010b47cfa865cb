"""The portal over HTTPS against real nodes and the real broker: sessions, CSRF, roles, and one search path.

Each refusal is checked for what a user would notice (the page, the status) and for what must not
happen (nothing audited, no node asked). A portal search must be the API's search: audited with the
portal user as requester, signed for the nodes, refused for the same reasons.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from broker.appkeys import SESSIONS
from broker.policy import PORTAL_OPEN_ROUTES, PORTAL_ROUTE_ROLES
from broker.portal.routes import ROUTES
from broker.portal.sessions import COOKIE, SessionStore, start_session
from certs.identity import Role
from tests.portal.conftest import CHILD, PRACTITIONER, PURPOSE, Portal, portal_user


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


async def get(p: Portal, client: Any, path: str) -> tuple[int, str, str]:
    async with client.get(p.origin + path, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def post(p: Portal, client: Any, path: str, data: dict[str, str]) -> tuple[int, str, str, Any]:
    async with client.post(p.origin + path, data=data, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text(), resp


def search_form(session: Any, **changes: str) -> dict[str, str]:
    return {**CHILD, **PURPOSE, "csrf_token": session.csrf_token, **changes}


def test_every_portal_route_is_in_the_policy_table():
    for method, path, _ in ROUTES:
        assert (method, path) in PORTAL_ROUTE_ROLES or (method, path) in PORTAL_OPEN_ROUTES, (method, path)
    # The pages that show or take children's details need a practitioner's session.
    for route in (("GET", "/portal/search"), ("POST", "/portal/search"), ("GET", "/portal/recent")):
        assert PORTAL_ROUTE_ROLES[route] == (Role.PRACTITIONER,)


async def test_start_page_says_what_signpost_is_and_is_not(portal):
    p = await portal()
    client = p.browser()
    assert (await get(p, client, "/"))[:2] == (303, "/portal")
    async with client.get(p.origin + "/portal") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        page = text_of(await resp.text())
    assert "It holds no case records" in page
    assert "No answer is not the same as no contact" in page
    assert "Sign in with your authority" in page


async def test_pages_that_need_a_session_send_a_browser_without_one_to_sign_in(portal):
    p = await portal()
    client = p.browser()
    for path in ("/portal/search", "/portal/recent"):
        assert (await get(p, client, path))[:2] == (303, "/portal/sign-in")
    status, where, _, _ = await post(p, client, "/portal/search", search_form(p.store.create(PRACTITIONER)[1]))
    assert (status, where) == (303, "/portal/sign-in")
    assert await p.audit_entries() == []


async def test_a_tampered_or_unknown_cookie_is_signed_out(portal):
    p = await portal()
    client = p.browser()
    session_id, _ = p.store.create(PRACTITIONER)
    for forged in (session_id[:-2] + "xx", "not-a-session", session_id + "0"):
        client.cookie_jar.clear()
        client.cookie_jar.update_cookies({COOKIE: forged}, p.fed.server.make_url("/portal/"))
        assert (await get(p, client, "/portal/search"))[:2] == (303, "/portal/sign-in"), forged
    client.cookie_jar.clear()
    client.cookie_jar.update_cookies({COOKIE: session_id}, p.fed.server.make_url("/portal/"))
    assert (await get(p, client, "/portal/search"))[0] == 200


async def test_a_post_without_the_csrf_token_is_refused_and_nothing_is_audited(portal):
    p = await portal()
    client = p.browser()
    session = p.sign_in(client)
    _, other = p.store.create(PRACTITIONER)
    for token in ({}, {"csrf_token": ""}, {"csrf_token": other.csrf_token}):
        data = {**CHILD, **PURPOSE, **token}
        status, _, html, _ = await post(p, client, "/portal/search", data)
        assert status == 403
        assert "did not come from this service" in text_of(html)
    assert await p.audit_entries() == []
    for node in p.fed.nodes.values():
        assert node.service.journal.access_log() == []
    status, _, _, _ = await post(p, client, "/portal/search", search_form(session))
    assert status == 200  # the same form with its token is a search


async def test_sign_out_ends_the_session_here_so_its_cookie_is_worthless(portal):
    p = await portal()
    client = p.browser()
    session = p.sign_in(client)
    copied = {c.key: c.value for c in client.cookie_jar}[COOKIE]
    status, _, _, _ = await post(p, client, "/portal/sign-out", {})  # no token: a forged sign-out
    assert status == 403
    assert (await get(p, client, "/portal/search"))[0] == 200
    status, where, _, resp = await post(p, client, "/portal/sign-out", {"csrf_token": session.csrf_token})
    assert (status, where) == (303, "/portal/sign-in?signed_out=1")
    assert "Max-Age=0" in resp.headers["Set-Cookie"] or "expires" in resp.headers["Set-Cookie"].lower()
    assert len(p.store) == 0
    # The browser forgot its cookie; someone who copied it gets nothing more either.
    assert (await get(p, client, "/portal/search"))[:2] == (303, "/portal/sign-in")
    client.cookie_jar.update_cookies({COOKIE: copied}, p.fed.server.make_url("/portal/"))
    assert (await get(p, client, "/portal/search"))[:2] == (303, "/portal/sign-in")
    status, _, _, _ = await post(p, client, "/portal/search", search_form(session))
    assert status == 303
    assert await p.audit_entries() == []


async def test_idle_and_absolute_timeouts_sign_the_user_out(portal, monkeypatch):
    p = await portal()
    now = [1_000_000.0]
    monkeypatch.setattr(p.store, "clock", lambda: now[0])
    idle = p.browser()
    p.sign_in(idle)
    busy = p.browser()
    p.sign_in(busy)
    now[0] += 14 * 60
    assert (await get(p, busy, "/portal/search"))[0] == 200
    now[0] += 2 * 60
    assert (await get(p, idle, "/portal/search"))[:2] == (303, "/portal/sign-in")  # 16 minutes idle
    assert (await get(p, busy, "/portal/search"))[0] == 200
    while now[0] < 1_000_000.0 + 8 * 3600 - 10 * 60:
        now[0] += 10 * 60
        assert (await get(p, busy, "/portal/search"))[0] == 200
    now[0] += 10 * 60
    assert (await get(p, busy, "/portal/search"))[:2] == (303, "/portal/sign-in")  # 8 hours since sign-in


async def test_signing_in_makes_a_fresh_session_and_ends_the_old_one():
    """No fixation: whatever session id the browser arrives with, signing in gives a new one."""
    store = SessionStore()
    app = web.Application()
    app[SESSIONS] = store

    async def callback(request: web.Request) -> web.StreamResponse:
        return start_session(request, PRACTITIONER)

    app.router.add_get("/portal/sign-in/callback", callback)
    planted, _ = store.create(portal_user(subject="mallory"))
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(
            "/portal/sign-in/callback", headers={"Cookie": f"{COOKIE}={planted}"}, allow_redirects=False
        )
        assert resp.status == 303
        assert resp.headers["Location"] == "/portal/search"
        cookie = resp.cookies[COOKIE]
    assert cookie.value != planted
    assert store.get(planted) is None
    assert store.get(cookie.value).user == PRACTITIONER
    for attribute in ("httponly", "secure"):
        assert cookie[attribute]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/portal"


async def test_roles_other_than_practitioner_cannot_search_in_the_portal(portal):
    p = await portal()
    for role in (Role.AUDITOR, Role.OPERATOR):
        client = p.browser()
        session = p.sign_in(client, portal_user(role, subject=role.value))
        status, _, html = await get(p, client, "/portal/search")
        assert status == 403
        assert "needs the role practitioner" in text_of(html)
        status, _, _, _ = await post(p, client, "/portal/search", search_form(session))
        assert status == 403
    # A portal session is no certificate: the operators' and auditors' API routes refuse it, whatever its role.
    for role in (Role.PRACTITIONER, Role.OPERATOR):
        client = p.browser()
        p.sign_in(client, portal_user(role, subject=f"{role.value}-2"))
        for path in ("/dashboard", "/v1/nodes", "/metrics", "/v1/audit/entries"):
            async with client.get(p.origin + path) as resp:
                assert resp.status == 401, (role, path)
    # Their search attempts were audited by name, as a refused API search is.
    entries = await p.audit_entries()
    refused = [(e["outcome"], e["actor"]["role"]) for e in entries]
    assert refused == [("forbidden", "auditor"), ("forbidden", "operator")]


async def test_a_portal_search_is_the_api_search_with_the_portal_user_as_requester(portal):
    p = await portal()
    client = p.browser()
    session = p.sign_in(client)
    with capture_logs() as logs:
        async with client.post(p.origin + "/portal/search", data=search_form(session)) as resp:
            assert resp.status == 200
            assert resp.history == ()  # answered directly: the child's details are in no URL
            assert resp.url.path == "/portal/search" and not resp.url.query
            html = await resp.text()
    page = text_of(html)
    assert "Leeds: Match" in page
    assert "Jo Bloggs, Social worker" in page
    assert 'href="tel:01134960000"' in html
    assert 'href="mailto:jo.bloggs@leeds.example"' in html
    entries = await p.audit_entries()
    assert [e["outcome"] for e in entries] == ["started", "answered"]
    actor = entries[-1]["actor"]
    assert actor == {
        "user_id": PRACTITIONER.identity.id,
        "name": "Pat Practitioner",
        "organisation": "Leeds",
        "role": "practitioner",
        "email": "pat@leeds.example",
    }
    assert f"Your search was recorded as entry {len(entries) - 1}" in page
    # The node verified the broker's signed assertion and recorded who asked, as for an API search.
    status, _ = await p.fed.search({"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"})
    assert status == 200
    rows = sorted(p.fed.nodes["LEEDS"].service.journal.access_log(), key=lambda r: r.id)
    assert [(r.requester_id, r.requester_role, r.band, r.purpose_code) for r in rows] == [
        (PRACTITIONER.identity.id, "practitioner", "match", "child-protection-enquiry"),
        ("practitioner", "practitioner", "match", "child-protection-enquiry"),
    ]
    for event in logs:
        assert not {"Amelia", "Smith", "2014-03-09"} & {str(v) for v in event.values()}, event


async def test_form_errors_use_the_api_rules_name_each_field_and_are_audited_like_the_api(portal):
    p = await portal()
    client = p.browser()
    session = p.sign_in(client)
    form = search_form(session, family_name="", dob_month="")
    with capture_logs() as logs:
        status, _, html, _ = await post(p, client, "/portal/search", form)
        assert status == 400
        assert 'class="govuk-error-summary"' in html
        summary = re.findall(r'<li><a href="#([a-z_]+)">([^<]+)</a></li>', html)
        assert [target for target, _ in summary] == ["family_name", "dob_day"]
        assert "must include a month" in summary[1][1]
        assert 'value="Amelia"' in html  # what was typed is shown again, in the form only
        assert "govuk-form-group--error" in html
        status, _, html, _ = await post(p, client, "/portal/search", search_form(session, justification="Amelia case"))
        assert status == 400
        summary = re.findall(r'<li><a href="#([a-z_]+)">([^<]+)</a></li>', html)
        assert [target for target, _ in summary] == ["justification"]
        assert "must not contain the child&#39;s name" in summary[0][1]
    assert [e["outcome"] for e in await p.audit_entries()] == ["invalid", "invalid"]
    for event in logs:
        assert "Amelia" not in str(event)


async def test_the_minimum_query_and_purpose_are_the_apis(portal):
    p = await portal()
    client = p.browser()
    session = p.sign_in(client)
    form = search_form(session, given_name="", dob_day="", dob_month="", dob_year="", purpose="curiosity")
    status, _, html, _ = await post(p, client, "/portal/search", form)
    assert status == 400
    summary = dict(re.findall(r'<li><a href="#([a-z_]+)">([^<]+)</a></li>', html))
    assert set(summary) == {"given_name", "dob_day", "purpose"}
    assert summary["purpose"].startswith("Purpose must be one of")


async def test_partial_coverage_and_no_results_are_never_read_as_no_contact(portal):
    p = await portal()
    await p.fed.nodes["KENT"].stop(grace=0)
    client = p.browser()
    session = p.sign_in(client)
    status, _, html, _ = await post(p, client, "/portal/search", search_form(session, given_name="Isla"))
    assert status == 200
    page = text_of(html)
    assert "No records found" in page
    assert re.search(r"Kent (did not answer in time|could not be reached|has been failing, so was not asked)", page)
    assert "this search does not tell you whether Kent knows this child" in page


async def test_recent_searches_show_only_the_users_own_without_child_details(portal):
    p = await portal()
    mine, theirs = p.browser(), p.browser()
    session = p.sign_in(mine)
    other = p.sign_in(theirs, portal_user(subject="someone-else"))
    assert (await post(p, mine, "/portal/search", search_form(session)))[0] == 200
    assert (await post(p, mine, "/portal/search", search_form(session, family_name="")))[0] == 400
    form = search_form(other, purpose="missing-child")
    assert (await post(p, theirs, "/portal/search", form))[0] == 200
    status, _, html = await get(p, mine, "/portal/recent")
    assert status == 200
    rows = re.findall(r"<tr class=\"govuk-table__row\">(.*?)</tr>", html, flags=re.DOTALL)[1:]
    cells = [[text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.DOTALL)] for r in rows]
    assert [c[2:6] for c in cells] == [["Not made: the form had errors", "0", "0", "0"], ["Answered", "1", "0", "0"]]
    assert cells[0][1] == "None given"  # a refused form's purpose is not recorded, as for the API
    assert cells[1][1].startswith("Section 47")
    page = text_of(html)
    for detail in ("Amelia", "Smith", "2014", "Strategy discussion", "Jo Bloggs"):
        assert detail not in page


async def test_the_api_rate_limit_counts_portal_searches_too(portal):
    p = await portal(rate_limit=2)
    client = p.browser()
    session = p.sign_in(client)
    for _ in range(2):
        assert (await post(p, client, "/portal/search", search_form(session)))[0] == 200
    status, _, html, resp = await post(p, client, "/portal/search", search_form(session))
    assert status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "You have made too many searches" in text_of(html)
    assert [e["outcome"] for e in await p.audit_entries()][-1] == "rate_limited"


async def test_a_date_of_birth_read_from_the_future_is_searched_and_said_so(portal):
    p = await portal()
    client = p.browser()
    session = p.sign_in(client)
    status, _, html, _ = await post(p, client, "/portal/search", search_form(session, dob_year="2114"))
    assert status == 200
    page = text_of(html)
    assert "Leeds: Match" in page
    assert "so it was searched as its likely reading (one digit away from a date in the future" in page
    assert "2114" not in page and "2014" not in page  # the page says it was read, not what either date was
