"""Reading records from an authority's own database ([source]) on real PostgreSQL and MariaDB servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from core.config import ConfigError
from node.config import load_source_config
from node.errors import SourceUnavailable, SourceUnusable
from node.source import engine_url, read_source
from tests.conftest import unavailable
from tests.node.sourcedb import BAD_ROWS, GOOD_RECORDS, SourceDB, create_database


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def source_db(request: pytest.FixtureRequest) -> Iterator[SourceDB]:
    yield from create_database(request.param)


def test_full_load_maps_columns_and_values(source_db: SourceDB) -> None:
    read = read_source(source_db.config())
    by_id = {r.record_id: r for r in read.records}
    assert set(by_id) == GOOD_RECORDS
    amelia = by_id["P1"]
    assert (amelia.given_name, amelia.family_name, amelia.date_of_birth) == ("Amelia", "Smith", "2014-03-09")
    assert amelia.sex == "F" and amelia.postcode == "LS6 2AB" and amelia.address == "12 Oak Road, Leeds"
    assert amelia.other_names == ("Amy Smith", "Amelia Jones")
    assert amelia.nhs_number == "9434765919"
    assert {i.service for i in amelia.involvements} == {"Social care", "Early help"}
    ended = next(i for i in amelia.involvements if i.service == "Early help")
    assert (ended.involvement_start, ended.involvement_end) == ("2021-06-01", "2021-12-20")
    assert by_id["P2"].sex == "M" and by_id["P2"].postcode == "LS7 3CD"
    assert by_id["P3"].shielded and not amelia.shielded
    assert [i.sensitive for i in by_id["P6"].involvements] == [True, False] or [
        i.sensitive for i in by_id["P6"].involvements
    ] == [False, True]


def test_bad_rows_reported_by_key_and_column_never_value(source_db: SourceDB) -> None:
    read = read_source(source_db.config())
    assert read.report.rows_rejected == len(BAD_ROWS)
    assert {e.key: e.reason.split(":")[0] for e in read.report.errors} == BAD_ROWS
    reasons = " ".join(e.reason for e in read.report.errors)
    for value in ("Isla", "Brown", "Leo", "Green", "1234567880", "2015-01-30", "7"):
        assert value not in reasons
    assert all(e.line >= 1 for e in read.report.errors)
    assert read.rows_read == read.report.rows_loaded + 2


def test_date_format_and_a_view_by_name(source_db: SourceDB) -> None:
    # Dates as text in the source's own format are read with source.date_format.
    text_dob = "TO_CHAR(dob, 'DD/MM/YYYY')" if source_db.backend == "postgresql" else "DATE_FORMAT(dob, '%d/%m/%Y')"
    config = source_db.config(
        query=f"SELECT v.*, {text_dob} AS dob_text FROM signpost_children_v v",
        columns={**source_db.config().columns, "date_of_birth": "dob_text"},
        date_format="%d/%m/%Y",
    )
    read = read_source(config)
    assert {r.record_id: r.date_of_birth for r in read.records}["P1"] == "2014-03-09"
    wrong = source_db.config(
        query=f"SELECT v.*, {text_dob} AS dob_text FROM signpost_children_v v",
        columns={**source_db.config().columns, "date_of_birth": "dob_text"},
        date_format="%Y-%m-%d",
    )
    read = read_source(wrong)
    assert not read.records
    assert {e.reason for e in read.report.errors} == {"date_of_birth: not a date in source.date_format"}


NAMES_QUERY = "SELECT person_id, full_name FROM person_names ORDER BY name_id"


def test_other_names_from_a_separate_query(source_db: SourceDB, tmp_path: Path) -> None:
    """source.other_names_query: a table of names, one a row, added to the other_names column's (no repeats)."""
    config = load_source_config(
        source_db.toml(tmp_path / "node.toml", extra=f'other_names_query = "{NAMES_QUERY}"'), {}
    )
    assert config.other_names_query == NAMES_QUERY
    by_id = {r.record_id: r for r in read_source(config).records}
    assert by_id["P1"].other_names == ("Amy Smith", "Amelia Jones", "Amelia Brown")
    assert by_id["P2"].other_names == ("Ollie Carter", "Olly Khan")
    assert by_id["P3"].other_names == () and by_id["P6"].other_names == ()
    assert set(by_id) == GOOD_RECORDS  # bad rows are still bad; the names do not make records


