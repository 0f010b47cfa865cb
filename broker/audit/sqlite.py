"""The audit log in one SQLite file (the default), for a single broker process.

The tables are those ``broker.audit.store`` describes, in SQLite's types; each
entry is sealed by ``broker.audit.sealing`` and appends are grouped by
``broker.audit.groupcommit``, exactly as in the PostgreSQL store.

This module must never log, never put an entry's body in an error message,
never run a database call on the event loop's thread (a commit's fsync would
stall every search in flight), and never create the file readable by anyone
but its owner: the log says who searched for which child.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from broker.audit.errors import AuditConfigError, AuditError, AuditIntegrityError, AuditWriteError, write_failed
from broker.audit.groupcommit import GroupCommit
from broker.audit.heads import SignedHead, iso_utc
from broker.audit.sealing import (
    EMPTY_FRONTIER,
    ENTRY_COLUMNS,
    HeadSign,
    Pending,
    RawRow,
    Sealed,
    StoredEntry,
    check_leaves,
    head_from_row,
    raw_row,
    seal_group,
    stored_entry,
)
from broker.audit.store import AuditStore

T = TypeVar("T")

_SQLITE_DDL = (
    # INTEGER PRIMARY KEY is SQLite's 64-bit rowid: the BIGINT of the PostgreSQL schema without a second index.
    """CREATE TABLE IF NOT EXISTS audit_entries (
        idx INTEGER PRIMARY KEY, body TEXT NOT NULL, leaf_hash TEXT NOT NULL, head_json TEXT NOT NULL,
        head_signature TEXT NOT NULL, actor_user_id TEXT, created_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_entries_actor ON audit_entries (actor_user_id, idx)",
    "CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (created_at)",
    """CREATE TABLE IF NOT EXISTS audit_subject_hashes (
        hash TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (hash, idx)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS audit_state (
        id INTEGER PRIMARY KEY CHECK (id = 1), tree_size INTEGER NOT NULL, frontier TEXT NOT NULL)""",
)
_SCAN = (
    "SELECT e.idx, e.body, e.leaf_hash, e.head_json, e.head_signature, e.actor_user_id, e.created_at, "
    "(SELECT group_concat(h.hash, ',') FROM audit_subject_hashes h WHERE h.idx = e.idx) "
    "FROM audit_entries e"
)


