"""Reading an authority's records from its own database: the node TOML's ``[source]``.

The authority's IT team points the node at a read-only view or replica and maps its columns to
Signpost's fields once (:class:`node.config.SourceConfig`). Each read runs the configured query in a
read-only transaction, turns every row into a records-CSV-shaped row (column mapping, value
mappings, dates, other names) and hands it to the importer's :class:`node.importer.RecordCollector`,
so a row from a database is validated exactly as a row from a CSV: bad rows are reported (row
number, record id, column, reason) and good rows kept.

This module never writes to the source, and never puts the password or a value from a row in an
error or a log: the driver's own messages are repeated only where they describe the SQL or the
connection (a missing table, a refused connection), with the password scrubbed. Every foreign error
(SQLAlchemy's and the drivers') is translated here, in :func:`_translated`, and nowhere else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from node.config import DATE_FIELDS, SourceConfig
from node.errors import SourceError, SourceUnavailable, SourceUnusable
from node.importer import ImportReport, RecordCollector
from node.records import COLUMNS, REQUIRED, Record

DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "mssql": "mssql+pyodbc",
}
"""The driver a plain URL uses: the ones the project installs (psycopg 3 is a core dependency; PyMySQL is
the ``mysql`` extra, pyodbc the ``mssql`` extra). A URL that names its driver (``postgresql+psycopg2``) keeps it."""

STREAM_ROWS = 5000
"""Rows fetched from the server at a time: a million-row view is streamed, never held as driver rows."""


@dataclass(frozen=True)
class Changes:
    """Ask only for the records with a row changed since an earlier read: that read's column names and the
    highest ``change_column`` value it saw (the watermark)."""

    record_column: str
    change_column: str
    since: object


@dataclass
class SourceRead:
    """What one read of the source gave: the query's columns, the good records, and the report."""

    columns: tuple[str, ...]
    records: list[Record]
    report: ImportReport
    watermark: object = None
    """The highest ``change_column`` value among the rows read (None without a change column or rows)."""
    changes: Changes | None = None
    """Set when this read fetched only changed records (an incremental load)."""

    @property
    def rows_read(self) -> int:
        return self.report.rows_loaded + self.report.rows_rejected

    def changes_after(self, config: SourceConfig, watermark: object) -> Changes | None:
        """What the next incremental read asks for, by the column names this read returned."""
        if not config.change_column or watermark is None:
            return None
        fields = column_positions(config, self.columns)
        change = _find(config.change_column, self.columns)
        assert change is not None  # column_positions checked it
        return Changes(self.columns[fields["record_id"]], self.columns[change], watermark)


def engine_url(config: SourceConfig) -> URL:
    """The configured URL with its driver made explicit and the password (if any) added."""
    url = make_url(config.url)
    if "+" not in url.drivername and url.drivername in DRIVERS:
        url = url.set(drivername=DRIVERS[url.drivername])
    if url.drivername == "postgres+psycopg":  # SQLAlchemy knows PostgreSQL only by its full name
        url = url.set(drivername="postgresql+psycopg")
    return url.set(password=config.password) if config.password else url


