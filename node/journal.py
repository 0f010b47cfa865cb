"""The node's own journal of searches: the holder's access log and safeguarding alerts.

Every Match call writes exactly one row, whatever the outcome — no match,
match, or a shielded child's record found — so the work a node does, and the
time it takes, does not depend on whether the child is shielded. The row holds
who searched (from the broker-signed requester), their purpose and the time;
for a match, the record and band (the holder's access log, as CP-IS gives the
NHS); for a shielded record, an alert for the authority's safeguarding officer.

The journal is the authority's and stays on the node: nothing in it is ever
sent to the broker, and it never holds the searched-for details themselves.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node.errors import StoreError
from node.store import private_file
from protos.signpost.v1 import node_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    search_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('none', 'match', 'alert')),
    record_id TEXT,
    band TEXT,
    requester_id TEXT NOT NULL,
    requester_name TEXT NOT NULL,
    requester_organisation TEXT NOT NULL,
    requester_role TEXT NOT NULL,
    requester_email TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    justification TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT
);
DROP INDEX IF EXISTS journal_kind_time;
CREATE INDEX IF NOT EXISTS journal_reviewed_kind_time ON journal (kind, time) WHERE kind IN ('match', 'alert');
"""
# Why the schema is shaped so (every search writes a row on every node, so each page a row touches
# is a page written to the WAL on every search):
# - no AUTOINCREMENT: it rewrites the sqlite_sequence page on every insert. Ids still only grow,
#   because rows are never deleted (an acknowledgement updates a row, it does not remove one).
# - a partial index: the holder reviews matches and alerts, never the "none" rows that most searches
#   write, so those rows touch no index page. Queries that use it repeat its WHERE term exactly
#   (REVIEWED), which is how SQLite knows the index covers them.
# A journal made by an earlier version keeps its table; its old full index is replaced at open.
REVIEWED = "kind IN ('match', 'alert')"


@dataclass(frozen=True)
class JournalRow:
    id: int
    time: str
    search_id: str
    kind: str
    record_id: str | None
    band: str | None
    requester_id: str
    requester_name: str
    requester_organisation: str
    requester_role: str
    requester_email: str
    purpose_code: str
    justification: str
    acknowledged_at: str | None
    acknowledged_by: str | None


class Journal:
    """Append-only (but for acknowledgements) log in the node's own SQLite file."""

    def __init__(self, path: Path, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        try:
            private_file(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed row survives the process being killed, at no fsync per search.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the journal at {path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def record_many(
        self, searches: list[tuple[node_pb2.MatchRequest, list[tuple[str, str | None, str | None]]]]
    ) -> None:
        """The rows of one call's searches (one, or a batch), in one transaction, committed before any is answered.

        Each search's rows are (kind, record id, band); kind none, match or alert.
        """
        now = self._clock().isoformat(timespec="seconds")
        rows = [
            (
                now,
                request.search_id,
                kind,
                record_id,
                band,
                r.user_id,
                r.name,
                r.organisation,
                r.role,
                r.email,
                request.purpose.code,
                request.purpose.justification,
            )
            for request, outcomes in searches
            for r in (request.requester,)
            for kind, record_id, band in outcomes
        ]
        if not rows:
            return
        try:
            # The connection is in autocommit mode, where ``with connection`` opens no transaction and
            # executemany would commit each row alone: BEGIN makes the batch one commit, all or nothing.
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO journal (time, search_id, kind, record_id, band, requester_id, requester_name, "
                    "requester_organisation, requester_role, requester_email, purpose_code, justification) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (a full disk); a failed COMMIT may leave it open,
                # and an open transaction would swallow every later write, acknowledgements included.
                if self._db.in_transaction:
                    self._db.rollback()
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the journal: {exc}") from exc

    def _rows(self, where: str, args: tuple[object, ...], limit: int) -> list[JournalRow]:
        cursor = self._db.execute(
            f"SELECT {', '.join(JournalRow.__dataclass_fields__)} FROM journal WHERE {where} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        )
        return [JournalRow(*row) for row in cursor]

    def alerts(self, *, include_acknowledged: bool = False, limit: int = 200) -> list[JournalRow]:
        """Searches that found a shielded child's record: for the designated safeguarding officer."""
        where = f"{REVIEWED} AND kind = 'alert'" + ("" if include_acknowledged else " AND acknowledged_at IS NULL")
        return self._rows(where, (), limit)

    def access_log(self, *, since: str = "", limit: int = 500) -> list[JournalRow]:
        """Searches that matched this authority's records (the holder's access log)."""
        return self._rows(f"{REVIEWED} AND time >= ?", (since,), limit)

    def acknowledge(self, alert_id: int, by: str) -> bool:
        """Mark an alert seen; False if there is no such unacknowledged alert."""
        cursor = self._db.execute(
            "UPDATE journal SET acknowledged_at = ?, acknowledged_by = ? "
            "WHERE id = ? AND kind = 'alert' AND acknowledged_at IS NULL",
            (self._clock().isoformat(timespec="seconds"), by, alert_id),
        )
        return cursor.rowcount == 1
