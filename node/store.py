"""The node's embedded SQLite store of its authority's records.

The store is the authority's own data and never leaves the node. Writes happen
in one transaction per import, so a reader (the serving node reloading its
index) sees either the old data or the new, never half an import.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, replace
from pathlib import Path

from node.errors import StoreError
from node.records import Involvement, Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS children (
    record_id TEXT PRIMARY KEY,
    given_name TEXT NOT NULL,
    middle_names TEXT NOT NULL,
    family_name TEXT NOT NULL,
    other_names TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex TEXT NOT NULL,
    address TEXT NOT NULL,
    postcode TEXT NOT NULL,
    nhs_number TEXT NOT NULL,
    shielded INTEGER NOT NULL,
    digest TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS involvements (
    record_id TEXT NOT NULL REFERENCES children(record_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    service TEXT NOT NULL,
    team TEXT NOT NULL,
    practitioner_name TEXT NOT NULL,
    practitioner_role TEXT NOT NULL,
    practitioner_phone TEXT NOT NULL,
    practitioner_email TEXT NOT NULL,
    involvement_start TEXT NOT NULL,
    involvement_end TEXT NOT NULL,
    sensitive INTEGER NOT NULL,
    PRIMARY KEY (record_id, position)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (version INTEGER NOT NULL, record_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_version ON changes (version);
"""
CHANGE_LOG_LIMIT = 200_000
"""Entries the change log keeps; past it the log starts again and a reader behind it rebuilds in full."""

_CHILD_COLUMNS = (
    "record_id",
    "given_name",
    "middle_names",
    "family_name",
    "other_names",
    "date_of_birth",
    "sex",
    "address",
    "postcode",
    "nhs_number",
    "shielded",
)
_INVOLVEMENT_COLUMNS = tuple(Involvement.__dataclass_fields__)
# sensitive_only: no involvement a searcher may be told of (see Record.answered_as_absent).
_IDENTITIES = (
    f"SELECT {','.join(_CHILD_COLUMNS)}, NOT EXISTS (SELECT 1 FROM involvements i "
    "WHERE i.record_id = children.record_id AND i.sensitive = 0) FROM children"
)


def _digest(record: Record) -> str:
    """What a record was written as: a later load bringing it unchanged need not write it again, nor make
    the serving node's index change. (Its repr: every field, involvements included, in order.)"""
    return hashlib.blake2b(repr(record).encode(), digest_size=12).hexdigest()


