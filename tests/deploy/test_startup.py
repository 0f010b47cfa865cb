"""A deployment starts from the documented commands, and a missing file stops it with one line naming it.

Real subprocesses on loopback: ``signpost certs init-deployment`` writes the
files, a node and a broker are started from them with configs that point at
them by the names deploy/config uses, and the broker answers over HTTPS. Then
each required file is taken away in turn: the service must exit non-zero with
a single line naming the config key and the file, and no traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.deploy.test_deploy import DEPLOY, compose_services, readme_signpost_commands

SIGNPOST = [sys.executable, "-m", "signpost.cli"]
AUTHORITIES = {"LEEDS": "Leeds", "KENT": "Kent"}
START_TIMEOUT = 60.0

NODE_TOML = """
listen = "127.0.0.1:0"
store = "stores/LEEDS.sqlite3"
broker_public_keys = ["certs/assertion.pub"]
answer_floor_ms = 0

[authority]
code = "LEEDS"
name = "Leeds"

[tls]
ca = "certs/ca.pem"
cert = "certs/node-LEEDS.pem"
key = "certs/node-LEEDS.key"
crl = "certs/crl.pem"
"""

BROKER_TOML = """
listen = "127.0.0.1:0"
registry = "registry.json"
assertion_key = "certs/assertion.key"
audit_log = "state/audit.sqlite3"
audit_signing_key = "certs/audit.key"
subject_key = "certs/subject.key"

[tls]
ca = "certs/ca.pem"
cert = "certs/broker.pem"
key = "certs/broker.key"
crl = "certs/crl.pem"
"""


def signpost(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIGNPOST, *args], capture_output=True, text=True, timeout=timeout)


def init_deployment(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    nodes = [a for code, name in AUTHORITIES.items() for a in ("--node", f"{code}={name}")]
    return signpost("certs", "init-deployment", "--dir", str(directory / "certs"), "--ca-dir", str(directory / "ca"),
                    *nodes, *extra)  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment directory made by the documented command, with configs naming its files."""
    root = tmp_path_factory.mktemp("deployment")
    result = init_deployment(root)
    assert result.returncode == 0, result.stderr
    (root / "node.toml").write_text(NODE_TOML)
    (root / "broker.toml").write_text(BROKER_TOML)
    (root / "registry.json").write_text(json.dumps({"authorities": []}))
    return root


@pytest.fixture
def deployment(generated: Path, tmp_path: Path) -> Path:
    """A private copy, so a test may take files away; the node's store directory exists."""
    copy = tmp_path / "d"
    shutil.copytree(generated, copy)
    (copy / "stores").mkdir()
    return copy


class Service:
    """A ``signpost ... serve`` subprocess whose stderr (JSON log lines) a thread reads into a queue."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*SIGNPOST, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, event: str, timeout: float = START_TIMEOUT) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            record = json.loads(line)
            if record.get("event") == event:
                return dict(record)
        pytest.fail(f"no {event} within {timeout}s; stderr: {''.join(self.lines)}")

    def stop(self) -> list[str]:
        """Stop (SIGTERM) and return every stderr line it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return self.lines


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.stop()


