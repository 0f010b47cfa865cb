"""The checked-in generated code is exactly what the .proto produces today."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_the_proto(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "protoc produced nothing"
    for rel in generated:
        checked_in = ROOT / rel
        assert checked_in.exists(), f"{rel} is generated but not checked in"
        assert filecmp.cmp(tmp_path / rel, checked_in, shallow=False), f"{rel} differs: run scripts/gen_protos.py"
    on_disk = {p.relative_to(ROOT) for p in (ROOT / "protos").rglob("*_pb2*.py*")}
    assert on_disk == set(generated), "stale generated files in protos/"
