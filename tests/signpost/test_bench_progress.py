"""Benchmarks respect the person running them: progress on stderr, figures on disk early, missing extras named first."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from signpost.bench import scale

SIGNPOST = [sys.executable, "-m", "signpost.cli", "bench"]
TINY_SCALE = ["--authorities", "2", "--records", "600", "--workers", "1", "--rates", "4", "--duration", "1"]
TINY_SCALE += ["--serial", "3"]


def test_speed_shows_each_step_on_stderr_and_keeps_stdout_for_figures(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    result = subprocess.run(
        [*SIGNPOST, "speed", "--records", "1500", "--queries", "20", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for step in ("generating about 1,500 records", "importing into the node's store", "building the match index"):
        assert step in result.stderr, step
    assert "matching the query set" in result.stderr and "20/20" in result.stderr
    assert "generating" not in result.stdout and json.loads(out.read_text())["queries"] == 20


def test_a_missing_optional_package_is_named_before_any_work(tmp_path: Path) -> None:
    # matplotlib made unimportable in the child: the run must stop at once, with the install command.
    hide = "import sys; sys.modules['matplotlib'] = None; from signpost.cli import main; sys.exit(main())"
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "-c", hide, "bench", "scale", *TINY_SCALE, "--workdir", str(work),
         "--out", str(tmp_path / "scale.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "matplotlib" in lines[0] and "pip install -e '.[bench]'" in lines[0], result.stderr
    assert not work.exists(), "work started before the dependency was checked"


def test_scale_writes_its_figures_before_drawing_any_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def charts_fail(report: dict[str, object], out: Path) -> list[str]:
        raise RuntimeError("the chart library failed at the very end")

    monkeypatch.setattr(scale, "charts", charts_fail)
    parser = argparse.ArgumentParser()
    scale.add_arguments(parser)
    out = tmp_path / "scale.json"
    args = parser.parse_args([*TINY_SCALE, "--workdir", str(tmp_path / "work"), "--out", str(out)])
    with pytest.raises(RuntimeError, match="very end"):
        asyncio.run(scale.run_scale(args))
    saved = json.loads(out.read_text())
    assert saved["complete"] is False
    assert saved["federated"]["serial"]["searches"] == 3 and saved["central"]["loads"][0]["searches"] == 4
    assert saved["by_authorities"] and "federated_over_central" in saved