def test_init_deployment_writes_every_file_keys_0600_and_refuses_to_overwrite(generated: Path, tmp_path: Path):
    certs = generated / "certs"
    keys = ["broker.key", "node-LEEDS.key", "node-KENT.key", "assertion.key", "audit.key", "subject.key"]
    for key in keys:
        assert stat.S_IMODE((certs / key).stat().st_mode) == 0o600, key
    assert not (certs / "ca.key").exists(), "the CA key belongs in --ca-dir, off the servers"
    assert (generated / "ca" / "ca.key").exists()
    before = (certs / "audit.key").read_bytes()
    again = init_deployment(generated)
    assert again.returncode == 1 and "--force" in again.stderr
    assert (certs / "audit.key").read_bytes() == before
    copy = tmp_path / "again"
    shutil.copytree(generated, copy)
    forced = init_deployment(copy, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (copy / "certs" / "audit.key").read_bytes() != before
    # The CA was kept: certificates issued before still chain to it.
    assert (copy / "ca" / "ca.pem").read_bytes() == (generated / "ca" / "ca.pem").read_bytes()


def test_the_readme_commands_make_every_file_compose_and_kubernetes_use(tmp_path: Path):
    documented = [c for c in readme_signpost_commands() if c[:2] == ["certs", "init-deployment"]]
    assert documented, "deploy/README.md does not use signpost certs init-deployment"
    for n, command in enumerate(documented):
        where = tmp_path / str(n)
        where.mkdir()
        result = subprocess.run([*SIGNPOST, *command], capture_output=True, text=True, timeout=60, cwd=where)
        assert result.returncode == 0, result.stderr
        made = {p.name for p in (where / "certs").iterdir()}
        for service in compose_services():
            for source, _, _ in service.mounts():
                if source.startswith("./certs/"):
                    assert source.removeprefix("./certs/") in made, f"{service.name} mounts {source}"
        readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
        secret_files = set(re.findall(r"(?:=|--(?:cert|key)=)certs/([\w.-]+)", readme))
        assert secret_files and secret_files <= made, secret_files - made


def test_node_and_broker_start_from_the_generated_files(deployment: Path, services: list[Service]):
    node = Service("node", "serve", "--config", str(deployment / "node.toml"))
    services.append(node)
    port = node.wait_for("node_started")["port"]
    registry = {"authorities": [{"code": "LEEDS", "name": "Leeds", "address": f"127.0.0.1:{port}"}]}
    (deployment / "registry.json").write_text(json.dumps(registry))
    broker = Service("broker", "serve", "--config", str(deployment / "broker.toml"))
    services.append(broker)
    broker_port = broker.wait_for("broker_started")["port"]
    context = ssl.create_default_context(cafile=str(deployment / "certs" / "ca.pem"))
    with urllib.request.urlopen(f"https://localhost:{broker_port}/healthz", context=context, timeout=10) as answer:
        assert answer.status == 200
    # The audit keys given were used, not replaced by new ones.
    assert (deployment / "state" / "audit.sqlite3").exists()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# With a PostgreSQL log (replicas) the audit keys must be given: a replica creating its own would fork them.
# The URL is never dialled: the start stops at the missing file first.
# Replicas share their limits too (Redis), or the broker refuses to start; that URL is never dialled either.
SHARED_LOG = {
    "SIGNPOST_BROKER_AUDIT_LOG": "postgresql://signpost@127.0.0.1:1/none",
    "SIGNPOST_BROKER_LIMITS_STORE": "redis://127.0.0.1:1/0",
}


def test_replicas_without_a_shared_limits_store_refuse_to_start_in_one_sentence(deployment: Path):
    result = subprocess.run(
        [*SIGNPOST, "broker", "serve", "--config", str(deployment / "broker.toml")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SIGNPOST_BROKER_AUDIT_LOG": SHARED_LOG["SIGNPOST_BROKER_AUDIT_LOG"]},
    )  # fmt: skip
    line = one_error_line(result)
    assert "limits_store" in line and "redis://" in line, line


@pytest.mark.parametrize(
    ("key", "file"),
    [
        ("tls.ca", "certs/ca.pem"),
        ("tls.cert", "certs/broker.pem"),
        ("tls.key", "certs/broker.key"),
        ("tls.crl", "certs/crl.pem"),
        ("registry", "registry.json"),
        ("assertion_key", "certs/assertion.key"),
        ("audit_signing_key", "certs/audit.key"),
        ("subject_key", "certs/subject.key"),
    ],
)
def test_broker_names_the_missing_file_and_its_key(deployment: Path, key: str, file: str):
    (deployment / file).unlink()
    result = subprocess.run(
        [*SIGNPOST, "broker", "serve", "--config", str(deployment / "broker.toml")],
        capture_output=True, text=True, timeout=60, env={**os.environ, **SHARED_LOG},
    )  # fmt: skip
    line = one_error_line(result)
    assert f"{key}: cannot read {(deployment / file).resolve()} (no such file)" in line, line


@pytest.mark.parametrize(
    ("key", "file"),
    [
        ("tls.ca", "certs/ca.pem"),
        ("tls.cert", "certs/node-LEEDS.pem"),
        ("tls.key", "certs/node-LEEDS.key"),
        ("tls.crl", "certs/crl.pem"),
        ("broker_public_keys[0]", "certs/assertion.pub"),
    ],
)
def test_node_names_the_missing_file_and_its_key(deployment: Path, key: str, file: str):
    (deployment / file).unlink()
    line = one_error_line(signpost("node", "serve", "--config", str(deployment / "node.toml")))
    assert f"{key}: cannot read {(deployment / file).resolve()} (no such file)" in line, line


def test_node_names_a_missing_store_directory(deployment: Path):
    (deployment / "stores").rmdir()
    line = one_error_line(signpost("node", "serve", "--config", str(deployment / "node.toml")))
    assert line.startswith("error: store: ") and str((deployment / "stores").resolve()) in line, line


def test_unusable_contents_are_named_too(deployment: Path):
    (deployment / "certs" / "node-LEEDS.pem").write_text("not a certificate\n")
    line = one_error_line(signpost("node", "serve", "--config", str(deployment / "node.toml")))
    assert "tls.cert: " in line and "is not a PEM certificate" in line, line
    # Another authority's key beside this certificate: the pair does not match.
    broker_key = deployment / "certs" / "broker.key"
    original = broker_key.read_bytes()
    shutil.copy(deployment / "certs" / "node-KENT.key", broker_key)
    line = one_error_line(signpost("broker", "serve", "--config", str(deployment / "broker.toml")))
    assert "tls.key: " in line and "is not the private key of tls.cert" in line, line
    broker_key.write_bytes(original)
    # A CRL signed by another CA.
    other = deployment / "other"
    assert init_deployment(other).returncode == 0
    shutil.copy(other / "certs" / "crl.pem", deployment / "certs" / "crl.pem")
    line = one_error_line(signpost("broker", "serve", "--config", str(deployment / "broker.toml")))
    assert "tls.crl: " in line and "is not signed by the federation CA" in line, line


def send_garbage(port: int, ca: Path, foreign: tuple[Path, Path]) -> None:
    """Plain bytes, then a handshake with another federation's certificate, then bad HTTP inside good TLS."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GARBAGE \\x00\\x01\\r\\n\\r\\n" * 4)
        with contextlib.suppress(OSError):
            raw.recv(64)
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    context.load_cert_chain(*map(str, foreign))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            tls.sendall(b"x" * 64)
            tls.recv(64)
    good = ssl.create_default_context(cafile=str(ca))
    good.check_hostname = False
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with good.wrap_socket(raw) as tls:
            tls.sendall(b"GET /\\x00 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            tls.recv(256)


def test_every_stderr_line_is_json_even_after_garbage_and_failed_handshakes(deployment: Path, services: list[Service]):
    node = Service("node", "serve", "--config", str(deployment / "node.toml"))
    services.append(node)
    node_port = int(str(node.wait_for("node_started")["port"]))
    (deployment / "registry.json").write_text(
        json.dumps({"authorities": [{"code": "LEEDS", "name": "Leeds", "address": f"127.0.0.1:{node_port}"}]})
    )
    broker = Service("broker", "serve", "--config", str(deployment / "broker.toml"))
    services.append(broker)
    broker_port = int(str(broker.wait_for("broker_started")["port"]))
    other = deployment / "other"
    assert init_deployment(other).returncode == 0
    foreign = (other / "certs" / "broker.pem", other / "certs" / "broker.key")
    for port in (broker_port, node_port):
        send_garbage(port, deployment / "certs" / "ca.pem", foreign)
    time.sleep(1.0)  # the node's C core logs from its own threads
    for name, service in (("broker", broker), ("node", node)):
        lines = [line for line in service.stop() if line.strip()]
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"{name} wrote a line that is not JSON: {line!r}")
        events = [r.get("event") for r in records]
        assert "tls_handshake_failed" in events, f"{name}: {events}"
        assert not any("GARBAGE" in line for line in lines), f"{name} logged what the client sent"


def test_a_port_already_taken_is_one_line_too(deployment: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command, env in (("node", "SIGNPOST_NODE_LISTEN"), ("broker", "SIGNPOST_BROKER_LISTEN")):
            result = subprocess.run(
                [*SIGNPOST, command, "serve", "--config", str(deployment / f"{command}.toml")],
                capture_output=True, text=True, timeout=60, env={**os.environ, env: f"127.0.0.1:{port}"},
            )  # fmt: skip
            # Found once the log is JSON (the port is bound last): one JSON line says it.
            records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            failed = [r for r in records if r["event"] == "startup_failed"]
            assert len(failed) == 1 and failed[0]["error"].startswith(f"listen: cannot listen on 127.0.0.1:{port} (")


def served_serial(port: int, ca: Path) -> int:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_the_broker_serves_a_renewed_certificate_without_a_restart(deployment: Path, services: list[Service]):
    registry = {"authorities": [{"code": "LEEDS", "name": "Leeds", "address": "127.0.0.1:1"}]}
    (deployment / "registry.json").write_text(json.dumps(registry))
    broker = Service("broker", "serve", "--config", str(deployment / "broker.toml"))
    services.append(broker)
    port = int(str(broker.wait_for("broker_started")["port"]))
    ca = deployment / "certs" / "ca.pem"
    before = served_serial(port, ca)
    renewed = signpost("certs", "broker", "--dir", str(deployment / "certs"), "--ca-dir", str(deployment / "ca"))
    assert renewed.returncode == 0, renewed.stderr
    after = x509.load_pem_x509_certificate((deployment / "certs" / "broker.pem").read_bytes()).serial_number
    assert after != before
    broker.wait_for("certificate_reloaded", timeout=20)
    assert served_serial(port, ca) == after
