"""Throw-away case-management databases on the local PostgreSQL and MariaDB servers, for the [source] tests.

Each test module gets its own database (``signpost_test_<random>``), dropped at the end, holding a
small schema shaped like a children's case-management system: people (sex coded 1/2/9, a Y/N
protection flag, aliases separated by '|'), addresses (one current), workers, and involvements (one
row per involvement, a Y/N confidential flag), with a view ``signpost_children_v`` over them, which is
what an authority's IT team would give a node. A server that is down skips the tests with a reason,
unless ``SIGNPOST_REQUIRE_POSTGRES=1`` / ``SIGNPOST_REQUIRE_MARIADB=1`` (scripts/test sets them in CI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from node.config import SourceConfig
from tests.conftest import unavailable

SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432/test", "SIGNPOST_REQUIRE_POSTGRES"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306/test", "SIGNPOST_REQUIRE_MARIADB"),
}

SCHEMA = [
    """CREATE TABLE workers (
        worker_id INTEGER PRIMARY KEY, full_name VARCHAR(100) NOT NULL, job_title VARCHAR(100),
        phone VARCHAR(40), email VARCHAR(200), team_name VARCHAR(100), service_name VARCHAR(100))""",
    """CREATE TABLE people (
        person_id VARCHAR(20) PRIMARY KEY, forename VARCHAR(100), middle_names VARCHAR(100),
        surname VARCHAR(100), aliases VARCHAR(300), dob DATE, sex_code INTEGER, nhs_no VARCHAR(12),
        protected_flag CHAR(1) NOT NULL DEFAULT 'N', updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
    """CREATE TABLE addresses (
        address_id INTEGER PRIMARY KEY, person_id VARCHAR(20) NOT NULL REFERENCES people(person_id),
        line1 VARCHAR(200), town VARCHAR(100), postcode VARCHAR(10), is_current CHAR(1) NOT NULL)""",
    """CREATE TABLE involvements (
        involvement_id INTEGER PRIMARY KEY, person_id VARCHAR(20) NOT NULL REFERENCES people(person_id),
        worker_id INTEGER REFERENCES workers(worker_id), start_date DATE, end_date DATE,
        confidential CHAR(1) NOT NULL DEFAULT 'N')""",
    # Other names kept a row each, as many systems do (a previous surname, an alias): source.other_names_query.
    """CREATE TABLE person_names (
        name_id INTEGER PRIMARY KEY, person_id VARCHAR(20) NOT NULL REFERENCES people(person_id),
        name_kind VARCHAR(20) NOT NULL, full_name VARCHAR(200))""",
    """CREATE VIEW signpost_children_v AS
        SELECT p.person_id, p.forename, p.middle_names, p.surname, p.aliases, p.dob, p.sex_code, p.nhs_no,
               p.protected_flag, CONCAT_WS(', ', a.line1, a.town) AS address_text, a.postcode,
               w.service_name, w.team_name, w.full_name AS worker_name, w.job_title, w.phone AS worker_phone,
               w.email AS worker_email, i.start_date, i.end_date, i.confidential, p.updated_at
        FROM involvements i
        JOIN people p ON p.person_id = i.person_id
        LEFT JOIN addresses a ON a.person_id = p.person_id AND a.is_current = 'Y'
        LEFT JOIN workers w ON w.worker_id = i.worker_id""",
]