def create_source_engine(config: SourceConfig) -> Engine:
    """An engine with no pool: a load every few minutes opens a fresh connection, so a restarted source or
    a rotated password never meets a stale pooled one. Timeouts and read-only-ness are set per backend."""
    url = engine_url(config)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args = {
            "connect_timeout": max(1, int(config.connect_timeout_seconds)),
            "application_name": "signpost-node",
            # Read-only for the whole session, not only the transaction we open: belt and braces.
            "options": "-c default_transaction_read_only=on "
            f"-c statement_timeout={int(config.query_timeout_seconds * 1000)}",
        }
    elif backend in ("mysql", "mariadb"):
        connect_args = {
            "connect_timeout": max(1, int(config.connect_timeout_seconds)),
            "read_timeout": max(1, int(config.query_timeout_seconds)),
        }
    elif backend == "mssql":
        # pyodbc's login timeout; read-only intent is the URL's ApplicationIntent=ReadOnly (see the README).
        connect_args = {"timeout": max(1, int(config.connect_timeout_seconds))}
    try:
        return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (ImportError, sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
        raise SourceUnusable(
            f"source.url: no driver for '{url.drivername}' is installed ({type(exc).__name__}); "
            "install the extra named in the README (signpost[mysql] or signpost[mssql])"
        ) from None


def _begin_read_only(conn: Connection) -> None:
    """Start the transaction read-only where the backend can say so, before the query runs."""
    backend = conn.dialect.name
    if backend == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif backend in ("mysql", "mariadb"):
        conn.exec_driver_sql("START TRANSACTION READ ONLY")


def _scrubbed(text: str, config: SourceConfig) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line.replace(config.password, "***") if config.password else line


# Refusals that drivers report as an OperationalError or InternalError but that no retry will cure:
# PostgreSQL's SQLSTATE 25006 (a write in a read-only transaction) and 42501 (no privilege); MySQL and
# MariaDB's 1792 (the same write), 1142 and 1143 (SELECT denied on a table or a column).
_REFUSALS_SQLSTATE = frozenset({"25006", "42501"})
_REFUSALS_MYSQL = frozenset({1142, 1143, 1792})


def _refusal(orig: BaseException | None) -> bool:
    if getattr(orig, "sqlstate", None) in _REFUSALS_SQLSTATE:
        return True
    args: tuple[object, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _REFUSALS_MYSQL


@contextmanager
def _translated(config: SourceConfig, key: str) -> Iterator[None]:
    """SQLAlchemy's and the drivers' errors, raised inside, as SourceUnusable or SourceUnavailable."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise _source_error(exc, config, key) from None


def _source_error(exc: BaseException, config: SourceConfig, key: str) -> SourceError:
    """SourceUnusable (fix the config) or SourceUnavailable (try again), in one sentence naming ``key``.

    A ProgrammingError is about the SQL (no such table, a syntax error): its text names tables and
    columns, so it is repeated, as is a refusal (see ``_refusal``). A DataError or IntegrityError may
    quote a value from a row, so only its kind is given. Anything else is the connection, a login or a
    timeout: repeated with the password scrubbed.
    """
    orig = getattr(exc, "orig", None)
    if isinstance(exc, sa_exc.ProgrammingError | sa_exc.NotSupportedError) or (
        key != "source.url" and isinstance(exc, sa_exc.DBAPIError) and _refusal(orig)
    ):
        return SourceUnusable(f"{key}: the database refused the query ({_scrubbed(str(orig), config)})")
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return SourceUnusable(f"{key}: the database could not return a value ({type(orig).__name__})")
    detail = _scrubbed(str(orig), config) if isinstance(exc, sa_exc.DBAPIError) else type(exc).__name__
    return SourceUnavailable(f"source.url: the database is unavailable ({detail})")


def _statement(config: SourceConfig, changes: Changes | None, conn: Connection) -> sa.TextClause:
    """The configured query, or (incremental) every row of each record that has a row changed since the watermark.

    Whole records, not only the changed rows: a record's rows replace it in the store, so a record must
    arrive with all its involvements. ``>`` rather than ``>=``, so that a quiet source costs no write and
    no index rebuild; the price is that a transaction committed late with a change value at or below the
    watermark is missed until the next full load (``full_refresh_seconds``), which reconciles everything.
    """
    if changes is None:
        return sa.text(config.query)
    query = config.query.strip().rstrip(";")
    quote = conn.dialect.identifier_preparer.quote
    key, change = quote(changes.record_column), quote(changes.change_column)
    return sa.text(
        f"SELECT * FROM ({query}) signpost_rows WHERE {key} IN "
        f"(SELECT {key} FROM ({query}) signpost_changed WHERE {change} > :signpost_since)"
    ).bindparams(signpost_since=changes.since)


def _other_names(config: SourceConfig, changes: Changes | None, conn: Connection) -> dict[str, list[str]]:
    """``other_names_query``'s names by record id (only the changed records' in an incremental load).

    Its columns are taken by position (the record id, then a name), so a table's own column names need no
    mapping; a query returning fewer than two is refused naming the key.
    """
    if not config.other_names_query:
        return {}
    names = config.other_names_query.strip().rstrip(";")
    probe = conn.execute(sa.text(f"SELECT * FROM ({names}) signpost_names WHERE 1 = 0"))
    returned = tuple(probe.keys())
    probe.close()
    if len(returned) < 2:
        raise SourceUnusable("source.other_names_query: must return two columns, the record id and an other name")
    statement = sa.text(names)
    if changes is not None:
        query = config.query.strip().rstrip(";")
        quote = conn.dialect.identifier_preparer.quote
        key, change, own = quote(changes.record_column), quote(changes.change_column), quote(returned[0])
        statement = sa.text(
            f"SELECT * FROM ({names}) signpost_names WHERE {own} IN "
            f"(SELECT {key} FROM ({query}) signpost_changed WHERE {change} > :signpost_since)"
        ).bindparams(signpost_since=changes.since)
    found: dict[str, list[str]] = {}
    with conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(statement) as result:
        for row in result:
            name = _mapped(config, "other_names", row[1]) if row[1] is not None else ""
            if name:
                found.setdefault(_text(row[0]), []).append(name)
    return found


def read_source(config: SourceConfig, engine: Engine | None = None, changes: Changes | None = None) -> SourceRead:
    """Run the query read-only and turn its rows into records (blocking: run it in a thread when serving).

    With ``changes``, only the records with a row changed since its watermark (an incremental load).
    """
    own = engine is None
    engine = engine or create_source_engine(config)
    try:
        with _translated(config, "source.url"), engine.connect() as conn:
            _begin_read_only(conn)
            with _translated(config, "source.other_names_query"):
                other_names = _other_names(config, changes, conn)
            with _translated(config, "source.query"):
                result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
                    _statement(config, changes, conn)
                )
                if not result.returns_rows:
                    raise SourceUnusable("source.query: the statement returns no rows (it must be a SELECT)")
                with result:  # closed (and a streamed result drained) before the transaction ends
                    columns = tuple(result.keys())
                    fields = column_positions(config, columns)
                    collector = RecordCollector()
                    change = _find(config.change_column, columns) if config.change_column else None
                    watermark: Any = None
                    for number, row in enumerate(result, start=1):
                        take_row(collector, config, fields, number, row, other_names)
                        if change is not None and row[change] is not None:
                            watermark = row[change] if watermark is None else max(watermark, row[change])
            conn.rollback()  # nothing was written; end the read-only transaction
    finally:
        if own:
            engine.dispose()
    return SourceRead(columns, collector.records(), collector.report, watermark, changes)


def _find(column: str, returned: Sequence[str]) -> int | None:
    """A column by name: exactly, else ignoring case (PostgreSQL folds unquoted names to lower case)."""
    if column in returned:
        return returned.index(column)
    folded = [r.casefold() for r in returned]
    return folded.index(column.casefold()) if column.casefold() in folded else None


def column_positions(config: SourceConfig, returned: Sequence[str]) -> dict[str, int]:
    """Where each Signpost field is in a row; SourceUnusable naming the key for a column the query lacks."""
    positions: dict[str, int] = {}
    for field, column in config.columns.items():
        found = _find(column, returned)
        if found is None:
            raise SourceUnusable(f"source.columns.{field}: the query returns no column '{column}'")
        positions[field] = found
    for field in COLUMNS:
        if field not in positions and (found := _find(field, returned)) is not None:
            positions[field] = found
    for field in REQUIRED:
        if field not in positions:
            raise SourceUnusable(f"source.columns.{field}: not set, and the query returns no column '{field}'")
    if config.change_column and _find(config.change_column, returned) is None:
        raise SourceUnusable(f"source.change_column: the query returns no column '{config.change_column}'")
    return positions


def _text(value: object) -> str:
    """A database value as the records CSV would have it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(value.to_integral_value())
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value).strip()


