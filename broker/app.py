"""The broker's HTTPS API (contract section 4) as an aiohttp application.

``create_app`` takes its collaborators (the fan-out, the clock) so tests can
run the real app under aiohttp's TestServer against real nodes, or swap a
piece. All errors leave through one middleware as the contract's JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.admission import AdmissionLimit
from broker.audit.keys import load_or_create_hmac_key
from broker.audit.log import AuditLog, open_audit_log
from broker.auditing import AUDIT, SUBJECT_KEY, AuditUnavailable, SearchRecord, checkpoint, commit, list_entries
from broker.auth import REVOCATIONS, peer_identity, require
from broker.config import BrokerConfig
from broker.errors import ApiError, InvalidRequest, NoNodesReachable, Overloaded, RateLimited
from broker.fanout import FanOut, Outcome, build_fanout
from broker.monitor import HealthMonitor
from broker.watcher import ConfigWatcher
from broker.metrics import METRICS, Metrics
from broker.ratelimit import RateLimiter
from broker.registry import load_registry
from broker.searches import PURPOSES, SearchRequest, parse_search
from certs.assertions import AssertionSigner, load_private_key
from certs.identity import Identity, Role
from certs.revocation import RevocationList
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.broker")
CONFIG = web.AppKey("config", BrokerConfig)
FANOUT = web.AppKey("fanout", FanOut)
LIMITER = web.AppKey("limiter", RateLimiter)
SIGNER = web.AppKey("signer", AssertionSigner)
SEARCH = web.RequestKey("search", SearchRecord)
MONITOR = web.AppKey("monitor", HealthMonitor)
IN_FLIGHT = web.AppKey("in_flight", list)
ADMISSION = web.AppKey("admission", AdmissionLimit)
WATCHER = web.AppKey("watcher", ConfigWatcher)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_body(status: int, code: str, message: str, fields: dict[str, str] | None = None,
               **extra: Any) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    error.update(extra)
    return web.json_response({"error": error}, status=status)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "invalid_request"}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as the contract's JSON; never leak internals or a child's details."""
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_body(exc.status, exc.code, exc.message, exc.fields, **getattr(exc, "extra", {}))
        response.headers.update(exc.headers)
        return response
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].max_body_bytes
        return error_body(400, "invalid_request", f"request body larger than {limit} bytes",
                          {"body": f"at most {limit} bytes"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_body(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence must catch everything
        # Only the type: an exception's text could carry request data.
        log.error("internal_error", error_type=type(exc).__name__, path=request.path)
        return error_body(500, "internal", "internal error")


_OUTCOMES = {200: "answered", 400: "invalid", 401: "unauthenticated", 403: "forbidden", 429: "rate_limited",
             503: "unavailable"}


@web.middleware
async def searches_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every search attempt by outcome, refused ones included (outside the error renderer)."""
    if request.path != "/v1/searches" or request.method != "POST":
        return await handler(request)
    started = time.perf_counter()
    record = request[SEARCH] = SearchRecord(search_id=str(uuid.uuid4()))
    response = await handler(request)
    if record.receipt is None:  # refused, or failed: audited here, after the error was rendered
        now = dt.datetime.fromtimestamp(request.app[CLOCK](), dt.timezone.utc)
        try:
            await commit(request.app, record, response.status, _OUTCOMES.get(response.status, "error"), now)
        except AuditUnavailable as exc:
            response = error_body(exc.status, exc.code, exc.message)
    m = request.app[METRICS]
    m.searches.labels(_OUTCOMES.get(response.status, "error")).inc()
    m.search_seconds.observe(time.perf_counter() - started)
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "encoding"
        raise InvalidRequest(f"the body is not valid JSON ({where})", fields={"body": "not valid JSON"}) from None


def match_request(search_id: str, search: SearchRequest, caller: Identity) -> node_pb2.MatchRequest:
    return node_pb2.MatchRequest(
        search_id=search_id,
        subject=search.subject.to_proto(),
        purpose=node_pb2.Purpose(code=search.purpose_code, justification=search.justification),
        requester=node_pb2.Requester(user_id=caller.id, name=caller.name, organisation=caller.organisation,
                                     role=caller.role.value, email=caller.email),
    )


def result_json(outcome: Outcome, candidate: node_pb2.Candidate) -> dict[str, Any]:
    return {
        "authority": {"code": outcome.authority.code, "name": outcome.authority.name},
        "band": candidate.band,
        "score": round(candidate.score, 3),
        "reasons": list(candidate.reasons),
        "contacts": [
            {
                "service": c.service, "team": c.team, "practitioner_name": c.practitioner_name,
                "practitioner_role": c.practitioner_role, "practitioner_phone": c.practitioner_phone,
                "practitioner_email": c.practitioner_email, "involvement_start": c.involvement_start or None,
                "involvement_end": c.involvement_end or None,
            }
            for c in candidate.contacts
        ],
    }


def coverage_json(outcomes: list[Outcome]) -> dict[str, Any]:
    missing = [o for o in outcomes if o.error is not None]
    return {
        "asked": len(outcomes),
        "answered": len(outcomes) - len(missing),
        "not_answered": [
            {"code": o.authority.code, "name": o.authority.name, "reason": o.error.reason}
            for o in missing if o.error is not None
        ],
    }


def record_outcomes(m: Metrics, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        m.observe_node(o.authority.code, o.ms / 1000)
        if o.error is not None:
            m.coverage_gaps.labels(o.authority.code, o.error.reason).inc()


def admitted(app: web.Application, ticket: float, was_congested: bool) -> None:
    """Tell the admission limit how this search went: congested, or answered in time."""
    limit = app[ADMISSION]
    limit.completed(ticket, was_congested)
    if was_congested:
        app[METRICS].congested.inc()
    app[METRICS].admission_limit.set(int(limit.limit))


class NoNodes(NoNodesReachable):
    def __init__(self, coverage: dict[str, Any]) -> None:
        super().__init__("no authority could be asked; try again shortly")
        self.extra = {"coverage": coverage}


async def create_search(request: web.Request) -> web.Response:
    record = request[SEARCH]
    record.identify(peer_identity(request))  # a refused caller is audited too, by name
    caller = require(request, Role.PRACTITIONER)
    decision = request.app[LIMITER].check(caller.id)
    if decision.unusual:
        log.warning("unusual_search_volume", user=caller.id, organisation=caller.organisation)
        request.app[METRICS].unusual_volume.inc()
    if not decision.allowed:
        raise RateLimited(f"too many searches this {decision.window}; wait before searching again",
                          headers={"Retry-After": str(math.ceil(decision.retry_after))})
    today = dt.datetime.fromtimestamp(request.app[CLOCK](), dt.timezone.utc).date()
    search = parse_search(await read_json(request), today=today)
    record.describe(search, request.app[SUBJECT_KEY])
    search_id = record.search_id
    started = time.perf_counter()
    in_flight = request.app[IN_FLIGHT]
    ticket = request.app[ADMISSION].admit(in_flight[0])
    if ticket is None:
        # Past this the searches under way only get slower together: say so at once instead.
        raise Overloaded("the service is busy; try again in a moment", headers={"Retry-After": "1"})
    in_flight[0] += 1
    try:
        return await _run_search(request, record, search, caller, search_id, started, ticket)
    finally:
        in_flight[0] -= 1


async def _run_search(request: web.Request, record: SearchRecord, search: SearchRequest, caller: Identity,
                      search_id: str, started: float, ticket: float) -> web.Response:
    node_request = match_request(search_id, search, caller)
    signer = request.app[SIGNER]
    signer.sign(node_request)

    def resign() -> bytes:
        fresh = match_request(search_id, search, caller)
        signer.sign(fresh)
        return fresh.SerializeToString()

    fanned = await request.app[FANOUT].search(node_request, request.app[CONFIG].search_deadline_seconds, resign)
    outcomes = fanned.outcomes
    coverage = coverage_json(outcomes)
    record_outcomes(request.app[METRICS], outcomes)
    admitted(request.app, ticket, fanned.congested)
    record.outcomes(outcomes)
    results = [result_json(o, c) for o in outcomes if o.response for c in o.response.candidates]
    results.sort(key=lambda r: (r["band"] != "match", -r["score"], r["authority"]["code"]))
    log.info("search_completed", search_id=search_id, user=caller.id, purpose=search.purpose_code,
             asked=coverage["asked"], answered=coverage["answered"], results=len(results),
             ms=round((time.perf_counter() - started) * 1000, 1))
    if coverage["answered"] == 0:
        raise NoNodes(coverage)
    # Committed before the results leave: a search that cannot be audited is not answered.
    receipt = await commit(request.app, record, 200, "answered",
                           dt.datetime.fromtimestamp(request.app[CLOCK](), dt.timezone.utc))
    return web.json_response({"search_id": search_id, "results": results, "coverage": coverage,
                              "audit": receipt.to_json()})


async def list_nodes(request: web.Request) -> web.Response:
    """GET /v1/nodes (operator): every authority's health as the monitor sees it; ?refresh=true polls now."""
    require(request, Role.OPERATOR)
    fanout = request.app[FANOUT]
    if request.query.get("refresh") in ("1", "true"):
        await request.app[MONITOR].poll_once()
    nodes = [h.to_json() for c in fanout.clients if (h := fanout.health_of(c.authority.code)) is not None]
    request.app[METRICS].nodes_up.set(sum(1 for n in nodes if n["status"] in ("up", "probation")))
    now = dt.datetime.fromtimestamp(request.app[CLOCK](), dt.timezone.utc).isoformat(timespec="seconds")
    return web.json_response({"generated_at": now, "nodes": nodes})


async def metrics(request: web.Request) -> web.Response:
    require(request, Role.OPERATOR)
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    """GET /dashboard (operator): the node-health page; imported on first use."""
    from broker.dashboard import dashboard

    return await dashboard(request)


async def list_purposes(request: web.Request) -> web.Response:
    require(request, Role.PRACTITIONER, Role.AUDITOR, Role.OPERATOR)
    return web.json_response({"purposes": [{"code": k, "description": v} for k, v in PURPOSES.items()]})


def create_app(config: BrokerConfig, *, fanout: FanOut | None = None, audit: AuditLog | None = None,
               clock: Callable[[], float] = time.time) -> web.Application:
    """The broker app; without ``fanout`` it dials every node in the registry, without ``audit`` it opens the log."""
    app = web.Application(middlewares=[searches_middleware, errors_middleware], client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[LIMITER] = RateLimiter(config.rate_limit_per_minute, config.rate_limit_per_day,
                               alert_per_hour=config.alert_searches_per_hour, clock=clock)
    app[METRICS] = Metrics()
    app[IN_FLIGHT] = [0]  # searches under way (a list: app state is frozen once the app starts)
    app[ADMISSION] = AdmissionLimit(config.max_searches_in_flight)
    app[METRICS].admission_limit.set(config.max_searches_in_flight)
    app[SIGNER] = AssertionSigner(load_private_key(config.assertion_key), clock=clock)
    app[REVOCATIONS] = RevocationList(config.tls.crl, config.tls.ca)

    async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
        app[FANOUT] = fanout or build_fanout(load_registry(config.registry), config.tls, settings=config.health,
                                             dispatch_window=config.dispatch_window_seconds)
        app[MONITOR] = HealthMonitor(app[FANOUT], app[FANOUT].settings)
        app[MONITOR].start()
        app[WATCHER] = ConfigWatcher(config, app[FANOUT], interval=config.reload_interval_seconds)
        app[WATCHER].start()
        yield
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

    app.cleanup_ctx.append(audit_ctx)
    app.cleanup_ctx.append(fanout_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/searches", create_search)
    app.router.add_get("/v1/nodes", list_nodes)
    app.router.add_get("/v1/purposes", list_purposes)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/dashboard", dashboard_page)
    app.router.add_get("/v1/audit/entries", list_entries)
    app.router.add_get("/v1/audit/checkpoint", checkpoint)
    return app