WORKERS = [
    (1, "Jo Bloggs", "Social worker", "0113 496 0000", "jo.bloggs@leeds.example", "Duty team", "Social care"),
    (2, "Sam Patel", "Family support worker", "0113 496 0001", "sam.patel@leeds.example", "North", "Early help"),
    (3, "Ann Lee", "Nurse", "0113 496 0002", "ann.lee@leeds.example", "Clinic", "Sexual health"),
]
# person_id, forename, middle, surname, aliases, dob, sex_code, nhs_no, protected
PEOPLE = [
    ("P1", "Amelia", "Rose", "Smith", "Amy Smith|Amelia Jones", "2014-03-09", 2, "9434765919", "N"),
    ("P2", "Oliver", "", "Khan", None, "2016-07-21", 1, "4010232137", "N"),
    ("P3", "Noah", "", "Walker", None, "2012-11-02", 1, None, "Y"),
    ("P4", "Isla", "", "Brown", None, "2015-01-30", 7, None, "N"),  # bad: sex code 7 is not mapped
    ("P5", "Leo", "", "Green", None, "2013-05-05", 9, "1234567880", "N"),  # bad: NHS check digit
    ("P6", "Ava", "", "Wood", None, "2011-09-14", 2, "9876543210", "N"),
]
ADDRESSES = [
    (1, "P1", "12 Oak Road", "Leeds", "LS6 2AB", "Y"),
    (2, "P1", "3 Old Lane", "Leeds", "LS1 1AA", "N"),
    (3, "P2", "4 Elm Street", "Leeds", "ls7 3cd", "Y"),
    (4, "P3", "9 Hidden Way", "Leeds", "LS8 1EF", "Y"),
    (5, "P6", "1 Birch Close", "Leeds", "LS9 2GH", "Y"),
]
# involvement_id, person_id, worker_id, start, end, confidential
INVOLVEMENTS = [
    (1, "P1", 1, "2022-01-04", None, "N"),
    (2, "P1", 2, "2021-06-01", "2021-12-20", "N"),
    (3, "P2", 2, "2023-02-01", None, "N"),
    (4, "P3", 1, "2020-01-01", None, "N"),
    (5, "P4", 1, "2022-03-03", None, "N"),
    (6, "P5", 2, "2022-04-04", None, "N"),
    (7, "P6", 3, "2024-01-10", None, "Y"),
    (8, "P6", 1, "2024-02-11", None, "N"),
]
# name_id, person_id, kind, full name (None: a row with no name, skipped)
PERSON_NAMES = [
    (1, "P2", "previous", "Ollie Carter"),
    (2, "P2", "alias", "Olly Khan"),
    (3, "P1", "alias", "Amy Smith"),  # also in the aliases column: not repeated
    (4, "P1", "previous", "Amelia Brown"),
    (5, "P3", "previous", None),
]
GOOD_RECORDS = {"P1", "P2", "P3", "P6"}
BAD_ROWS = {"P4": "sex", "P5": "nhs_number"}

MAPPING = {
    "record_id": "person_id",
    "given_name": "forename",
    "family_name": "surname",
    "other_names": "aliases",
    "date_of_birth": "dob",
    "sex": "sex_code",
    "nhs_number": "nhs_no",
    "address": "address_text",
    "shielded": "protected_flag",
    "service": "service_name",
    "team": "team_name",
    "practitioner_name": "worker_name",
    "practitioner_role": "job_title",
    "practitioner_phone": "worker_phone",
    "practitioner_email": "worker_email",
    "involvement_start": "start_date",
    "involvement_end": "end_date",
    "sensitive": "confidential",
}
VALUES = {"sex": {"1": "M", "2": "F", "9": "U"}, "shielded": {"Y": "true", "N": "false"}}


