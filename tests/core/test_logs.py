"""core.logs: the libraries' own log records become the same JSON lines, exceptions reduced to their type."""

from __future__ import annotations

import io
import json
import logging

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
