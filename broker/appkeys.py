"""What the broker's aiohttp app holds, as typed keys: the one place to import them from.

``broker.app.create_app`` fills them in (some in its cleanup contexts, at start-up); routes, middlewares
and tests read them. Keys only: nothing here may create or hold a collaborator itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from broker.admission import Admission
from broker.audit.log import AuditLog
from broker.config import BrokerConfig
from broker.fanout import FanOut
from broker.limits_store import LimitsStore
from broker.metrics import Metrics
from broker.monitor import HealthMonitor
from broker.patterns import PatternDetector
from broker.ratelimit import RateLimiter
from broker.readiness import Readiness
from broker.watcher import ConfigWatcher
from certs.assertions import AssertionSigner
from certs.revocation import RevocationList

if TYPE_CHECKING:  # the portal's modules read these keys, so they are named here for the type checker only
    from broker.portal.sessions import SessionStore
    from broker.portal.signin import SignIn

CONFIG = web.AppKey("config", BrokerConfig)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
FANOUT = web.AppKey("fanout", FanOut)
MONITOR = web.AppKey("monitor", HealthMonitor)
WATCHER = web.AppKey("watcher", ConfigWatcher)
LIMITS_STORE: web.AppKey[LimitsStore] = web.AppKey("limits_store")
"""The counts behind LIMITER, ORG_LIMITER and PATTERNS: memory (one broker) or Redis (replicas)."""
LIMITER = web.AppKey("limiter", RateLimiter)
"""Per practitioner (user id)."""
ORG_LIMITER = web.AppKey("org_limiter", RateLimiter)
"""Per organisation (as the certificate names it): its members share one quota."""
PATTERNS = web.AppKey("patterns", PatternDetector)
SIGNER = web.AppKey("signer", AssertionSigner)
IN_FLIGHT = web.AppKey("in_flight", list)
"""Searches under way, as a one-item list: app state is frozen once the app starts."""
ADMISSION = web.AppKey("admission", Admission)
"""Whether to take on one more search now (broker.admission): the nodes' backlog, the loop's lag, the AIMD limit."""
METRICS = web.AppKey("metrics", Metrics)
REVOCATIONS = web.AppKey("revocations", RevocationList)
AUDIT = web.AppKey("audit", AuditLog)
SUBJECT_KEY = web.AppKey("subject_key", bytes)
"""The HMAC key for the child's identifiers in audit entries (never logged)."""
READINESS = web.AppKey("readiness", Readiness)
"""What GET /readyz checks (broker.readiness)."""
SESSIONS: web.AppKey[SessionStore] = web.AppKey("portal_sessions")
"""The practitioner portal's signed-in sessions (broker.portal.sessions)."""
SIGN_IN: web.AppKey[SignIn] = web.AppKey("portal_sign_in")
"""How a portal user signs in (broker.portal.signin's protocol; OpenID Connect in broker.portal.oidc)."""