class SQLiteAuditStore(AuditStore):
    """An audit log in one SQLite file (WAL, synchronous=FULL), for a single broker process.

    Every database call runs on one dedicated thread that owns the connection.
    That serialises concurrent asyncio callers without a lock (one job is one
    whole transaction), and keeps the commit's fsync, a few milliseconds on a
    disk, off the event loop where it would stall every search in flight.
    BEGIN IMMEDIATE also takes SQLite's write lock before the state is read,
    so even a second process on the same file could not fork the tree.
    Appends that arrive while a commit is under way go in the next, together
    (GroupCommit): one transaction and one fsync for all of them. An append
    whose caller is cancelled is still written; either way the log stays whole.
    """

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        self._create = create
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signpost-audit")
        self._db: sqlite3.Connection | None = None  # used only on the executor's thread
        self._closed = False
        self._group = GroupCommit(self._write_group)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise AuditError("the audit log is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise AuditConfigError(f"{self.path}: audit store used before open()")
        return self._db

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        if not self._create and not self.path.is_file():
            raise AuditConfigError(f"{self.path}: no audit log at this path")
        try:
            if self._create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # 0600 from the start (SQLite gives its -wal and -shm files the same mode): the log says
                # who searched for whom, which is nobody else's business on this machine.
                try:
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    pass
            # isolation_level=None: transactions are exactly the BEGIN/COMMIT written below.
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise AuditConfigError(f"{self.path}: cannot open the audit log ({exc})") from exc
        try:
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _prepare(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: fsync the WAL at every commit, so a returned append survives power loss.
            db.execute("PRAGMA synchronous=FULL")
            if self._create:
                db.execute("BEGIN IMMEDIATE")
                for statement in _SQLITE_DDL:
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO audit_state (id, tree_size, frontier) VALUES (1, 0, ?)", (EMPTY_FRONTIER,)
                )
                db.execute("COMMIT")
            elif db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'audit_entries'").fetchone()[0] != 1:
                raise AuditConfigError(f"{self.path}: not a Signpost audit log")
        except sqlite3.Error as exc:
            raise AuditConfigError(f"{self.path}: cannot open the audit log ({exc})") from exc

    async def append(self, entry: Mapping[str, Any], sign: HeadSign) -> Sealed:
        return await self._group.append(entry, sign)

    async def _write_group(self, group: list[Pending]) -> list[Sealed | AuditWriteError]:
        try:
            return await self._run(self._append_group, group)
        except AuditWriteError:
            raise
        except (sqlite3.Error, OSError, ValueError, RuntimeError, AuditError) as exc:
            raise write_failed(exc) from exc

    def _append_group(self, group: list[Pending]) -> list[Sealed | AuditWriteError]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            size, frontier = db.execute("SELECT tree_size, frontier FROM audit_state WHERE id = 1").fetchone()
            placed = seal_group(group, size, frontier)
            db.executemany(
                "INSERT INTO audit_entries (idx, body, leaf_hash, head_json, head_signature, actor_user_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        x.index,
                        x.body,
                        x.leaf_hash,
                        x.head.message().decode(),
                        x.head.signature,
                        x.fields.actor,
                        iso_utc(x.created_at),
                    )
                    for x in placed.sealed
                ],
            )
            db.executemany(
                "INSERT INTO audit_subject_hashes (hash, idx) VALUES (?, ?)",
                [(h, x.index) for x in placed.sealed for h in x.fields.subject_hashes],
            )
            db.execute(
                "UPDATE audit_state SET tree_size = ?, frontier = ? WHERE id = 1",
                (placed.tree_size, placed.frontier_json),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return placed.results

    async def latest_head(self) -> SignedHead | None:
        return await self._run(self._latest_head)

    def _latest_head(self) -> SignedHead | None:
        row = (
            self._conn()
            .execute("SELECT idx, head_json, head_signature FROM audit_entries ORDER BY idx DESC LIMIT 1")
            .fetchone()
        )
        return None if row is None else head_from_row(row[1], row[2], row[0])

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
        since_text = iso_utc(since) if since is not None else None  # iso_utc refuses a naive time
        until_text = iso_utc(until) if until is not None else None
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for clause, value in (
            ("actor_user_id = ?", actor),
            ("created_at >= ?", since_text),
            ("created_at < ?", until_text),
            ("idx IN (SELECT idx FROM audit_subject_hashes WHERE hash = ?)", subject_hash),
            ("idx > ?", after_index),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        query = f"SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE {' AND '.join(where)} ORDER BY idx LIMIT ?"
        rows = await self._run(self._fetch, query, (*params, limit))
        return [stored_entry(*row) for row in rows]

    def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._conn().execute(query, params).fetchall()

    async def scan(self, after_index: int | None, limit: int) -> list[RawRow]:
        if after_index is None:
            rows = await self._run(self._fetch, f"{_SCAN} ORDER BY e.idx LIMIT ?", (limit,))
        else:
            rows = await self._run(self._fetch, f"{_SCAN} WHERE e.idx > ? ORDER BY e.idx LIMIT ?", (after_index, limit))
        return [raw_row(row) for row in rows]

    async def state(self) -> tuple[int, str]:
        rows = await self._run(self._fetch, "SELECT tree_size, frontier FROM audit_state WHERE id = 1", ())
        if not rows:
            raise AuditIntegrityError(f"{self.path}: the audit state row is missing")
        return int(rows[0][0]), str(rows[0][1])

    async def leaf_hashes(self, tree_size: int) -> list[bytes]:
        rows = await self._run(
            self._fetch,
            "SELECT idx, leaf_hash FROM audit_entries WHERE idx >= 0 AND idx < ? ORDER BY idx",
            (tree_size,),
        )
        return check_leaves(rows, tree_size)

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._group.close()
            await self._run(self._close)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
