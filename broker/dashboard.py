"""The operators' dashboard: one static page that polls ``GET /v1/nodes``.

The page is read once, at import, and served as it is: it carries no data of
its own, so there is nothing to render on the server. Everything it shows comes
from the node list, which only an operator may read. It must never show or ask
for anything about a child: it fetches ``/v1/nodes`` and nothing else.

Its script and style are inline, so the Content-Security-Policy allows exactly
those two blocks (by hash) and connections to this origin, and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from aiohttp import web

from broker.auth import require_route

_PAGE = (files("broker") / "static" / "dashboard.html").read_bytes()


def _hashes(tag: str, page: str) -> str:
    """CSP source expressions for each inline ``<tag>`` block of ``page``."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(b.encode("utf-8")).digest()).decode("ascii") for b in blocks)
    return " ".join(f"'sha256-{d}'" for d in digests)


def _policy(page: str) -> str:
    # Hashes rather than 'unsafe-inline': a change to the page that adds a script must change this too.
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hashes('script', page)}",
            f"style-src {_hashes('style', page)}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": _policy(_PAGE.decode("utf-8")),
    # The page is the same for every operator, but only operators may have it: never cache it in between.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def dashboard(request: web.Request) -> web.Response:
    """``GET /dashboard``: the page, for operators only (401 without a certificate, 403 for other roles)."""
    require_route(request)
    return web.Response(body=_PAGE, headers=_HEADERS)
