"""Where the audit log lives: a SQLite file (default) or a PostgreSQL schema.

Both stores keep the same tables:

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
way share the next transaction (GroupCommit), each still at its own index
with its own signed head. The index column and constraints order
entries, they do not protect them: integrity is what ``broker.audit.verify``
proves from the hashes and signatures, so there are deliberately no foreign
keys or triggers to give a false sense of it.

The store never logs and never puts an entry's body in an error message: a
body describes a search about a child, even if its identifiers are hashed.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import functools
import json
import os
import re
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broker.audit import merkle
from broker.audit.errors import AuditConfigError, AuditError, AuditIntegrityError, AuditWriteError
from broker.audit.keys import SignedHead, canonical_json, iso_utc

if TYPE_CHECKING:  # psycopg is imported only when a PostgreSQL log is opened
    from psycopg import AsyncConnection, sql
    from psycopg.rows import TupleRow

T = TypeVar("T")
HeadSign = Callable[[int, bytes], SignedHead]
"""Signs (tree_size, root): a ``keys.HeadSigner``."""
Pending = tuple[Mapping[str, Any], HeadSign]
"""An entry to append and the signer of its head."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HMAC_HEX = re.compile(r"^[0-9a-f]{64}$")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class StoredEntry:
    """One entry as an auditor's query returns it."""

    index: int
    entry: dict[str, Any]
    leaf_hash: str
    head: SignedHead
    """The head signed when this entry was appended (tree_size = index + 1)."""


@dataclass(frozen=True)
class RawRow:
    """One row exactly as stored, nothing trusted: what verification reads."""

    index: int
    body: bytes
    leaf_hash: str
    head_json: str
    head_signature: str
    actor: str | None
    created_at: str
    subject_hashes: tuple[str, ...]


@dataclass(frozen=True)
class IndexedFields:
    """What the query columns hold for an entry, derived from its body."""

    actor: str | None
    time: dt.datetime | None
    subject_hashes: tuple[str, ...]


@dataclass(frozen=True)
class Sealed:
    """An entry placed in the tree and signed, ready to be written in the same transaction."""

    index: int
    body: str
    leaf_hash: str
    head: SignedHead
    fields: IndexedFields
    created_at: dt.datetime
    frontier_json: str


def leaf_bytes(index: int, body: bytes) -> bytes:
    """Canonical JSON of {"index": index, "entry": <body>}, built around the stored bytes.

    Splicing rather than re-serialising means verification hashes exactly what
    is stored, so even a change that parses to the same object is caught.
    """
    return b'{"entry":' + body + b',"index":' + str(index).encode() + b"}"


