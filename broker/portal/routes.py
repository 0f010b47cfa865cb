"""The practitioner portal's routes: start page, signing in and out, the search form, its results, recent searches.

Who may reach each is broker.policy's (``PORTAL_ROUTE_ROLES``, ``PORTAL_OPEN_ROUTES``); a page that
needs a session sends a browser without one to the sign-in page, and a role the page does not admit
gets a 403 page. Every POST checks the session's CSRF token before anything else (so a forged POST is
not even audited as a search). A search goes through broker.search_service, the same path as
``POST /v1/searches``, with the signed-in user's identity as the requester; a POSTed form is answered
with its results page directly, so no child's details are ever in a URL. Nothing here logs a form's values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from broker.appkeys import AUDIT, CLOCK, SIGN_IN
from broker.errors import ApiError, InvalidRequest, NoNodesReachable
from broker.policy import PURPOSES, portal_roles_for
from broker.portal import paths, wording
from broker.portal.form import LABELS, SearchForm, messages, summary
from broker.portal.pages import render
from broker.portal.recent import recent_searches
from broker.portal.sessions import CSRF_FIELD, Session, check_csrf, current_session, end_session, start_session
from broker.portal.signin import FLOW_COOKIE, PortalUser, SignInError
from broker.search_request import SearchRequest
from broker.search_service import SearchAnswer, require_role, run_search

log = structlog.get_logger("signpost.portal")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROBLEM_TITLES = {
    400: "There is a problem with the request",
    403: "You cannot use this page",
    429: "You have made too many searches",
    503: "Sorry, the service is unavailable",
}


class NoSignIn:
    """The portal with no identity provider configured: nobody can sign in, and the page says so."""

    def authorities(self) -> list[tuple[str, str]]:
        return []

    async def begin(self, request: web.Request, authority: str) -> web.StreamResponse:
        raise SignInError("No authority is set up for signing in to this portal.")

    async def complete(self, request: web.Request) -> PortalUser:
        raise SignInError("No authority is set up for signing in to this portal.")


def page(handler: Handler) -> Handler:
    """A portal page: its refusals (ApiError) shown as a GOV.UK page with their status, never as JSON."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            title = PROBLEM_TITLES.get(exc.status, "Sorry, there is a problem")
            response = render(request, "problem.html", status=exc.status, problem=exc, title=title)
            response.headers.update(exc.headers)  # Retry-After, as the API gives it
            return response

    return wrapped


def signed_in(request: web.Request, *, check_role: bool = True) -> Session:
    """The request's session, if its user's role may use this route; otherwise to sign-in (303), or 403.

    ``check_role=False`` only where the search path checks the same table's roles itself, inside the audit.
    """
    session = current_session(request)
    if session is None:
        raise web.HTTPSeeOther(paths.SIGN_IN)
    if check_role:
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        require_role(session.user.identity, portal_roles_for(request.method, path))
    return session


async def posted(request: web.Request, session: Session) -> dict[str, Any]:
    """A POST's form fields, once its CSRF token is the session's (CsrfRefused, 403, if not)."""
    form = dict(await request.post())
    token = form.get(CSRF_FIELD)
    check_csrf(session, token if isinstance(token, str) else None)
    return form


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(paths.ROOT)


@page
async def start(request: web.Request) -> web.StreamResponse:
    return render(request, "start.html")


@page
async def sign_in(request: web.Request) -> web.StreamResponse:
    authorities = request.app[SIGN_IN].authorities()
    signed_out = request.query.get("signed_out") == "1"
    return render(request, "sign_in.html", authorities=authorities, signed_out=signed_out, failure="")


@page
async def sign_in_start(request: web.Request) -> web.StreamResponse:
    """To the chosen authority's identity provider: 404 for one Signpost does not know, 400 (a page, never a
    5xx) when its identity provider cannot be reached."""
    code = request.query.get("authority", "")
    if code not in {known for known, _ in request.app[SIGN_IN].authorities()}:
        unknown = SignInError("Signpost does not know that organisation. Choose yours from the list.")
        return _sign_in_failed(request, unknown, 404)
    try:
        return await request.app[SIGN_IN].begin(request, code)
    except SignInError as exc:
        return _sign_in_failed(request, exc, 400)


