"""Counts of searches that found nothing: appended to a file, folded into SQLite, never lost or counted twice.

Real files and real SQLite throughout. The crashes are real too: a child process is killed (SIGKILL)
at the point named, and a fresh journal, as a restarted node would open it, counts what it finds.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from node import search_counts
from node.errors import StoreError
from node.journal import Journal
from protos.signpost.v1 import node_pb2


def _request(purpose: str = "missing-child") -> node_pb2.MatchRequest:
    return node_pb2.MatchRequest(search_id="s", purpose=node_pb2.Purpose(code=purpose, justification="Case 2291"))


def _total(journal: Journal) -> int:
    return sum(n for _, _, n in journal.search_counts())


def _found_nothing(journal: Journal, times: int) -> None:
    for _ in range(times):
        journal.record_many([(_request(), [])])


# A child process: a journal whose file folds every 7 lines and rotates past 300 bytes (every 14
# counts), so a kill at a random moment often lands in a fold or a rotation. It prints a line after
# each search it has journalled (the searches a node would have answered).
CHILD = """
import os, sys, time
from pathlib import Path
import node.search_counts as sc
from node.journal import Journal
from protos.signpost.v1 import node_pb2
sc.FOLD_LINES, sc.ROTATE_BYTES = 7, 300
journal = Journal(Path(sys.argv[1]))
request = node_pb2.MatchRequest(search_id="s", purpose=node_pb2.Purpose(code="missing-child"))
{setup}
for i in range(int(sys.argv[2])):
    journal.record_many([(request, [])])
    print("journalled", flush=True)
{then}
"""


def _child(path: Path, searches: int, *, setup: str = "", then: str = "") -> subprocess.Popen[str]:
    code = CHILD.format(setup=setup, then=then)
    return subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(searches)], stdout=subprocess.PIPE, text=True, env=os.environ
    )


def _wait_for(child: subprocess.Popen[str], marker: str) -> int:
    """Read the child's lines until ``marker``; how many searches it had journalled by then."""
    assert child.stdout is not None
    journalled = 0
    for line in child.stdout:
        if line.strip() == marker:
            return journalled
        journalled += line.strip() == "journalled"
    raise AssertionError(f"the child ended before {marker!r} (exit {child.wait()})")


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


# Stop the child, as if frozen, at one point of a fold: killed there, it never gets further.
PAUSE_AT_COMMIT = """
def at_commit(sql):
    if sql == "COMMIT" and pause:
        print("paused", flush=True)
        time.sleep(600)
journal._db.set_trace_callback(at_commit)
"""
PAUSE_AT_RENAME = """
real_replace, renames = os.replace, []
def replace(*args):
    renames.append(args)
    if len(renames) > 1:  # the first put the first file in place, before any count
        print("paused", flush=True)
        time.sleep(600)
    real_replace(*args)
os.replace = replace
"""


def test_killed_before_a_folds_commit_nothing_is_lost(tmp_path):
    path = tmp_path / "journal.sqlite3"
    child = _child(path, 40, setup="pause = False" + PAUSE_AT_COMMIT, then="pause = True\njournal._counts.fold()")
    # FOLD_LINES is 7: the child folded and rotated several times before the fold it is killed in.
    assert _wait_for(child, "paused") == 40
    _kill(child)
    assert _total(Journal(path)) == 40


def test_killed_between_a_rotations_commit_and_its_rename_nothing_is_counted_twice(tmp_path):
    path = tmp_path / "journal.sqlite3"
    child = _child(path, 30, setup=PAUSE_AT_RENAME)  # the first rotation past 300 bytes pauses at its rename
    journalled = _wait_for(child, "paused")
    _kill(child)
    assert journalled == 13  # the second fold (at 14 lines) passed 300 bytes
    journal = Journal(path)
    # The rotation's fold was committed, and the file still in place holds the same lines again.
    assert path.with_name(path.name + "-counts").stat().st_size > 300
    assert _total(journal) == journalled + 1  # the search whose call was folding: written, not yet answered
    _found_nothing(journal, 5)  # the restarted node takes the file over: the stale one is not folded again
    assert _total(journal) == journalled + 6
    journal.close()
    assert _total(Journal(path)) == journalled + 6


def test_killed_after_a_fold_the_lines_it_folded_are_not_read_again(tmp_path):
    path = tmp_path / "journal.sqlite3"
    child = _child(path, 5, then="journal._counts.fold()\nfor _ in range(3): journal.record_many([(request, [])])\n"
                   "print('done', flush=True)\ntime.sleep(600)")  # fmt: skip
    _wait_for(child, "done")
    _kill(child)
    assert _total(Journal(path)) == 8


def test_killed_at_random_moments_every_answered_search_is_counted_once(tmp_path):
    path = tmp_path / "journal.sqlite3"
    answered = in_flight = 0
    for round_ in range(12):
        child = _child(path, 10_000)
        assert child.stdout is not None
        seen = 0
        while seen < 20 + 37 * round_:  # kills land at different points of the fold cycle
            # Not every line is one: a kill can cut a write short at a page boundary, and the next
            # child logs the half line it could not read.
            line = child.stdout.readline()
            assert line, f"the child ended (exit {child.wait()})"
            seen += line.strip() == "journalled"
        _kill(child)
        answered += seen + sum(line.strip() == "journalled" for line in child.stdout)
        in_flight += 1  # at most one search per kill was written and not yet answered
    total = _total(Journal(path))
    assert answered <= total <= answered + in_flight