def indexed_fields(entry: Mapping[str, Any]) -> IndexedFields:
    """The actor, time and subject hashes of an entry; ValueError (naming the field only) when malformed."""
    actor = entry.get("actor")
    user_id = actor.get("user_id") if isinstance(actor, Mapping) else None
    if actor is not None and not isinstance(user_id, str):
        raise ValueError("entry field actor.user_id must be a string")
    when = entry.get("time")
    parsed: dt.datetime | None = None
    if when is not None:
        try:
            parsed = dt.datetime.fromisoformat(when) if isinstance(when, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise ValueError("entry field time must be ISO 8601 with a UTC offset")
    hashes = entry.get("subject_hashes", [])
    # Only HMAC-shaped values are indexed: a plaintext name put here by mistake is refused, not stored.
    if not isinstance(hashes, list) or not all(isinstance(h, str) and _HMAC_HEX.match(h) for h in hashes):
        raise ValueError("entry field subject_hashes must be a list of lowercase hex HMAC-SHA256 values")
    return IndexedFields(user_id, parsed, tuple(sorted(set(hashes))))


def seal(entry: Mapping[str, Any], tree_size: int, frontier_json: str, sign: HeadSign) -> Sealed:
    """Place ``entry`` at index ``tree_size``: leaf hash, new root, signed head, new frontier."""
    if not isinstance(entry, Mapping):
        raise ValueError("an audit entry must be a JSON object")
    fields = indexed_fields(entry)
    try:
        body = canonical_json(entry)
    except (TypeError, ValueError):
        raise ValueError("an audit entry must be serialisable as JSON") from None
    try:
        frontier = merkle.Frontier.from_json(json.loads(frontier_json))
    except ValueError as exc:
        raise AuditIntegrityError(f"the stored frontier is unreadable: {exc}") from None
    if frontier.size != tree_size:
        raise AuditIntegrityError(f"the stored frontier covers {frontier.size} entries, the log {tree_size}")
    leaf = merkle.leaf_hash(leaf_bytes(tree_size, body))
    head = sign(tree_size + 1, frontier.append(leaf))
    created = fields.time or dt.datetime.fromisoformat(head.timestamp)
    return Sealed(tree_size, body.decode(), leaf.hex(), head, fields, created,
                  json.dumps(frontier.to_json(), separators=(",", ":")))


@dataclass(frozen=True)
class SealedGroup:
    """A group of entries placed in the tree one after another, ready to be written in one transaction."""

    results: list[Sealed | AuditWriteError]
    """Per entry, in order: its Sealed, or the error that refused it alone."""
    sealed: list[Sealed]
    """The entries to write."""
    tree_size: int
    frontier_json: str
    """The state after the last of them (unchanged if none was sealed)."""


def seal_group(group: Sequence[Pending], tree_size: int, frontier_json: str) -> SealedGroup:
    """``seal`` each entry in turn from the stored state; a malformed one is refused alone and takes no index."""
    results: list[Sealed | AuditWriteError] = []
    sealed: list[Sealed] = []
    for entry, sign in group:
        try:
            placed = seal(entry, tree_size, frontier_json, sign)
        except ValueError as exc:
            results.append(_write_failed(exc))
            continue
        tree_size, frontier_json = placed.index + 1, placed.frontier_json
        results.append(placed)
        sealed.append(placed)
    return SealedGroup(results, sealed, tree_size, frontier_json)


def head_from_row(head_json: str, signature: str, index: int) -> SignedHead:
    try:
        return SignedHead.from_json({**json.loads(head_json), "signature": signature})
    except (TypeError, ValueError):
        raise AuditIntegrityError(f"entry {index}: its stored tree head is unreadable") from None


def stored_entry(index: int, body: Any, leaf: str, head_json: str, signature: str) -> StoredEntry:
    try:
        entry = json.loads(body)
    except (TypeError, ValueError):
        raise AuditIntegrityError(f"entry {index}: its stored body is not JSON") from None
    if not isinstance(entry, dict):
        raise AuditIntegrityError(f"entry {index}: its stored body is not a JSON object")
    return StoredEntry(index, entry, leaf, head_from_row(head_json, signature, index))


def _write_failed(exc: BaseException) -> AuditWriteError:
    # Only the cause's type and our own words: a driver's message might quote a value.
    reason = str(exc) if isinstance(exc, (ValueError, AuditError)) else type(exc).__name__
    return AuditWriteError(f"audit entry not written: {reason}")


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    if when is not None and when.tzinfo is None:
        raise ValueError("since and until must carry a timezone")
    return when


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
        self, *, actor: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
        subject_hash: str | None = None, limit: int = 100, after_index: int | None = None,
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


MAX_GROUP = 64
"""Most entries committed in one transaction."""


class GroupCommit:
    """Appends that arrive while a commit is under way wait for it and go together in the next.

    One transaction, one fsync, for every search that finished meanwhile — as a database's group
    commit does. Each entry is still sealed alone, at its own index with its own signed head, so the
    log is exactly what one append at a time would have made. ``write`` commits a group and returns,
    per entry, its Sealed or the AuditWriteError that refused that entry alone (one that ``seal``
    finds malformed fails by itself); if ``write`` raises — the database refused something —
    nothing of the group was committed and every entry in it fails. An entry is committed even if
    its caller stops waiting, as one being written always was.
    """

    def __init__(self, write: Callable[[list[Pending]], Awaitable[list[Sealed | AuditWriteError]]], *,
                 max_group: int = MAX_GROUP) -> None:
        self._write, self.max_group = write, max_group
        self._queue: deque[tuple[Pending, asyncio.Future[Sealed]]] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, entry: Mapping[str, Any], sign: HeadSign) -> Sealed:
        if self._closed:
            raise AuditWriteError("audit entry not written: the audit log is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sealed] = loop.create_future()
        self._queue.append(((entry, sign), future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queue:
            group = [self._queue.popleft() for _ in range(min(self.max_group, len(self._queue)))]
            try:
                results = await self._write([pending for pending, _ in group])
                if len(results) != len(group):
                    raise AuditIntegrityError("the store answered for a different number of entries")
                for (_, future), result in zip(group, results):
                    if future.done():
                        continue
                    if isinstance(result, AuditWriteError):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            except BaseException as exc:
                # Whatever went wrong, nobody waits in vain: every entry not yet answered is told it failed.
                failed = exc if isinstance(exc, AuditWriteError) else _write_failed(exc)
                stopping = not isinstance(exc, Exception)  # cancelled: the loop is closing
                stranded = [*group, *self._queue] if stopping else group
                for _, future in stranded:
                    if not future.done():
                        future.set_exception(AuditWriteError(str(failed)))
                if stopping:
                    self._queue.clear()
                    raise

    async def close(self) -> None:
        """Refuse new appends, and let those already queued finish."""
        self._closed = True
        if self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)


def _check_leaves(rows: Sequence[tuple[int, str]], tree_size: int) -> list[bytes]:
    if [i for i, _ in rows] != list(range(tree_size)):
        raise AuditIntegrityError(f"entries 0..{tree_size - 1} are not all present")
    try:
        return [bytes.fromhex(h) for _, h in rows]
    except (TypeError, ValueError):
        raise AuditIntegrityError("a stored leaf hash is not hex") from None


# ---------------------------------------------------------------- SQLite

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
_EMPTY_FRONTIER = json.dumps(merkle.Frontier().to_json(), separators=(",", ":"))
_COLUMNS = "idx, body, leaf_hash, head_json, head_signature"
_SCAN = ("SELECT e.idx, e.body, e.leaf_hash, e.head_json, e.head_signature, e.actor_user_id, e.created_at, "
         "(SELECT group_concat(h.hash, ',') FROM audit_subject_hashes h WHERE h.idx = e.idx) "
         "FROM audit_entries e")


def _raw(row: Sequence[Any]) -> RawRow:
    body = row[1] if isinstance(row[1], bytes) else str(row[1]).encode()
    created = row[6] if isinstance(row[6], str) else iso_utc(row[6]) if isinstance(row[6], dt.datetime) else ""
    return RawRow(int(row[0]), body, str(row[2]), str(row[3]), str(row[4]), row[5], created,
                  tuple(sorted(row[7].split(","))) if row[7] else ())


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
                db.execute("INSERT OR IGNORE INTO audit_state (id, tree_size, frontier) VALUES (1, 0, ?)",
                           (_EMPTY_FRONTIER,))
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
            raise _write_failed(exc) from exc

    def _append_group(self, group: list[Pending]) -> list[Sealed | AuditWriteError]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            size, frontier = db.execute("SELECT tree_size, frontier FROM audit_state WHERE id = 1").fetchone()
            placed = seal_group(group, size, frontier)
            db.executemany(
                "INSERT INTO audit_entries (idx, body, leaf_hash, head_json, head_signature, actor_user_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(x.index, x.body, x.leaf_hash, x.head.message().decode(), x.head.signature, x.fields.actor,
                  iso_utc(x.created_at)) for x in placed.sealed])
            db.executemany("INSERT INTO audit_subject_hashes (hash, idx) VALUES (?, ?)",
                           [(h, x.index) for x in placed.sealed for h in x.fields.subject_hashes])
            db.execute("UPDATE audit_state SET tree_size = ?, frontier = ? WHERE id = 1",
                       (placed.tree_size, placed.frontier_json))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return placed.results

    async def latest_head(self) -> SignedHead | None:
        return await self._run(self._latest_head)

    def _latest_head(self) -> SignedHead | None:
        row = self._conn().execute(
            "SELECT idx, head_json, head_signature FROM audit_entries ORDER BY idx DESC LIMIT 1").fetchone()
        return None if row is None else head_from_row(row[1], row[2], row[0])

    async def entries(
        self, *, actor: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
        subject_hash: str | None = None, limit: int = 100, after_index: int | None = None,
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
        query = f"SELECT {_COLUMNS} FROM audit_entries WHERE {' AND '.join(where)} ORDER BY idx LIMIT ?"
        rows = await self._run(self._fetch, query, (*params, limit))
        return [stored_entry(*row) for row in rows]

    def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._conn().execute(query, params).fetchall()

    async def scan(self, after_index: int | None, limit: int) -> list[RawRow]:
        if after_index is None:
            rows = await self._run(self._fetch, f"{_SCAN} ORDER BY e.idx LIMIT ?", (limit,))
        else:
            rows = await self._run(self._fetch, f"{_SCAN} WHERE e.idx > ? ORDER BY e.idx LIMIT ?",
                                   (after_index, limit))
        return [_raw(row) for row in rows]

    async def state(self) -> tuple[int, str]:
        rows = await self._run(self._fetch, "SELECT tree_size, frontier FROM audit_state WHERE id = 1", ())
        if not rows:
            raise AuditIntegrityError(f"{self.path}: the audit state row is missing")
        return int(rows[0][0]), str(rows[0][1])

    async def leaf_hashes(self, tree_size: int) -> list[bytes]:
        rows = await self._run(self._fetch, "SELECT idx, leaf_hash FROM audit_entries "
                               "WHERE idx >= 0 AND idx < ? ORDER BY idx", (tree_size,))
        return _check_leaves(rows, tree_size)

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


# ---------------------------------------------------------------- PostgreSQL

_PG_DDL = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """CREATE TABLE IF NOT EXISTS {s}.audit_entries (
        idx BIGINT PRIMARY KEY, body TEXT NOT NULL, leaf_hash TEXT NOT NULL, head_json TEXT NOT NULL,
        head_signature TEXT NOT NULL, actor_user_id TEXT, created_at TIMESTAMPTZ NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_entries_actor ON {s}.audit_entries (actor_user_id, idx)",
    "CREATE INDEX IF NOT EXISTS audit_entries_time ON {s}.audit_entries (created_at)",
    """CREATE TABLE IF NOT EXISTS {s}.audit_subject_hashes (
        hash TEXT NOT NULL, idx BIGINT NOT NULL, PRIMARY KEY (hash, idx))""",
    """CREATE TABLE IF NOT EXISTS {s}.audit_state (
        id SMALLINT PRIMARY KEY CHECK (id = 1), tree_size BIGINT NOT NULL, frontier TEXT NOT NULL)""",
)
_PG_SCAN = ("SELECT e.idx, e.body, e.leaf_hash, e.head_json, e.head_signature, e.actor_user_id, e.created_at, "
            "(SELECT string_agg(h.hash, ',') FROM {s}.audit_subject_hashes h WHERE h.idx = e.idx) "
            "FROM {s}.audit_entries e")


def split_schema(dsn: str) -> tuple[str, str | None]:
    """Take Signpost's own ``?schema=`` parameter out of a PostgreSQL URL (libpq would refuse it)."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresAuditStore(AuditStore):
    """An audit log in one PostgreSQL schema, shared safely by several broker processes.

    Appends lock the state row (SELECT ... FOR UPDATE) inside their
    transaction, so across every process indexes are contiguous and each
    append extends the tree the previous one committed: no forks, nothing
    lost. Within a process one connection is shared under an asyncio.Lock;
    appends are serialised by the row lock anyway, so a pool would only add
    connections that wait.
    """

    def __init__(self, dsn: str, *, schema: str = "public", create: bool = True,
                 connect_timeout: float = 10.0) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise AuditConfigError(f"audit schema {schema!r}: expected 1-63 of a-z, 0-9 and _, not a leading digit")
        self._dsn = dsn
        self.schema = schema
        self._create = create
        self._timeout = connect_timeout
        self._conn: AsyncConnection[TupleRow] | None = None  # reopened when the server drops it
        self._lock = asyncio.Lock()
        self._group = GroupCommit(self._write_group)

    def _q(self, template: str) -> sql.Composed:
        from psycopg import sql

        return sql.SQL(template).format(s=sql.Identifier(self.schema))

    async def _connection(self) -> AsyncConnection[TupleRow]:
        import psycopg

        if self._conn is None or self._conn.closed:
            # autocommit: every transaction below is an explicit ``conn.transaction()`` block.
            # application_name lets an operator see (and a test kill) the log's sessions in pg_stat_activity.
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=max(1, int(self._timeout)),
                application_name=f"signpost-audit:{self.schema}"[:63])
            # The server default could be off; an append must not return before its commit is on disk.
            await conn.execute("SET synchronous_commit = on")
            self._conn = conn
        return self._conn

    async def open(self) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise AuditConfigError("a PostgreSQL audit log needs psycopg: pip install 'psycopg[binary]'") from exc
        try:
            async with self._lock:
                conn = await self._connection()
                if self._create:
                    async with conn.transaction():
                        # Two brokers starting together would race on CREATE ... IF NOT EXISTS without this.
                        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                           [f"signpost-audit-schema:{self.schema}"])
                        for statement in _PG_DDL:
                            await conn.execute(self._q(statement))
                        await conn.execute(self._q("INSERT INTO {s}.audit_state (id, tree_size, frontier) "
                                                   "VALUES (1, 0, %s) ON CONFLICT (id) DO NOTHING"),
                                           [_EMPTY_FRONTIER])
                else:
                    cur = await conn.execute("SELECT to_regclass(%s)::text", [f"{self.schema}.audit_entries"])
                    found = await cur.fetchone()
                    if found is None or found[0] is None:
                        raise AuditConfigError(f"no Signpost audit log in schema {self.schema}")
        except psycopg.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AuditConfigError(f"cannot open the PostgreSQL audit log: {first_line}") from exc

    async def append(self, entry: Mapping[str, Any], sign: HeadSign) -> Sealed:
        # The group's transaction runs in its own task: a caller that is cancelled cannot leave the
        # shared connection half-way through one.
        return await self._group.append(entry, sign)

    async def _write_group(self, group: list[Pending]) -> list[Sealed | AuditWriteError]:
        import psycopg

        try:
            async with self._lock:
                conn = await self._connection()
                async with conn.transaction():
                    cur = await conn.execute(self._q(
                        "SELECT tree_size, frontier FROM {s}.audit_state WHERE id = 1 FOR UPDATE"))
                    row = await cur.fetchone()
                    if row is None:
                        raise AuditIntegrityError(f"the audit state row is missing in schema {self.schema}")
                    placed = seal_group(group, int(row[0]), row[1])
                    async with conn.cursor() as cursor:
                        if placed.sealed:
                            await cursor.executemany(self._q(
                                "INSERT INTO {s}.audit_entries (idx, body, leaf_hash, head_json, head_signature, "
                                "actor_user_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"),
                                [(x.index, x.body, x.leaf_hash, x.head.message().decode(), x.head.signature,
                                  x.fields.actor, x.created_at) for x in placed.sealed])
                        hashes = [(h, x.index) for x in placed.sealed for h in x.fields.subject_hashes]
                        if hashes:
                            await cursor.executemany(
                                self._q("INSERT INTO {s}.audit_subject_hashes (hash, idx) VALUES (%s, %s)"), hashes)
                    await conn.execute(self._q("UPDATE {s}.audit_state SET tree_size = %s, frontier = %s "
                                               "WHERE id = 1"), [placed.tree_size, placed.frontier_json])
                return placed.results
        except (psycopg.Error, OSError, ValueError, AuditError) as exc:
            raise _write_failed(exc) from exc

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            async with self._lock:
                conn = await self._connection()
                cur = await conn.execute(self._q(query), params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise AuditIntegrityError(f"cannot read the audit log: {type(exc).__name__}") from exc

    async def latest_head(self) -> SignedHead | None:
        rows = await self._fetch("SELECT idx, head_json, head_signature FROM {s}.audit_entries "
                                 "ORDER BY idx DESC LIMIT 1", ())
        return head_from_row(rows[0][1], rows[0][2], rows[0][0]) if rows else None

    async def entries(
        self, *, actor: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
        subject_hash: str | None = None, limit: int = 100, after_index: int | None = None,
    ) -> list[StoredEntry]:
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        for clause, value in (
            ("actor_user_id = %s", actor),
            ("created_at >= %s", _utc(since)),
            ("created_at < %s", _utc(until)),
            ("idx IN (SELECT idx FROM {s}.audit_subject_hashes WHERE hash = %s)", subject_hash),
            ("idx > %s", after_index),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM {{s}}.audit_entries WHERE {' AND '.join(where)} "
                                 "ORDER BY idx LIMIT %s", (*params, limit))
        return [stored_entry(*row) for row in rows]

    async def scan(self, after_index: int | None, limit: int) -> list[RawRow]:
        if after_index is None:
            rows = await self._fetch(f"{_PG_SCAN} ORDER BY e.idx LIMIT %s", (limit,))
        else:
            rows = await self._fetch(f"{_PG_SCAN} WHERE e.idx > %s ORDER BY e.idx LIMIT %s", (after_index, limit))
        return [_raw(row) for row in rows]

    async def state(self) -> tuple[int, str]:
        rows = await self._fetch("SELECT tree_size, frontier FROM {s}.audit_state WHERE id = 1", ())
        if not rows:
            raise AuditIntegrityError(f"the audit state row is missing in schema {self.schema}")
        return int(rows[0][0]), str(rows[0][1])

    async def leaf_hashes(self, tree_size: int) -> list[bytes]:
        rows = await self._fetch("SELECT idx, leaf_hash FROM {s}.audit_entries WHERE idx >= 0 AND idx < %s "
                                 "ORDER BY idx", (tree_size,))
        return _check_leaves(rows, tree_size)

    async def close(self) -> None:
        await self._group.close()
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None


async def open_store(url_or_path: str, *, create: bool = True, schema: str | None = None) -> AuditStore:
    """A PostgreSQL store for ``postgresql://`` URLs (``?schema=`` picks the schema), else a SQLite file."""
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
