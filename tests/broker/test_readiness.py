"""/readyz fails while the audit store, the registry or the keys are unusable; /healthz stays liveness.

And the health monitor itself keeps the per-node gauges current, without anyone opening /v1/nodes.
Real nodes, the real broker, and (where one runs) a real PostgreSQL behind a fault proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from broker.appkeys import FANOUT, MONITOR, READINESS
from broker.peercert import PeerCertificates
from broker.registry import Authority
from certs.identity import Role, node_dns_name
from tests.conftest import require_postgres, row
from tests.faultproxy import FaultProxy

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
ROWS = [row(record_id="L1", given_name="Amelia", family_name="Hart", date_of_birth="2015-03-02")]


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        return resp.status, await resp.json()


async def scrape(fed: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def eventually(check: Callable[[], Any], *, seconds: float = 5.0) -> Any:
    """Poll ``check`` (async) until it returns something truthy, at most ``seconds``."""
    for _ in range(int(seconds / 0.1)):
        if result := await check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


async def test_ready_while_everything_works_and_healthz_is_liveness(federation):
    fed = await federation({"LEEDS": ROWS})
    anyone = fed.session(role=None)
    assert await get(anyone, f"{fed.url}/readyz") == (200, {"status": "ready"})
    assert await get(anyone, f"{fed.url}/healthz") == (200, {"status": "ok"})


async def test_not_ready_without_any_authority_but_still_alive(federation):
    fed = await federation({"LEEDS": ROWS})
    for retired in fed.server.app[FANOUT].replace([]):  # what a registry emptied by a reload leaves
        await retired.close()
    status, body = await get(fed.session(role=None), f"{fed.url}/readyz")
    assert status == 503
    assert body["error"]["code"] == "not_ready"
    assert set(body["error"]["fields"]) == {"registry"}
    assert await get(fed.session(role=None), f"{fed.url}/healthz") == (200, {"status": "ok"})


async def test_not_ready_when_a_signing_key_cannot_be_read(federation, tmp_path):
    fed = await federation({"LEEDS": ROWS})
    audit_key = tmp_path / "audit.key"
    kept = audit_key.read_bytes()
    audit_key.write_bytes(b"not a key")
    status, body = await get(fed.session(role=None), f"{fed.url}/readyz")
    assert status == 503
    assert body["error"]["fields"] == {"keys": "audit_signing_key cannot be read as a private key"}
    assert str(tmp_path) not in str(body)  # an open route names config keys, not paths
    audit_key.write_bytes(kept)
    readiness = fed.server.app[READINESS]
    await asyncio.sleep(readiness.settings.cache_seconds)
    assert (await get(fed.session(role=None), f"{fed.url}/readyz"))[0] == 200


async def test_not_ready_when_the_subject_key_is_gone(federation, tmp_path):
    """A restart would make a new key silently, and no earlier audit entry could be found by a child's details."""
    fed = await federation({"LEEDS": ROWS})
    (tmp_path / "subject.key").unlink()
    status, body = await get(fed.session(role=None), f"{fed.url}/readyz")
    assert (status, body["error"]["fields"]) == (503, {"keys": "subject_key cannot be read as a 32-byte hex key"})


async def test_not_ready_once_the_brokers_certificate_has_expired(federation):
    fed = await federation({"LEEDS": ROWS})
    readiness = fed.server.app[READINESS]
    expires = readiness._not_after.get()
    assert expires is not None
    readiness._clock = lambda: expires + 1  # the same certificate, a day after it lapsed
    readiness._checked_at = float("-inf")
    status, body = await get(fed.session(role=None), f"{fed.url}/readyz")
    assert status == 503
    assert body["error"]["fields"]["keys"].startswith("tls.cert expired at ")


@pytest.fixture
def pg_schema() -> Any:
    require_postgres(PG_DSN)
    import psycopg

    name = f"ready_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


async def test_not_ready_while_the_postgresql_audit_log_is_unreachable(federation, pg_schema):
    async with FaultProxy("127.0.0.1:5432") as proxy:
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={pg_schema}"
        fed = await federation({"LEEDS": ROWS}, audit_log=dsn)
        anyone = fed.session(role=None)
        assert (await get(anyone, f"{fed.url}/readyz"))[0] == 200
        await proxy.set_mode("refuse")  # the database host is gone: open sessions reset, connects refused

        async def not_ready() -> Any:
            status, body = await get(anyone, f"{fed.url}/readyz")
            return body if status == 503 else None

        body = await eventually(not_ready)
        assert body["error"]["fields"] == {"audit": "the audit store cannot be read"}
        assert str(proxy.port) not in str(body)  # no connection details on an open route
        assert await get(anyone, f"{fed.url}/healthz") == (200, {"status": "ok"})
        await proxy.set_mode("pass")

        async def ready() -> bool:
            return (await get(anyone, f"{fed.url}/readyz"))[0] == 200

        await eventually(ready)


