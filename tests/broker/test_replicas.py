"""Two broker replicas are one service: one limit per practitioner and per organisation, one alert.

Two harness brokers over the same nodes share one PostgreSQL audit log (a throw-away schema) and one
real Redis (a throw-away key prefix), as the Kubernetes deployment's replicas do; searches alternate
between them. Redis is cut mid-run with the fault proxy (never by stopping the real server): the
brokers refuse searches with 503 limits_unavailable (fail closed), do not count them as the
practitioner's, and say so on /readyz.

Needs Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (a ``test`` database, trust auth):
the tests skip, saying which, when either is missing, unless CI requires it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.appkeys import LIMITER
from broker.config import load_broker_config
from broker.patterns import OFF, PatternSettings
from certs.identity import Role
from core.config import ConfigError
from tests.broker.test_fishing import AMELIA, CHILDREN, PURPOSE, metrics_text, practitioner, search_as
from tests.broker.test_readiness import eventually, get
from tests.conftest import RedisSpace, require_postgres
from tests.faultproxy import FaultProxy

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def audit_schema() -> Iterator[str]:
    """A throw-away PostgreSQL schema for the replicas' shared audit log, dropped afterwards."""
    require_postgres(DSN)
    import psycopg

    name = f"replicas_{uuid.uuid4().hex[:12]}"
    yield f"{DSN}?schema={name}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


async def two_replicas(federation, audit_log: str, limits_store: str, prefix: str, **settings: Any) -> tuple[Any, Any]:
    shared = {"audit_log": audit_log, "limits_store": limits_store, "limits_key_prefix": prefix, **settings}
    first = await federation({"LEEDS": CHILDREN}, **shared)
    return first, await federation({}, replica_of=first, **shared)


async def test_one_practitioner_gets_one_limit_across_two_replicas(federation, redis_space, audit_schema):
    a, b = await two_replicas(federation, audit_schema, redis_space.url, redis_space.prefix, rate_limit=3)
    statuses = [(await (a if i % 2 == 0 else b).search(AMELIA))[0] for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]  # three in all, not three on each
    status, body = await b.search(AMELIA)
    assert status == 429 and body["error"]["limit"] == "practitioner_per_minute"


async def test_the_control_two_replicas_on_memory_each_give_the_full_limit(federation, audit_schema):
    """Why the limits must be shared: on memory each replica keeps its own windows."""
    a, b = await two_replicas(federation, audit_schema, "memory", "signpost:", rate_limit=2)
    statuses = [(await (a if i % 2 == 0 else b).search(AMELIA))[0] for i in range(4)]
    assert statuses == [200, 200, 200, 200]


async def test_an_organisation_gets_one_limit_across_two_replicas(federation, redis_space, audit_schema, pki, tmp_path):
    a, b = await two_replicas(
        federation, audit_schema, redis_space.url, redis_space.prefix, rate_limit=100, org_rate_limit=3
    )
    ann, ben = practitioner(pki, tmp_path, "ann"), practitioner(pki, tmp_path, "ben")
    statuses = [(await search_as(fed, user, AMELIA))[0] for fed, user in ((a, ann), (b, ben), (b, ann), (a, ben))]
    assert statuses == [200, 200, 200, 429]
    status, body = await search_as(b, practitioner(pki, tmp_path, "cat"), AMELIA)
    assert status == 429 and body["error"]["limit"] == "organisation_per_minute"


async def test_unusual_volume_is_alerted_once_across_two_replicas(federation, redis_space, audit_schema):
    a, b = await two_replicas(federation, audit_schema, redis_space.url, redis_space.prefix, patterns=OFF)
    for fed in (a, b):
        fed.server.app[LIMITER].alert_per_hour = 2
    with capture_logs() as logs:
        for i in range(6):
            assert (await (a if i % 2 == 0 else b).search(AMELIA))[0] == 200
    assert [e["user"] for e in logs if e["event"] == "unusual_search_volume"] == ["practitioner"]
    alerts = [line for fed in (a, b) for line in (await metrics_text(fed)).splitlines()]
    assert sorted(x for x in alerts if x.startswith("signpost_unusual_volume_alerts_total")) == [
        "signpost_unusual_volume_alerts_total 0.0",
        "signpost_unusual_volume_alerts_total 1.0",
    ]


