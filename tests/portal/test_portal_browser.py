"""The portal in Debian's Chromium (Playwright, never a downloaded browser): every page and state passes
axe-core's WCAG 2.2 AA checks, and a search works from the form to the results with JavaScript off.

The browser is signed in by a session made directly in the broker's store (the OIDC flow has its own
tests). axe-core is the committed copy in tests/portal/vendor (scripts/build_portal_assets.sh).
Screenshots go to ``tests/artifacts/``. Without Chromium or Playwright these tests skip and say why,
except under ``SIGNPOST_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from broker.portal.sessions import COOKIE
from tests.broker.test_dashboard_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, need_browser
from tests.conftest import row
from tests.portal.conftest import DATA, PRACTITIONER, Portal
from tests.portal.op.harness import PASSWORD, Providers, providers_fixture  # noqa: F401  (the `providers` fixture)
from tests.portal.signing import signing_fixture  # noqa: F401  (the `signing` fixture)

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WAIT_MS = 15_000
# A possible match at Cornwall (a given name that sounds alike): its front door, never its practitioner.
BROWSER_DATA = {**DATA, "CORNWALL": [row(record_id="C9", given_name="Emilia", practitioner_name="Sam Other")]}


@pytest.fixture(scope="module")
async def chromium():
    need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def signed_in_page(chromium: Any, p: Portal, *, javascript: bool = True, bypass_csp: bool = True) -> Any:
    """A page in a fresh context carrying a practitioner's session cookie.

    The harness's broker certificate is from the test CA, which Chromium does not know: certificate
    errors are ignored here (the API tests check the TLS). ``bypass_csp`` lets axe-core be injected.
    """
    context = await chromium.new_context(
        ignore_https_errors=True,
        bypass_csp=bypass_csp,
        java_script_enabled=javascript,
        viewport={"width": 1024, "height": 768},
    )
    session_id, _ = p.store.create(PRACTITIONER)
    host = p.origin.removeprefix("https://").split(":")[0]
    await context.add_cookies(
        [{"name": COOKIE, "value": session_id, "domain": host, "path": "/portal", "secure": True, "httpOnly": True}]
    )
    return await context.new_page()


async def axe_violations(page: Any) -> list[str]:
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", WCAG_22_AA
    )
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])}: {v['nodes'][0]['target']})" for v in result["violations"]]


async def check(page: Any, state: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"portal-{state}.png", full_page=True)
    assert await axe_violations(page) == [], state


async def fill(page: Any, **fields: str) -> None:
    for name, value in fields.items():
        if name == "purpose":
            await page.select_option("#purpose", value)
        elif name == "sex":
            await page.check(f'input[name="sex"][value="{value}"]')
        else:
            await page.fill(f"#{name}", value)


CHILD = {"given_name": "Amelia", "family_name": "Smith", "dob_day": "9", "dob_month": "3", "dob_year": "2014"}
WHY = {"purpose": "child-protection-enquiry", "justification": "Strategy discussion, case 2291"}


async def search(page: Any, p: Portal, **fields: str) -> Any:
    await page.goto(p.origin + "/portal/search")
    await fill(page, **fields)
    async with page.expect_navigation():
        await page.click("button:has-text('Search')")
    return page


async def test_every_page_and_state_meets_wcag_22_aa(chromium, portal):
    from playwright.async_api import expect

    p = await portal(BROWSER_DATA)
    signed_out = await (await chromium.new_context(ignore_https_errors=True, bypass_csp=True)).new_page()
    await signed_out.goto(p.origin + "/portal")
    await check(signed_out, "start")
    await signed_out.goto(p.origin + "/portal/sign-in?signed_out=1")
    await check(signed_out, "sign-in")
    await signed_out.goto(p.origin + "/portal/sign-in/start?authority=NOWHERE")  # a refused sign-in's page
    await expect(signed_out.locator(".govuk-error-summary")).to_contain_text("does not know that organisation")
    await check(signed_out, "sign-in-refused")

    page = await signed_in_page(chromium, p)
    await page.goto(p.origin + "/portal")
    await check(page, "start-signed-in")
    await page.goto(p.origin + "/portal/search")
    await check(page, "search")

    await search(page, p, given_name="Amelia", dob_day="31", dob_month="2", dob_year="2014", purpose=WHY["purpose"])
    await expect(page.locator(".govuk-error-summary")).to_be_visible()
    # 31 February has no likely reading, and without a date of birth the search needs a family name and a
    # home: every field to fix is named at once, the missing family name first (the form's order).
    await expect(page.locator(".govuk-error-summary__list li")).to_have_text(
        [
            re.compile(r"^Family name: required"),
            "Date of birth is not a real calendar date",
            "Justification: required, 10 to 500 characters",
        ]
    )
    await check(page, "errors")

    await search(page, p, **CHILD, **WHY)
    await expect(page.locator("[data-band=match]")).to_have_count(1)
    await expect(page.locator("#receipt")).to_contain_text("Your search was recorded as entry")
    await check(page, "results")
    possible = page.locator("[data-band=possible]")
    await expect(possible).to_contain_text("Cornwall: Possible match — check before acting")
    await expect(possible).to_contain_text("Front door")
    await expect(possible).not_to_contain_text("Sam Other")

    await search(page, p, given_name="Isla", family_name="Nowhere", dob_day="1", dob_month="1", dob_year="2015", **WHY)
    await expect(page.locator("#no-results")).to_be_visible()
    await check(page, "no-results")

    await p.fed.nodes["KENT"].stop(grace=0)
    await search(page, p, **CHILD, **WHY)
    await expect(page.locator("#not-answered")).to_contain_text("this search does not tell you whether Kent knows")
    await check(page, "partial-coverage")

    await page.goto(p.origin + "/portal/recent")
    await expect(page.locator("#recent tbody tr")).to_have_count(4)
    await check(page, "recent")


async def test_a_search_works_without_javascript_and_under_the_pages_own_csp(chromium, portal):
    from playwright.async_api import expect

    p = await portal()
    page = await signed_in_page(chromium, p, javascript=False, bypass_csp=False)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    await search(page, p, **CHILD, **WHY, sex="F")
    await expect(page.locator("h1")).to_have_text("Search results")
    await expect(page.locator("[data-band=match]")).to_contain_text("Jo Bloggs")
    await expect(page.locator("a[href='tel:01134960000']")).to_have_count(1)
    assert page.url == p.origin + "/portal/search"  # the child's details went in the body, never the URL
    assert all(u.startswith(p.origin) for u in requested), requested  # no CDN, nothing from elsewhere
    assert not any(d in u for u in requested for d in ("Amelia", "Smith", "2014"))
    async with page.expect_navigation():
        await page.click("button:has-text('Sign out')")
    await expect(page.locator(".govuk-notification-banner")).to_contain_text("You have signed out")
    await page.goto(p.origin + "/portal/search")
    assert page.url == p.origin + "/portal/sign-in"
    assert problems == []


async def test_the_pages_run_gov_uk_frontend_under_their_csp(chromium, portal):
    from playwright.async_api import expect

    p = await portal()
    page = await signed_in_page(chromium, p, bypass_csp=False)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(p.origin + "/portal/search")
    # GOV.UK Frontend's inline line and its module ran: the body says so, and nothing was blocked.
    classes = await page.locator("body").get_attribute("class")
    assert "js-enabled" in classes and "govuk-frontend-supported" in classes
    await expect(page.locator("[data-module=govuk-button][data-govuk-button-init]").first).to_be_attached()
    assert problems == []


async def test_the_accessibility_check_can_fail(chromium, portal):
    """The same check on a page with a known fault (a field whose label is removed) reports it."""
    p = await portal()
    page = await signed_in_page(chromium, p)
    await page.goto(p.origin + "/portal/search")
    await page.evaluate("document.querySelector('label[for=given_name]').remove()")
    assert any(v.startswith("label:") for v in await axe_violations(page))


async def test_a_practitioner_signs_in_searches_and_signs_out_through_the_real_provider(chromium, signing: Portal):
    """Nothing made directly: Chromium follows "Sign in with Leeds Council" to Leeds's real OpenID provider,
    signs in there, comes back with a session, finds a child, sees it in recent searches and signs out;
    the session cookie it held is then worth nothing."""
    from playwright.async_api import expect

    p = signing
    context = await chromium.new_context(ignore_https_errors=True, viewport={"width": 1024, "height": 768})
    page = await context.new_page()
    await page.goto(p.origin + "/portal/sign-in")
    async with page.expect_navigation():
        await page.click("text=Sign in with Leeds Council")
    assert page.url.startswith("http://127.0.0.1:") and not page.url.startswith(p.origin)  # the provider's page
    await page.fill("#username", "pat")
    await page.fill("#password", PASSWORD)
    async with page.expect_navigation(url=p.origin + "/portal/search"):
        await page.click("button:has-text('Sign in')")
    await expect(page.locator("h1")).to_contain_text("Search")

    await search(page, p, **CHILD, **WHY)
    await expect(page.locator("[data-band=match]")).to_contain_text("Jo Bloggs")
    await expect(page.locator("#receipt")).to_contain_text("Your search was recorded as entry")
    await page.goto(p.origin + "/portal/recent")
    await expect(page.locator("#recent tbody tr")).to_have_count(1)

    held = {c["name"]: c for c in await context.cookies()}[COOKIE]
    async with page.expect_navigation():
        await page.click("button:has-text('Sign out')")
    await expect(page.locator(".govuk-notification-banner")).to_contain_text("You have signed out")

    replay = await chromium.new_context(ignore_https_errors=True)
    await replay.add_cookies([held])
    old = await replay.new_page()
    await old.goto(p.origin + "/portal/search")
    assert old.url == p.origin + "/portal/sign-in"
    entries = [e for e in await p.audit_entries() if e["outcome"] == "answered"]
    assert [e["actor"]["user_id"].endswith("#pat") for e in entries] == [True]
