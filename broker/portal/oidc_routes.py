"""The two routes of signing in: start at an authority's identity provider, and come back.

    GET /portal/sign-in/{authority}   → SignIn.begin: a redirect to that authority's identity provider
    GET /portal/callback              → SignIn.complete, then ``on_signed_in(request, user)``

``on_signed_in`` is the portal's session start (``broker.portal.sessions.start_session``): it makes a fresh
session for the user and answers with its cookie and a redirect. It is passed in, so this module knows
nothing of sessions and the sessions module nothing of OpenID Connect.

A refusal is never a 5xx: the browser gets a short page with the SignInError's plain sentence (HTML-escaped)
and a link to start again, 404 for an authority Signpost does not know, 400 for a sign-in that could not
start (its identity provider unreachable), 403 for a return that does not validate. The pending sign-in's
cookie is cleared either way. Both routes are open (no session yet): broker.policy must list them so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape

from aiohttp import web

from broker.portal.config import CALLBACK_PATH, SIGN_IN_PATH, PortalConfig
from broker.portal.oidc import FLOW_COOKIE, OidcSignIn
from broker.portal.signin import PortalUser, SignIn, SignInError

OnSignedIn = Callable[[web.Request, PortalUser], Awaitable[web.StreamResponse]]
SIGN_IN = web.AppKey("portal_sign_in", SignIn)
ON_SIGNED_IN: web.AppKey[OnSignedIn] = web.AppKey("portal_on_signed_in")

ROUTES = (("GET", f"{SIGN_IN_PATH}/{{authority}}"), ("GET", CALLBACK_PATH))
"""For broker.policy's table of open routes: anyone may start signing in, or come back from doing so."""


def add_sign_in_routes(app: web.Application, sign_in: SignIn, on_signed_in: OnSignedIn) -> None:
    app[SIGN_IN], app[ON_SIGNED_IN] = sign_in, on_signed_in
    app.router.add_get(f"{SIGN_IN_PATH}/{{authority}}", begin_sign_in)
    app.router.add_get(CALLBACK_PATH, complete_sign_in)


def install_oidc_sign_in(app: web.Application, config: PortalConfig, on_signed_in: OnSignedIn) -> OidcSignIn:
    """The broker's wiring in one call: an OidcSignIn for ``config``, its routes, and its HTTP client
    closed with the app."""
    sign_in = OidcSignIn(config)
    add_sign_in_routes(app, sign_in, on_signed_in)

    async def close(_: web.Application) -> None:
        await sign_in.close()

    app.on_cleanup.append(close)
    return sign_in


async def begin_sign_in(request: web.Request) -> web.StreamResponse:
    sign_in = request.app[SIGN_IN]
    authority = request.match_info["authority"]
    if authority not in {code for code, _ in sign_in.authorities()}:
        return refusal(404, "Signpost does not know that organisation. Choose yours from the list.")
    try:
        return await sign_in.begin(request, authority)
    except SignInError as exc:
        return refusal(400, exc.reason)


async def complete_sign_in(request: web.Request) -> web.StreamResponse:
    try:
        user = await request.app[SIGN_IN].complete(request)
    except SignInError as exc:
        return refusal(403, exc.reason)
    response = await request.app[ON_SIGNED_IN](request, user)
    response.del_cookie(FLOW_COOKIE, path=CALLBACK_PATH)
    return response


def refusal(status: int, reason: str) -> web.Response:
    """A plain page saying why, with a way to start again; never a token or a claim (reason holds neither)."""
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Sign-in failed – Signpost</title></head>'
        f'<body><main><h1>You could not be signed in</h1><p>{escape(reason)}</p><p><a href="/portal">Start again</a>'
        "</p></main></body></html>\n"
    )
    response = web.Response(status=status, text=page, content_type="text/html", headers={"Cache-Control": "no-store"})
    response.del_cookie(FLOW_COOKIE, path=CALLBACK_PATH)
    return response
