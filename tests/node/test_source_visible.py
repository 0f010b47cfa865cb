"""A node over its database says how its loads go, where operators look: the broker's ``GET /v1/nodes`` (data
age, last sync outcome and time, from Describe) and the node's own metrics (loads by kind and outcome).

PostgreSQL only: what is shown does not depend on the backend (test_source_sync covers both)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from certs.identity import Role
from tests.conftest import row
from tests.faultproxy import FaultProxy
from tests.node.sourcedb import SourceDB, create_database
from tests.node.test_source_sync import through, upstream


@pytest.fixture(scope="module")
def source_db() -> Iterator[SourceDB]:
    yield from create_database("postgresql")


async def nodes(fed) -> dict[str, dict[str, Any]]:
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/v1/nodes?refresh=true") as resp:
        assert resp.status == 200
        return {n["code"]: n for n in (await resp.json())["nodes"]}


def loads(node, kind: str, outcome: str) -> float | None:
    return node.metrics.registry.get_sample_value(
        "signpost_node_source_loads_total", {"kind": kind, "outcome": outcome}
    )


async def test_v1_nodes_and_the_node_metrics_show_each_sync_and_the_datas_age(federation, source_db: SourceDB) -> None:
    async with FaultProxy(upstream(source_db)) as proxy:
        config = source_db.config(url=through(source_db, proxy, source_db.url), change_column="updated_at")
        fed = await federation({"LEEDS": [], "KENT": [row(record_id="K1")]}, sources={"LEEDS": config})
        leeds = fed.nodes["LEEDS"]
        shown = await nodes(fed)
        assert shown["LEEDS"]["source_sync"] == "ok"
        assert shown["LEEDS"]["source_sync_at"] == leeds.source_sync.status.attempted_at
        assert shown["LEEDS"]["data_as_of"] == leeds.service.generation.store.data_as_of()
        assert isinstance(shown["LEEDS"]["data_age_seconds"], int) and 0 <= shown["LEEDS"]["data_age_seconds"] < 600
        # A CSV-fed node has no sync to speak of, but its data still has an age.
        assert shown["KENT"]["source_sync"] is None and shown["KENT"]["source_sync_at"] is None
        assert isinstance(shown["KENT"]["data_age_seconds"], int)
        assert loads(leeds, "full", "ok") == 1 and loads(leeds, "full", "failed") == 0
        assert loads(fed.nodes["KENT"], "full", "ok") is None  # no [source]: no series at all

        assert await leeds.source_sync.sync() is True  # nothing changed: an incremental load
        assert loads(leeds, "incremental", "ok") == 1

        await proxy.set_mode("refuse")
        assert await leeds.source_sync.sync(full=True) is False
        assert loads(leeds, "full", "failed") == 1  # its retries were one load
        shown = await nodes(fed)
        assert shown["LEEDS"]["source_sync"] == "failed"
        assert shown["LEEDS"]["source_sync_at"] == leeds.source_sync.status.attempted_at
        assert shown["LEEDS"]["data_as_of"] == leeds.source_sync.status.data_as_of  # the last good data's time
        assert shown["LEEDS"]["status"] == "up"  # still answering searches from it
        assert "unavailable" not in str(shown["LEEDS"])  # the reason stays in the node's own log