async def test_a_hung_audit_store_is_not_ready_and_its_read_is_not_cancelled(federation, pg_schema):
    async with FaultProxy("127.0.0.1:5432") as proxy:
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test?schema={pg_schema}"
        fed = await federation({"LEEDS": ROWS}, audit_log=dsn)
        readiness = fed.server.app[READINESS]
        readiness.settings = dataclasses.replace(readiness.settings, audit_timeout=0.3, cache_seconds=0.0)
        anyone = fed.session(role=None)
        assert (await get(anyone, f"{fed.url}/readyz"))[0] == 200
        await proxy.set_mode("blackhole")  # the database stops answering, the connection stays open
        status, body = await get(anyone, f"{fed.url}/readyz")
        assert (status, body["error"]["fields"]) == (503, {"audit": "the audit store did not answer within 0.3 s"})
        hung = readiness._audit_read
        status, _ = await get(anyone, f"{fed.url}/readyz")
        assert status == 503 and readiness._audit_read is hung  # one read outstanding, not one per probe
        assert hung is not None and not hung.done()


async def test_monitor_keeps_node_gauges_current_without_anyone_opening_v1_nodes(federation):
    fed = await federation({"LEEDS": ROWS, "KENT": ROWS})

    async def both_up() -> Any:
        samples = await scrape(fed)
        return samples if samples.get(("signpost_nodes_up", ())) == 2 else None

    samples = await eventually(both_up)
    assert samples[("signpost_nodes", ())] == 2
    now = dt.datetime.now(dt.UTC).timestamp()
    for code in ("LEEDS", "KENT"):
        label = (("authority", code),)
        assert samples[("signpost_node_up", label)] == 1
        assert samples[("signpost_node_records", label)] == 1
        assert 0 <= samples[("signpost_node_data_age_seconds", label)] < 600  # imported by the harness just now
        assert 0 < samples[("signpost_node_probe_seconds", label)] < 5
        assert samples[("signpost_node_certificate_expiry_timestamp_seconds", label)] > now
    await fed.nodes["KENT"].stop(grace=0)

    async def kent_down() -> Any:
        samples = await scrape(fed)
        return samples if samples.get(("signpost_node_up", (("authority", "KENT"),))) == 0 else None

    samples = await eventually(kent_down)
    assert samples[("signpost_nodes_up", ())] == 1


async def test_certificate_and_crl_dates_are_exported(federation):
    fed = await federation({"LEEDS": ROWS})
    samples = await scrape(fed)
    now = dt.datetime.now(dt.UTC).timestamp()
    broker = samples[("signpost_certificate_expiry_timestamp_seconds", (("certificate", "broker"),))]
    ca = samples[("signpost_certificate_expiry_timestamp_seconds", (("certificate", "ca"),))]
    crl = samples[("signpost_crl_next_update_timestamp_seconds", ())]
    assert not any(math.isnan(v) for v in (broker, ca, crl))
    assert now < broker <= ca
    assert now < crl < now + 8 * 86400  # signpost certs writes a CRL valid for a week


async def test_an_authority_removed_from_the_registry_leaves_no_series_behind(federation):
    fed = await federation({"LEEDS": ROWS, "KENT": ROWS})
    kent = (("authority", "KENT"),)

    async def kent_exported() -> Any:
        return ("signpost_node_up", kent) in await scrape(fed)

    await eventually(kent_exported)
    fanout = fed.server.app[FANOUT]
    for retired in fanout.replace([c for c in fanout.clients if c.authority.code == "LEEDS"]):
        await retired.close()

    async def kent_gone() -> Any:
        samples = await scrape(fed)
        return samples if not any(labels == kent for _, labels in samples) else None

    samples = await eventually(kent_gone)
    assert samples[("signpost_nodes", ())] == 1
    assert samples[("signpost_node_up", (("authority", "LEEDS"),))] == 1


async def test_node_certificate_expiry_is_what_the_handshake_shows_else_what_the_node_reports(federation, foreign):
    fed = await federation({"LEEDS": ROWS})
    real = x509.load_pem_x509_certificate(fed.pki.nodes["LEEDS"].cert.read_bytes()).not_valid_after_utc.timestamp()
    reported = "2099-01-01T00:00:00+00:00"
    fed.nodes["LEEDS"].service.certificate_expires = reported  # a node misreporting its certificate
    label = ("signpost_node_certificate_expiry_timestamp_seconds", (("authority", "LEEDS"),))

    def gauge_is(value: float) -> Callable[[], Any]:
        async def check() -> bool:
            return (await scrape(fed)).get(label) == value

        return check

    await eventually(gauge_is(real))
    # The broker cannot complete a handshake it trusts (another CA): it falls back to the node's report.
    monitor = fed.server.app[MONITOR]
    monitor.certificates = PeerCertificates(
        dataclasses.replace(fed.pki.tls(fed.pki.broker), ca=foreign.node_leeds.cert)
    )
    await eventually(gauge_is(dt.datetime.fromisoformat(reported).timestamp()))


async def test_a_handshake_with_nothing_listening_gives_no_date(pki):
    dead = Authority("KENT", "Kent", "127.0.0.1:9", node_dns_name("KENT"))
    assert await PeerCertificates(pki.tls(pki.broker), timeout=1.0).expiry(dead) is None
