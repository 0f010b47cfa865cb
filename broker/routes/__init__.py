"""The broker's HTTPS routes (contract section 4), and the one place they are registered.

Each module answers a group of routes: ``searches`` (POST /v1/searches), ``nodes`` (node health,
metrics, the dashboard, purposes, /healthz and /readyz) and ``audit`` (the auditors' entries and checkpoint).
Who may call each is broker.policy's table; a route it does not name is refused here, at start-up.
"""

from __future__ import annotations

from aiohttp import web

from broker.policy import OPEN_ROUTES, ROUTE_ROLES
from broker.routes import audit, nodes, searches

ROUTES = (
    ("GET", "/healthz", nodes.healthz),
    ("GET", "/readyz", nodes.readyz),
    ("POST", "/v1/searches", searches.create_search),
    ("GET", "/v1/nodes", nodes.list_nodes),
    ("GET", "/v1/purposes", nodes.list_purposes),
    ("GET", "/metrics", nodes.metrics),
    ("GET", "/dashboard", nodes.dashboard_page),
    ("GET", "/v1/audit/entries", audit.list_entries),
    ("GET", "/v1/audit/checkpoint", audit.checkpoint),
)


def add_routes(app: web.Application) -> None:
    """Register every route; raise if one is in neither the roles table nor the open routes (deny by default)."""
    for method, path, handler in ROUTES:
        if (method, path) not in ROUTE_ROLES and (method, path) not in OPEN_ROUTES:
            raise RuntimeError(f"{method} {path} is not in broker.policy's roles table")
        if method == "GET":
            app.router.add_get(path, handler)  # which answers HEAD too, as a GET route always has
        else:
            app.router.add_route(method, path, handler)
