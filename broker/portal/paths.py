"""The portal's addresses, in one place: the routes, the pages' links and the sign-in's redirect URI use these."""

from __future__ import annotations

from aiohttp import web

from broker.portal.signin import PortalUser
from certs.identity import Role

ROOT = "/portal"
"""The start page; the session cookie's Path."""
SIGN_IN = "/portal/sign-in"
"""The page listing the authorities a user may sign in through."""
SIGN_IN_START = "/portal/sign-in/start"
"""``?authority=CODE``: hands the browser to that authority's identity provider (``SignIn.begin``)."""
SIGN_IN_CALLBACK = "/portal/sign-in/callback"
"""Where identity providers send the browser back (the OIDC redirect URI's path; ``SignIn.complete``)."""
SIGN_OUT = "/portal/sign-out"
SEARCH = "/portal/search"
RECENT = "/portal/recent"
ASSETS = "/portal/assets"
"""GOV.UK Frontend's CSS, JS, fonts and images (broker/portal/static/govuk), served as committed."""


def landing_page(user: PortalUser) -> str:
    """Where a user goes once signed in: practitioners to the search form, other roles to the start page."""
    return SEARCH if user.identity.role is Role.PRACTITIONER else ROOT


def see_other(location: str) -> web.Response:
    """A 303 to ``location`` as a response to return (one to set cookies on), not an exception to raise."""
    return web.Response(status=303, headers={"Location": location})
