"""core.logs: the libraries' own log records become the same JSON lines, exceptions reduced to their type."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import structlog

from core.logs import configure, native_line_event


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_aiohttp_errors_are_json_with_the_exception_type_only() -> None:
    stream = io.StringIO()
    configure("info", stream)
    try:
        try:
            # aiohttp's parser errors quote what they could not parse: here, a request naming a child.
            raise ValueError("Invalid method encountered: b'Amelia Smith 2014-03-09'")
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
        logging.getLogger("aiohttp.access").info("%s %s", "127.0.0.1", "GET /healthz")
        logging.getLogger("grpc._cython.cygrpc").warning("channel closed")
        logging.getLogger("aiohttp.server").debug("below the level: dropped")
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "signpost-json"]:
            root.removeHandler(handler)
    records = lines(stream)
    assert [(r["logger"], r["level"]) for r in records] == [
        ("aiohttp.server", "error"),
        ("aiohttp.access", "info"),
        ("grpc._cython.cygrpc", "warning"),
    ]
    assert records[0]["event"] == "Error handling request"
    assert records[0]["error_type"] == "ValueError"
    assert "Amelia" not in stream.getvalue() and "Traceback" not in stream.getvalue()


def test_grpc_core_lines_become_events() -> None:
    line = (
        "I1203 08:08:58.965498   26528 ssl_transport_security.cc:2563] Handshake failed with error SSL_ERROR_SSL: "
        "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer\n"
    )
    event = native_line_event(line)
    assert event is not None
    assert (event["level"], event["event"], event["source"]) == (
        "info",
        "tls_handshake_failed",
        "ssl_transport_security.cc:2563",
    )
    other = native_line_event("E1203 08:08:58.1 1 chttp2_server.cc:10] Failed to bind\n")
    assert other is not None and (other["level"], other["event"]) == ("error", "grpc_core")
    assert native_line_event("Segmentation fault, somewhere\n") == {
        "level": "warning",
        "event": "stderr",
        "text": "Segmentation fault, somewhere",
    }
    assert native_line_event("\n") is None


def test_with_a_log_file_native_lines_go_to_it_and_python_s_stderr_stays_on_the_console(tmp_path: Path) -> None:
    """``signpost demo``: gRPC's C core lines land in signpost.log as events; a person still sees errors."""
    log = tmp_path / "signpost.log"
    script = f"""
import os, sys
from core.logs import capture_native_stderr, configure
log_file = open({str(log)!r}, "a", encoding="utf-8", buffering=1)
configure("info", log_file)
capture_native_stderr(log_file)
os.write(2, b"E1203 08:08:58.1 1 chttp2_server.cc:10] Failed to bind\\n")
print("error: a sentence for the person at the console", file=sys.stderr)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "error: a sentence for the person at the console\n"
    [event] = [json.loads(line) for line in log.read_text().splitlines()]
    assert (event["event"], event["level"], event["source"]) == ("grpc_core", "error", "chttp2_server.cc:10")
