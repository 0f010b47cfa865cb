"""Deny by default: every route names its roles, and every other caller is refused."""

from __future__ import annotations

import pytest

from broker.policy import OPEN_ROUTES, PORTAL_OPEN_ROUTES, PORTAL_ROUTE_ROLES, ROUTE_ROLES
from certs.identity import Role
from tests.conftest import row

# The roles each route admits, from broker.policy. A new route must be added there, or the test below fails.
ALLOWED = {route: set(roles) for route, roles in ROUTE_ROLES.items()}
OPEN = set(OPEN_ROUTES)
# The practitioner portal's pages, by session rather than certificate (tests/portal checks their roles).
PORTAL = set(PORTAL_ROUTE_ROLES) | set(PORTAL_OPEN_ROUTES)


@pytest.fixture
async def fed(federation):
    return await federation({"LEEDS": [row()]})


def routes(app):
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}


async def test_every_route_is_listed_with_its_roles(fed):
    assert routes(fed.server.app) == set(ALLOWED) | OPEN | PORTAL


async def call(fed, method, path, role):
    session = fed.session(role=role)
    async with session.request(method, f"{fed.url}{path}", json={} if method == "POST" else None) as resp:
        return resp.status


@pytest.mark.parametrize(("method", "path"), sorted(ALLOWED))
async def test_roles_not_named_are_refused(fed, method, path):
    assert await call(fed, method, path, None) == 401
    for role in (Role.PRACTITIONER, Role.AUDITOR, Role.OPERATOR, Role.NODE_ADMIN):
        status = await call(fed, method, path, role)
        if role in ALLOWED[(method, path)]:
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)
