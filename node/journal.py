"""The node's own journal of searches: the holder's access log and safeguarding alerts.

A node keeps only what it must. A search that matched one of its records, or found a shielded
child's, is journalled in full: who searched (from the broker-signed requester), their purpose and
justification, the time, the record and band — the holder's access log, as CP-IS gives the NHS, and
for a shielded record an alert for the authority's safeguarding officer. A search that found
nothing here (at most nodes, almost every search) is about a child this authority does not know: it
keeps only a count per day and purpose, never the requester or the justification. Every Match call
still writes once, whatever its outcome, before it is answered: one transaction, or for a call that
found nothing one append to the counts file (:mod:`node.search_counts`); how long the answer takes is
fixed by the answer floor (:mod:`node.policy`), not by what was written.

Rows older than the retention period are deleted (:meth:`Journal.expire`, run by
:mod:`node.retention`), except alerts nobody has acknowledged yet.

The journal is the authority's and stays on the node: nothing in it is ever
sent to the broker, and it never holds the searched-for details themselves.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from node import search_counts
from node.errors import StoreError
from node.search_counts import COUNT, SearchCounts
from node.store import private_file
from node.transactions import write_transaction
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
CREATE TABLE IF NOT EXISTS notified (
    journal_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    journal_time TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (journal_id, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notify_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""
# The outbox of node.notify is the journal itself: a row is pending on a channel until ``notified``
# holds (row, channel), written only after the message was accepted. A crash or a mail outage
# therefore loses nothing (the row was committed before its search was answered), and a delivered
# one is never sent again. ``notify_state`` keeps when each channel started and its digest period.
# A journal from an earlier version holds a full row for every search it answered: those that found
# nothing become counts (once, at open) and their requesters and justifications are deleted.
FOLD_EARLIER_NONE_ROWS = """
BEGIN;
INSERT INTO search_counts (day, purpose_code, searches)
    SELECT substr(time, 1, 10), purpose_code, count(*) FROM journal WHERE kind = 'none' GROUP BY 1, 2
    ON CONFLICT (day, purpose_code) DO UPDATE SET searches = searches + excluded.searches;
