"""The real in-process harness: a CA and certificates built with cryptography,
real node servers on loopback port 0 with mTLS, the broker under aiohttp's
TestServer with a TLS context. Everything started here is stopped in teardown.
"""

from __future__ import annotations

import csv
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from broker.app import BrokerRunner, create_app
from broker.appkeys import FANOUT
from broker.config import BrokerConfig
from broker.fanout import build_fanout
from broker.health import HealthSettings
from broker.limits_store import LimitsStore, MemoryStore, RedisStore
from broker.patterns import OFF as PATTERNS_OFF
from broker.patterns import PatternSettings
from broker.portal.config import PortalConfig
from broker.registry import Authority, save_registry
from certs.identity import Role, node_dns_name
from certs.pki import CertificateAuthority, IssuedFiles, node_subject, user_subject
from certs.revocation import RevocationList
from certs.tls import TLSConfig, client_ssl_context, server_ssl_context
from node.config import NodeConfig, NotifyConfig, SourceConfig
from node.records import COLUMNS
from node.server import RunningNode, start_node
from signpost.federation import Pki, create_pki, import_authority, local_front_door

# The harness polls nodes often, so a stopped node shows as down within a fraction of a second.
FAST_HEALTH = HealthSettings(poll_interval=0.2, poll_timeout=1.0)
AUTHORITIES = [("LEEDS", "Leeds"), ("KENT", "Kent"), ("CORNWALL", "Cornwall"), ("HACKNEY", "Hackney")]


def row(**fields: str) -> dict[str, str]:
    """A records-CSV row with sensible defaults for a contact."""
    base = {
        "record_id": "R1",
        "given_name": "Amelia",
        "family_name": "Smith",
        "date_of_birth": "2014-03-09",
        "sex": "F",
        "postcode": "LS6 2AB",
        "address": "12 Oak Road",
        "service": "Children's social care",
        "team": "Duty team",
        "practitioner_name": "Jo Bloggs",
        "practitioner_role": "Social worker",
        "practitioner_phone": "0113 496 0000",
        "practitioner_email": "jo.bloggs@leeds.example",
        "involvement_start": "2022-01-04",
    }
    base.update(fields)
    return base


