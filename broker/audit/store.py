"""Where the audit log lives: what every store must do, and ``open_store`` to pick one.

There are two stores, a SQLite file (``broker.audit.sqlite``, the default) and
a PostgreSQL schema (``broker.audit.postgres``). Both keep the same tables:

* ``audit_entries(idx, body, leaf_hash, head_json, head_signature, actor_user_id, created_at)``:
  one row per entry with its canonical JSON body and the tree head signed
  when it was appended; indexed by actor and by time for auditors' queries.
* ``audit_subject_hashes(hash, idx)``: the subject HMACs an entry carries, so
  every search about one child can be found from the hashes of what an
  auditor knows about them.
* ``audit_state``: one row holding the size and frontier of the tree, read
  and rewritten inside every append's transaction.

An append is in one transaction: the entry, its subject hashes, its signed head
and the new frontier commit together or not at all, and ``append`` returns
only once the commit is durable. Appends that arrive while a commit is under
way share the next transaction (``broker.audit.groupcommit``), each still at its
own index with its own signed head (``broker.audit.sealing``). The index column
and constraints order entries, they do not protect them: integrity is what
``broker.audit.verify`` proves from the hashes and signatures, so there are
deliberately no foreign keys or triggers to give a false sense of it.

A store never logs and never puts an entry's body in an error message: a
body describes a search about a child, even if its identifiers are hashed.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.audit.heads import SignedHead
from broker.audit.sealing import HeadSign, RawRow, Sealed, StoredEntry

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class AuditStore(abc.ABC):
    """What the log and the verifier need from a store; every method is safe to call concurrently."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and create the tables if this store may create them."""

    @abc.abstractmethod
    async def append(self, entry: Mapping[str, Any], sign: HeadSign) -> Sealed:
        """Commit ``entry`` at the next index with its signed head; AuditWriteError if not committed."""

    @abc.abstractmethod
    async def latest_head(self) -> SignedHead | None:
        """The head stored with the highest-indexed entry; None for an empty log."""

    @abc.abstractmethod
    async def entries(
        self,
        *,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        subject_hash: str | None = None,
        limit: int = 100,
        after_index: int | None = None,
    ) -> list[StoredEntry]:
        """Entries in index order matching every filter given; ``since`` inclusive, ``until`` exclusive."""

    @abc.abstractmethod
    async def scan(self, after_index: int | None, limit: int) -> list[RawRow]:
        """Raw rows in index order after ``after_index`` (None: from the lowest index stored)."""

    @abc.abstractmethod
    async def state(self) -> tuple[int, str]:
        """The size and frontier JSON the next append will start from."""

    @abc.abstractmethod
    async def leaf_hashes(self, tree_size: int) -> list[bytes]:
        """Leaf hashes of entries 0..tree_size-1; AuditIntegrityError when one is missing."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish queued work and release the connection."""


async def open_store(url_or_path: str, *, create: bool = True, schema: str | None = None) -> AuditStore:
    """A PostgreSQL store for ``postgresql://`` URLs (``?schema=`` picks the schema), else a SQLite file."""
    # Imported here, not above: each store subclasses AuditStore from this module.
    from broker.audit.postgres import PostgresAuditStore, split_schema
    from broker.audit.sqlite import SQLiteAuditStore

    store: AuditStore
    if url_or_path.startswith(POSTGRES_SCHEMES):
        dsn, from_url = split_schema(url_or_path)
        store = PostgresAuditStore(dsn, schema=schema or from_url or "public", create=create)
    else:
        store = SQLiteAuditStore(Path(url_or_path), create=create)
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store
