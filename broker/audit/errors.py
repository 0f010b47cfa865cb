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
because an entry describes a search about a child.
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
