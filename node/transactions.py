"""One write transaction on an autocommit SQLite connection, for the journal and its counts file.

In autocommit mode ``with connection`` opens no transaction and ``executemany`` commits each row alone;
BEGIN makes a batch one commit, all or nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from node.errors import StoreError


@contextmanager
def write_transaction(db: sqlite3.Connection, failure: str) -> Iterator[None]:
    """BEGIN, COMMIT, or roll back on any exception; an sqlite3 error becomes ``StoreError("cannot <failure>: …")``."""
    try:
        db.execute("BEGIN")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (a full disk); a failed COMMIT may leave it open,
            # and an open transaction would swallow every later write, acknowledgements included.
            if db.in_transaction:
                db.rollback()
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"cannot {failure}: {exc}") from exc
