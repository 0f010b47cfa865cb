"""The broker's HTTPS routes (contract section 4), and the one place they are registered.

Each module answers a group of routes: ``searches`` (POST /v1/searches), ``nodes`` (node health,
metrics, the dashboard, purposes, /healthz and /readyz) and ``audit`` (the auditors' entries and checkpoint).
The practitioner portal's pages (broker.portal.routes) are registered here too, against the policy's
portal tables. Who may call each is broker.policy's table; a route it does not name is refused here, at start-up.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from broker.policy import OPEN_ROUTES, PORTAL_OPEN_ROUTES, PORTAL_ROUTE_ROLES, ROUTE_ROLES
from broker.portal import paths
from broker.portal.routes import ROUTES as PORTAL_ROUTES
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


KNOWN = frozenset(ROUTE_ROLES) | OPEN_ROUTES | frozenset(PORTAL_ROUTE_ROLES) | PORTAL_OPEN_ROUTES
"""Every (method, path) broker.policy names: the API's by certificate, the portal's by session, and the open ones."""


def add_routes(app: web.Application) -> None:
    """Register every route; raise if one is in none of the policy's tables (deny by default)."""
    for method, path, handler in (*ROUTES, *PORTAL_ROUTES):
        if (method, path) not in KNOWN:
            raise RuntimeError(f"{method} {path} is not in broker.policy's roles table")
        if method == "GET":
            app.router.add_get(path, handler)  # which answers HEAD too, as a GET route always has
        else:
            app.router.add_route(method, path, handler)
    if ("GET", paths.ASSETS) not in KNOWN:
        raise RuntimeError(f"GET {paths.ASSETS} is not in broker.policy's roles table")
    # GOV.UK Frontend's files, as committed (scripts/build_portal_assets.sh): no CDN, no npm at run time.
    app.router.add_static(paths.ASSETS, str(files("broker.portal") / "static" / "govuk"), follow_symlinks=False)
