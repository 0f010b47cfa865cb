"""Audit first, then fan-out (issue 14, must-have 3): a search is in the log before any node is asked,
its outcome is a second entry with the same search_id, and a stalled audit store refuses the search
within its deadline without asking any node."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from broker.appkeys import ADMISSION, AUDIT, FANOUT
from broker.audit.errors import AuditWriteError
from broker.audit.keys import load_or_create_hmac_key, subject_hashes
from tests.broker.test_audit_broker import CHILD, PURPOSE, leeds


def spy_on_fanout(fed):
    """Record, at the moment each search is sent to the nodes, which audit entries already exist."""
    fanout = fed.server.app[FANOUT]
    real = fanout.search
    seen: list[tuple[str, list[dict]]] = []

    async def search(request, deadline, resign=None):
        logged = [e.entry for e in await fed.server.app[AUDIT].entries()]
        seen.append((request.search_id, logged))
        return await real(request, deadline, resign)

    fanout.search = search  # type: ignore[method-assign]
    return seen


async def entries_for(fed, search_id: str) -> list[dict]:
    return [e.entry for e in await fed.server.app[AUDIT].entries() if e.entry.get("search_id") == search_id]


async def test_the_search_is_committed_to_the_log_before_any_node_is_asked(federation, tmp_path):
    fed = await federation(leeds())
    seen = spy_on_fanout(fed)
    status, answer = await fed.search(CHILD, purpose=PURPOSE)
    assert status == 200 and answer["results"]
    [(search_id, logged_before)] = seen
    assert search_id == answer["search_id"]
    [started] = [e for e in logged_before if e["search_id"] == search_id]
    assert started["outcome"] == "started" and started["purpose"] == PURPOSE
    assert started["actor"]["user_id"] == "practitioner" and len(started["subject_hashes"]) == 3
    assert "results" not in started  # the outcome is not known yet
    started_again, outcome = await entries_for(fed, search_id)
    assert started_again == started
    assert (outcome["status"], outcome["outcome"]) == (200, "answered")
    assert outcome["results"] == {"LEEDS": ["match"]} and sorted(outcome["answered"]) == ["KENT", "LEEDS"]
    assert answer["audit"]["index"] == 1  # the receipt is the outcome entry's
    # An auditor finds the search by the child and by the searcher, both entries linked by search_id.
    key = load_or_create_hmac_key(tmp_path / "subject.key")
    digest = subject_hashes(key, given_name="Philippa", family_name="Quenby-Thistlewood", date_of_birth="2013-10-17")
    found = await fed.server.app[AUDIT].entries(subject_hash=digest[0])
    assert [e.entry["outcome"] for e in found] == ["started", "answered"]
    assert len(await fed.server.app[AUDIT].entries(actor="practitioner")) == 2


async def test_a_write_locked_audit_database_refuses_the_search_in_time_and_asks_no_node(federation, tmp_path):
    """Reproduces the 35-second hang: another connection holds the SQLite audit file's write lock."""
    fed = await federation(leeds(), deadline=1.0)
    seen = spy_on_fanout(fed)
    assert (await fed.search(CHILD, purpose=PURPOSE))[0] == 200  # the store works, then is locked
    locker = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a backup job or a stuck process would
    try:
        # Safety timeout only: sqlite's own busy timeout (30 s) is what the search must not wait for.
        status, body = await asyncio.wait_for(fed.search(CHILD, purpose=PURPOSE), timeout=20)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert status == 503 and body["error"]["code"] == "audit_unavailable"
    assert "results" not in body
    assert len(seen) == 1  # the locked search never reached a node


async def test_an_audit_log_that_cannot_keep_up_lowers_admission(federation, tmp_path):
    """Searches refused because their first entry could not be committed count as congestion: the broker
    then admits fewer at once, instead of letting every search wait out the audit bound and fail."""
    fed = await federation(leeds(), deadline=1.0, max_in_flight=64)
    admission = fed.server.app[ADMISSION]
    assert admission.limit == 64
    locker = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        status, _ = await asyncio.wait_for(fed.search(CHILD, purpose=PURPOSE), timeout=20)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert status == 503
    assert admission.limit < 64 and admission.congested == 1


async def test_an_outcome_that_cannot_be_written_withholds_the_results_but_the_search_is_in_the_log(federation):
    """The attempt the nodes journaled is in the broker's log even when its outcome could not be written."""
    fed = await federation(leeds())
    seen = spy_on_fanout(fed)
    log = fed.server.app[AUDIT]
    real = log.append

    async def outcome_fails(entry):
        if entry.get("outcome") != "started":
            raise AuditWriteError("disk full")
        return await real(entry)

    log.append = outcome_fails  # type: ignore[method-assign]
    status, body = await fed.search(CHILD, purpose=PURPOSE)
    assert status == 503 and body["error"]["code"] == "audit_unavailable" and "results" not in body
    [(search_id, _)] = seen  # the nodes were asked, under this search_id...
    [started] = await entries_for(fed, search_id)  # ...and the broker's log has it
    assert started["outcome"] == "started" and started["actor"]["user_id"] == "practitioner"


async def test_a_lone_surrogate_in_the_justification_is_audited_not_answered_503(federation):
    fed = await federation(leeds())
    raw = json.dumps({"subject": CHILD, "purpose": PURPOSE}).replace("planned", "plan\\ud800ned")
    session = fed.session()
    async with session.post(f"{fed.url}/v1/searches", data=raw, headers={"Content-Type": "application/json"}) as resp:
        status, body = resp.status, await resp.json()
    assert not (status == 503 and body["error"]["code"] == "audit_unavailable"), body
    entries = [e.entry for e in await fed.server.app[AUDIT].entries()]
    assert entries and entries[0]["actor"]["user_id"] == "practitioner"
    assert all("\ud800" not in json.dumps(e, ensure_ascii=False) for e in entries)


def test_the_audit_bound_is_checked_at_start_up_and_defaults_to_a_quarter_of_the_deadline(tmp_path):
    import pytest

    from broker.config import load_broker_config
    from core.config import ConfigError

    path = tmp_path / "broker.toml"
    path.write_text(
        'registry = "r.json"\nassertion_key = "k"\nsearch_deadline_seconds = 2.0\n[tls]\nca="a"\ncert="b"\nkey="c"\n'
    )
    assert load_broker_config(path, {}).audit_timeout == 0.5
    env = {"SIGNPOST_BROKER_AUDIT_TIMEOUT_SECONDS": "1.5"}
    with pytest.raises(ConfigError, match="audit_timeout_seconds' must be at most half of search_deadline_seconds"):
        load_broker_config(path, env)
    assert load_broker_config(path, {"SIGNPOST_BROKER_AUDIT_TIMEOUT_SECONDS": "0.2"}).audit_timeout == 0.2