def test_other_names_in_an_incremental_read_are_the_changed_records_only(source_db: SourceDB) -> None:
    config = source_db.config(other_names_query=NAMES_QUERY, change_column="updated_at")
    full = read_source(config)
    changes = full.changes_after(config, full.watermark)
    assert changes is not None
    source_db.execute(
        "INSERT INTO person_names VALUES (90, 'P2', 'alias', 'Oli Khan')",
        "UPDATE people SET updated_at = updated_at + INTERVAL '1' DAY WHERE person_id = 'P2'",
    )
    try:
        changed = read_source(config, changes=changes)
        assert [(r.record_id, r.other_names) for r in changed.records] == [
            ("P2", ("Ollie Carter", "Olly Khan", "Oli Khan"))
        ]
    finally:
        source_db.execute("DELETE FROM person_names WHERE name_id = 90")


def test_an_other_names_query_that_does_not_fit_names_its_key(source_db: SourceDB) -> None:
    with pytest.raises(SourceUnusable) as caught:
        read_source(source_db.config(other_names_query="SELECT person_id FROM person_names"))
    assert str(caught.value) == ("source.other_names_query: must return two columns, the record id and an other name")
    with pytest.raises(SourceUnusable) as caught:
        read_source(source_db.config(other_names_query="SELECT person_id, full_name FROM no_such_names"))
    assert str(caught.value).startswith("source.other_names_query: the database refused the query (")


def test_a_mapped_column_the_query_lacks_is_one_sentence_naming_the_key(source_db: SourceDB) -> None:
    config = source_db.config(columns={**source_db.config().columns, "given_name": "first_name"})
    with pytest.raises(SourceUnusable) as caught:
        read_source(config)
    assert str(caught.value) == "source.columns.given_name: the query returns no column 'first_name'"


def test_a_failing_query_names_the_query_key(source_db: SourceDB) -> None:
    with pytest.raises(SourceUnusable) as caught:
        read_source(source_db.config(query="SELECT * FROM no_such_view"))
    message = str(caught.value)
    assert message.startswith("source.query: the database refused the query (")
    assert "no_such_view" in message and "\n" not in message


def test_the_session_is_read_only(source_db: SourceDB) -> None:
    # A query that tries to write is refused by the server: the node can never change the source.
    # (MariaDB's read-only transactions still allow DDL: there the reader account's SELECT-only grant
    # is what stops it, as the README says.)
    with pytest.raises(SourceUnusable) as caught:
        read_source(source_db.config(query="DELETE FROM people"))
    assert caught.value.args[0].startswith("source.query: ")
    if source_db.backend == "postgresql":
        with pytest.raises(SourceUnusable):
            read_source(source_db.config(query="CREATE TABLE signpost_wrote_here (x INTEGER)"))
    assert {r.record_id for r in read_source(source_db.config()).records} == GOOD_RECORDS


def test_password_never_in_errors_logs_or_repr(source_db: SourceDB, tmp_path: Path) -> None:
    secret = "Zq-not-the-password-9817"
    (tmp_path / "pw").write_text(secret + "\n", encoding="utf-8")
    config_path = source_db.toml(tmp_path / "node.toml", extra='password_file = "pw"')
    config = load_source_config(config_path, {})
    assert config.password == secret and secret not in repr(config)
    assert secret in engine_url(config).render_as_string(hide_password=False)
    # A port nothing listens on: the connection fails, and neither the error nor a log shows the password.
    down = load_source_config(
        config_path, {"SIGNPOST_NODE_SOURCE__URL": source_db.url.replace(":5432", ":1").replace(":3306", ":1")}
    )
    with structlog.testing.capture_logs() as logs, pytest.raises(SourceUnavailable) as caught:
        read_source(down)
    assert str(caught.value).startswith("source.url: the database is unavailable")
    assert secret not in str(caught.value) and secret not in repr(caught.value) and secret not in str(logs)


