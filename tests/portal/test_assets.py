"""The committed GOV.UK Frontend build is the pinned one, complete, licensed, and points only at itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOVUK = ROOT / "broker" / "portal" / "static" / "govuk"
PINNED = json.loads((ROOT / "scripts" / "portal_assets" / "package.json").read_text())["dependencies"]


def test_the_committed_assets_are_the_pinned_versions_with_their_licences():
    assert (GOVUK / "VERSION").read_text().strip() == PINNED["govuk-frontend"]
    assert "MIT" in (GOVUK / "LICENCE").read_text()
    vendor = ROOT / "tests" / "portal" / "vendor"
    assert (vendor / "axe-core.VERSION").read_text().strip() == PINNED["axe-core"]
    assert "Mozilla Public License" in (vendor / "axe-core.LICENCE").read_text()


def test_the_css_asks_only_for_files_the_portal_serves():
    css = (GOVUK / "govuk-frontend.min.css").read_text()
    urls = set(re.findall(r"url\(([^)]*)\)", css))
    assert urls, "the CSS names its fonts and images"
    for url in urls:
        assert url.startswith("/portal/assets/"), url  # never another site, never the unserved /assets/
        assert (GOVUK / url.removeprefix("/portal/assets/")).is_file(), url
