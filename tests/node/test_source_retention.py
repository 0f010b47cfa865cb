"""Retention over a database source: what ended more than ``disclose_ended_years`` ago is never stored, a
record that expires at source leaves with the incremental load that fetched it, and check-source says how
much would go. Real PostgreSQL and MariaDB (tests/node/sourcedb.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.policy import disclosure_cutoff
from node.source_sync import SourceSync
from node.store import RecordStore
from tests.node.sourcedb import SourceDB, create_database
from tests.node.test_source_check import check

SEVEN_YEARS_AGO = (
    dt.date.fromisoformat(disclosure_cutoff(dt.datetime.now(dt.UTC).date(), 7)) - dt.timedelta(days=1)
).isoformat()


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def source_db(request: pytest.FixtureRequest) -> Iterator[SourceDB]:
    db = next(gen := create_database(request.param))
    # P7: known only through an involvement that ended seven years ago.
    db.execute(
        "INSERT INTO people (person_id, forename, surname, dob, sex_code, updated_at) "
        "VALUES ('P7', 'Freya', 'Hughes', '2009-08-30', 2, '2026-01-01 00:00:00')",
        "INSERT INTO involvements VALUES (20, 'P7', 1, '2011-01-01', :ended, 'N')",
        ended=SEVEN_YEARS_AGO,
    )
    yield db
    next(gen, None)


def records(store: RecordStore) -> dict[str, list[str]]:
    return {r.record_id: [i.involvement_end for i in r.involvements] for r in store.records()}


async def test_a_load_leaves_out_what_ended_long_ago_and_an_expiry_at_source_removes_the_record(
    source_db: SourceDB, tmp_path: Path
) -> None:
    store = RecordStore(tmp_path / "leeds.sqlite3")
    seen: list[tuple[str, str]] = []
    config = source_db.config(change_column="updated_at", full_refresh_seconds=3600)
    sync = SourceSync(config, store, disclose_ended_years=6, observe=lambda kind, outcome: seen.append((kind, outcome)))
    try:
        assert await sync.sync() is True
        held = records(store)
        assert "P7" not in held and set(held) == {"P1", "P2", "P3", "P6"}
        assert sorted(held["P1"]) == ["", "2021-12-20"]  # five years ago: still disclosed
        # P2's only involvement is closed, back-dated seven years: the incremental load that fetches P2 removes it.
        source_db.execute(
            "UPDATE involvements SET start_date = '2015-01-01', end_date = :ended WHERE person_id = 'P2'",
            "UPDATE people SET updated_at = '2031-01-01 00:00:00' WHERE person_id = 'P2'",
            ended=SEVEN_YEARS_AGO,
        )
        try:
            assert await sync.sync() is True
            assert set(records(store)) == {"P1", "P3", "P6"}
        finally:
            source_db.execute(
                "UPDATE involvements SET start_date = '2023-02-01', end_date = NULL WHERE person_id = 'P2'"
            )
        assert seen == [("full", "ok"), ("incremental", "ok")]
        # Without retention (a NodeConfig built in code) the same source loads everything.
        everything = SourceSync(config, store)
        assert await everything.sync(full=True) is True
        assert {"P2", "P7"} <= set(records(store))
    finally:
        store.close()


def test_check_source_says_how_many_rows_retention_would_leave_out(source_db: SourceDB, tmp_path: Path) -> None:
    done = check(source_db.toml(tmp_path / "node.toml"))
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 3, err  # the two bad rows of sourcedb; expired rows are not errors
    assert "1 of the accepted rows ended more than 6 years ago" in out
    assert "Freya" not in out + err and "Hughes" not in out + err
    toml = tmp_path / "node.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "[retention]\ndisclose_ended_years = 10\n", encoding="utf-8")
    done = check(toml)
    assert done.returncode == 3 and "ended more than" not in done.stdout