def test_a_failed_rename_after_the_commit_loses_and_doubles_nothing(tmp_path, monkeypatch):
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    _found_nothing(journal, 12)
    monkeypatch.setattr(search_counts, "ROTATE_BYTES", 1)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(StoreError, match="Input/output error"):
        journal._counts.fold()
    monkeypatch.undo()
    assert _total(journal) == 12  # the commit took them; the file left in place is a generation behind
    _found_nothing(journal, 3)  # the next count rotates again before it is written
    assert _total(journal) == 15
    journal.close()
    assert _total(Journal(path)) == 15


def test_a_second_process_reading_while_the_node_folds_sees_counts_only_grow(tmp_path, monkeypatch):
    monkeypatch.setattr(search_counts, "FOLD_LINES", 5)
    monkeypatch.setattr(search_counts, "ROTATE_BYTES", 200)
    path, stop = tmp_path / "journal.sqlite3", tmp_path / "stop"
    journal = Journal(path)
    _found_nothing(journal, 1)  # this process is the writer (the node); the reader below only reads
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from node.journal import Journal\n"
            "journal, stop = Journal(Path(sys.argv[1])), Path(sys.argv[2])\n"
            "while not stop.exists(): print(sum(n for _, _, n in journal.search_counts()), flush=True)\n"
            "print('final', sum(n for _, _, n in journal.search_counts()), flush=True)",
            str(path),
            str(stop),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    reader.stdout.readline()  # reading has started
    deadline = time.monotonic() + 3
    written = 1
    while time.monotonic() < deadline:
        _found_nothing(journal, 1)
        written += 1
    stop.touch()
    out, _ = reader.communicate(timeout=60)
    *seen, final = out.split("\n")[:-1]
    readings = [int(n) for n in seen]
    assert final == f"final {written}"
    # Never a count lost and then found again, never one too many.
    assert readings == sorted(readings) and readings[-1] <= written
    assert len(set(readings)) > 10, "the reader should have read while folds and rotations went on"
    assert _total(journal) == written


def test_reading_in_the_node_while_it_journals_from_another_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(search_counts, "FOLD_LINES", 3)
    monkeypatch.setattr(search_counts, "ROTATE_BYTES", 150)
    journal = Journal(tmp_path / "journal.sqlite3")
    readings: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            readings.append(_total(journal))

    reader = threading.Thread(target=read)
    reader.start()
    _found_nothing(journal, 2000)
    done.set()
    reader.join()
    assert readings == sorted(readings) and readings[-1] <= 2000
    assert _total(journal) == 2000


def test_a_second_journal_on_the_same_file_upserts_and_both_are_counted(tmp_path):
    path = tmp_path / "journal.sqlite3"
    node = Journal(path)
    _found_nothing(node, 4)
    other = Journal(path)  # e.g. a second node started by mistake: it must not append to the node's file
    statements: list[str] = []
    other._db.set_trace_callback(statements.append)
    _found_nothing(other, 3)
    assert sum(s.startswith("INSERT INTO search_counts ") for s in statements) == 3
    assert _total(other) == _total(node) == 7
    node.close()
    other.close()
    assert _total(Journal(path)) == 7


def test_half_a_line_left_by_a_killed_writer_costs_only_that_line(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    _found_nothing(journal, 2)
    journal._counts.fold()
    with open(path.with_name(path.name + "-counts"), "ab") as counts:
        counts.write(b"2026-05-01 missing-ch")  # a write cut short (a full disk; a power cut)
    assert _total(journal) == 2
    os.close(journal._counts._lock_fd)  # the writer dies without folding (its lock goes with it)
    restarted = Journal(path)
    _found_nothing(restarted, 3)
    assert _total(restarted) == 5


def test_counts_still_in_the_file_are_expired_with_the_rest(tmp_path):
    class Clock:
        at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

        def __call__(self) -> dt.datetime:
            return self.at

    clock = Clock()
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path, clock=clock)
    _found_nothing(journal, 3)
    clock.at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    _found_nothing(journal, 2)
    assert journal.expire(keep_days=200) == 1  # the old day's count, folded first
    assert journal.search_counts() == [("2026-01-01", "missing-child", 2)]
    journal.close()
    assert Journal(path).search_counts() == [("2026-01-01", "missing-child", 2)]


def test_a_purpose_code_that_would_break_a_line_is_counted_in_sqlite(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3", clock=lambda: dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    _found_nothing(journal, 1)
    journal.record_many([(_request("odd\ncode 9"), [])])
    assert journal.search_counts() == [("2026-05-01", "missing-child", 1), ("2026-05-01", "odd\ncode 9", 1)]


def test_the_files_beside_the_journal_are_private(tmp_path):
    path = tmp_path / "journal.sqlite3"
    _found_nothing(Journal(path), 1)
    for name in ("-counts", "-counts.lock"):
        assert path.with_name(path.name + name).stat().st_mode & 0o777 == 0o600
