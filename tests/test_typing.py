"""mypy --strict is clean on the project's own code (generated code excluded in pyproject)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_strict_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "core", "broker", "node", "certs", "signpost", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
