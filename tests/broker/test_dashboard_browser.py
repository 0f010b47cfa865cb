"""The operators' dashboard in a real headless Chromium, against real nodes and the real broker.

The browser presents the operator's client certificate through Playwright, and
trusts only the federation's test CA. Screenshots go to ``tests/artifacts/``.
Without Chromium or the playwright package the browser tests skip and say
why, except where ``SIGNPOST_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from certs.identity import Role
from tests.conftest import row

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_MS = 15_000
THREE = {
    "LEEDS": [row()],
    "KENT": [row(record_id="K1", given_name="Oliver")],
    "CORNWALL": [row(record_id="C1", given_name="Isla"), row(record_id="C2", given_name="Noah")],
}


def need_browser() -> None:
    """Skip (or, under SIGNPOST_REQUIRE_BROWSER=1, fail) unless Chromium and Playwright are installed."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright)")
    if missing:
        reason = "the dashboard browser test needs " + " and ".join(missing)
        if os.environ.get("SIGNPOST_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; SIGNPOST_REQUIRE_BROWSER=1 says it must run")
        pytest.skip(reason)


def rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(float(v)) for v in re.findall(r"[\d.]+", css)[:3])
    return r, g, b


def is_red(css: str) -> bool:
    r, g, b = rgb(css)
    return r >= 150 and g <= 100 and b <= 100


def is_amber(css: str) -> bool:
    r, g, b = rgb(css)
    return r >= 200 and 120 <= g <= 220 and b <= 120


def is_green(css: str) -> bool:
    r, g, b = rgb(css)
    return g >= 80 and r <= 60 and g > b


@pytest.fixture(scope="module")
async def chromium(pki):
    """One headless Chromium for the module, driven by Playwright."""
    need_browser()
    from playwright.async_api import async_playwright

    with pytest.MonkeyPatch.context() as env:
        # Playwright's driver (Node) makes the TLS connection that carries the client certificate;
        # trusting the test CA there, rather than ignoring HTTPS errors, means the broker's certificate is checked.
        env.setenv("NODE_EXTRA_CA_CERTS", str(pki.ca.cert))
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                yield browser
            finally:
                await browser.close()


@dataclass
class Dashboard:
    page: Any
    requested: list[str]
    problems: list[str]

    def row(self, code: str) -> Any:
        return self.page.locator(f'tbody tr[data-code="{code}"]')

    async def background(self, code: str, cell: str) -> str:
        return str(await self.row(code).locator(f"td.{cell}").evaluate("c => getComputedStyle(c).backgroundColor"))


@pytest.fixture
async def open_dashboard(chromium, pki):
    """Factory: the dashboard of ``fed`` open in a new browser context with the operator's certificate."""
    ARTIFACTS.mkdir(exist_ok=True)
    contexts = []

    async def open_(fed, before_load=None) -> Dashboard:
        origin = "https://" + urlsplit(fed.url).netloc
        operator = pki.users[Role.OPERATOR]
        context = await chromium.new_context(
            client_certificates=[{"origin": origin, "certPath": operator.cert, "keyPath": operator.key}],
            viewport={"width": 1280, "height": 480},
        )
        contexts.append(context)
        page = await context.new_page()
        board = Dashboard(page, [], [])
        page.on("request", lambda r: board.requested.append(urlsplit(r.url).path))
        page.on("console", lambda m: board.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: board.problems.append(str(e)))
        if before_load is not None:
            await before_load(page)
        response = await page.goto(f"{origin}/dashboard")
        assert response is not None and response.status == 200
        return board

    yield open_
    for context in contexts:
        await context.close()


async def test_dashboard_shows_a_stopped_authority_as_down(federation, open_dashboard):
    from playwright.async_api import expect

    fed = await federation(THREE)
    board = await open_dashboard(fed)
    page = board.page
    await expect(page.locator('tbody tr[data-status="up"]')).to_have_count(3, timeout=WAIT_MS)
    codes = await page.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.code)")
    assert sorted(codes) == sorted(THREE)
    await expect(page.locator("#totals")).to_have_text("3 up / 3 total", timeout=WAIT_MS)
    assert await page.locator("#banner").is_hidden()
    assert is_green(await board.background("KENT", "status"))
    await expect(board.row("CORNWALL").locator("td.records")).to_have_text("2", timeout=WAIT_MS)
    await page.screenshot(path=ARTIFACTS / "dashboard-before.png", full_page=True)

    await fed.nodes["KENT"].stop(grace=0)

    await expect(board.row("KENT")).to_have_attribute(
        "data-status", re.compile(r"^(down|circuit_open)$"), timeout=WAIT_MS
    )
    colour = await board.background("KENT", "status")
    assert is_red(colour), colour
    await expect(page.locator("#totals")).to_have_text("2 up / 3 total", timeout=WAIT_MS)
    for code in ("LEEDS", "CORNWALL"):
        assert await board.row(code).get_attribute("data-status") == "up"
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

    # The page asks the broker for its node list and nothing else: no child's details, no outside resource.
    assert set(board.requested) == {"/dashboard", "/v1/nodes"}, board.requested
    assert board.problems == []
    shown = await page.locator("body").inner_text()
    assert not any(name in shown for name in ("Amelia", "Oliver", "Isla", "Noah", "Smith"))


def iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


