"""The node's journal on its own: a batch is one transaction, reviews use the index, old journals still open."""

from __future__ import annotations

import os
import sqlite3

import pytest

from node.errors import StoreError
from node.journal import Journal
from protos.signpost.v1 import node_pb2


def _request(search_id: str) -> node_pb2.MatchRequest:
    return node_pb2.MatchRequest(
        search_id=search_id,
        purpose=node_pb2.Purpose(code="child-protection-enquiry", justification="Case 2291"),
        requester=node_pb2.Requester(
            user_id="p1", name="P One", organisation="Leeds", role="practitioner", email="p1@example.org"
        ),
    )


def _count(journal: Journal) -> int:
    """Searches recorded: rows in full (matches, alerts) and those only counted (found nothing)."""
    rows = int(journal._db.execute("SELECT count(*) FROM journal").fetchone()[0])
    return rows + sum(n for _, _, n in journal.search_counts())


def test_a_batch_is_committed_whole_or_not_at_all(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.record_many([(_request("s1"), [("none", None, None)])])
    # The third row breaks the kind CHECK: the two good rows of the same batch must not be kept.
    batch = [
        (_request("s2"), [("match", "r1", "match")]),
        (_request("s3"), [("none", None, None)]),
        (_request("s4"), [("bogus", None, None)]),
    ]
    with pytest.raises(StoreError):
        journal.record_many(batch)
    assert _count(journal) == 1
    journal.record_many(batch[:2])  # and the connection is usable afterwards
    assert _count(journal) == 3
    assert [row.search_id for row in journal.access_log()] == ["s2"]


def test_a_batch_is_one_commit(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    commits = []
    journal._db.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    batch = [(_request(f"s{i}"), [("none", None, None)]) for i in range(4)]
    journal.record_many([*batch, (_request("s4"), [("match", "r1", "match")])])
    assert commits == ["COMMIT"]
    assert _count(journal) == 5


def test_a_batch_that_found_nothing_is_one_write_to_the_counts_file_and_no_statement(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.record_many([(_request("first"), [])])  # the first takes the counts file (a fold: statements)
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    writes: list[bytes] = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))
    journal.record_many([(_request(f"s{i}"), [("none", None, None)]) for i in range(5)])
    monkeypatch.undo()
    assert statements == [] and len(writes) == 1
    assert writes[0].endswith(b" child-protection-enquiry 5\n")  # a day, a purpose and a number: nothing else
    assert journal.search_counts()[0][2] == 6


@pytest.mark.parametrize("query", ["alerts", "access_log"])
def test_reviews_use_the_index_not_a_scan_of_every_search(tmp_path, query):
    journal = Journal(tmp_path / "journal.sqlite3")
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    getattr(journal, query)()
    [select] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    plan = " ".join(
        str(row[3]) for row in journal._db.execute("EXPLAIN QUERY PLAN " + select.replace("?", "''"))
    )  # the traced text has its values bound already
    assert "journal_reviewed_kind_time" in plan, plan


def test_a_journal_from_an_earlier_version_opens_and_keeps_its_rows(tmp_path):
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, search_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('none', 'match', 'alert')), record_id TEXT, band TEXT,
            requester_id TEXT NOT NULL, requester_name TEXT NOT NULL, requester_organisation TEXT NOT NULL,
            requester_role TEXT NOT NULL, requester_email TEXT NOT NULL, purpose_code TEXT NOT NULL,
            justification TEXT NOT NULL, acknowledged_at TEXT, acknowledged_by TEXT);
        CREATE INDEX journal_kind_time ON journal (kind, time);
        INSERT INTO journal (time, search_id, kind, record_id, band, requester_id, requester_name,
            requester_organisation, requester_role, requester_email, purpose_code, justification)
            VALUES ('2026-01-01T00:00:00+00:00', 'old', 'alert', 'r9', 'match', 'p1', 'P One', 'Leeds',
                    'practitioner', 'p1@example.org', 'missing-child', 'Old search');
    """)
    old.commit()
    old.close()
    journal = Journal(path)
    journal.record_many([(_request("new"), [("alert", "r1", "possible")])])
    assert [row.search_id for row in journal.alerts()] == ["new", "old"]
    indexes = {r[0] for r in journal._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "journal_kind_time" not in indexes and "journal_reviewed_kind_time" in indexes


class _CommitFails:
    """The journal's connection, except that COMMIT fails as a full or broken disk would make it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def test_a_failed_commit_names_its_cause_and_leaves_no_transaction_open(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    real = journal._db
    journal._db = _CommitFails(real)  # type: ignore[assignment]
    with pytest.raises(StoreError, match="disk I/O error"):
        journal.record_many([(_request("lost"), [("match", "r1", "match")])])
    journal._db = real
    assert not real.in_transaction
    journal.record_many([(_request("kept"), [("alert", "r2", "match")])])
    assert [row.search_id for row in journal.alerts()] == ["kept"]
    assert journal.acknowledge(journal.alerts()[0].id, "officer@LEEDS")
    assert Journal(tmp_path / "journal.sqlite3").alerts() == []  # the acknowledgement was committed
