"""``signpost node check-source``, run as an authority's IT team would: a subprocess against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.sourcedb import SourceDB, create_database

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Kx7-check-source-pw-4410"


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def source_db(request: pytest.FixtureRequest) -> Iterator[SourceDB]:
    yield from create_database(request.param)


def check(config: Path, command: str = "check-source", **env: str) -> subprocess.CompletedProcess[str]:
    """``signpost node <command> --config F`` as a subprocess running this worktree's code."""
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **env}
    return subprocess.run(
        [sys.executable, "-m", "signpost.cli", "node", command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=ROOT,
    )


def test_all_rows_good_exits_0(source_db: SourceDB, tmp_path: Path) -> None:
    url = source_db.reader(SECRET)
    config = source_db.toml(
        tmp_path / "node.toml", url=url, extra='password_env = "CMS_PW"', where="person_id NOT IN ('P4', 'P5')"
    )
    result = check(config, CMS_PW=SECRET)
    assert result.returncode == 0, result.stderr
    assert "rows: 6 read, 6 accepted (4 records), 0 rejected" in result.stdout
    assert "(read-only)" in result.stdout and SECRET not in result.stdout + result.stderr


def test_some_rows_rejected_exits_3_naming_row_and_column_only(source_db: SourceDB, tmp_path: Path) -> None:
    result = check(source_db.toml(tmp_path / "node.toml"))
    assert result.returncode == 3, result.stderr
    assert "rows: 8 read, 6 accepted (4 records), 2 rejected" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("row ")]
    assert sorted(line.split(": ", 1)[1].split(":")[0] for line in lines) == ["nhs_number", "sex"]
    assert any("(record_id P4): sex: must be M, F or U" in line for line in lines)
    for value in ("Isla", "Brown", "Leo", "Green", "1234567880", "2015-01-30", "2013-05-05"):
        assert value not in result.stdout + result.stderr


def test_a_missing_column_exits_1_with_one_sentence(source_db: SourceDB, tmp_path: Path) -> None:
    from tests.node.sourcedb import MAPPING

    config = source_db.toml(tmp_path / "node.toml", columns={**MAPPING, "given_name": "forename_x"})
    result = check(config)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: source.columns.given_name: the query returns no column 'forename_x'"


def test_bad_credentials_exit_1_without_the_password(source_db: SourceDB, tmp_path: Path) -> None:
    if source_db.backend == "postgresql":
        pytest.skip("the local PostgreSQL trusts every local login, so no password can be wrong there")
    url = source_db.reader(SECRET)
    (tmp_path / "pw").write_text("not-" + SECRET, encoding="utf-8")
    result = check(source_db.toml(tmp_path / "node.toml", url=url, extra='password_file = "pw"'))
    assert result.returncode == 1
    assert result.stderr.startswith("error: source.url: the database is unavailable (")
    assert "Access denied" in result.stderr and SECRET not in result.stdout + result.stderr


def test_no_source_table_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('listen = "127.0.0.1:0"\n', encoding="utf-8")
    result = check(config)
    assert result.returncode == 1 and "no [source] table" in result.stderr
