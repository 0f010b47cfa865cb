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


def test_grpc_floor_smoke(tmp_path):
    r = bench(tmp_path, "grpc-floor", "--authorities", "3", "--rounds", "20", "--workdir", str(tmp_path / "work"))
    assert r["streams"] == 3 and r["rounds"] == 20 and r["caller_cpu_ms_per_round"] > 0


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