def test_a_password_in_the_url_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[source]\nurl = "postgresql://u:hunter2@db/cms"\nview = "v"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_source_config(path, {})
    assert "source.url" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_password_key_in_the_toml_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[source]\nurl = "postgresql://u@db/cms"\nview = "v"\npassword = "hunter2"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_source_config(path, {})
    assert "'source.password'" in str(caught.value) and "hunter2" not in str(caught.value)


def test_password_env_must_be_set(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[source]\nurl = "postgresql://u@db/cms"\nview = "v"\npassword_env = "CMS_PW"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"source\.password_env"):
        load_source_config(path, {})
    assert load_source_config(path, {"CMS_PW": "x"}).password == "x"


def test_plain_urls_use_the_installed_drivers(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    for plain, driver in [
        ("postgresql://u@db/cms", "postgresql+psycopg"),
        ("postgres://u@db/cms", "postgresql+psycopg"),
        ("mysql://u@db/cms", "mysql+pymysql"),
        ("mariadb://u@db/cms", "mariadb+pymysql"),
        ("mssql://u@dsn", "mssql+pyodbc"),
        ("postgresql+psycopg2://u@db/cms", "postgresql+psycopg2"),
    ]:
        path.write_text(f'[source]\nurl = "{plain}"\nview = "v"\n', encoding="utf-8")
        assert engine_url(load_source_config(path, {})).drivername == driver


def test_sql_server_driver_imports() -> None:
    """SQL Server is documented (mssql+pyodbc, the `mssql` extra); its driver must at least import here."""
    try:
        import pyodbc  # noqa: F401
    except ImportError as exc:
        unavailable(
            f"pyodbc cannot import (unixODBC's libodbc missing, or the mssql extra not installed): {exc}",
            "SIGNPOST_REQUIRE_ODBC",
        )
    import sqlalchemy as sa

    from node.config import SourceConfig
    from node.source import create_source_engine

    engine = create_source_engine(SourceConfig(url="mssql://reader@cms_dsn", query="SELECT 1"))
    assert isinstance(engine, sa.Engine) and engine.dialect.driver == "pyodbc"


def test_sql_server_incremental_read_by_a_rowversion_needs_no_driver_to_be_written() -> None:
    """The incremental SQL a node sends SQL Server (change_column a rowversion, as the README maps it), in
    SQL Server's own dialect: identifiers in brackets, the watermark bound, the view in a derived table.
    No server here (nor libodbc): what is checked is the statement, which needs only SQLAlchemy's dialect."""
    from types import SimpleNamespace

    from sqlalchemy.dialects import mssql

    from node.config import SourceConfig
    from node.source import Changes, _statement

    config = SourceConfig(
        url="mssql://reader@cms_dsn", query="SELECT * FROM dbo.signpost_children_v;", change_column="RowVersion"
    )
    dialect = mssql.dialect()
    statement = _statement(config, Changes("PersonID", "RowVersion", 2_000_001), SimpleNamespace(dialect=dialect))
    compiled = statement.compile(dialect=dialect)
    assert str(compiled) == (
        "SELECT * FROM (SELECT * FROM dbo.signpost_children_v) signpost_rows WHERE [PersonID] IN "
        "(SELECT [PersonID] FROM (SELECT * FROM dbo.signpost_children_v) signpost_changed "
        "WHERE [RowVersion] > :signpost_since)"
    )
    assert compiled.params == {"signpost_since": 2_000_001}


def test_the_deploy_example_loads(tmp_path: Path) -> None:
    from node.config import load_node_config

    example = Path(__file__).resolve().parents[2] / "deploy" / "config" / "node-source.toml"
    (tmp_path / "pw").write_text("example", encoding="utf-8")
    env = {"SIGNPOST_NODE_SOURCE__PASSWORD_FILE": str(tmp_path / "pw")}
    config = load_node_config(example, env).source
    assert config is not None and config == load_source_config(example, env)
    assert config.query == "SELECT * FROM signpost_children_v" and config.password == "example"
    assert engine_url(config).drivername == "postgresql+psycopg"
    assert config.values["shielded"] == {"Y": "true", "N": "false"} and config.columns["record_id"] == "person_id"