def _mapped(config: SourceConfig, field: str, raw: object) -> str:
    """One field of one row: value mapping, then the configured date format and other-names delimiter."""
    text = _text(raw)
    mapping: Mapping[str, str] = config.values.get(field, {})
    text = mapping.get(text, text)
    if config.date_format and field in DATE_FIELDS and text and not isinstance(raw, dt.date):
        try:
            text = dt.datetime.strptime(text, config.date_format).date().isoformat()
        except ValueError:
            raise ValueError(f"{field}: not a date in source.date_format") from None
    if field == "other_names" and config.other_names_delimiter != ";":
        text = ";".join(text.split(config.other_names_delimiter))
    return text


def take_row(
    collector: RecordCollector,
    config: SourceConfig,
    fields: Mapping[str, int],
    number: int,
    row: Sequence[object],
    other_names: Mapping[str, list[str]] | None = None,
) -> None:
    """Map one database row to a records-CSV row and give it to the shared validation.

    ``other_names``: names from ``other_names_query`` by record id, added to the row's own (and so
    validated with them: too long, and the row is rejected naming ``other_names``).
    """
    key = _text(row[fields["record_id"]])
    try:
        shaped = {field: _mapped(config, field, row[position]) for field, position in fields.items()}
    except ValueError as exc:
        collector.reject(number, str(exc), key)
        return
    if other_names and key in other_names:
        held = [n for n in shaped.get("other_names", "").split(";") if n]
        shaped["other_names"] = ";".join(dict.fromkeys([*held, *other_names[key]]))
    collector.take(number, shaped, key)