@dataclass
class SourceDB:
    """One throw-away database: ``url`` as a node would be configured (no password), ``admin`` to change it."""

    backend: str
    url: str
    admin: sa.Engine
    cleanup: list[str] = field(default_factory=list)

    def execute(self, *statements: str, **params: object) -> None:
        with self.admin.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params)

    def reader(self, password: str) -> str:
        """A SELECT-only account with a password, as an authority would give the node; its URL (no password)."""
        name = f"sp_reader_{uuid.uuid4().hex[:8]}"
        database = self.admin.url.database
        if self.backend == "postgresql":
            self.execute(
                f"CREATE ROLE {name} LOGIN PASSWORD '{password}'",
                f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}",
            )
            self.cleanup.append(f"DROP ROLE IF EXISTS {name}")
        else:
            self.execute(
                f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'", f"GRANT SELECT ON {database}.* TO '{name}'@'%'"
            )
            self.cleanup.append(f"DROP USER IF EXISTS '{name}'@'%'")
        return sa.engine.make_url(self.url).set(username=name).render_as_string(hide_password=False)

    def config(self, **overrides: object) -> SourceConfig:
        settings: dict[str, object] = {
            "url": self.url,
            "view": None,
            "query": "SELECT * FROM signpost_children_v",
            "columns": dict(MAPPING),
            "values": {k: dict(v) for k, v in VALUES.items()},
            "other_names_delimiter": "|",
            "retry_attempts": 2,
            "retry_initial_seconds": 0.05,
            "connect_timeout_seconds": 2.0,
        }
        settings.update(overrides)
        settings.pop("view")
        return SourceConfig(**settings)  # type: ignore[arg-type]

    def toml(
        self, path: Path, *, extra: str = "", columns: dict[str, str] | None = None, url: str = "", where: str = ""
    ) -> Path:
        """A node TOML with only [source] tables (what check-source reads); ``where`` filters the view."""
        query = (
            f'query = "SELECT * FROM signpost_children_v WHERE {where}"' if where else 'view = "signpost_children_v"'
        )
        lines = ["[source]", f'url = "{url or self.url}"', query, 'other_names_delimiter = "|"']
        lines += ["connect_timeout_seconds = 2", extra, "[source.columns]"]
        lines += [f'{k} = "{v}"' for k, v in (columns or MAPPING).items()]
        for name, pairs in VALUES.items():
            lines += [f"[source.values.{name}]", *(f'"{k}" = "{v}"' for k, v in pairs.items())]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def _server(backend: str) -> str:
    url, require = SERVERS[backend]
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 2}, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        unavailable(f"{backend} not reachable at {url}: {first}", require)
    return url


def create_database(backend: str) -> Iterator[SourceDB]:
    """Create, fill and finally drop one throw-away database on ``backend``'s local server."""
    server_url = _server(backend)
    name = f"signpost_test_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with server.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.engine.make_url(server_url).set(database=name)
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    plain = url.set(drivername="postgresql" if backend == "postgresql" else "mariadb")
    db = SourceDB(backend, plain.render_as_string(hide_password=False), admin)
    try:
        fill(db)
        yield db
    finally:
        admin.dispose()
        with server.connect() as conn:
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
            for statement in db.cleanup:
                conn.execute(sa.text(statement))
        server.dispose()


def fill(db: SourceDB) -> None:
    with db.admin.begin() as conn:
        for statement in SCHEMA:
            conn.execute(sa.text(statement))
        conn.execute(
            sa.text("INSERT INTO workers VALUES (:a, :b, :c, :d, :e, :f, :g)"),
            [dict(zip("abcdefg", w, strict=True)) for w in WORKERS],
        )
        conn.execute(
            sa.text(
                "INSERT INTO people (person_id, forename, middle_names, surname, aliases, dob, sex_code, nhs_no, "
                "protected_flag) VALUES (:a, :b, :c, :d, :e, :f, :g, :h, :i)"
            ),
            [dict(zip("abcdefghi", p, strict=True)) for p in PEOPLE],
        )
        conn.execute(
            sa.text("INSERT INTO addresses VALUES (:a, :b, :c, :d, :e, :f)"),
            [dict(zip("abcdef", a, strict=True)) for a in ADDRESSES],
        )
        conn.execute(
            sa.text("INSERT INTO involvements VALUES (:a, :b, :c, :d, :e, :f)"),
            [dict(zip("abcdef", i, strict=True)) for i in INVOLVEMENTS],
        )
        conn.execute(
            sa.text("INSERT INTO person_names VALUES (:a, :b, :c, :d)"),
            [dict(zip("abcd", n, strict=True)) for n in PERSON_NAMES],
        )
