"""Each benchmark runs end to end at a tiny scale and writes its JSON (only accuracy has floors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_postgres

SIGNPOST = [sys.executable, "-m", "signpost.cli", "bench"]


def bench(tmp_path: Path, *args: str, timeout: float = 300) -> dict:
    out = tmp_path / "result.json"
    result = subprocess.run([*SIGNPOST, *args, "--out", str(out)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_accuracy_smoke(tmp_path):
    r = bench(tmp_path, "accuracy", "--children", "600", "--queries", "60", "--authorities", "3")
    assert r["queries"] == 60 and r["incomplete_coverage_searches"] == 0
    # Floors well under what the engine reaches here (seeds 1-5 and 7: precision 1.0, recall 0.96-1.0 over
    # ~60 held records): a broken matcher falls through them, ordinary seed-to-seed noise does not.
    assert r["match"]["precision"] >= 0.95 and r["match"]["recall"] >= 0.85, r["match"]
    # A sibling, a twin or someone else returned as a *match* is the error that sends a practitioner wrong.
    assert r["record_level"]["match_sibling_or_twin"] == 0 and r["record_level"]["match_other_person"] == 0


def test_speed_smoke(tmp_path):
    r = bench(tmp_path, "speed", "--records", "3000", "--queries", "50")
    assert r["records"] > 2000 and r["queries"] == 50 and r["latency_ms"]["p99"] > 0
    calibrated(r, floor=False)


def calibrated(r: dict, *, floor: bool) -> None:
    """The calibration every benchmark JSON carries: measured before and after, and what the machine was."""
    for when in ("before", "after"):
        sample = r["calibration"][when]
        assert sample["python_loop_ms"] > 0 and sample["numpy_sort_ms"] > 0 and len(sample["load_average"]) == 3
        assert ("grpc_floor" in sample) is floor
    assert r["calibration"]["before"]["at"] <= r["calibration"]["after"]["at"]
    assert r["calibration"]["reference"]["python_loop_ms"] > 0
    assert r["machine"]["cpus"] >= 1 and r["machine"]["python"] and "cpu_model" in r["machine"]


def test_soak_smoke(tmp_path):
    r = bench(
        tmp_path,
        "soak",
        "--minutes",
        "0.1",
        "--rate",
        "5",
        "--authorities",
        "3",
        "--children",
        "600",
        "--flap-period",
        "3",
    )
    assert r["searches_served"] == r["searches_sent"] == 30 and r["authorities_misreported"] == 0
    calibrated(r, floor=False)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("matplotlib"), reason="matplotlib not installed")
def test_scale_smoke(tmp_path):
    r = bench(
        tmp_path,
        "scale",
        "--authorities",
        "3",
        "--records",
        "900",
        "--workers",
        "2",
        "--rates",
        "5",
        "--duration",
        "2",
        "--serial",
        "5",
        "--workdir",
        str(tmp_path / "work"),
    )
    assert r["authorities"] == 3 and r["federated"]["loads"][0]["coverage_complete"] == 1.0
    assert r["central"]["serial"]["searches"] == 5 and r["federated_over_central"]["p50"] is not None
    assert all(Path(c).exists() for c in r["charts"])
    calibrated(r, floor=True)
    assert r["calibration"]["before"]["grpc_floor"]["streams"] == 3
    assert r["calibration"]["reference"]["grpc_floor_cpu_ms_per_round"] > 0
    assert len(r["runs"]) == 1 and r["runs"][0]["federated"] == r["federated"]
    ratios = r["runs"][0]["ratios"]
    assert ratios["serial"]["broker_cpu_over_floor"] > 0 and set(ratios["loads"]) == {"5/s"}
    assert ratios["federated_over_central"] == r["federated_over_central"]
    assert r["spread"]["federated.serial.latency_ms.p50"]["min"] == r["federated"]["serial"]["latency_ms"]["p50"]


@pytest.mark.skipif(not __import__("importlib").util.find_spec("matplotlib"), reason="matplotlib not installed")
def test_scale_overload_smoke(tmp_path):
    """Twice a given capacity on 3 authorities: each level is judged, refusals or not, circuits watched."""
    r = bench(
        tmp_path,
        "scale",
        "--authorities",
        "3",
        "--records",
        "600",
        "--workers",
        "1",
        "--serial",
        "5",
        "--overload",
        "1,2",
        "--capacity",
        "4",
        "--duration",
        "2",
        "--workdir",
        str(tmp_path / "work"),
    )
    assert r["benchmark"] == "scale-overload" and r["capacity"]["per_second"] == 4
    assert [lv["offered_rate"] for lv in r["levels"]] == [4, 8] and [lv["searches"] for lv in r["levels"]] == [8, 16]
    for level in r["levels"]:
        assert level["searches"] == level["statuses"].get("200", 0) + level["refused"] + level["invalid"]
        assert level["circuits"]["polls"] >= 1 and level["admitted_means_heard"] in (True, False, None)
    # 8 searches a second on three small authorities is well within what even a busy machine carries.
    assert r["levels"][0]["admitted_heard_from_all"] == 1.0 and r["admitted_means_heard"] is True
    calibrated(r, floor=True)


def test_grpc_floor_smoke(tmp_path):
    r = bench(tmp_path, "grpc-floor", "--authorities", "3", "--rounds", "20", "--workdir", str(tmp_path / "work"))
    assert r["streams"] == 3 and r["rounds"] == 20 and r["caller_cpu_ms_per_round"] > 0
    calibrated(r, floor=False)
    assert r["floor_over_python_loop"] > 0


def test_source_smoke(tmp_path):
    """A throw-away PostgreSQL database of ~2,000 rows, a node over it, and 50 changes made visible."""
    require_postgres("postgresql://postgres@127.0.0.1:5432/postgres")
    r = bench(tmp_path, "source", "--rows", "2000", "--changes", "50", "--timeout", "60")
    assert "complete" not in r  # the final report, not one of the partial ones written on the way
    assert r["rows"] == 2000 and r["records_served"] > 1000 and r["full_load"]["outcome"] == "ok"
    assert r["searchable_after_full_load"] is True
    assert r["children_changed_at_source"] == 50 and r["probe_before_sync"] != "match"
    assert r["incremental_ok"] is True and r["incremental_visible_seconds"] is not None
    assert r["full_load_seconds"] > 0 and r["incremental_sync_seconds"] > 0


def test_node_message_smoke(tmp_path):
    r = bench(
        tmp_path,
        *("node-message", "--records", "300", "--messages", "20", "--rounds", "2", "--nodes", "2"),
        *("--workdir", str(tmp_path / "work")),
    )
    assert r["nodes_in_process"] == 2 and r["audience"] == 152
    # Every request was signed by the broker's code for its audience: a node refusing one is a broken check.
    assert r["refused"] == 0
    for shape in ("1", "8"):
        assert len(r["node_cpu_us_per_message"][shape]["runs"]) == 2
        assert r["node_cpu_us_per_message"][shape]["median"] > 0
        # 20 messages may not reach one clock tick of the echo server's CPU: present, not necessarily above 0.
        assert r["echo_cpu_us_per_message"][shape] >= 0 and r["message_bytes"][shape] > 2000  # 152 codes named
    calibrated(r, floor=False)
