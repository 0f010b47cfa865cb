"""A serving node fed by its authority's database: start-up load, searches through the real federation,
and a source outage during which the last good data keeps answering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import structlog

from certs.identity import node_dns_name
from core.config import ConfigError
from protos.signpost.v1 import node_pb2, node_pb2_grpc
from tests.faultproxy import FaultProxy
from tests.node.sourcedb import SourceDB, create_database

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09", "postcode": "LS6 2AB"}
FREYA = {"given_name": "Freya", "family_name": "Hughes", "date_of_birth": "2017-08-30"}


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def source_db(request: pytest.FixtureRequest) -> Iterator[SourceDB]:
    yield from create_database(request.param)


async def describe(fed, pki) -> node_pb2.DescribeResponse:
    """Describe as the broker asks it (the broker's certificate): what the node says of its data."""
    creds = grpc.ssl_channel_credentials(
        pki.ca.cert.read_bytes(), pki.broker.key.read_bytes(), pki.broker.cert.read_bytes()
    )
    options = [("grpc.ssl_target_name_override", node_dns_name("LEEDS"))]
    async with grpc.aio.secure_channel(fed.nodes["LEEDS"].address, creds, options=options) as channel:
        return await node_pb2_grpc.NodeServiceStub(channel).Describe(node_pb2.DescribeRequest(), timeout=5)


def upstream(db: SourceDB) -> str:
    return "127.0.0.1:5432" if db.backend == "postgresql" else "127.0.0.1:3306"


def through(db: SourceDB, proxy: FaultProxy, url: str) -> str:
    return url.replace(upstream(db), proxy.address)


async def found(fed, subject: dict[str, str]) -> list[str]:
    status, body = await fed.search(subject)
    assert status == 200, body
    return [r["authority"]["code"] for r in body["results"] if r["band"] == "match"]


async def test_a_node_loads_its_database_and_answers_searches(federation, source_db: SourceDB) -> None:
    fed = await federation({"LEEDS": [], "KENT": []}, sources={"LEEDS": source_db.config()})
    assert await found(fed, AMELIA) == ["LEEDS"]
    _, body = await fed.search(AMELIA)
    contacts = body["results"][0]["contacts"]
    assert {c["practitioner_name"] for c in contacts} == {"Jo Bloggs", "Sam Patel"}
    # Shielded at source (protected_flag Y): answered as absent, like a shielded CSV record.
    assert await found(fed, {"given_name": "Noah", "family_name": "Walker", "date_of_birth": "2012-11-02"}) == []
    sync = fed.nodes["LEEDS"].source_sync
    assert sync is not None and sync.status.outcome == "ok" and sync.status.rows_rejected == 2


async def test_a_source_outage_keeps_the_last_good_data_answering(federation, pki, source_db: SourceDB) -> None:
    secret = "Vv3-outage-pw-2290"
    async with FaultProxy(upstream(source_db)) as proxy:
        # A SELECT-only account with a real password (MariaDB checks it; the local PostgreSQL trusts).
        config = source_db.config(url=through(source_db, proxy, source_db.reader(secret)), password=secret)
        fed = await federation({"LEEDS": []}, sources={"LEEDS": config})
        node = fed.nodes["LEEDS"]
        assert node.source_sync is not None
        good_as_of = node.service.generation.store.data_as_of()
        assert await found(fed, AMELIA) == ["LEEDS"]
        info = await describe(fed, pki)
        assert (info.source_sync, info.data_as_of, info.record_count) == ("ok", good_as_of, 4)

        await proxy.set_mode("refuse")
        with structlog.testing.capture_logs() as logs:
            assert await node.source_sync.sync() is False
        assert node.source_sync.status.outcome == "failed"
        assert node.source_sync.status.detail.startswith("source.url: the database is unavailable")
        assert [e["event"] for e in logs].count("source_load_retrying") == config.retry_attempts - 1
        assert secret not in str(logs) and secret not in node.source_sync.status.detail
        # Searches go on answering from the last good load, and the data says how old it is.
        assert await found(fed, AMELIA) == ["LEEDS"]
        assert node.service.generation.store.data_as_of() == good_as_of
        assert node.source_sync.status.data_as_of == good_as_of
        info = await describe(fed, pki)
        assert (info.source_sync, info.data_as_of, info.record_count) == ("failed", good_as_of, 4)
        assert info.source_sync_at == node.source_sync.status.attempted_at
        assert "unavailable" not in str(info)  # the reason stays in the node's own log

        # Back up, with a new child at source: the next load brings her in, swapped in atomically.
        await proxy.set_mode("pass")
        add_child(source_db, "P9", FREYA)
        try:
            assert await node.source_sync.sync() is True
            await node.refresher.refresh_if_changed()
            assert await found(fed, FREYA) == ["LEEDS"] and await found(fed, AMELIA) == ["LEEDS"]
            assert node.source_sync.status.outcome == "ok"
        finally:
            remove_child(source_db, "P9")


async def test_changes_load_incrementally_and_a_full_load_removes_what_source_deleted(
    federation, source_db: SourceDB
) -> None:
    config = source_db.config(change_column="updated_at", full_refresh_seconds=3600)
    fed = await federation({"LEEDS": []}, sources={"LEEDS": config})
    node, sync = fed.nodes["LEEDS"], fed.nodes["LEEDS"].source_sync
    assert sync is not None
    version = node.store.data_version()
    # Nothing changed: an incremental load writes nothing, so nothing is rebuilt.
    assert await sync.sync() is True and node.store.data_version() == version
    # A new child, then a change to her record: each picked up by the next incremental load.
    add_child(source_db, "P8", FREYA, updated_at="2030-01-01 00:00:00")
    try:
        with structlog.testing.capture_logs() as logs:
            assert await sync.sync() is True
        assert [e["kind"] for e in logs if e["event"] == "source_loaded"] == ["changes"]
        assert await node.refresher.refresh_if_changed() is True
        assert await found(fed, FREYA) == ["LEEDS"] and node.store.count() == 5
        source_db.execute(
            "UPDATE people SET forename = 'Frida', updated_at = '2030-01-01 00:00:05' WHERE person_id = 'P8'"
        )
        assert await sync.sync() is True
        await node.refresher.refresh_if_changed()
        frida = {**FREYA, "given_name": "Frida"}
        assert await found(fed, frida) == ["LEEDS"]
        assert [len(r.involvements) for r in node.store.records() if r.record_id == "P8"] == [1]
    finally:
        remove_child(source_db, "P8")
    # Deleted at source: an incremental load cannot see it; the full reconciliation removes it.
    assert await sync.sync() is True
    await node.refresher.refresh_if_changed()
    assert await found(fed, frida) == ["LEEDS"]
    assert await sync.sync(full=True) is True
    assert await node.refresher.refresh_if_changed() is True
    assert await found(fed, frida) == [] and node.store.count() == 4
    assert await found(fed, AMELIA) == ["LEEDS"]


async def test_a_view_changed_under_a_serving_node_keeps_the_last_good_data(federation, source_db: SourceDB) -> None:
    fed = await federation({"LEEDS": []}, sources={"LEEDS": source_db.config()})
    node = fed.nodes["LEEDS"]
    assert node.source_sync is not None
    node.source_sync.config = source_db.config(query="SELECT * FROM signpost_children_v WHERE 1 = 0")
    with structlog.testing.capture_logs() as logs:
        assert await node.source_sync.sync() is False
    events = [e["event"] for e in logs if e["event"].startswith("source_")]
    assert events == ["source_load_failed"]  # a config problem is not retried at once
    assert node.source_sync.status.detail == "source.query: the query returned no rows; the last good data is kept"
    assert await found(fed, AMELIA) == ["LEEDS"]


async def test_a_mapping_that_does_not_fit_stops_the_node_at_start_up(federation, source_db: SourceDB) -> None:
    config = source_db.config(columns={**source_db.config().columns, "family_name": "last_name"})
    with pytest.raises(ConfigError) as caught:
        await federation({"LEEDS": []}, sources={"LEEDS": config})
    assert str(caught.value) == "source.columns.family_name: the query returns no column 'last_name'"


async def test_an_unreachable_source_at_start_up_serves_the_stores_last_good_load(
    federation, source_db: SourceDB, tmp_path: Path
) -> None:
    from tests.conftest import row

    # The store holds an earlier load (here a CSV import); the source is down when the node starts.
    down = source_db.config(url=source_db.url.replace(upstream(source_db), "127.0.0.1:1"), retry_attempts=1)
    fed = await federation({"LEEDS": [row()]}, sources={"LEEDS": down})
    node = fed.nodes["LEEDS"]
    assert node.source_sync is not None and node.source_sync.status.outcome == "failed"
    assert await found(fed, AMELIA) == ["LEEDS"]


def add_child(db: SourceDB, person_id: str, child: dict[str, str], updated_at: str = "2026-01-01 00:00:00") -> None:
    db.execute(
        "INSERT INTO people (person_id, forename, surname, dob, sex_code, updated_at) VALUES (:p, :g, :f, :d, 2, :u)",
        p=person_id,
        g=child["given_name"],
        f=child["family_name"],
        d=child["date_of_birth"],
        u=updated_at,
    )
    db.execute("INSERT INTO involvements (involvement_id, person_id, worker_id) VALUES (99, :p, 1)", p=person_id)


def remove_child(db: SourceDB, person_id: str) -> None:
    db.execute("DELETE FROM involvements WHERE person_id = :p", p=person_id)
    db.execute("DELETE FROM people WHERE person_id = :p", p=person_id)


def test_signpost_node_serve_stops_with_one_sentence_on_a_mapping_that_does_not_fit(
    pki, source_db: SourceDB, tmp_path: Path
) -> None:
    from tests.node.sourcedb import MAPPING
    from tests.node.test_source_check import check

    node = pki.nodes["LEEDS"]
    head = (
        f'listen = "127.0.0.1:0"\nstore = "{tmp_path / "leeds.sqlite3"}"\n'
        f'broker_public_keys = ["{pki.assertion_pub}"]\n'
        '[authority]\ncode = "LEEDS"\nname = "Leeds"\n'
        f'[tls]\nca = "{pki.ca.cert}"\ncert = "{node.cert}"\nkey = "{node.key}"\ncrl = "{pki.crl}"\n'
    )
    config = source_db.toml(tmp_path / "node.toml", columns={**MAPPING, "date_of_birth": "birth_date"})
    config.write_text(head + config.read_text(encoding="utf-8"), encoding="utf-8")
    result = check(config, command="serve")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    # Found once the log is JSON (the source is read as the node starts): one JSON line says it.
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    failed = [r["error"] for r in records if r["event"] == "startup_failed"]
    assert failed == ["source.columns.date_of_birth: the query returns no column 'birth_date'"]


async def test_a_password_changed_at_source_keeps_serving_and_never_logs_it(federation, source_db: SourceDB) -> None:
    if source_db.backend == "postgresql":
        pytest.skip("the local PostgreSQL trusts every local login, so no password can be wrong there")
    secret, rotated = "Qw8-serving-pw-5521", "Qw8-rotated-pw-7734"
    url = source_db.reader(secret)
    fed = await federation({"LEEDS": []}, sources={"LEEDS": source_db.config(url=url, password=secret)})
    node = fed.nodes["LEEDS"]
    assert node.source_sync is not None and node.source_sync.status.outcome == "ok"
    user = url.split("://", 1)[1].split("@", 1)[0]
    source_db.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{rotated}'")
    with structlog.testing.capture_logs() as logs:
        assert await node.source_sync.sync() is False
    failed = [e for e in logs if e["event"] == "source_load_failed"]
    assert len(failed) == 1 and "Access denied" in failed[0]["detail"]
    assert secret not in str(logs) and rotated not in str(logs)
    assert secret not in node.source_sync.status.detail
    assert await found(fed, AMELIA) == ["LEEDS"]


async def test_stopping_mid_load_lets_the_load_finish_before_its_store_closes(tmp_path: Path) -> None:
    import threading

    from node.importer import ImportReport
    from node.source import SourceRead
    from node.source_sync import SourceSync
    from node.store import RecordStore

    started, release = threading.Event(), threading.Event()

    def slow_read(config, engine, changes) -> SourceRead:  # type: ignore[no-untyped-def]
        started.set()
        release.wait(10)
        report = ImportReport(rows_loaded=1, records_loaded=1)
        from node.records import Record

        child = Record(record_id="S1", given_name="Amelia", family_name="Smith", date_of_birth="2014-03-09")
        return SourceRead(("record_id",), [child], report)

    from node.config import SourceConfig

    store = RecordStore(tmp_path / "s.sqlite3")
    sync = SourceSync(SourceConfig(url="postgresql://u@db/cms", query="SELECT 1"), store, read=slow_read)
    sync.start(on_loaded=lambda: None)
    sync.poke()
    assert await asyncio.to_thread(started.wait, 10)
    await sync.stop()  # the turn is cancelled, but its thread is still reading
    release.set()
    for _ in range(100):
        if sync._inflight is not None and sync._inflight.done():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
    reader = RecordStore(tmp_path / "s.sqlite3")
    try:
        assert reader.count() == 1  # the load committed whole after stop()
    finally:
        reader.close()
    with pytest.raises(Exception, match="closed"):
        store.count()  # and then its store was closed
