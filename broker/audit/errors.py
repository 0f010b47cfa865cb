"""Errors of the audit log.

    AuditError
    ├── AuditWriteError        an entry (and its signed head) was not durably committed:
    │                          the broker must fail the search it was recording
    ├── AuditIntegrityError    what is stored contradicts itself (a body that is not JSON,
    │                          a frontier whose size disagrees with the log); found while reading
    └── AuditConfigError       a key file, database path or DSN that cannot be used; found at start-up

Tampering found by ``broker.audit.verify`` is reported in a ``VerifyReport``,
not raised: an auditor wants the whole story, not a traceback.

Messages name files, indexes and causes; they never contain an entry's body,
because an entry describes a search about a child. ``write_failed`` is the one
way a cause becomes an AuditWriteError, and it keeps to that.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of every audit-log error."""


class AuditWriteError(AuditError):
    """The entry was not committed; nothing of it is in the log."""


class AuditIntegrityError(AuditError):
    """Stored data contradicts itself; run ``signpost audit verify`` for the first bad entry."""


class AuditConfigError(AuditError):
    """A key file, path or DSN that cannot be used."""


def write_failed(exc: BaseException) -> AuditWriteError:
    """The AuditWriteError for an entry not written because of ``exc``."""
    # Only the cause's type and our own words: a driver's message might quote a value.
    reason = str(exc) if isinstance(exc, (ValueError, AuditError)) else type(exc).__name__
    return AuditWriteError(f"audit entry not written: {reason}")