def write_csv(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") for c in COLUMNS})
    return path


@dataclass
class Foreign:
    """A second, unrelated CA with its own certificates: what an attacker could mint."""

    ca: CertificateAuthority
    practitioner: IssuedFiles
    node_leeds: IssuedFiles


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return create_pki(tmp_path_factory.mktemp("pki"), AUTHORITIES)


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Foreign:
    directory = tmp_path_factory.mktemp("foreign")
    ca = CertificateAuthority.create("Impostor CA")
    ca.save(directory)
    return Foreign(
        ca,
        ca.issue_to(directory, "practitioner", user_subject(Role.PRACTITIONER, "mallory", "Mallory", "Nowhere")),
        ca.issue_to(directory, "node-LEEDS", node_subject("LEEDS", "Leeds")),
    )


class BrokerTestServer(TestServer):
    """aiohttp's TestServer running the app as `signpost broker` does, under BrokerRunner (so its
    protocol errors, such as an over-long request line, are the contract's JSON here too)."""

    async def _make_runner(self, **kwargs: Any) -> BrokerRunner:
        return BrokerRunner(self.app, **kwargs)


@dataclass
class Federation:
    """A running harness federation: nodes plus the broker under TestServer."""

    pki: Pki
    nodes: dict[str, RunningNode]
    server: TestServer
    tmp: Path
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    owns_nodes: bool = True
    """False for a replica (``replica_of``): the nodes are the first broker's, stopped with it."""

    @property
    def url(self) -> str:
        return str(self.server.make_url(""))

    def session(
        self, user: IssuedFiles | None = None, *, role: Role | None = Role.PRACTITIONER, ca: Path | None = None
    ) -> aiohttp.ClientSession:
        files = user if user is not None else (self.pki.users[role] if role else None)
        context = client_ssl_context(ca or self.pki.ca.cert, files)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        self.sessions.append(session)
        return session

    async def search(
        self, subject: dict[str, Any], *, purpose: dict[str, str] | None = None, role: Role = Role.PRACTITIONER
    ) -> tuple[int, dict[str, Any]]:
        body = {
            "subject": subject,
            "purpose": purpose
            or {"code": "child-protection-enquiry", "justification": "Strategy discussion, case 2291"},
        }
        async with self.session(role=role).post(f"{self.url}/v1/searches", json=body) as resp:
            return resp.status, await resp.json()


FederationFactory = Callable[..., Any]


@pytest.fixture
async def federation(pki: Pki, tmp_path: Path) -> AsyncIterator[FederationFactory]:
    shared_pki = pki
    """Factory: ``await federation({"LEEDS": [rows], ...}, node_files={...}, extra=[Authority])``.

    Every node has a front door (``local_front_door``) unless its code is in ``without_front_door``.
    A node in ``sources`` also loads from that database ([source]) at start-up, after its CSV rows.
    """
    started: list[Federation] = []

    async def make(
        data: dict[str, list[dict[str, str]]],
        *,
        node_files: dict[str, IssuedFiles] | None = None,
        extra: Iterable[Authority] = (),
        deadline: float = 2.0,
        rate_limit: int = 0,
        node_ca: Path | None = None,
        pki: Pki | None = None,
        audit_log: str | None = None,
        health: HealthSettings | None = None,
        max_in_flight: int = 64,
        revocations: RevocationList | None = None,
        without_front_door: Iterable[str] = (),
        notify: dict[str, NotifyConfig] | None = None,
        org_rate_limit: int | None = None,
        patterns: PatternSettings | None = None,
        sources: dict[str, SourceConfig] | None = None,
        limits_store: str = "memory",
        limits_key_prefix: str = "signpost:",
        replica_of: Federation | None = None,
        portal: PortalConfig | None = None,
        port: int = 0,
    ) -> Federation:
        """``replica_of``: another broker over that federation's nodes (``data`` must be empty), as a
        second replica would be; give both the same ``audit_log`` and ``limits_store`` to share them.
        ``portal``: the ``[portal]`` sign-in (the broker builds its OpenID Connect sign-in from it);
        ``port``: the broker's port, for a portal whose identity providers must know its address first."""
        pki = pki or shared_pki
        names = dict(AUTHORITIES)
        nodes: dict[str, RunningNode] = dict(replica_of.nodes) if replica_of else {}
        for code, rows in data.items():
            store = tmp_path / f"{code}.sqlite3"
            import_authority(store, write_csv(tmp_path / f"{code}.csv", rows))
            files = (node_files or {}).get(code, pki.nodes[code])
            tls = TLSConfig(ca=node_ca or pki.ca.cert, cert=files.cert, key=files.key, crl=pki.crl)
            front_door = None if code in without_front_door else local_front_door(code)
            nodes[code] = await start_node(
                NodeConfig(
                    code,
                    names[code],
                    ("127.0.0.1", 0),
                    store,
                    tls,
                    broker_public_keys=(pki.assertion_pub,),
                    front_door=front_door,
                    notify=(notify or {}).get(code),
                    source=(sources or {}).get(code),
                )
            )
        authorities = [Authority(c, names[c], n.address, node_dns_name(c)) for c, n in nodes.items()]
        authorities += list(extra)
        registry = tmp_path / ("registry.json" if replica_of is None else f"registry-{len(started)}.json")
        save_registry(registry, tuple(authorities))
        config = BrokerConfig(
            listen=("127.0.0.1", 0),
            registry=registry,
            tls=pki.tls(pki.broker),
            assertion_key=pki.assertion_key,
            search_deadline_seconds=deadline,
            rate_limit_per_minute=rate_limit,
            rate_limit_per_day=0,
            # The per-address limit off, as the per-practitioner one is by default: every harness request comes
            # from 127.0.0.1, and timing and fuzz tests send hundreds. Its own tests set the limiter's values.
            preauth_burst=0,
            alert_searches_per_hour=0,
            # Rate limits off (the default) means organisation limits and pattern alerts off too.
            org_rate_limit_per_minute=org_rate_limit if org_rate_limit is not None else (rate_limit and 120),
            org_rate_limit_per_day=0,
            patterns=patterns or (PATTERNS_OFF if rate_limit == 0 else PatternSettings()),
            audit_log=audit_log or str(tmp_path / "audit.sqlite3"),
            audit_signing_key=tmp_path / "audit.key",
            subject_key=tmp_path / "subject.key",
            health=health or FAST_HEALTH,
            max_searches_in_flight=max_in_flight,
            limits_store=limits_store,
            limits_key_prefix=limits_key_prefix,
            portal=portal,
        )
        app = create_app(
            config, fanout=build_fanout(authorities, config.tls, settings=config.health), revocations=revocations
        )
        server = BrokerTestServer(app, port=port)
        await server.start_server(ssl=server_ssl_context(config.tls))
        fed = Federation(pki, nodes, server, tmp_path, owns_nodes=replica_of is None)
        started.append(fed)
        return fed

    yield make
    for fed in started:
        for session in fed.sessions:
            await session.close()
        await fed.server.close()
        await fed.server.app[FANOUT].close()
    for fed in started:  # every broker first, then the nodes: a replica's nodes are another broker's
        for node in fed.nodes.values() if fed.owns_nodes else ():
            await node.stop(grace=0)


REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class RedisSpace:
    """One test's corner of the real Redis: its URL and a key prefix no other test (or run) uses."""

    url: str
    prefix: str


POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
"""The machine's PostgreSQL (trust auth, database ``test``), which scripts/test starts if it is down."""


def unavailable(reason: str, require: str) -> NoReturn:
    """Skip a test whose real service or tool is missing, saying why — or fail it where the environment
    variable ``require`` is 1 (scripts/test sets each under CI=true, where the service must be there)."""
    if os.environ.get(require) == "1":
        pytest.fail(f"{reason} ({require}=1: CI requires it, and scripts/test provides it)")
    pytest.skip(reason)


def require_postgres(dsn: str = POSTGRES_DSN) -> None:
    """Return if PostgreSQL answers at ``dsn``; otherwise :func:`unavailable`."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'psycopg[binary]'")
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        unavailable(f"PostgreSQL not reachable: {first}", "SIGNPOST_REQUIRE_POSTGRES")


@pytest.fixture
def redis_space() -> Iterator[RedisSpace]:
    """The real Redis at 127.0.0.1:6379 (``SIGNPOST_TEST_REDIS_URL`` to use another), under a fresh key prefix
    whose keys are deleted afterwards. Skips when none answers, unless SIGNPOST_REQUIRE_REDIS=1 (CI).

    Synchronous (redis-py's blocking client) so that async fixtures can ask for it by name."""
    redis = pytest.importorskip("redis", reason="redis-py is not installed: pip install redis")
    url = os.environ.get("SIGNPOST_TEST_REDIS_URL", REDIS_URL)
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable(f"Redis not reachable at {url}: {type(exc).__name__}", "SIGNPOST_REQUIRE_REDIS")
    space = RedisSpace(url, f"signpost-test:{uuid.uuid4().hex[:12]}:")
    try:
        yield space
    finally:
        keys = list(client.scan_iter(match=space.prefix + "*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(params=["memory", "redis"])
async def limits_stores(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., LimitsStore]]:
    """Each store in turn, as a factory: ``make(max_tracked=...)``. Redis stores made by one test share one
    prefix, as replicas share one database; the Redis case skips like ``redis_space`` when none answers."""
    space: RedisSpace | None = request.getfixturevalue("redis_space") if request.param == "redis" else None
    made: list[LimitsStore] = []

    def make(max_tracked: int = 100_000) -> LimitsStore:
        store: LimitsStore = (
            MemoryStore(max_tracked=max_tracked)
            if space is None
            else RedisStore(space.url, prefix=space.prefix, timeout=2.0)
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()