def private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (children's records), if it does not exist yet."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class RecordStore:
    """Records of one authority in a SQLite file; open one per process."""

    def __init__(self, path: Path, *, pinned: bool = False) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            private_file(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(children)")}
            if "digest" not in columns and not pinned:  # a store written before digests: rewritten once
                self._db.execute("ALTER TABLE children ADD COLUMN digest TEXT NOT NULL DEFAULT ''")
            if pinned:
                # A read transaction held open sees the database as it was at its first read, whatever
                # imports commit meanwhile (WAL): the index and the contacts come from the same data.
                self._db.execute("BEGIN")
                self._db.execute("SELECT count(*) FROM meta").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the record store at {path}: {exc}") from exc

    def snapshot(self) -> RecordStore:
        """A read-only view of the store as it is now, unchanged by later imports, until closed."""
        return RecordStore(self.path, pinned=True)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self, failure: str) -> Iterator[sqlite3.Cursor]:
        """One write transaction: BEGIN IMMEDIATE, COMMIT, or ROLLBACK on any exception; an sqlite3 error
        becomes a StoreError saying "cannot <failure> at <path>"."""
        try:
            with closing(self._db.cursor()) as cur:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot {failure} at {self.path}: {exc}") from exc

    def replace_records(self, records: Iterable[Record], *, replace_all: bool = False, ended_before: str = "") -> int:
        """Store records, replacing any with the same record_id (or everything); return how many.

        ``ended_before`` (an ISO date, :func:`node.policy.disclosure_cutoff`) drops, in the same transaction,
        every involvement that ended before it and every record left with none: expired data is never
        visible to the serving node, not even between a load and the next sweep.

        A record identical to the one held (by digest) is not written again, and ``replace_all`` deletes
        only the records the load no longer has: the change log then names just what changed, so a full
        reconciliation with a source costs the serving node an overlay, not a rebuild (:mod:`node.delta`).
        """
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        count = 0
        with self._transaction("write the record store") as cur:
            version = self._version(cur) + 1
            held: dict[str, str] = (
                dict(cur.execute("SELECT record_id, digest FROM children").fetchall()) if replace_all else {}
            )
            changed: list[str] = []
            for record in records:
                count += 1
                digest = _digest(record)
                if replace_all:
                    was = held.pop(record.record_id, None)
                else:
                    row = cur.execute("SELECT digest FROM children WHERE record_id = ?", (record.record_id,)).fetchone()
                    was = row[0] if row else None
                if was != digest:
                    self._write(cur, record, digest)
                    changed.append(record.record_id)
            if replace_all:
                gone = list(held)  # what the load no longer has: deleted or withdrawn at source
                for at in range(0, len(gone), 500):
                    chunk = gone[at : at + 500]
                    cur.execute(f"DELETE FROM children WHERE record_id IN ({','.join('?' * len(chunk))})", chunk)
                changed += gone
                cur.execute("INSERT OR REPLACE INTO meta VALUES ('reconciled_version', ?)", (str(version),))
            self._log(cur, version, changed)
            if ended_before:
                self._expire(cur, ended_before, version)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('data_as_of', ?)", (now,))
            self._set_version(cur, version)
        return count

    def expire(self, ended_before: str) -> tuple[int, int]:
        """Delete involvements that ended before ``ended_before`` and records left with none, in one transaction.

        Returns (involvements, records) deleted. Only a deletion makes a new data version (and so a new
        index): a sweep that finds nothing costs the serving node nothing. ``data_as_of`` is left alone:
        the data is no fresher for having lost its old rows.
        """
        with self._transaction("expire records in the store") as cur:
            version = self._version(cur) + 1
            expired = self._expire(cur, ended_before, version)
            if any(expired):
                self._set_version(cur, version)
        return expired

    @staticmethod
    def _expire(cur: sqlite3.Cursor, ended_before: str, version: int) -> tuple[int, int]:
        # node.policy.still_disclosed in SQL: an empty end is ongoing; ISO dates compare as text.
        # A record that loses an involvement changes too (it may now be known only to sensitive services).
        cur.execute(
            "INSERT INTO changes SELECT DISTINCT ?, record_id FROM involvements "
            "WHERE involvement_end != '' AND involvement_end < ?",
            (version, ended_before),
        )
        cur.execute("DELETE FROM involvements WHERE involvement_end != '' AND involvement_end < ?", (ended_before,))
        involvements = cur.rowcount
        if not involvements:
            return 0, 0
        # Every record left with none goes, one that never had any too: logged, or an overlay keeps it.
        orphans = "FROM children WHERE NOT EXISTS (SELECT 1 FROM involvements i WHERE i.record_id = children.record_id)"
        cur.execute(
            f"INSERT INTO changes SELECT ?, record_id {orphans} "
            "AND record_id NOT IN (SELECT record_id FROM changes WHERE version = ?)",  # logged once
            (version, version),
        )
        cur.execute(f"DELETE {orphans}")
        return involvements, cur.rowcount

    @staticmethod
    def _version(cur: sqlite3.Cursor) -> int:
        # A counter, not the time: two imports in one second must still be told apart.
        row = cur.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _set_version(cur: sqlite3.Cursor, version: int) -> None:
        cur.execute("INSERT OR REPLACE INTO meta VALUES ('data_version', ?)", (str(version),))
        if cur.execute("SELECT count(*) FROM changes").fetchone()[0] > CHANGE_LOG_LIMIT:
            RecordStore._restart_log(cur, version)

    @staticmethod
    def _log(cur: sqlite3.Cursor, version: int, record_ids: list[str]) -> None:
        if len(record_ids) > CHANGE_LOG_LIMIT:  # a change this large is rebuilt in full anyway
            RecordStore._restart_log(cur, version)
        else:
            cur.executemany("INSERT INTO changes VALUES (?, ?)", ((version, r) for r in record_ids))

    def forget_changes(self, version: int) -> None:
        """Drop the log up to ``version`` (what a full build of that version already holds): from then on
        ``changed_since`` answers only from ``version`` on. Keeps the log short without restarting it."""
        with self._transaction("write the record store") as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = 'log_from'").fetchone()
            if row is None or int(row[0]) < version:
                cur.execute("DELETE FROM changes WHERE version <= ?", (version,))
                cur.execute("INSERT OR REPLACE INTO meta VALUES ('log_from', ?)", (str(version),))

    def reconciled_after(self, version: int) -> bool:
        """Has a full load (``replace_all``) been written since ``version``?"""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'reconciled_version'").fetchone()
        return row is not None and int(row[0]) > version

    @staticmethod
    def _restart_log(cur: sqlite3.Cursor, version: int) -> None:
        """Forget the change log: whoever built from a version before ``version`` must rebuild in full."""
        cur.execute("DELETE FROM changes")
        cur.execute("INSERT OR REPLACE INTO meta VALUES ('log_from', ?)", (str(version),))

    def changed_since(self, version: int) -> list[str] | None:
        """The record_ids written, replaced or expired after ``version`` (up to this store's, or its snapshot's,
        version); None when the log cannot say (everything was replaced since, or the log restarted).

        What lets the serving node apply a load as a small overlay on its index (:mod:`node.delta`) instead
        of rebuilding it. Deleted records are among them: they are simply no longer in the store.
        """
        row = self._db.execute("SELECT value FROM meta WHERE key = 'log_from'").fetchone()
        if row is not None and int(row[0]) > version:
            return None
        found = self._db.execute("SELECT DISTINCT record_id FROM changes WHERE version > ?", (version,))
        return [r[0] for r in found]

    @staticmethod
    def _write(cur: sqlite3.Cursor, record: Record, digest: str) -> None:
        cur.execute("DELETE FROM children WHERE record_id = ?", (record.record_id,))
        row = asdict(record)
        row["other_names"] = ";".join(record.other_names)
        row["shielded"] = int(record.shielded)
        cur.execute(
            f"INSERT INTO children ({','.join(_CHILD_COLUMNS)}, digest) "
            f"VALUES ({','.join('?' * len(_CHILD_COLUMNS))}, ?)",
            [*(row[c] for c in _CHILD_COLUMNS), digest],
        )
        for position, inv in enumerate(record.involvements):
            values = [getattr(inv, c) for c in _INVOLVEMENT_COLUMNS]
            cur.execute(
                f"INSERT INTO involvements (record_id, position, {','.join(_INVOLVEMENT_COLUMNS)}) "
                f"VALUES (?, ?, {','.join('?' * len(_INVOLVEMENT_COLUMNS))})",
                [record.record_id, position, *values],
            )

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM children").fetchone()[0])

    def data_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()
        return int(row[0]) if row else 0

    def data_as_of(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'data_as_of'").fetchone()
        return str(row[0]) if row else ""

    def identities(self) -> Iterator[Record]:
        """Every record's identity fields, without involvements, streamed (for building the match index),
        in record_id order (:mod:`node.delta` finds a record's row in the index by bisection)."""
        yield from self._identities(self._db.execute(f"{_IDENTITIES} ORDER BY record_id"))

    def identities_of(self, record_ids: Iterable[str]) -> Iterator[Record]:
        """The identity fields of those of ``record_ids`` the store holds (as ``identities``, unordered)."""
        wanted = list(record_ids)
        for at in range(0, len(wanted), 500):
            chunk = wanted[at : at + 500]
            sql = f"{_IDENTITIES} WHERE record_id IN ({','.join('?' * len(chunk))})"
            yield from self._identities(self._db.execute(sql, chunk))

    @staticmethod
    def _identities(cursor: sqlite3.Cursor) -> Iterator[Record]:
        # Unpacked by name rather than through a dict of the row: a build reads a million of these, and
        # the two dicts a row cost were a tenth of reading it. The names follow _CHILD_COLUMNS.
        for (
            record_id,
            given_name,
            middle_names,
            family_name,
            other_names,
            date_of_birth,
            sex,
            address,
            postcode,
            nhs_number,
            shielded,
            sensitive_only,
        ) in cursor:
            yield Record(
                record_id=record_id,
                given_name=given_name,
                middle_names=middle_names,
                family_name=family_name,
                other_names=tuple(n for n in other_names.split(";") if n) if other_names else (),
                date_of_birth=date_of_birth,
                sex=sex,
                address=address,
                postcode=postcode,
                nhs_number=nhs_number,
                shielded=bool(shielded),
                sensitive_only=bool(sensitive_only),
            )

    def involvements(self, record_id: str) -> tuple[Involvement, ...]:
        """The contacts of one record, in the order they were loaded."""
        try:
            rows = self._db.execute(
                f"SELECT {','.join(_INVOLVEMENT_COLUMNS)} FROM involvements WHERE record_id = ? ORDER BY position",
                (record_id,),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the record store at {self.path}: {exc}") from exc
        return tuple(
            Involvement(**{**dict(zip(_INVOLVEMENT_COLUMNS, row, strict=False)), "sensitive": bool(row[-1])})
            for row in rows
        )

    def records(self) -> Iterator[Record]:
        """Every record with its involvements (for exports and tests; the matcher uses ``identities``)."""
        for record in self.identities():
            yield replace(record, involvements=self.involvements(record.record_id))
