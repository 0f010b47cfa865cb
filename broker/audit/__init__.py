"""The broker's tamper-evident audit log of searches.

    log.AuditLog        append an entry -> signed Receipt; latest checkpoint; auditors' queries
    store               AuditStore (what every store does) and open_store (SQLite path or PostgreSQL URL)
    sqlite, postgres    the two stores: a SQLite file (default) or a PostgreSQL schema; one transaction per group
    groupcommit         appends that arrive during a commit share the next transaction
    sealing             an entry's body, leaf hash, signed head and query columns; stored rows read back
    merkle              RFC 6962 tree: leaf/node hashes, O(log n) Frontier, inclusion proofs
    keys                the Ed25519 signing key and subject HMAC key files; ``subject_hashes``
    heads               signed tree heads (checkpoints) and the canonical JSON that is hashed or signed
    verify              walk the log, name the first edited/deleted/inserted/reordered entry
    errors              AuditError and its subclasses; write_failed, the one way a cause becomes an AuditWriteError

Nothing in this package sees a plaintext identifier except ``keys.subject_hashes``,
which returns only HMACs; nothing here logs an entry.
"""

from broker.audit.errors import AuditConfigError, AuditError, AuditIntegrityError, AuditWriteError
from broker.audit.heads import SignedHead
from broker.audit.keys import (
    load_or_create_hmac_key,
    load_or_create_signing_key,
    load_public_key,
    public_key_path,
    subject_hashes,
)
from broker.audit.log import AuditLog, Receipt, open_audit_log
from broker.audit.postgres import PostgresAuditStore
from broker.audit.sealing import StoredEntry
from broker.audit.sqlite import SQLiteAuditStore
from broker.audit.store import AuditStore, open_store
from broker.audit.verify import VerifyReport, run_verify, verify_database, verify_log

__all__ = [
    "AuditConfigError",
    "AuditError",
    "AuditIntegrityError",
    "AuditLog",
    "AuditStore",
    "AuditWriteError",
    "PostgresAuditStore",
    "Receipt",
    "SQLiteAuditStore",
    "SignedHead",
    "StoredEntry",
    "VerifyReport",
    "load_or_create_hmac_key",
    "load_or_create_signing_key",
    "load_public_key",
    "open_audit_log",
    "open_store",
    "public_key_path",
    "run_verify",
    "subject_hashes",
    "verify_database",
    "verify_log",
]
