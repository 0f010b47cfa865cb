"""Changes while serving: registry edits, certificate rotation, new data, graceful shutdown."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import shutil
import subprocess
import sys
import weakref

from broker.appkeys import FANOUT, WATCHER
from certs.identity import Role, node_dns_name
from certs.pki import CertificateAuthority, broker_subject, node_subject
from node.importer import import_csv
from node.matching import MatchEngine
from node.store import RecordStore
from tests.conftest import row, write_csv

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}
SIGNPOST = [sys.executable, "-m", "signpost.cli"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIGNPOST, *args], capture_output=True, text=True, timeout=60)


async def test_registry_edits_apply_without_a_restart(federation, tmp_path):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]})
    registry = tmp_path / "registry.json"
    assert "2 authorities" in cli("registry", "list", "--file", str(registry)).stdout
    assert cli("registry", "remove", "--file", str(registry), "--code", "KENT").returncode == 0
    assert fed.server.app[WATCHER].check()
    _, body = await fed.search(AMELIA)
    assert body["coverage"]["asked"] == 1 and [r["authority"]["code"] for r in body["results"]] == ["LEEDS"]
    kent = fed.nodes["KENT"]
    added = cli(
        "registry", "add", "--file", str(registry), "--code", "KENT", "--name", "Kent", "--address", kent.address
    )
    assert added.returncode == 0, added.stderr
    assert (
        cli(
            "registry", "add", "--file", str(registry), "--code", "KENT", "--name", "Kent", "--address", kent.address
        ).returncode
        == 1
    )  # no silent duplicates
    assert fed.server.app[WATCHER].check()
    _status, body = await fed.search(AMELIA)
    assert body["coverage"] == {"asked": 2, "answered": 2, "not_answered": []}


async def test_a_broken_registry_is_refused_and_the_last_good_one_kept(federation, tmp_path):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]})
    (tmp_path / "registry.json").write_text('{"authorities": [{"code": "bad code!"}]}')
    assert not fed.server.app[WATCHER].check()
    _status, body = await fed.search(AMELIA)
    assert body["coverage"]["asked"] == 2 and body["coverage"]["answered"] == 2


async def test_the_registry_is_reloaded_on_its_own(federation, tmp_path):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]})
    fed.server.app[WATCHER].interval = 0.1
    fed.server.app[WATCHER].start()  # a second loop at a faster pace, for the test
    cli("registry", "remove", "--file", str(tmp_path / "registry.json"), "--code", "KENT")
    for _ in range(50):
        if len(fed.server.app[FANOUT].clients) == 1:
            break
        await asyncio.sleep(0.1)
    assert [c.authority.code for c in fed.server.app[FANOUT].clients] == ["LEEDS"]


async def test_node_certificate_rotation_without_a_restart(federation, pki, tmp_path):
    fed = await federation({"LEEDS": [row()]})
    node = fed.nodes["LEEDS"]
    before = node.service.certificate_expires
    ca = CertificateAuthority.load(pki.directory)
    fresh = ca.issue_to(tmp_path / "new", "node-LEEDS", node_subject("LEEDS", "Leeds"), validity=dt.timedelta(days=90))
    # The node's config points at the session PKI's files: rotate copies of them instead.
    cert, key = tmp_path / "rot.pem", tmp_path / "rot.key"
    shutil.copy(node.config.tls.cert, cert)
    shutil.copy(node.config.tls.key, key)
    from dataclasses import replace

    from node.server import start_node

    rotating = await start_node(
        replace(node.config, tls=replace(node.config.tls, cert=cert, key=key), listen=("127.0.0.1", 0))
    )
    try:
        import os

        shutil.copy(fresh.cert, cert)
        shutil.copy(fresh.key, key)
        os.utime(cert, (os.path.getmtime(cert) + 5,) * 2)
        from broker.nodeclient import NodeClient
        from certs.tls import channel_credentials

        client = NodeClient(
            fed.server.app[FANOUT]
            .clients[0]
            .authority.__class__("LEEDS", "Leeds", rotating.address, node_dns_name("LEEDS")),
            channel_credentials(pki.tls(pki.broker)),
        )
        info = await client.describe(timeout=5)  # a new connection: handshakes with the new files
        await client.close()
        assert info.certificate_expires != before
        assert info.certificate_expires == rotating.service.certificate_expires
        assert dt.datetime.fromisoformat(info.certificate_expires) < dt.datetime.now(dt.UTC) + dt.timedelta(days=91)
    finally:
        await rotating.stop(grace=0)


async def test_broker_certificate_rotation_rebuilds_channels(federation, pki, tmp_path):
    fed = await federation({"LEEDS": [row()]})
    watcher = fed.server.app[WATCHER]
    old_clients = list(fed.server.app[FANOUT].clients)
    ca = CertificateAuthority.load(pki.directory)
    fresh = ca.issue_to(tmp_path / "new", "broker", broker_subject())
    # The harness broker reads the session PKI's broker files; point the watcher's config at copies.
    from dataclasses import replace

    cert, key = tmp_path / "b.pem", tmp_path / "b.key"
    shutil.copy(fresh.cert, cert)
    shutil.copy(fresh.key, key)
    watcher.config = replace(watcher.config, tls=replace(watcher.config.tls, cert=cert, key=key))
    assert watcher.check()
    assert all(c not in old_clients for c in fed.server.app[FANOUT].clients)
    status, body = await fed.search(AMELIA)
    assert status == 200 and body["coverage"]["answered"] == 1


async def test_reimport_while_serving_swaps_atomically_and_never_half_answers(federation, tmp_path):
    fed = await federation({"LEEDS": [row()]})
    node = fed.nodes["LEEDS"]
    newcomer = {"given_name": "Zara", "family_name": "Okonjo", "date_of_birth": "2015-05-05"}
    stop = asyncio.Event()
    answers: list[tuple[int, dict]] = []

    async def searching() -> None:
        while not stop.is_set():
            answers.append(await fed.search(AMELIA))

    loop_task = asyncio.create_task(searching())
    await asyncio.sleep(0.2)
    store = RecordStore(node.config.store)
    rows = [
        row(),
        row(
            record_id="Z1",
            given_name="Zara",
            family_name="Okonjo",
            date_of_birth="2015-05-05",
            practitioner_name="New Worker",
        ),
    ]
    import_csv(store, write_csv(tmp_path / "new.csv", rows))
    store.close()
    node.refresher.poke()
    for _ in range(100):
        if node.service.matcher.size == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    stop.set()
    await loop_task
    assert node.service.matcher.size == 2
    assert len(answers) > 5
    for status, body in answers:  # every answer before, during and after: complete and correct
        assert status == 200 and body["coverage"]["answered"] == 1
        [result] = body["results"]
        assert result["contacts"][0]["practitioner_name"] == "Jo Bloggs"
    status, body = await fed.search(newcomer)
    assert body["results"][0]["contacts"][0]["practitioner_name"] == "New Worker"


async def test_the_index_is_kept_from_the_cycle_collector_and_freed_when_replaced(federation, tmp_path):
    fed = await federation({"LEEDS": [row()]})
    node = fed.nodes["LEEDS"]
    table = node.service.matcher.table
    # Frozen at start-up: the collector's full passes no longer walk the index's columns.
    assert not any(obj is table.given for obj in gc.get_objects())
    old = weakref.ref(node.service.matcher)
    del table
    store = RecordStore(node.config.store)
    # A change is laid over the index (node/delta.py): the full build it is laid on is kept, and so is the
    # overlay's table kept from the collector too.
    import_csv(store, write_csv(tmp_path / "again.csv", [row(), row(record_id="Z1", given_name="Zara")]))
    assert await node.refresher.refresh_if_changed()
    overlay = weakref.ref(node.service.matcher)
    assert overlay() is not old() and old() is not None
    assert not any(obj is node.service.matcher.table.given for obj in gc.get_objects())
    # A full reload is laid over it too, and folded into a new full build in the background: that replaces both.
    import_csv(store, write_csv(tmp_path / "full.csv", [row(record_id="Z2", given_name="Zoe")]), replace_all=True)
    store.close()
    assert await node.refresher.refresh_if_changed()
    fold = node.refresher._fold
    assert fold is not None
    await asyncio.wait_for(asyncio.shield(fold), 30)
    await node.refresher.refresh_if_changed()  # or the refresher's own loop, woken by the fold, swapped it in
    assert type(node.service.matcher) is MatchEngine
    del fold
    assert old() is None and overlay() is None  # freed by reference counting, frozen or not: a refresh leaks nothing
    assert not any(obj is node.service.matcher.table.given for obj in gc.get_objects())


async def test_stopping_a_node_drains_searches_in_flight(federation):
    fed = await federation({"LEEDS": [row()]}, deadline=3.0)
    node = fed.nodes["LEEDS"]
    node.service.answer_floor_seconds = 0.5  # a slow answer, so the stop lands mid-search
    search = asyncio.create_task(fed.search(AMELIA))
    await asyncio.sleep(0.15)
    await node.stop(grace=2.0)
    status, body = await search
    assert status == 200 and body["coverage"]["answered"] == 1 and body["results"]


async def test_operator_sees_not_serving_during_shutdown(federation):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]})
    await fed.nodes["KENT"].health.enter_graceful_shutdown()
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/v1/nodes?refresh=true") as resp:
        nodes = {n["code"]: n for n in (await resp.json())["nodes"]}
    assert nodes["KENT"]["status"] in ("down", "circuit_open") and nodes["LEEDS"]["status"] == "up"


async def test_stopping_the_broker_drains_searches_in_flight(tmp_path):
    """The real HTTPS server (TCPSite), not TestServer: a search under way when it stops still answers."""
    import aiohttp

    from certs.tls import client_ssl_context
    from signpost.federation import start_local_federation

    data = write_csv(tmp_path / "LEEDS.csv", [row()])
    fed = await start_local_federation(tmp_path / "work", [("LEEDS", "Leeds", data)], rate_limit_per_minute=0)
    try:
        fed.nodes[0].service.answer_floor_seconds = 0.6  # slow enough that the stop lands mid-search
        context = client_ssl_context(fed.pki.ca.cert, fed.pki.users[Role.PRACTITIONER])
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:

            async def search() -> tuple[int, dict]:
                body = {
                    "subject": AMELIA,
                    "purpose": {"code": "missing-child", "justification": "Missing since Friday"},
                }
                async with session.post(f"{fed.broker_url}/v1/searches", json=body) as resp:
                    return resp.status, await resp.json()

            pending = asyncio.create_task(search())
            await asyncio.sleep(0.2)
            await fed.broker.stop()
            status, body = await pending
        assert status == 200 and body["results"] and body["coverage"]["answered"] == 1
    finally:
        for node in fed.nodes:
            await node.stop(grace=0)
