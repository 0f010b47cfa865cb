"""The broker's transport in layers: the wire framing, the one grpc.aio module, and no import circle.

broker.nodeclient splices MatchBatch messages by hand (measured cheaper than re-encoding per node); these
tests hold the splice to what protobuf itself reads back. The layering is read from the source with
``ast``, as tests/test_floors.py does for the packages.
"""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from broker.breaker import CircuitBreaker
from broker.errors import NodeUnavailable
from broker.health import HealthSettings, NodeHealth
from broker.monitor import HealthMonitor
from broker.nodeclient import batch_bytes, batch_piece
from broker.registry import Authority
from protos.signpost.v1 import node_pb2

BROKER = Path(__file__).resolve().parents[2] / "broker"


def _request(i: int) -> bytes:
    request = node_pb2.MatchRequest(search_id=f"search-{i}", assertion=b"a" * (150 + i), assertion_signature=b"s" * 64)
    request.subject.family_name, request.subject.postcode = "Smith", "CT1 2AB"
    return request.SerializeToString()


@pytest.mark.parametrize(("batch_id", "count"), [(1, 1), (127, 1), (128, 3), (2**40 + 5, 64), (1, 0)])
def test_a_spliced_batch_parses_back_to_the_same_batch(batch_id: int, count: int) -> None:
    requests = [_request(i) for i in range(count)]
    spliced = batch_bytes(batch_id, [batch_piece(r) for r in requests])
    assert node_pb2.MatchBatch.FromString(spliced) == node_pb2.MatchBatch(batch_id=batch_id, requests=requests)
    assert spliced == node_pb2.MatchBatch(batch_id=batch_id, requests=requests).SerializeToString()


def _imports(module: str, path: Path | None = None) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse((path or BROKER / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _uses_grpc_aio(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    attribute = any(
        isinstance(n, ast.Attribute) and n.attr == "aio" and isinstance(n.value, ast.Name) and n.value.id == "grpc"
        for n in ast.walk(tree)
    )
    return attribute or any(name.startswith("grpc.aio") for name in _imports(path.stem, path))


def test_only_nodeclient_uses_grpc_aio() -> None:
    assert sorted(p.stem for p in BROKER.rglob("*.py") if _uses_grpc_aio(p)) == ["nodeclient"]


def test_fanout_does_not_import_grpc() -> None:
    assert not any(name == "grpc" or name.startswith("grpc.") for name in _imports("fanout"))


@pytest.mark.parametrize("module", ["health", "monitor"])
def test_health_and_monitor_do_not_import_the_fanout(module: str) -> None:
    assert not {"broker.fanout", "broker.nodeclient", "broker.monitor"} & _imports(module)


class _Client:
    def __init__(self, code: str, fail: bool) -> None:
        self.authority = Authority(code, code.title(), "127.0.0.1:1", f"{code}.node.test")
        self.fail = fail

    async def probe(self, timeout: float, *, describe: bool = True) -> dict[str, Any]:
        if self.fail:
            raise NodeUnavailable("not reachable")
        return {"record_count": 3}


class _Nodes:
    def __init__(self, settings: HealthSettings) -> None:
        self.clients = (_Client("kent", False), _Client("leeds", True))
        self.health = {
            c.authority.code: NodeHealth(c.authority, CircuitBreaker(clock=time.monotonic), settings, lambda: 0.0)
            for c in self.clients
        }

    def health_of(self, code: str) -> NodeHealth | None:
        return self.health.get(code)


async def test_the_monitor_polls_through_its_protocol_and_sleeps_as_told() -> None:
    settings = HealthSettings(poll_interval=7.0)
    nodes = _Nodes(settings)
    slept: list[float] = []
    done = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            done.set()
        await asyncio.sleep(0)

    monitor = HealthMonitor(nodes, settings, sleep=sleep, uniform=lambda: 0.5)  # the middle of the jitter
    monitor.start()
    await asyncio.wait_for(done.wait(), 5)
    await monitor.stop()
    assert slept[:2] == [7.0, 7.0]
    assert nodes.health["kent"].status == "up" and nodes.health["kent"].info == {"record_count": 3}
    assert nodes.health["leeds"].status == "down" and nodes.health["leeds"].last_error == "unavailable"
