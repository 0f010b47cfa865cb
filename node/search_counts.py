"""Counts of the searches that found nothing here: one append a message, folded into SQLite now and then.

At most nodes almost every search is about a child the authority does not know, and all the journal
keeps of it is a count per day and purpose (:mod:`node.journal`). An UPSERT a message wrote a page of
the journal's WAL each time (a fifth of a node's CPU a message, in a profile at 152 authorities).
Instead each message is one ``os.write`` of a line such as ``2026-05-01 missing-child 1`` to
``<journal>-counts``, opened with O_APPEND. The write has reached the kernel before the search is
answered, so a count survives the process being killed, as a commit did (the journal runs
``synchronous=NORMAL`` in WAL mode: neither is synced to disk, so neither survives a power cut more).

The lines are folded into the ``search_counts`` table every :data:`FOLD_LINES` lines or
:data:`FOLD_SECONDS`, at close, and before the counts are read or expired. No count is lost or
counted twice, whoever reads and whenever a process dies:

- The table ``search_counts_file`` names the file's generation (its first line names its own) and
  how many of its bytes are folded. A fold adds the lines after that offset and moves the offset on
  in one transaction: killed before the commit, nothing was added; after it, nothing is read again.
- Past :data:`ROTATE_BYTES` a fold also moves the generation on, and after its commit renames a
  fresh file of the new generation over the old one. A process killed between the two leaves a file
  whose generation is behind the table's: folded already, so skipped. (Rotating rarely, not at each
  fold, because freeing a file's blocks costs milliseconds on some filesystems.)
- Only one process appends and folds: the one holding an flock on ``<journal>-counts.lock`` (the
  serving node). Any other (``signpost node`` beside it, a second journal) writes its counts as
  UPSERTs and reads the file's lines without folding them. It opens the file first and reads the
  table in one snapshot after: a fold in between is either in the snapshot (and the file it opened
  is behind it, or read from the offset the snapshot names) or not (and that file, from that
  offset, holds every line the snapshot lacks).

The file holds a day, a purpose code and a number a line, never a requester or a justification.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import structlog

from node.errors import StoreError
from node.transactions import write_transaction

log = structlog.get_logger("signpost.node")

SCHEMA = """
CREATE TABLE IF NOT EXISTS search_counts (
    day TEXT NOT NULL,
    purpose_code TEXT NOT NULL,
    searches INTEGER NOT NULL,
    PRIMARY KEY (day, purpose_code)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_counts_file (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    folded INTEGER NOT NULL
);
"""
COUNT = (
    "INSERT INTO search_counts (day, purpose_code, searches) VALUES (?, ?, ?) "
    "ON CONFLICT (day, purpose_code) DO UPDATE SET searches = searches + excluded.searches"
)
SET_FOLDED = (
    "INSERT INTO search_counts_file (id, generation, folded) VALUES (1, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, folded = excluded.folded"
)
HEADER = b"signpost search counts, generation "
FOLD_LINES = 1000
"""Fold after this many lines: about 30 kB to parse (well under a millisecond), once per thousand messages."""
FOLD_SECONDS = 60.0
"""And at least this often while counts arrive, so a quiet node's file stays short too."""
ROTATE_BYTES = 1 << 20
"""Start a fresh file once this much is folded: about 38,000 counts."""
RETRY_SECONDS = 10.0
"""How long a journal that could not become the writer (another holds the lock) UPSERTs before trying again."""

Counts = dict[tuple[str, str], int]


@dataclass(frozen=True)
class FileState:
    """What the table says of the counts file: its generation and how many of its bytes are folded."""

    generation: int = 0
    folded: int = 0


class SearchCounts:
    """The ``search_counts`` table of one journal and the file of counts not yet folded into it."""

    def __init__(self, db: sqlite3.Connection, journal: Path) -> None:
        self._db = db
        self.path = journal.with_name(journal.name + "-counts")
        self._fresh_path = journal.with_name(journal.name + "-counts.new")
        self._lock_path = journal.with_name(journal.name + "-counts.lock")
        # Appends and folds swap the file under each other: one at a time, whichever thread calls.
        self._mutex = threading.Lock()
        self._lock_fd: int | None = None
        """Open while this journal holds the flock: it alone appends to and folds the file."""
        self._fd: int | None = None
        """The file appended to; None until this journal is the writer, or after a rotation failed part-way."""
        self._lines = 0
        self._fold_at = 0.0
        self._retry_at = 0.0
        self._torn = True  # until this journal has written: a killed writer may have left half a line

    def add(self, counts: Counts) -> None:
        """Count searches that found nothing: one write to the file, or an UPSERT if another process has it."""
        lines = "".join(f"{day} {purpose} {n}\n" for (day, purpose), n in counts.items())
        with self._mutex:
            # A purpose code holding a newline would split its own line: such a batch goes to SQLite.
            if lines.count("\n") != len(counts) or (self._fd is None and not self._become_writer()):
                self._upsert(counts)
                return
            self._append(lines.encode())
            self._lines += len(counts)
            if self._lines >= FOLD_LINES or time.monotonic() >= self._fold_at:
                self._fold_quietly()  # the counts are safe in the file whether or not this fold works

    def fold(self) -> None:
        """Fold the file into the table now, if this journal is the writer; StoreError if that failed."""
        with self._mutex:
            if self._lock_fd is not None:
                self._fold()

    def totals(self) -> list[tuple[str, str, int]]:
        """(day, purpose code, searches), oldest first: the table and the lines not yet folded into it."""
        with self._mutex:
            if self._lock_fd is not None:
                self._fold_quietly()  # the writer empties its file first; the read below is right either way
            try:
                fd: int | None = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                fd = None
            try:
                state, rows = self._snapshot()
                unfolded = self._unfolded(fd, state)[0] if fd is not None else Counter()
            except OSError as exc:
                raise StoreError(f"cannot read the journal's counts: {exc.strerror}") from exc
            finally:
                if fd is not None:
                    os.close(fd)
        totals = Counter({(day, purpose): n for day, purpose, n in rows})
        totals.update(unfolded)
        return sorted((day, purpose, n) for (day, purpose), n in totals.items())

    def close(self) -> None:
        """Fold what is left and give up the file (the next node to open the journal takes it)."""
        with self._mutex:
            if self._lock_fd is None:
                return
            self._fold_quietly()
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None

    def _become_writer(self) -> bool:
        """Take the lock and fold what a killed predecessor left; False if another process has the file."""
        if time.monotonic() < self._retry_at:
            return False
        try:
            if self._lock_fd is None:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise
                self._lock_fd = fd
            self._fold()
        except (OSError, StoreError) as exc:
            # Another process holds the lock (BlockingIOError), or the fold failed: UPSERT for a while.
            if not isinstance(exc, BlockingIOError):
                log.warning("journal_counts_file_unavailable", error_type=type(exc).__name__)
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return False
        return self._fd is not None

    def _append(self, data: bytes) -> None:
        assert self._fd is not None
        if self._torn:
            data = b"\n" + data  # the last write stopped part-way: its line is unreadable, this one must not be
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            self._torn = True
            raise StoreError(f"cannot write the journal: {exc.strerror}") from exc
        self._torn = written != len(data)
        if self._torn:
            raise StoreError("cannot write the journal: the disk took only part of a count")

    def _fold(self) -> None:
        """Add the lines after the folded offset to the table and move the offset on, in one transaction.

        The caller holds the mutex and the lock, so nothing is appended while this reads. A file past
        ROTATE_BYTES, or one already folded whole (a rotation killed before its rename), or none, is
        replaced by a fresh one once the commit has made its lines the table's.
        """
        fresh: int | None = None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                state = self._state()
                counts, end = self._unfolded_at(self.path, state)
                self._db.executemany(COUNT, [(*key, n) for key, n in counts.items()])
                if end is None or end.folded >= ROTATE_BYTES:
                    generation = max(state.generation, end.generation if end else 0) + 1
                    fresh, end = _fresh_file(self._fresh_path, generation), FileState(generation, 0)
                self._db.execute(SET_FOLDED, (end.generation, end.folded))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.rollback()
                if fresh is not None:
                    os.close(fresh)
                raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot fold the journal's counts: {exc}") from exc
        self._lines, self._fold_at = 0, time.monotonic() + FOLD_SECONDS
        if fresh is not None:
            self._rotate(fresh)
        elif self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            except OSError as exc:
                raise StoreError(f"cannot open the journal's counts: {exc.strerror}") from exc

    def _rotate(self, fresh: int) -> None:
        """Put the fresh file in place: committed, every line of the old one is the table's, so none may go there."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.replace(self._fresh_path, self.path)
        except OSError as exc:
            os.close(fresh)  # the file left in place is a generation behind: folded, and the next fold replaces it
            raise StoreError(f"cannot fold the journal's counts: {exc.strerror}") from exc
        self._fd, self._torn = fresh, False

    def _fold_quietly(self) -> None:
        try:
            self._fold()
        except StoreError as exc:
            # Nothing is lost: the lines stay in the file (or were committed) and a later fold takes them.
            # Not the next message's, though: a busy journal would make every message wait on it.
            self._lines, self._fold_at = 0, time.monotonic() + RETRY_SECONDS
            log.warning("journal_counts_fold_failed", error_type=type(exc.__cause__).__name__)

    def _upsert(self, counts: Counts) -> None:
        if len(counts) == 1:  # one statement is its own transaction in autocommit mode
            try:
                self._db.execute(COUNT, (*next(iter(counts)), next(iter(counts.values()))))
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the journal: {exc}") from exc
            return
        with write_transaction(self._db, "write the journal"):
            self._db.executemany(COUNT, [(*key, n) for key, n in counts.items()])

    def _state(self) -> FileState:
        row = self._db.execute("SELECT generation, folded FROM search_counts_file WHERE id = 1").fetchone()
        return FileState() if row is None else FileState(int(row[0]), int(row[1]))

    def _snapshot(self) -> tuple[FileState, list[tuple[str, str, int]]]:
        """The file's state and the table as of one moment (a read transaction: WAL readers see one snapshot)."""
        try:
            self._db.execute("BEGIN")
            try:
                state = self._state()
                rows = self._db.execute("SELECT day, purpose_code, searches FROM search_counts").fetchall()
            finally:
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the journal's counts: {exc}") from exc
        return state, [(str(day), str(purpose), int(n)) for day, purpose, n in rows]

    def _unfolded_at(self, path: Path, state: FileState) -> tuple[Counter[tuple[str, str]], FileState | None]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return Counter(), None
        try:
            return self._unfolded(fd, state)
        finally:
            os.close(fd)

    @staticmethod
    def _unfolded(fd: int, state: FileState) -> tuple[Counter[tuple[str, str]], FileState | None]:
        """The counts in an open file not yet in a table of ``state``, and the state once they are.

        None instead of a state if the file has no usable header or is of a generation folded whole.
        """
        header, newline, _ = os.pread(fd, 64, 0).partition(b"\n")
        number = header.removeprefix(HEADER)
        if not newline or not header.startswith(HEADER) or not number.isdigit() or int(number) < state.generation:
            return Counter(), None
        start = len(header) + 1
        if int(number) == state.generation:
            start = max(start, state.folded)
        tail = _read(fd, start)
        # A last line without its newline is a write that failed, and its search was never answered.
        complete = tail[: tail.rfind(b"\n") + 1]
        return _parse(complete), FileState(int(number), start + len(complete))


def _parse(lines: bytes) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    unreadable = 0
    # Most lines are alike (one search, one purpose, one day): count them as text, parse each kind once.
    for line, times in Counter(lines.split(b"\n")).items():
        day, _, rest = line.partition(b" ")
        purpose, _, n = rest.rpartition(b" ")
        if len(day) == 10 and purpose and n.isdigit():
            counts[(day.decode(), purpose.decode(errors="replace"))] += int(n) * times
        elif line:
            unreadable += times
    if unreadable:
        log.warning("journal_counts_unreadable_lines", lines=unreadable)
    return counts


def _fresh_file(path: Path, generation: int) -> int:
    """An empty counts file of ``generation``, open for appending, at ``path`` (renamed into place once folded)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
    header = HEADER + b"%d\n" % generation
    try:
        if os.write(fd, header) != len(header):
            raise OSError(f"short write to {path.name}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read(fd: int, offset: int) -> bytes:
    chunks = []
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
