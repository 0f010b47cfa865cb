"""The portal under the real harness: real nodes, the real broker, and a signed-in browser made directly.

Sessions here are created straight in the broker's session store with a :class:`PortalUser` (as the
OpenID Connect callback would, after validating a token): the sign-in flow itself is tested with a
real identity provider in ``test_oidc*.py``. Everything else is the portal as a browser reaches it,
over HTTPS, with the session cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from yarl import URL

from broker.appkeys import AUDIT, SESSIONS
from broker.portal.sessions import COOKIE, Session, SessionStore
from broker.portal.signin import PortalUser
from certs.identity import Identity, Role
from certs.tls import client_ssl_context
from tests.conftest import Federation, row

ISSUER = "https://login.leeds.example/tenant"


def portal_user(role: Role = Role.PRACTITIONER, subject: str = "pat-7", authority: str = "LEEDS") -> PortalUser:
    """A user as the OIDC module would vouch for them: id is issuer#subject, organisation the authority."""
    identity = Identity(role, f"{ISSUER}#{subject}", "Pat Practitioner", "Leeds", email="pat@leeds.example")
    return PortalUser(identity, ISSUER, subject, authority)


PRACTITIONER = portal_user()
CHILD = {"given_name": "Amelia", "family_name": "Smith", "dob_day": "9", "dob_month": "3", "dob_year": "2014"}
PURPOSE = {"purpose": "child-protection-enquiry", "justification": "Strategy discussion, case 2291"}
DATA = {
    "LEEDS": [row()],
    "KENT": [row(record_id="K1", given_name="Oliver", practitioner_phone="01622 000 000")],
}


@dataclass
class Portal:
    fed: Federation
    clients: list[aiohttp.ClientSession]

    @property
    def origin(self) -> str:
        return "https://" + urlsplit(self.fed.url).netloc

    @property
    def store(self) -> SessionStore:
        return self.fed.server.app[SESSIONS]

    def browser(self) -> aiohttp.ClientSession:
        """A client like a browser: trusts the federation CA, presents no certificate, keeps cookies."""
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(self.fed.pki.ca.cert, None))
        client = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.clients.append(client)
        return client

    def sign_in(self, client: aiohttp.ClientSession, user: PortalUser = PRACTITIONER) -> Session:
        session_id, session = self.store.create(user)
        client.cookie_jar.update_cookies({COOKIE: session_id}, URL(self.origin + "/portal/"))
        return session

    async def audit_entries(self) -> list[dict[str, Any]]:
        return [e.entry for e in await self.fed.server.app[AUDIT].entries(limit=500)]


@pytest.fixture
async def portal(federation):
    """Factory: ``await portal(data)`` is a harness federation with its portal; browsers are closed after."""
    made: list[Portal] = []

    async def make(data: dict[str, list[dict[str, str]]] | None = None, **kwargs: Any) -> Portal:
        p = Portal(await federation(data or DATA, **kwargs), [])
        made.append(p)
        return p

    yield make
    for p in made:
        for client in p.clients:
            await client.close()
