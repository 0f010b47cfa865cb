"""The operators' and everyone's small routes: node health, metrics, the dashboard, purposes, /healthz, /readyz.

None of them says anything about a child. /healthz and /readyz need no certificate (probes present
none): /healthz is liveness and says only "ok"; /readyz says whether this broker could answer a
search now, and if not which part is unusable (broker.readiness).
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.appkeys import CLOCK, FANOUT, METRICS, MONITOR, READINESS
from broker.auth import require_route
from broker.errors import NotReady
from broker.policy import PURPOSES


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Says nothing about the audit store, the registry or the nodes."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 if a search could be answered now, else 503 not_ready naming each unusable part."""
    problems = await request.app[READINESS].problems()
    if problems:
        raise NotReady("the broker cannot take searches now", fields=problems)
    return web.json_response({"status": "ready"})


async def list_nodes(request: web.Request) -> web.Response:
    """GET /v1/nodes (operator): every authority's health as the monitor sees it; ?refresh=true polls now."""
    require_route(request)
    fanout = request.app[FANOUT]
    if request.query.get("refresh") in ("1", "true"):
        await request.app[MONITOR].poll_once(full=True)  # asked for: current figures, not kept ones
    nodes = [h.to_json() for c in fanout.clients if (h := fanout.health_of(c.authority.code)) is not None]
    now = dt.datetime.fromtimestamp(request.app[CLOCK](), dt.UTC).isoformat(timespec="seconds")
    return web.json_response({"generated_at": now, "nodes": nodes})


async def metrics(request: web.Request) -> web.Response:
    require_route(request)
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    """GET /dashboard (operator): the node-health page; imported on first use."""
    from broker.dashboard import dashboard

    return await dashboard(request)


async def list_purposes(request: web.Request) -> web.Response:
    require_route(request)
    return web.json_response({"purposes": [{"code": k, "description": v} for k, v in PURPOSES.items()]})
