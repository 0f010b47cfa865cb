"""The broker's HTTPS API (contract section 4) as an aiohttp application: the factory and its middleware.

``create_app`` takes its collaborators (the fan-out, the audit log, the clock) so tests can
run the real app under aiohttp's TestServer against real nodes, or swap a
piece. All errors leave through one middleware as the contract's JSON. The routes
are in broker.routes, who may call them in broker.policy, and what the app holds
in broker.appkeys.

Errors aiohttp meets before the app is reached (an over-long request line, a bad header, a
broken URL) never pass through the middleware; ``BrokerRunner`` serves those as the contract's
JSON too, with a fixed message, because aiohttp's own pages echo the offending request text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, InvalidHeader, InvalidURLError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from broker.admission import Admission, AdmissionLimit
from broker.appkeys import (
    ADMISSION,
    AUDIT,
    CLOCK,
    CONFIG,
    FANOUT,
    IN_FLIGHT,
    LIMITER,
    LIMITS_STORE,
    METRICS,
    MONITOR,
    ORG_LIMITER,
    PATTERNS,
    READINESS,
    REVOCATIONS,
    SESSIONS,
    SIGN_IN,
    SIGNER,
    SUBJECT_KEY,
    WATCHER,
)
from broker.audit.keys import load_or_create_hmac_key
from broker.audit.log import AuditLog, open_audit_log
from broker.config import BrokerConfig
from broker.door import body_deadline
from broker.errors import ApiError
from broker.fanout import FanOut, build_fanout
from broker.limits_store import MEMORY, open_limits_store
from broker.metrics import Metrics
from broker.monitor import HealthMonitor
from broker.patterns import PatternDetector
from broker.peercert import PeerCertificates
from broker.pollshare import SharedPolls
from broker.portal.oidc import OidcSignIn
from broker.portal.routes import NoSignIn
from broker.portal.sessions import SessionStore
from broker.portal.signin import SignIn
from broker.ratelimit import RateLimiter
from broker.readiness import Readiness
from broker.refusals import install as install_refusal_limits
from broker.registry import load_registry
from broker.routes import add_routes
from broker.watcher import ConfigWatcher
from certs.assertions import AssertionSigner, load_private_key
from certs.revocation import RevocationList

log = structlog.get_logger("signpost.broker")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(
    status: int, code: str, message: str, fields: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    error.update(extra)
    return web.json_response({"error": error}, status=status)


# aiohttp's limit on the request line and on each header line (its max_line_size and max_field_size).
_MAX_LINE_BYTES = 8190
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "invalid_request"}


def _phrase(status: int) -> str:
    # The standard phrase, never the exception's text: aiohttp's messages quote the request.
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "http error"


def _protocol_problem(exc: BaseException | None) -> tuple[str, str]:
    """Which part of the request aiohttp's parser refused, and why, in words of our own.

    Named from the exception's type and its limit, never from its text, which quotes the request.
    """
    if isinstance(exc, LineTooLong):
        return "request", f"the request line and each header must be at most {_MAX_LINE_BYTES} bytes"
    if isinstance(exc, BadHttpMethod):
        return "method", "not an HTTP method"
    if isinstance(exc, InvalidURLError):
        return "url", "not a valid URL"
    if isinstance(exc, InvalidHeader):
        return "headers", "a header is not valid HTTP"
    return "request", "not a well-formed HTTP/1.1 request"


class _ContractErrorsHandler(RequestHandler):
    """aiohttp's connection handler, answering its own protocol errors with the contract's JSON."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Only the type is logged: the exception's text quotes the request line or a header.
        log.warning("http_protocol_error", status=status, error_type=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        if status >= 500:
            response = error_body(status, "internal", "internal error")
        else:
            part, problem = _protocol_problem(exc)
            response = error_body(status, _HTTP_CODES.get(status, "invalid_request"), _phrase(status), {part: problem})
        response.force_close()
        return response


class _ContractErrorsServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ContractErrorsHandler(self, loop=self._loop, **self._kwargs)


class BrokerRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer aiohttp's own protocol errors with the contract's JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The same server, built by the app with its own settings, handing out our handler; aiohttp
        # has no public hook for its protocol error pages.
        server.__class__ = _ContractErrorsServer
        return server


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as the contract's JSON; never leak internals or a child's details.

    The status of each is broker.errors.http_status's, which the search audit records too.
    """
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_body(exc.status, exc.code, exc.message, exc.fields, **getattr(exc, "extra", {}))
        response.headers.update(exc.headers)
        return response
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].max_body_bytes
        return error_body(
            400, "invalid_request", f"request body larger than {limit} bytes", {"body": f"at most {limit} bytes"}
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_body(exc.status, _HTTP_CODES.get(exc.status, "http_error"), _phrase(exc.status))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # Only the type: an exception's text could carry request data.
        log.error("internal_error", error_type=type(exc).__name__, path=request.path)
        return error_body(500, "internal", "internal error")


def create_app(
    config: BrokerConfig,
    *,
    fanout: FanOut | None = None,
    audit: AuditLog | None = None,
    revocations: RevocationList | None = None,
    clock: Callable[[], float] = time.time,
    sign_in: SignIn | None = None,
    sessions: SessionStore | None = None,
) -> web.Application:
    """The broker app; without ``fanout`` it dials every node in the registry, without ``audit`` it opens the log,
    without ``revocations`` it reads the CRL named in the config. The practitioner portal signs users in with
    ``sign_in`` (without it, by OpenID Connect through the identity providers of ``config.portal``; with
    neither, nobody can sign in) and keeps their ``sessions`` (in memory by default, timed by
    ``config.portal_sessions``)."""
    middlewares = [errors_middleware, body_deadline(config.limits.body_read_timeout_seconds)]
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    # One store for all three: in Redis, every replica counts the same searches (broker.limits_store).
    app[LIMITS_STORE] = limits = open_limits_store(
        config.limits_store,
        prefix=config.limits_key_prefix,
        timeout=config.limits_timeout_seconds,
        max_tracked=config.patterns.max_tracked,
        on_error=app[METRICS].limits_store_errors.inc,
    )
    app[LIMITER] = RateLimiter(
        config.rate_limit_per_minute,
        config.rate_limit_per_day,
        alert_per_hour=config.alert_searches_per_hour,
        clock=clock,
        store=limits,
    )
    app[ORG_LIMITER] = RateLimiter(
        config.org_rate_limit_per_minute,
        config.org_rate_limit_per_day,
        clock=clock,
        scope="organisation",
        store=limits,
    )
    app[PATTERNS] = PatternDetector(config.patterns, clock=clock, store=limits)
    app[IN_FLIGHT] = [0]  # searches under way (a list: app state is frozen once the app starts)
    # What a search admitted now would wait for is the fan-out's to say (set in fanout_ctx, before any search).
    app[ADMISSION] = Admission(
        AdmissionLimit(config.max_searches_in_flight),
        load=lambda: app[FANOUT].load(),
        deadline=config.search_deadline_seconds,
        audit_timeout=config.audit_timeout,
    )
    app[METRICS].admission_limit.set(config.max_searches_in_flight)
    app[METRICS].track_files(config.tls)
    app[READINESS] = Readiness.of(
        config,
        audit=lambda: app.get(AUDIT),
        authorities=lambda: len(app[FANOUT].clients) if FANOUT in app else 0,
        limits=limits,
    )

    def audience() -> list[str]:
        # Every authority the fan-out holds, open circuits included: whom it asks is decided after signing
        # (a half-open probe, the dispatch wait), and a node asked but left out would refuse the search.
        # Read at each signing, retries included, so a registry reload is followed.
        return [client.authority.code for client in app[FANOUT].clients]

    app[SIGNER] = AssertionSigner(load_private_key(config.assertion_key), audience=audience, clock=clock)
    app[REVOCATIONS] = revocations or RevocationList(config.tls.crl, config.tls.ca)
    app[SIGN_IN] = sign_in or _own_sign_in(app, config)
    app[SESSIONS] = sessions or SessionStore(config.portal_sessions, clock=clock)

    async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
        app[FANOUT] = fanout or build_fanout(
            load_registry(config.registry),
            config.tls,
            settings=config.health,
            dispatch_window=config.dispatch_window_seconds,
        )
        certificates = PeerCertificates(config.tls)
        # Replicas sharing Redis poll each node once per interval between them (broker.pollshare).
        shared = SharedPolls(limits, app[FANOUT].settings.poll_interval) if limits.kind != MEMORY else None
        app[MONITOR] = HealthMonitor(
            app[FANOUT],
            app[FANOUT].settings,
            metrics=app[METRICS],
            certificates=certificates,
            clock=clock,
            shared=shared,
            lag=app[FANOUT].lag,
        )
        app[MONITOR].start()
        app[WATCHER] = ConfigWatcher(config, app[FANOUT], interval=config.reload_interval_seconds)
        app[WATCHER].start()
        app[FANOUT].lag.start()
        yield
        app[FANOUT].lag.stop()
        await app[WATCHER].stop()
        await app[MONITOR].stop()
        if fanout is None:  # channels we opened are ours to close
            await app[FANOUT].close()

    async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
        app[AUDIT] = audit or await open_audit_log(config.audit_log, config.audit_signing_key)
        app[SUBJECT_KEY] = load_or_create_hmac_key(config.subject_key)
        yield
        if audit is None:
            await app[AUDIT].close()

    async def limits_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await limits.close()

    app.cleanup_ctx.append(limits_ctx)
    app.cleanup_ctx.append(audit_ctx)
    install_refusal_limits(app, config, clock)  # after audit_ctx: its last counts are written before the log closes
    app.cleanup_ctx.append(fanout_ctx)
    add_routes(app)
    return app


def _own_sign_in(app: web.Application, config: BrokerConfig) -> SignIn:
    """OpenID Connect through ``[portal]``'s identity providers, its HTTP client closed with the app; or,
    without ``[portal]``, a sign-in page that says nobody can sign in yet."""
    if config.portal is None:
        return NoSignIn()
    sign_in = OidcSignIn(config.portal)

    async def close(_: web.Application) -> None:
        await sign_in.close()

    app.on_cleanup.append(close)
    return sign_in
