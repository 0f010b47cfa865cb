"""Regenerate the checked-in gRPC code and typed stubs from protos/*.proto.

Usage: python scripts/gen_protos.py [OUT_DIR]

OUT_DIR defaults to the repository root, so generated files land beside their
.proto. tests/test_protos.py runs this into a temp dir and fails on any diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ["protos/signpost/v1/node.proto"]


def generate(out: Path) -> None:
    args = [
        "protoc",
        f"-I{ROOT}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *[str(ROOT / p) for p in PROTOS],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