async def test_a_sweep_over_two_replicas_is_one_pattern_alert(federation, redis_space, audit_schema):
    patterns = PatternSettings(dates_per_name=4, names_per_date=0)
    a, b = await two_replicas(federation, audit_schema, redis_space.url, redis_space.prefix, patterns=patterns)
    with capture_logs() as logs:
        for day in range(1, 9):
            subject = {**AMELIA, "date_of_birth": f"2014-03-{day:02}"}
            assert (await (a if day % 2 else b).search(subject))[0] == 200
    [alert] = [e for e in logs if e["event"] == "unusual_search_pattern"]
    assert (alert["count"], alert["scope"]) == (4, "practitioner")  # reached on the 4th: 2 on each replica
    assert "Amelia" not in str(alert) and "2014-03" not in str(alert)
    # What Redis holds: keyed hashes and ids, never the child, and every key expiring with its window.
    import redis

    client = redis.Redis.from_url(redis_space.url, decode_responses=True)
    try:
        keys = list(client.scan_iter(match=redis_space.prefix + "*"))
        assert any(":pattern:" in k for k in keys)
        held = " ".join(keys + [m for k in keys if client.type(k) == "zset" for m in client.zrange(k, 0, -1)])
        assert not any(secret in held.lower() for secret in ("amelia", "smith", "2014-03"))  # hex never holds these
        assert all(0 < client.pttl(k) <= patterns.window_seconds * 1000 for k in keys)
    finally:
        client.close()


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
async def test_redis_cut_mid_run_refuses_searches_uncounted_and_readyz_says_so(
    federation, redis_space: RedisSpace, audit_schema, fault
):
    host_port = redis_space.url.removeprefix("redis://").split("/")[0]
    async with FaultProxy(host_port) as proxy:
        via_proxy = f"redis://{proxy.address}/0"
        a, b = await two_replicas(federation, audit_schema, via_proxy, redis_space.prefix, rate_limit=3)
        assert (await a.search(AMELIA))[0] == 200
        await proxy.set_mode(fault)
        for fed in (a, b):
            async with fed.session().post(
                f"{fed.url}/v1/searches", json={"subject": AMELIA, "purpose": PURPOSE}
            ) as resp:
                body = await resp.json()
                assert resp.status == 503 and body["error"]["code"] == "limits_unavailable"
                assert int(resp.headers["Retry-After"]) >= 1
                assert "redis" not in body["error"]["message"].lower() and "127.0.0.1" not in str(body)
            status, answer = await eventually(lambda fed=fed: unready(fed))  # /readyz caches its answer a second
            assert status == 503 and set(answer["error"]["fields"]) == {"limits"}
            text = await metrics_text(fed)
            errors = [x for x in text.splitlines() if x.startswith("signpost_limits_store_errors_total")]
            assert float(errors[0].split()[1]) >= 1  # what the alert SignpostLimitsStoreUnavailable reads
        await proxy.set_mode("pass")
        # The refused searches were not the practitioner's: two more of the three are left, across both.
        assert [(await fed.search(AMELIA))[0] for fed in (b, a, b)] == [200, 200, 429]
        assert (await eventually(lambda: ready(a)))[0] == 200
        # Both refusals are in the one audit log the replicas share, as attempts that were not made.
        async with a.session(role=Role.AUDITOR).get(f"{a.url}/v1/audit/entries?actor=practitioner") as resp:
            outcomes = [e["entry"]["outcome"] for e in (await resp.json())["entries"]]
        assert outcomes.count("unavailable") == 2 and outcomes.count("answered") == 3


async def unready(fed: Any) -> tuple[int, Any] | None:
    status, body = await get(fed.session(role=None), f"{fed.url}/readyz")
    return (status, body) if status == 503 else None


async def ready(fed: Any) -> tuple[int, Any] | None:
    status, body = await get(fed.session(role=None), f"{fed.url}/readyz")
    return (status, body) if status == 200 else None


def write_config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(
        'registry = "registry.json"\nassertion_key = "assertion.key"\n'
        + extra
        + '[tls]\nca = "ca.pem"\ncert = "broker.pem"\nkey = "broker.key"\n'
    )
    return path


def test_a_postgresql_audit_log_without_a_limits_store_refuses_to_start(tmp_path):
    """PostgreSQL means replicas: each keeping its limits in memory would multiply them, silently."""
    shared = 'audit_log = "postgresql://signpost@db/signpost"\n'
    with pytest.raises(ConfigError, match="limits_store"):
        load_broker_config(write_config(tmp_path, shared), {})
    assert load_broker_config(write_config(tmp_path, shared + 'limits_store = "memory"\n'), {}).limits_store == "memory"
    url = "redis://redis:6379/0"
    assert load_broker_config(write_config(tmp_path, shared), {"SIGNPOST_BROKER_LIMITS_STORE": url}).limits_store == url
    assert load_broker_config(write_config(tmp_path, ""), {}).limits_store == "memory"  # one broker on SQLite
    with pytest.raises(ConfigError, match="limits_store"):
        load_broker_config(write_config(tmp_path, 'limits_store = "memcached://x"\n'), {})
