"""The README's first command, as a newcomer runs it: a clean clone, no virtual environment, `bash scripts/demo`.

The second command (`bash scripts/test`) is what `.ci/run` runs on a clean checkout, so CI itself proves
it; running it from inside the suite would only run the suite twice. This test proves the first: from a
fresh clone of the committed tree, with no environment of ours active, `bash scripts/demo --check` makes
its own virtual environment (PEP 668 refuses the system Python on Debian), installs Signpost into it,
brings up a federation and checks it end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _newcomer_env() -> dict[str, str]:
    """The environment of a shell that never activated our virtual environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "SIGNPOST_VENV", "PYTHONPATH", "PYTHONHOME")}
    ours = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours)
    return env


def test_the_readmes_demo_command_works_from_a_clean_clone_in_a_fresh_virtual_environment(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone from")
    env = _newcomer_env()
    if shutil.which("python3", path=env["PATH"]) is None:
        pytest.skip("no python3 outside the test environment")
    clone = tmp_path / "signpost"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(clone)], check=True, timeout=120, env=env
    )
    # Exactly the README's command (the option table documents --check), from the clone's own directory.
    result = subprocess.run(
        ["bash", "scripts/demo", "--check"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert (clone / ".venv" / "bin" / "signpost").exists(), "the command did not make its own virtual environment"
    # demo --check works in a temporary directory: nothing of a demo is left in the clone.
    assert not (clone / "signpost-demo").exists()