@page
async def sign_in_callback(request: web.Request) -> web.StreamResponse:
    """The identity provider's redirect back: a fresh session for a return that validates, else a 403 page.
    The sign-in's own cookie is cleared either way (its pending sign-in is used up already)."""
    try:
        user = await request.app[SIGN_IN].complete(request)
    except SignInError as exc:
        response: web.StreamResponse = _sign_in_failed(request, exc, 403)
    else:
        log.info("portal_signed_in", user=user.identity.id, role=user.identity.role.value, authority=user.authority)
        response = start_session(request, user)
    response.del_cookie(FLOW_COOKIE, path=paths.SIGN_IN_CALLBACK, secure=True, httponly=True, samesite="Lax")
    return response


def _sign_in_failed(request: web.Request, exc: SignInError, status: int) -> web.Response:
    """The sign-in page with the refusal's plain sentence (escaped by the template; never a token or claim)."""
    log.warning("portal_sign_in_refused", reason=exc.reason)
    authorities = request.app[SIGN_IN].authorities()
    return render(request, "sign_in.html", status=status, authorities=authorities, signed_out=False, failure=exc.reason)


@page
async def sign_out(request: web.Request) -> web.StreamResponse:
    session = current_session(request)
    if session is not None:
        await posted(request, session)  # a forged sign-out is refused too: it would be a nuisance, not harmless
        log.info("portal_signed_out", user=session.user.identity.id)
    response = paths.see_other(f"{paths.SIGN_IN}?signed_out=1")
    end_session(request, response)
    return response


def _form_page(request: web.Request, form: SearchForm, errors: dict[str, str], status: int = 200) -> web.Response:
    return render(
        request,
        "search.html",
        status=status,
        form=form,
        errors=messages(errors),
        summary=summary(errors),
        labels=LABELS,
        purposes=PURPOSES,
    )


@page
async def search_form(request: web.Request) -> web.StreamResponse:
    signed_in(request)
    return _form_page(request, SearchForm.empty(), {})


@page
async def search(request: web.Request) -> web.StreamResponse:
    # The role is run_search's to check, so a refused search is audited by name, as an API one is.
    session = signed_in(request, check_role=False)
    form = SearchForm.read(await posted(request, session))

    async def read(today: dt.date) -> SearchRequest:
        return form.parse(today)

    try:
        answer = await run_search(
            request.app,
            lambda: session.user.identity,
            portal_roles_for("POST", paths.SEARCH),
            read,
            client_address=request.remote or "",
        )
    except NoNodesReachable as exc:
        coverage = getattr(exc, "extra", {}).get("coverage", {"not_answered": []})
        return render(request, "no_answer.html", status=exc.status, gaps=wording.not_answered(coverage))
    except InvalidRequest as exc:
        return _form_page(request, form, exc.fields, status=400)
    return _results_page(request, answer)


def _results_page(request: web.Request, answer: SearchAnswer) -> web.Response:
    return render(
        request,
        "results.html",
        results=wording.results(answer.results),
        gaps=wording.not_answered(answer.coverage),
        coverage=answer.coverage,
        notices=answer.notices,
        receipt=answer.receipt,
        recorded_at=wording.when(answer.receipt.timestamp),
    )


@page
async def recent(request: web.Request) -> web.StreamResponse:
    session = signed_in(request)
    now = dt.datetime.fromtimestamp(request.app[CLOCK](), dt.UTC)
    searches = await recent_searches(request.app[AUDIT], session.user.identity.id, now)
    return render(request, "recent.html", searches=searches)


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/", home),
    ("GET", paths.ROOT, start),
    ("GET", paths.SIGN_IN, sign_in),
    ("GET", paths.SIGN_IN_START, sign_in_start),
    ("GET", paths.SIGN_IN_CALLBACK, sign_in_callback),
    ("POST", paths.SIGN_OUT, sign_out),
    ("GET", paths.SEARCH, search_form),
    ("POST", paths.SEARCH, search),
    ("GET", paths.RECENT, recent),
)
"""Every portal route but the static files; broker.routes registers them against broker.policy's tables."""