DELETE FROM journal WHERE kind = 'none';
COMMIT;
"""
# Why the schema is shaped so (every search writes to the journal on every node, so each page a write
# touches is a page written to the WAL on every search):
# - no AUTOINCREMENT: it rewrites the sqlite_sequence page on every insert. Ids may be reused only
#   once retention has deleted the newest row, which it never does (it deletes the oldest).
# - a partial index: the holder reviews matches and alerts (the only rows written now; earlier
#   versions wrote "none" rows too). Queries that use it repeat its WHERE term exactly (REVIEWED),
#   which is how SQLite knows the index covers them.
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
        self.on_reviewed: Callable[[], None] | None = None
        """Called after a commit that added match or alert rows (node.notify wakes on it)."""
        try:
            private_file(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed row survives the process being killed, at no fsync per search.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.executescript(search_counts.SCHEMA)
            self._db.executescript(FOLD_EARLIER_NONE_ROWS)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the journal at {path}: {exc}") from exc
        self._counts = SearchCounts(self._db, path)

    def close(self) -> None:
        self._counts.close()
        self._db.close()

    def record_many(
        self, searches: list[tuple[node_pb2.MatchRequest, list[tuple[str, str | None, str | None]]]]
    ) -> None:
        """The rows of one call's searches (one, or a batch), in one transaction, committed before any is answered.

        Each search's rows are (kind, record id, band); kind match or alert. A search with none (or
        only the "none" kind an earlier service wrote) found nothing here and is only counted: a call
        with nothing else is one append to the counts file, written before any is answered.
        """
        now = self._clock().isoformat(timespec="seconds")
        counts: dict[tuple[str, str], int] = {}
        for request, outcomes in searches:
            if all(kind == "none" for kind, _, _ in outcomes):
                key = (now[:10], request.purpose.code)
                counts[key] = counts.get(key, 0) + 1
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
            if kind != "none"
        ]
        if not rows:
            if counts:
                self._count_only(counts)
            return
        with write_transaction(self._db, "write the journal"):  # the batch is one commit, all or nothing
            self._db.executemany(
                "INSERT INTO journal (time, search_id, kind, record_id, band, requester_id, requester_name, "
                "requester_organisation, requester_role, requester_email, purpose_code, justification) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.executemany(COUNT, [(*key, n) for key, n in counts.items()])
        if rows and self.on_reviewed is not None:
            self.on_reviewed()

    def _count_only(self, counts: dict[tuple[str, str], int]) -> None:
        """Searches that found nothing here, and nothing else: most calls at most nodes.

        One append to the counts file (:mod:`node.search_counts`), as durable against the process being
        killed as a commit and a fraction of its CPU; this runs once per message. A batch with matches
        or alerts keeps its counts in its own transaction instead (above), all or nothing with its rows.
        """
        self._counts.add(counts)

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

    def search_counts(self) -> list[tuple[str, str, int]]:
        """(day, purpose code, searches) for the searches that found nothing here, oldest first.

        Those still in the counts file are included, whichever process reads (:mod:`node.search_counts`).
        """
        return self._counts.totals()

    def expire(self, *, keep_days: int) -> int:
        """Delete rows and counts older than ``keep_days``, except unacknowledged alerts; how many went.

        An alert nobody has seen is kept whatever its age: deleting it would hide from the
        safeguarding officer that someone searched for a shielded child.
        """
        cutoff = (self._clock() - dt.timedelta(days=keep_days)).isoformat(timespec="seconds")
        try:
            # Counts still in the file would come back with their old days after the DELETE below.
            self._counts.fold()
        except StoreError:
            pass  # a later fold brings them in; the next expiry deletes them then
        with write_transaction(self._db, "expire old journal rows"):
            rows = self._db.execute(
                f"DELETE FROM journal WHERE {REVIEWED} AND time < ? "
                "AND NOT (kind = 'alert' AND acknowledged_at IS NULL)",
                (cutoff,),
            ).rowcount
            days = self._db.execute("DELETE FROM search_counts WHERE day < ?", (cutoff[:10],)).rowcount
        return rows + days

    # The outbox of node.notify (see ``notified`` in SCHEMA).

    def pending(self, kind: str, channel: str, *, since: str, limit: int = 100) -> list[JournalRow]:
        """Rows of ``kind`` journalled from ``since`` on and not yet delivered on ``channel``, oldest first.

        ``kind`` "match" means matches in the ``match`` band only: a possible disclosed no practitioner.
        A delivery mark names the row's id and time: ids are reused if retention ever deletes the
        newest row, and a new alert must never look delivered because an old one with its id was.
        """
        band = " AND band = 'match'" if kind == "match" else ""
        cursor = self._db.execute(
            f"SELECT {', '.join(JournalRow.__dataclass_fields__)} FROM journal "
            f"WHERE {REVIEWED} AND kind = ?{band} AND time >= ? AND NOT EXISTS (SELECT 1 FROM notified "
            "WHERE journal_id = journal.id AND journal_time = journal.time AND channel = ?) ORDER BY id LIMIT ?",
            (kind, since, channel, limit),
        )
        return [JournalRow(*row) for row in cursor]

    def mark_notified(self, row: JournalRow, channel: str) -> None:
        """``row`` was delivered on ``channel``: never send it there again."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO notified (journal_id, channel, journal_time, delivered_at) VALUES (?, ?, ?, ?)",
                (row.id, channel, row.time, self._clock().isoformat(timespec="seconds")),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record a delivery: {exc}") from exc

    def between(self, start: str, end: str, *, limit: int = 2000) -> tuple[list[JournalRow], int]:
        """Matches and alerts journalled in [start, end), oldest first, at most ``limit``; and how many in all."""
        where, args = f"{REVIEWED} AND time >= ? AND time < ?", (start, end)
        total = int(self._db.execute(f"SELECT count(*) FROM journal WHERE {where}", args).fetchone()[0])
        cursor = self._db.execute(
            f"SELECT {', '.join(JournalRow.__dataclass_fields__)} FROM journal WHERE {where} ORDER BY id LIMIT ?",
            (*args, limit),
        )
        return [JournalRow(*row) for row in cursor], total

    def state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM notify_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        try:
            self._db.execute(
                "INSERT INTO notify_state (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record the notifier's state: {exc}") from exc

    def forget_delivered(self) -> int:
        """Delivery marks of rows retention has deleted: they can never be pending again."""
        try:
            return self._db.execute(
                "DELETE FROM notified "
                "WHERE NOT EXISTS (SELECT 1 FROM journal WHERE id = journal_id AND time = journal_time)"
            ).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"cannot prune delivery marks: {exc}") from exc
