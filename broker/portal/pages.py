"""Rendering the portal's pages: Jinja2 templates (broker/portal/templates), escaped, never cached.

Autoescaping is on for every template, so whatever a user or a node typed is text, never markup. Each
page is served with a Content-Security-Policy that lets it load only this origin's GOV.UK Frontend
assets and run one inline script, by hash (GOV.UK's ``js-enabled`` line), so injected markup could
run nothing. Pages are ``no-store``: a results page names a child and who works with them, and must
not stay in a shared computer's cache or any proxy's. Browsers are told to come back over HTTPS only (HSTS).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jinja2
from aiohttp import web

from broker.portal import paths
from broker.portal.sessions import CSRF_FIELD, current_session

SERVICE_NAME = "Signpost"
# GOV.UK Frontend's template runs this first, so its CSS can tell when JavaScript is there.
BODY_SCRIPT = (
    "document.body.className += ' js-enabled' + "
    "('noModule' in HTMLScriptElement.prototype ? ' govuk-frontend-supported' : '');"
)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


CSP = "; ".join(
    [
        "default-src 'none'",
        f"script-src 'self' 'sha256-{_sha256(BODY_SCRIPT)}'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A year of HTTPS only: a practitioner typing the address would otherwise ask http:// first, which a
    # network attacker can answer with a look-alike sign-in page or a planted cookie.
    "Strict-Transport-Security": "max-age=31536000",
}

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("broker.portal", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals.update(paths=paths, service_name=SERVICE_NAME, body_script=BODY_SCRIPT, csrf_field=CSRF_FIELD)


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """``template`` rendered for this request's user (if any), with the page headers."""
    session = current_session(request)
    page: dict[str, Any] = {"nav": "", "user": None, "csrf_token": ""}  # nav: the menu item a page marks as current
    if session is not None:
        page.update(user=session.user, csrf_token=session.csrf_token)
    html = _ENV.get_template(template).render({**page, **context})
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)
