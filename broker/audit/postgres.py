"""The audit log in one PostgreSQL schema, shared by several broker processes.

The tables are those ``broker.audit.store`` describes, in PostgreSQL's types,
inside the schema named by ``?schema=`` (``split_schema``) or ``public``; each
entry is sealed by ``broker.audit.sealing`` and appends are grouped by
``broker.audit.groupcommit``, exactly as in the SQLite store. psycopg is
imported only when a PostgreSQL log is opened.

This module must never log, never put an entry's body or a driver's message
about one in an error (a driver may quote a value), never build SQL from an
unchecked schema name, and never let an append return before its commit is
durable (``synchronous_commit = on``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broker.audit.errors import AuditConfigError, AuditError, AuditIntegrityError, AuditWriteError, write_failed
from broker.audit.groupcommit import GroupCommit
from broker.audit.heads import SignedHead
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

if TYPE_CHECKING:  # psycopg is imported only when a PostgreSQL log is opened
    from psycopg import AsyncConnection, sql
    from psycopg.rows import TupleRow

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
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
_PG_SCAN = (
    "SELECT e.idx, e.body, e.leaf_hash, e.head_json, e.head_signature, e.actor_user_id, e.created_at, "
    "(SELECT string_agg(h.hash, ',') FROM {s}.audit_subject_hashes h WHERE h.idx = e.idx) "
    "FROM {s}.audit_entries e"
)


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    if when is not None and when.tzinfo is None:
        raise ValueError("since and until must carry a timezone")
    return when


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

    def __init__(self, dsn: str, *, schema: str = "public", create: bool = True, connect_timeout: float = 10.0) -> None:
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
                self._dsn,
                autocommit=True,
                connect_timeout=max(1, int(self._timeout)),
                application_name=f"signpost-audit:{self.schema}"[:63],
            )
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
                        await conn.execute(
                            "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"signpost-audit-schema:{self.schema}"]
                        )
                        for statement in _PG_DDL:
                            await conn.execute(self._q(statement))
                        await conn.execute(
                            self._q(
                                "INSERT INTO {s}.audit_state (id, tree_size, frontier) "
                                "VALUES (1, 0, %s) ON CONFLICT (id) DO NOTHING"
                            ),
                            [EMPTY_FRONTIER],
                        )
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
                    cur = await conn.execute(
                        self._q("SELECT tree_size, frontier FROM {s}.audit_state WHERE id = 1 FOR UPDATE")
                    )
                    row = await cur.fetchone()
                    if row is None:
                        raise AuditIntegrityError(f"the audit state row is missing in schema {self.schema}")
                    placed = seal_group(group, int(row[0]), row[1])
                    async with conn.cursor() as cursor:
                        if placed.sealed:
                            await cursor.executemany(
                                self._q(
                                    "INSERT INTO {s}.audit_entries (idx, body, leaf_hash, head_json, head_signature, "
                                    "actor_user_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                                ),
                                [
                                    (
                                        x.index,
                                        x.body,
                                        x.leaf_hash,
                                        x.head.message().decode(),
                                        x.head.signature,
                                        x.fields.actor,
                                        x.created_at,
                                    )
                                    for x in placed.sealed
                                ],
                            )
                        hashes = [(h, x.index) for x in placed.sealed for h in x.fields.subject_hashes]
                        if hashes:
                            await cursor.executemany(
                                self._q("INSERT INTO {s}.audit_subject_hashes (hash, idx) VALUES (%s, %s)"), hashes
                            )
                    await conn.execute(
                        self._q("UPDATE {s}.audit_state SET tree_size = %s, frontier = %s WHERE id = 1"),
                        [placed.tree_size, placed.frontier_json],
                    )
                return placed.results
        except (psycopg.Error, OSError, ValueError, AuditError) as exc:
            raise write_failed(exc) from exc

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
        rows = await self._fetch(
            "SELECT idx, head_json, head_signature FROM {s}.audit_entries ORDER BY idx DESC LIMIT 1", ()
        )
        return head_from_row(rows[0][1], rows[0][2], rows[0][0]) if rows else None

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
        rows = await self._fetch(
            f"SELECT {ENTRY_COLUMNS} FROM {{s}}.audit_entries WHERE {' AND '.join(where)} ORDER BY idx LIMIT %s",
            (*params, limit),
        )
        return [stored_entry(*row) for row in rows]

    async def scan(self, after_index: int | None, limit: int) -> list[RawRow]:
        if after_index is None:
            rows = await self._fetch(f"{_PG_SCAN} ORDER BY e.idx LIMIT %s", (limit,))
        else:
            rows = await self._fetch(f"{_PG_SCAN} WHERE e.idx > %s ORDER BY e.idx LIMIT %s", (after_index, limit))
        return [raw_row(row) for row in rows]

    async def state(self) -> tuple[int, str]:
        rows = await self._fetch("SELECT tree_size, frontier FROM {s}.audit_state WHERE id = 1", ())
        if not rows:
            raise AuditIntegrityError(f"the audit state row is missing in schema {self.schema}")
        return int(rows[0][0]), str(rows[0][1])

    async def leaf_hashes(self, tree_size: int) -> list[bytes]:
        rows = await self._fetch(
            "SELECT idx, leaf_hash FROM {s}.audit_entries WHERE idx >= 0 AND idx < %s ORDER BY idx", (tree_size,)
        )
        return check_leaves(rows, tree_size)

    async def close(self) -> None:
        await self._group.close()
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
