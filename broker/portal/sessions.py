"""The portal's sessions: who is signed in, server-side, and the CSRF token each of their forms carries.

A session is a random id (256 bits) in one cookie, ``HttpOnly; Secure; SameSite=Lax; Path=/portal``,
undated (gone when the browser closes); everything else stays in this process: the
:class:`~broker.portal.signin.PortalUser`, the CSRF token, and the times that end it. The store keeps
only a hash of each id, so its contents (a memory dump, a debugger) give no one a cookie to replay.

- A session ends after ``idle_seconds`` without a request (15 minutes) or ``absolute_seconds`` after
  sign-in (8 hours), whichever is first (both from the broker TOML's ``[portal]``: :class:`SessionSettings`),
  and at sign-out, which removes it here: the cookie is then
  worth nothing even to someone who copied it.
- Signing in always makes a fresh id and ends the browser's previous session (no session fixation).
- Every POST carries the session's CSRF token in a hidden field, compared in constant time.
- The store is bounded (``max_sessions``): when full, expired sessions go first, then the least recently
  used. It is in memory, one per broker process: replicas behind a load balancer need sticky sessions
  or, later, a shared store.

This module never logs a session id, a CSRF token or anything a form held.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from broker.appkeys import SESSIONS
from broker.errors import Forbidden
from broker.portal.config import SessionSettings
from broker.portal.paths import ROOT, landing_page, see_other
from broker.portal.signin import PortalUser

log = structlog.get_logger("signpost.portal")

COOKIE = "__Secure-signpost-portal"
"""The session cookie; the ``__Secure-`` prefix makes browsers refuse it unless set Secure over HTTPS."""
COOKIE_PATH = ROOT
CSRF_FIELD = "csrf_token"
"""The hidden form field every portal POST must carry."""


@dataclass
class Session:
    """One signed-in browser."""

    user: PortalUser
    csrf_token: str
    created: float
    last_seen: float
    key: str = field(repr=False, default="")
    """The hash of the session id under which the store keeps it."""


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionStore:
    """Sessions by hashed id, in memory, bounded; ``clock`` is injectable so tests can move time."""

    def __init__(self, settings: SessionSettings | None = None, *, clock: Callable[[], float] = time.time):
        self.settings = settings or SessionSettings()
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: PortalUser) -> tuple[str, Session]:
        """A new session for ``user``: its id (for the cookie, never kept here) and the session."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(user, secrets.token_urlsafe(32), now, now, key=_key(session_id))
        self._make_room()
        self._sessions[session.key] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, marked as used now; None if unknown, expired or ended."""
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._sessions[key]
            return None
        session.last_seen = now
        self._sessions.move_to_end(key)
        return session

    def end(self, session_id: str) -> None:
        """End the session now, if there is one: its id is worth nothing afterwards."""
        self._sessions.pop(_key(session_id), None)

    def _expired(self, session: Session, now: float) -> bool:
        s = self.settings
        return now - session.last_seen >= s.idle_seconds or now - session.created >= s.absolute_seconds

    def _make_room(self) -> None:
        if len(self._sessions) < self.settings.max_sessions:
            return
        now = self.clock()
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]
        while len(self._sessions) >= self.settings.max_sessions:
            self._sessions.popitem(last=False)  # least recently used: that user signs in again
            log.warning("portal_session_evicted", sessions=len(self._sessions))


_SESSION = web.RequestKey("portal_session", Session)


def _session_id(request: web.Request) -> str:
    return request.cookies.get(COOKIE, "")


def current_session(request: web.Request) -> Session | None:
    """The request's live session, if its cookie names one; an unknown or tampered cookie is no session."""
    cached = request.get(_SESSION)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    session_id = _session_id(request)
    session = request.app[SESSIONS].get(session_id) if session_id else None
    if session is not None:
        request[_SESSION] = session
    return session


def current_user(request: web.Request) -> PortalUser | None:
    """Who is signed in on this request, or None."""
    session = current_session(request)
    return session.user if session is not None else None


def _set_cookie(response: web.StreamResponse, session_id: str) -> None:
    # No Max-Age or Expires: a dated cookie outlives the browser on a shared computer, so the next person to
    # open it would be the practitioner. The store ends the session at 8 hours whatever the cookie says.
    response.set_cookie(
        COOKIE,
        session_id,
        path=COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="Lax",
    )


def start_session(
    request: web.Request, user: PortalUser, response: web.StreamResponse | None = None
) -> web.StreamResponse:
    """Sign ``user`` in: end the browser's previous session, make a fresh one, and set its cookie.

    Called by the sign-in callback once the identity provider's answer is validated. Without
    ``response`` the browser is sent (303) to the search page, or the start page for a role that
    does not search.
    """
    old = _session_id(request)
    if old:
        request.app[SESSIONS].end(old)  # no fixation: an id planted before sign-in never becomes signed in
    session_id, _ = request.app[SESSIONS].create(user)
    if response is None:
        response = see_other(landing_page(user))
    _set_cookie(response, session_id)
    response.headers["Cache-Control"] = "no-store"
    return response


def end_session(request: web.Request, response: web.StreamResponse) -> None:
    """Sign out: remove the session here, and tell the browser to forget its cookie."""
    session_id = _session_id(request)
    if session_id:
        request.app[SESSIONS].end(session_id)
    response.del_cookie(COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="Lax")


class CsrfRefused(Forbidden):
    """A portal POST without its session's CSRF token: refused before anything else happens."""


def check_csrf(session: Session, given: str | None) -> None:
    """CsrfRefused unless ``given`` is the session's token (compared in constant time)."""
    if not given or not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), session.csrf_token.encode("utf-8")):
        raise CsrfRefused("this form has expired or did not come from this service; go back, reload and try again")
