"""deploy/monitoring agrees with promtool and with the code: every metric its rules and dashboard name is exported.

promtool (Debian's ``prometheus`` package; scripts/test installs it) checks and unit-tests the rules;
without it those tests skip and say why, except under SIGNPOST_REQUIRE_PROMTOOL=1 (CI). The names
are compared with a scrape of a running harness broker and node, not with a list kept by hand.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from broker.registry import Authority
from certs.identity import Role, node_dns_name
from node.metrics import serve_metrics
from tests.conftest import row, unavailable

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "signpost-rules.yml"
RULE_TESTS = MONITORING / "signpost-rules.test.yml"
DASHBOARD = MONITORING / "signpost-dashboard.json"
METRIC = re.compile(r"\bsignpost_[a-zA-Z0-9_:]*")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable(
            "promtool is not installed: apt-get install -y --no-install-recommends prometheus",
            "SIGNPOST_REQUIRE_PROMTOOL",
        )
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_checks_the_rules() -> None:
    result = run(promtool(), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = run(promtool(), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def named(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC.findall(expr)}


def exported(text: str) -> set[str]:
    """Every series name a scrape can carry, labelled families with no series yet included."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_dashboard_is_grafana_json_with_a_query_on_every_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


async def test_every_metric_the_rules_and_dashboard_name_is_exported(federation) -> None:
    dead = Authority("KENT", "Kent", "127.0.0.1:9", node_dns_name("KENT"))  # nothing listens: a coverage gap
    fed = await federation({"LEEDS": [row(record_id="L1")]}, extra=[dead])
    status, _ = await fed.search({"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"})
    assert status == 200
    operator = fed.session(role=Role.OPERATOR)

    async def broker_scrape() -> str:
        async with operator.get(f"{fed.url}/metrics") as resp:
            assert resp.status == 200
            return await resp.text()

    for _ in range(50):  # the monitor sets the per-node gauges after its first round
        broker_text = await broker_scrape()
        if "signpost_node_certificate_expiry_timestamp_seconds{" in broker_text:
            break
        await asyncio.sleep(0.1)
    node_server = await serve_metrics(fed.nodes["LEEDS"].metrics, ("127.0.0.1", 0))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{node_server.port}/metrics") as resp,
        ):
            node_text = await resp.text()
    finally:
        await node_server.stop()
    available = exported(broker_text) | exported(node_text)
    in_rules, on_dashboard = named(rule_expressions()), named(dashboard_expressions())
    assert len(in_rules) >= 10 and len(on_dashboard) >= 15  # the extraction itself found them
    assert in_rules - available == set(), "alert rules name metrics the code does not export"
    assert on_dashboard - available == set(), "the dashboard names metrics the code does not export"


def test_names_that_are_not_exported_are_caught() -> None:
    """The comparison above can fail: a misspelt name is not among a scrape's."""
    text = "# HELP signpost_nodes_up x\n# TYPE signpost_nodes_up gauge\nsignpost_nodes_up 2.0\n"
    assert named(["signpost_node_up == 0 or signpost_nodes_up < 1"]) - exported(text) == {"signpost_node_up"}