async def test_dashboard_colours_expiring_certificates_and_reports_a_failing_broker(federation, open_dashboard):
    """Node lists the real federation cannot produce on demand, served to the real page in place of the broker's."""
    from playwright.async_api import expect

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    nodes = [
        {
            "code": "LEEDS",
            "name": "Leeds",
            "status": "up",
            "latency_ms": {"p50": 3.1, "p99": 9.8},
            "error_rate": 0.0,
            "last_success": iso(now - dt.timedelta(seconds=3)),
            "record_count": 1234,
            "data_as_of": iso(now - dt.timedelta(hours=9)),
            "data_age_seconds": 9 * 3600,
            "source_sync": "ok",
            "source_sync_at": iso(now - dt.timedelta(minutes=4)),
            "cert_expires": iso(now + dt.timedelta(days=400)),
        },
        {
            "code": "KENT",
            "name": "Kent",
            "status": "probation",
            "latency_ms": 812.4,
            "error_rate": 0.25,
            "data_as_of": iso(now - dt.timedelta(days=3)),
            # Its database went away: the last load failed, and the node still serves three-day-old data.
            "source_sync": "failed",
            "source_sync_at": iso(now - dt.timedelta(seconds=30)),
            "cert_expires": iso(now + dt.timedelta(days=20, hours=1)),
        },
        {
            "code": "CORNWALL",
            "name": "Cornwall",
            "status": "circuit_open",
            "reason": "timeout",
            "cert_expires": iso(now + dt.timedelta(days=3, hours=1)),
        },
    ]
    answer = {"status": 200, "body": json.dumps({"generated_at": iso(now), "nodes": nodes})}

    async def serve(route):
        await route.fulfill(status=answer["status"], content_type="application/json", body=answer["body"])

    async def fake_nodes(page):
        await page.route("**/v1/nodes", serve)

    fed = await federation({"LEEDS": [row()]})
    board = await open_dashboard(fed, before_load=fake_nodes)
    page = board.page
    await expect(page.locator("tbody tr")).to_have_count(3, timeout=WAIT_MS)
    await expect(page.locator("#totals")).to_have_text("1 up / 3 total")

    leeds, kent, cornwall = board.row("LEEDS"), board.row("KENT"), board.row("CORNWALL")
    await expect(leeds.locator("td.p50")).to_have_text("3.1 ms")
    await expect(leeds.locator("td.p99")).to_have_text("9.8 ms")
    await expect(leeds.locator("td.success")).to_have_text("3 s ago")
    await expect(leeds.locator("td.records")).to_have_text("1,234")
    await expect(leeds.locator("td.asof")).to_contain_text("9 h ago")
    await expect(leeds.locator("td.sync")).to_have_text(re.compile(r"^OK\s*4 min ago$"))
    assert await leeds.locator("td.sync").get_attribute("data-tone") is None
    await expect(kent.locator("td.asof")).to_contain_text("3 days ago")
    await expect(kent.locator("td.sync")).to_have_text(re.compile(r"^Failed\s*30 s ago$"))
    assert is_red(await board.background("KENT", "sync"))
    assert "last good data" in (await kent.locator("td.sync").get_attribute("title") or "")
    await expect(leeds.locator("td.cert")).to_contain_text("400 days left")
    assert await leeds.locator("td.cert").get_attribute("data-tone") is None
    await expect(kent.locator("td.p50")).to_have_text("812 ms")  # one live measurement, as the broker gave today
    await expect(kent.locator("td.errors")).to_have_text("25 %")
    await expect(kent.locator("td.cert")).to_contain_text("20 days left")
    assert is_amber(await board.background("KENT", "status"))
    assert is_amber(await board.background("KENT", "cert"))
    assert is_red(await board.background("CORNWALL", "status"))
    assert is_red(await board.background("CORNWALL", "cert"))
    await expect(cornwall.locator("td.status")).to_contain_text("timeout")
    for cell in ("p50", "p99", "errors", "success", "records", "asof", "sync"):
        await expect(cornwall.locator(f"td.{cell}")).to_have_text("—")
    await page.screenshot(path=ARTIFACTS / "dashboard-warnings.png", full_page=True)

    answer.update(status=503, body=json.dumps({"error": {"code": "unavailable", "message": "broker restarting"}}))
    banner = page.locator("#banner")
    await expect(banner).to_be_visible(timeout=WAIT_MS)
    await expect(banner).to_contain_text("503: broker restarting")
    await expect(page.locator("tbody tr")).to_have_count(3)  # the last known state stays, marked stale
    await expect(page.locator("table#nodes")).to_have_class(re.compile(r"\bstale\b"))
    await page.screenshot(path=ARTIFACTS / "dashboard-error.png", full_page=True)

    answer.update(status=200, body=json.dumps({"nodes": nodes[:1]}))
    await expect(banner).to_be_hidden(timeout=WAIT_MS)
    await expect(page.locator("tbody tr")).to_have_count(1)
    assert [p for p in board.problems if "503" not in p] == []  # the browser logs the failed fetch itself


async def test_dashboard_is_for_operators_only(federation):
    fed = await federation({"LEEDS": [row()]})
    async with fed.session(role=Role.PRACTITIONER).get(f"{fed.url}/dashboard") as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
    async with fed.session(role=None).get(f"{fed.url}/dashboard") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthenticated"
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/dashboard") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "script-src 'sha256-" in resp.headers["Content-Security-Policy"]
        assert "<table" in await resp.text()
