"""structlog set-up for every Signpost entry point: JSON lines on stderr, the libraries' messages included.

What may be logged: search ids, authority codes, user ids, purposes, outcomes,
counts and timings. What must never be logged: a child's name, date of birth,
address, postcode or NHS number — no event here takes a subject as an argument,
and ``tests/e2e/test_privacy_logs.py`` searches captured logs to prove it.

The libraries underneath log too, each its own way: aiohttp and asyncio through
the standard ``logging`` module (``aiohttp.server`` errors, ``aiohttp.access``),
gRPC's Python layer likewise, and gRPC's C core straight to file descriptor 2
(``I1203 08:08:58.9 ssl_transport_security.cc:2563] Handshake failed ...``).
:func:`configure` sends the ``logging`` records through the same JSON renderer,
with an exception reduced to its type: aiohttp's parser errors quote the
request they could not parse, and a request may name a child.
:func:`capture_native_stderr` puts a pipe under descriptor 2 so that the C
core's lines (and anything else written there) become JSON events too; it is
for the long-running services, whose stderr is the log.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_HANDLER_NAME = "signpost-json"
_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog once, from an entry point; libraries only call ``get_logger``."""
    out = stream or sys.stderr
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_SHARED, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(out, threshold)


def _route_standard_logging(stream: TextIO, threshold: int) -> None:
    """aiohttp's, asyncio's and grpc's ``logging`` records as the same JSON lines, exceptions as their type."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name, _exception_type_only],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:  # ours from an earlier call only
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    # Python's own warnings would otherwise be printed raw by the warnings module.
    logging.captureWarnings(True)


def _exception_type_only(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace a record's exception by its type name: the text and traceback may quote a request."""
    exc_info = event.pop("exc_info", None)
    record = event.get("_record")
    if exc_info is None and record is not None:
        exc_info = record.exc_info
    if record is not None:
        record.exc_info, record.exc_text = None, None  # so no formatter appends the traceback after all
    if exc_info and exc_info is not True and exc_info[0] is not None:
        event["error_type"] = exc_info[0].__name__
    return event


# gRPC's C core logs through absl: "I1203 08:08:58.965498   26528 ssl_transport_security.cc:2563] message".
_ABSL = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w.\-/]+:\d+)\] ?(.*)$")
_ABSL_LEVELS = {"I": "info", "W": "warning", "E": "error", "F": "critical"}


def native_line_event(line: str) -> dict[str, str] | None:
    """How one line written to descriptor 2 by native code is logged: (level, event, fields); None to drop."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    match = _ABSL.match(text)
    if match is None:
        return {"level": "warning", "event": "stderr", "text": text}
    letter, source, message = match.groups()
    event = "tls_handshake_failed" if message.startswith("Handshake failed") else "grpc_core"
    return {"level": _ABSL_LEVELS[letter], "event": event, "source": source, "message": message}


def capture_native_stderr(log_stream: TextIO | None = None) -> None:
    """Route descriptor 2 through a pipe whose lines are logged as JSON (see the module docstring).

    Call after :func:`configure`. Without ``log_stream`` (the services: their stderr *is* the log), the JSON
    log keeps the real stderr (a duplicate of the descriptor), and native code, which cannot be configured
    from Python, writes into the pipe. With ``log_stream`` (``signpost demo``: its log is a file and its
    console is for a person), native lines go to that log and Python's own stderr stays on the console, so
    one-sentence errors are still seen there and gRPC's lines are not.
    """
    sys.stderr.flush()
    real = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sink: TextIO
    if log_stream is None:
        # Our JSON goes straight to the real stderr; sys.stderr stays on descriptor 2, so even an uncaught
        # traceback arrives as JSON lines rather than raw on the console.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(real))
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(real)
        sink = real
    else:
        sys.stderr = real
        sink = log_stream
    log = structlog.get_logger("signpost.native")
    reader = threading.Thread(target=_forward, args=(read_fd, sink, log), name="native-stderr", daemon=True)
    reader.start()

    def drain() -> None:
        # At exit: close our end of descriptor 2 so the reader sees end of file, and let it finish.
        try:
            sys.stderr.flush()
            os.dup2(real.fileno(), 2)
        except OSError:
            return
        reader.join(timeout=2)

    atexit.register(drain)


def _forward(read_fd: int, real: TextIO, log: Any) -> None:
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as pipe:
        for line in pipe:
            if line.lstrip().startswith("{"):
                try:
                    json.loads(line)
                except ValueError:
                    pass
                else:
                    real.write(line)  # already JSON (a child process of ours, say): as it is
                    continue
            fields = native_line_event(line)
            if fields is not None:
                level, event = fields.pop("level"), fields.pop("event")
                getattr(log, level)(event, **fields)
