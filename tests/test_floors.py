"""The floor plan, enforced: each package imports only the floors below it.

signpost/ (cli, demo, synth, bench) stands on everything; broker/ and node/ are
siblings that never import each other; core/, certs/ and protos/ are the ground
floor. Every import is read from the source with ``ast`` — function-local
imports included — so a shortcut through a lazy import fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("signpost", "broker", "node", "core", "certs", "protos")
MAY_IMPORT: dict[str, frozenset[str]] = {
    "signpost": frozenset(OURS),
    "broker": frozenset({"broker", "core", "certs", "protos"}),
    "node": frozenset({"node", "core", "certs", "protos"}),
    "certs": frozenset({"certs", "core", "protos"}),
    "core": frozenset({"core", "protos"}),
    "protos": frozenset({"protos"}),
}


def imported_packages(source: str) -> set[str]:
    """The top-level names of every module a source file imports (absolute imports; we use no relative ones)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add("<relative>")
    return found


def forbidden_edges() -> list[str]:
    edges = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            imported = imported_packages(path.read_text(encoding="utf-8"))
            for target in sorted(imported & (set(OURS) | {"<relative>"}) - allowed):
                edges.append(f"{path.relative_to(ROOT)} imports {target}")
    return edges


def test_no_package_imports_a_floor_above_or_beside_it():
    assert forbidden_edges() == []


@pytest.mark.parametrize(
    ("package", "source", "offending"),
    [
        ("broker", "from node.normalise import fold", "broker imports node"),
        ("node", "def f():\n    import broker.app\n", "node imports broker"),
        ("core", "from signpost import __version__", "core imports signpost"),
        ("certs", "import node.config as c", "certs imports node"),
    ],
)
def test_the_walker_sees_each_kind_of_forbidden_import(package, source, offending):
    # The check above is only as good as the walker: each form of import must be seen.
    imported = imported_packages(source) & set(OURS)
    assert imported - MAY_IMPORT[package], offending


def test_every_package_is_on_a_floor():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "scripts", "deploy", "docs", "build"} <= set(MAY_IMPORT)
