"""A node's Prometheus endpoint: searches, outcomes by band, alerts, refreshes, data age — nothing about a child.

Real nodes answering real searches through the real broker; the endpoint is scraped over HTTP.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.config import load_node_config
from node.metrics import serve_metrics
from node.server import start_node
from signpost.federation import import_authority
from tests.conftest import row, write_csv

AMELIA = {"given_name": "Amelia", "family_name": "Hart", "date_of_birth": "2015-03-02"}
SHIELDED = {"given_name": "Oskar", "family_name": "Brennan", "date_of_birth": "2013-11-20"}
NOBODY = {"given_name": "Quentin", "family_name": "Zabriskie", "date_of_birth": "2010-01-01"}
ROWS = [
    row(record_id="L1", **AMELIA),
    row(record_id="L2", shielded="true", postcode="LS1 1AA", **SHIELDED),
]
CHILD_TEXT = ("L1", "L2", "Amelia", "Hart", "Oskar", "Brennan", "Quentin", "2015-03-02", "2013-11-20", "LS6", "LS1")


async def scrape(port: int) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


async def test_node_counts_searches_by_band_and_alerts_without_naming_a_child(federation):
    fed = await federation({"LEEDS": ROWS})
    node = fed.nodes["LEEDS"]
    server = await serve_metrics(node.metrics, ("127.0.0.1", 0))
    try:
        for subject in (AMELIA, AMELIA, SHIELDED, NOBODY):
            status, _ = await fed.search(subject)
            assert status == 200
        text, samples = await scrape(server.port)
    finally:
        await server.stop()
    assert samples[("signpost_node_searches_answered_total", ())] == 4
    assert samples[("signpost_node_search_outcomes_total", (("band", "match"),))] == 2
    assert samples[("signpost_node_search_outcomes_total", (("band", "possible"),))] == 0
    # The shielded child is answered as absent, and raises an alert for the safeguarding officer.
    assert samples[("signpost_node_search_outcomes_total", (("band", "none"),))] == 2
    assert samples[("signpost_node_safeguarding_alerts_total", ())] == 1
    assert samples[("signpost_node_served_records", ())] == 2
    assert 0 <= samples[("signpost_node_served_data_age_seconds", ())] < 600
    for value in CHILD_TEXT:
        assert value not in text


async def test_a_new_import_is_counted_as_applied(federation, tmp_path):
    fed = await federation({"LEEDS": ROWS})
    node = fed.nodes["LEEDS"]
    import_authority(node.config.store, write_csv(tmp_path / "more.csv", [*ROWS, row(record_id="L3")]))
    assert await node.refresher.refresh_if_changed()
    assert await node.refresher.refresh_if_changed() is False  # nothing new: not counted
    server = await serve_metrics(node.metrics, ("127.0.0.1", 0))
    try:
        _, samples = await scrape(server.port)
    finally:
        await server.stop()
    assert samples[("signpost_node_refreshes_total", (("outcome", "applied"),))] == 1
    assert samples[("signpost_node_refreshes_total", (("outcome", "failed"),))] == 0
    assert samples[("signpost_node_served_records", ())] == 3


async def test_start_node_serves_metrics_on_metrics_listen_only_when_configured(federation, tmp_path):
    fed = await federation({"LEEDS": ROWS})
    assert fed.nodes["LEEDS"].metrics_server is None  # off by default
    store = tmp_path / "copy.sqlite3"
    import_authority(store, write_csv(tmp_path / "copy.csv", ROWS))
    config = dataclasses.replace(
        fed.nodes["LEEDS"].config, listen=("127.0.0.1", 0), store=store, metrics_listen=("127.0.0.1", 0)
    )
    node = await start_node(config)
    try:
        assert node.metrics_server is not None
        _, samples = await scrape(node.metrics_server.port)
        assert samples[("signpost_node_served_records", ())] == 2
        assert samples[("signpost_node_searches_answered_total", ())] == 0
    finally:
        await node.stop(grace=0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(node.metrics_server.port)  # stopped with the node


def test_metrics_listen_is_read_from_the_node_toml(tmp_path: Path, pki: Any):
    base = f"""
listen = "127.0.0.1:50051"
store = "leeds.sqlite3"
broker_public_keys = ["{pki.assertion_pub}"]
{{extra}}
[authority]
code = "LEEDS"
name = "Leeds"
[tls]
ca = "{pki.ca.cert}"
cert = "{pki.nodes["LEEDS"].cert}"
key = "{pki.nodes["LEEDS"].key}"
"""
    path = tmp_path / "node.toml"
    path.write_text(base.replace("{extra}", ""))
    assert load_node_config(path, {}).metrics_listen is None
    path.write_text(base.replace("{extra}", 'metrics_listen = "127.0.0.1:9464"'))
    assert load_node_config(path, {}).metrics_listen == ("127.0.0.1", 9464)
