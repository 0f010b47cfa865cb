"""structlog set-up for every Signpost entry point: JSON lines on stderr.

What may be logged: search ids, authority codes, user ids, purposes, outcomes,
counts and timings. What must never be logged: a child's name, date of birth,
address, postcode or NHS number — no event here takes a subject as an argument,
and ``tests/e2e/test_privacy_logs.py`` searches captured logs to prove it.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog once, from an entry point; libraries only call ``get_logger``."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
