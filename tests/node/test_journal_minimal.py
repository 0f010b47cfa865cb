"""A node journals a search in full only when it matched or raised an alert; the rest are counted.

And journal rows older than the retention period are deleted, except alerts nobody has seen yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from node.journal import Journal
from node.retention import JournalRetention
from protos.signpost.v1 import node_pb2

JUSTIFICATION = "Amelia Smith seen at Leeds General with a broken arm"


def _request(search_id: str, purpose: str = "missing-child") -> node_pb2.MatchRequest:
    return node_pb2.MatchRequest(
        search_id=search_id,
        purpose=node_pb2.Purpose(code=purpose, justification=JUSTIFICATION),
        requester=node_pb2.Requester(
            user_id="p1", name="Pat Practitioner", organisation="Leeds", role="practitioner", email="pat@example.org"
        ),
    )


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def _file_bytes(journal: Journal, path) -> bytes:
    journal._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_a_search_that_found_nothing_keeps_only_a_count(tmp_path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path, clock=Clock(dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.UTC)))
    journal.record_many(
        [
            (_request("s1"), []),
            (_request("s2"), [("none", None, None)]),  # as an earlier service wrote it
            (_request("s3", "child-protection-enquiry"), []),
        ]
    )
    assert journal.access_log() == [] and journal._db.execute("SELECT count(*) FROM journal").fetchone() == (0,)
    assert journal.search_counts() == [
        ("2026-05-01", "child-protection-enquiry", 1),
        ("2026-05-01", "missing-child", 2),
    ]
    stored = _file_bytes(journal, path)
    assert JUSTIFICATION.encode() not in stored and b"Pat Practitioner" not in stored and b"s1" not in stored


def test_a_match_or_an_alert_is_kept_in_full(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.record_many([(_request("m"), [("match", "R1", "match")]), (_request("a"), [("alert", "S1", "possible")])])
    assert [(r.search_id, r.kind, r.requester_name, r.justification) for r in journal.access_log()] == [
        ("a", "alert", "Pat Practitioner", JUSTIFICATION),
        ("m", "match", "Pat Practitioner", JUSTIFICATION),
    ]
    assert journal.search_counts() == []


def test_an_earlier_journals_no_match_rows_become_counts_when_it_opens(tmp_path):
    path = tmp_path / "journal.sqlite3"
    old = Journal(path, clock=Clock(dt.datetime(2026, 1, 2, tzinfo=dt.UTC)))
    old._db.execute(
        "INSERT INTO journal (time, search_id, kind, requester_id, requester_name, requester_organisation, "
        "requester_role, requester_email, purpose_code, justification) "
        "VALUES ('2026-01-02T10:00:00+00:00', 'old', 'none', 'p1', 'Pat', 'Leeds', 'practitioner', 'p@x', "
        "'missing-child', 'Old justification')"
    )
    old.close()
    journal = Journal(path)
    assert journal._db.execute("SELECT count(*) FROM journal").fetchone() == (0,)
    assert journal.search_counts() == [("2026-01-02", "missing-child", 1)]


def _aged_journal(tmp_path) -> tuple[Journal, Clock]:
    clock = Clock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    journal = Journal(tmp_path / "journal.sqlite3", clock=clock)
    journal.record_many(
        [
            (_request("old-match"), [("match", "R1", "match")]),
            (_request("old-alert-seen"), [("alert", "S1", "match")]),
            (_request("old-alert-unseen"), [("alert", "S2", "match")]),
            (_request("old-none"), []),
        ]
    )
    seen = next(r for r in journal.alerts() if r.search_id == "old-alert-seen")
    assert journal.acknowledge(seen.id, "officer@LEEDS")
    clock.at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    journal.record_many([(_request("new-match"), [("match", "R1", "match")]), (_request("new-none"), [])])
    return journal, clock


def test_rows_older_than_the_retention_period_are_deleted_but_unseen_alerts_are_kept(tmp_path):
    journal, _ = _aged_journal(tmp_path)
    assert journal.expire(keep_days=200) == 3  # two rows and one day's count
    assert sorted(r.search_id for r in journal.access_log()) == ["new-match", "old-alert-unseen"]
    assert journal.search_counts() == [("2026-01-01", "missing-child", 1)]
    assert journal.expire(keep_days=200) == 0


def test_rows_within_the_retention_period_are_kept(tmp_path):
    journal, _ = _aged_journal(tmp_path)
    assert journal.expire(keep_days=400) == 0
    assert len(journal.access_log()) == 4


async def test_the_nodes_background_loop_applies_the_retention_period(tmp_path):
    journal, _ = _aged_journal(tmp_path)
    retention = JournalRetention(journal, keep_days=200, interval=0.01)
    retention.start()
    try:
        async with asyncio.timeout(30):
            while len(journal.access_log()) != 2:
                await asyncio.sleep(0.01)
    finally:
        await retention.stop()
    assert sorted(r.search_id for r in journal.access_log()) == ["new-match", "old-alert-unseen"]


NODE = 'store = "s.sqlite3"\nbroker_public_keys = ["k.pub"]\n[authority]\ncode = "LEEDS"\nname = "Leeds"\n'
NODE += '[tls]\nca = "a"\ncert = "b"\nkey = "c"\n'


def test_the_retention_period_is_configurable_and_checked(tmp_path):
    import pytest

    from core.config import ConfigError
    from node.config import JOURNAL_DAYS, load_node_config

    path = tmp_path / "node.toml"
    path.write_text(NODE)
    assert load_node_config(path, {}).journal_days == JOURNAL_DAYS == 400
    path.write_text(NODE + "[retention]\njournal_days = 30\n")
    assert load_node_config(path, {}).journal_days == 30
    path.write_text(NODE + "[retention]\njournal_days = 0\n")
    with pytest.raises(ConfigError, match=r"retention\.journal_days"):
        load_node_config(path, {})
