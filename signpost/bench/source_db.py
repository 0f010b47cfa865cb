"""A throw-away case-management database on a PostgreSQL server, filled with synthetic children, for
``signpost bench source``.

The schema is shaped like an authority's case-management system, not like Signpost: people (sex coded
1/2/9, a Y/N protection flag, aliases separated by ``|``, an ``updated_at``), addresses, workers, and
involvements (one row each, a Y/N confidential flag), with the read-only view ``signpost_children_v``
over them that an authority's IT team would give a node (the same idea as tests/node/sourcedb.py,
which the tests own). Rows come from :mod:`signpost.synth` (realistic names, dates, postcodes and NHS
numbers) and are written with COPY. The database is created under a random name and dropped at the end,
whatever happens; nothing else on the server is touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

SCHEMA = (
    """CREATE TABLE workers (
        worker_id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, job_title TEXT, phone TEXT, email TEXT,
        team_name TEXT, service_name TEXT)""",
    """CREATE TABLE people (
        person_id TEXT PRIMARY KEY, forename TEXT, middle_names TEXT, surname TEXT, aliases TEXT, dob DATE,
        sex_code INTEGER, nhs_no TEXT, protected_flag CHAR(1) NOT NULL DEFAULT 'N',
        updated_at TIMESTAMP NOT NULL DEFAULT now())""",
    """CREATE TABLE addresses (
        person_id TEXT PRIMARY KEY, line1 TEXT, postcode TEXT)""",
    """CREATE TABLE involvements (
        involvement_id INTEGER PRIMARY KEY, person_id TEXT NOT NULL, worker_id INTEGER, start_date DATE, end_date DATE,
        confidential CHAR(1) NOT NULL DEFAULT 'N')""",
    "CREATE INDEX involvements_person ON involvements (person_id)",
    "CREATE INDEX people_updated ON people (updated_at)",
    """CREATE VIEW signpost_children_v AS
        SELECT p.person_id, p.forename, p.middle_names, p.surname, p.aliases, p.dob, p.sex_code, p.nhs_no,
               p.protected_flag, a.line1 AS address_text, a.postcode, w.service_name, w.team_name,
               w.full_name AS worker_name, w.job_title, w.phone AS worker_phone, w.email AS worker_email,
               i.start_date, i.end_date, i.confidential, p.updated_at
        FROM involvements i
        JOIN people p ON p.person_id = i.person_id
        LEFT JOIN addresses a ON a.person_id = p.person_id
        LEFT JOIN workers w ON w.worker_id = i.worker_id""",
)

COLUMNS = {
    "record_id": "person_id",
    "given_name": "forename",
    "middle_names": "middle_names",
    "family_name": "surname",
    "other_names": "aliases",
    "date_of_birth": "dob",
    "sex": "sex_code",
    "nhs_number": "nhs_no",
    "address": "address_text",
    "postcode": "postcode",
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
"""The node's ``[source.columns]`` for this schema."""
VALUES = {
    "sex": {"1": "M", "2": "F", "9": "U", "0": ""},
    "shielded": {"Y": "true", "N": "false"},
    "sensitive": {"Y": "true", "N": "false"},
}
"""The node's ``[source.values]``: the codes this schema uses."""
SEX_CODES = {"M": 1, "F": 2, "U": 9, "": 0}


@dataclass
class Person:
    """What the benchmark needs to search for one child it wrote: never printed, never written out."""

    person_id: str
    given_name: str
    family_name: str
    date_of_birth: str
    visible: bool
    """Not shielded, with an involvement that is not with a sensitive service: a search may find it."""


@dataclass
class Filled:
    rows: int = 0
    people: list[Person] = field(default_factory=list)


def database_url(server: str, name: str) -> str:
    """The server's URL (no password) naming database ``name`` instead, as a node's ``source.url``."""
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _conninfo(url: str) -> str:
    """A libpq connection string from a SQLAlchemy-style URL (psycopg wants no ``+driver``)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def throwaway_database(server: str) -> Iterator[str]:
    """Create ``signpost_bench_<random>`` on ``server``; yield its URL; drop it however the block ends."""
    name = f"signpost_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_conninfo(server), autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield database_url(server, name)
    finally:
        with psycopg.connect(_conninfo(server), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def fill(url: str, rows: Iterable[dict[str, str]]) -> Filled:
    """Create the schema and write ``rows`` (records-CSV shaped, one per involvement) as the CMS would hold them.

    One COPY per table, each on a connection of its own (PostgreSQL runs one COPY at a time per
    connection), so a million rows stream through without being held; the tables have no foreign keys
    for that reason (a reporting replica's seldom do either).
    """
    filled = Filled()
    workers: dict[tuple[str, ...], int] = {}
    seen: dict[str, Person] = {}
    conninfo = _conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for statement in SCHEMA[:4]:
            conn.execute(statement)
    with (
        psycopg.connect(conninfo) as c1,
        psycopg.connect(conninfo) as c2,
        psycopg.connect(conninfo) as c3,
        c1.cursor().copy("COPY people FROM STDIN") as people,
        c2.cursor().copy("COPY addresses FROM STDIN") as addresses,
        c3.cursor().copy(
            "COPY involvements (involvement_id, person_id, worker_id, start_date, end_date, confidential) FROM STDIN"
        ) as involvements,
    ):
        for row in rows:
            filled.rows += 1
            person = row["record_id"]
            sensitive = row.get("sensitive") == "true"
            if person not in seen:
                seen[person] = Person(person, row["given_name"], row["family_name"], row["date_of_birth"], False)
                filled.people.append(seen[person])
                people.write_row(_person(row))
                addresses.write_row((person, row.get("address") or None, row.get("postcode") or None))
            if not sensitive and row.get("shielded") != "true":
                seen[person].visible = True
            worker = _worker_key(row)
            worker_id = workers.setdefault(worker, len(workers) + 1)
            involvements.write_row(
                (
                    filled.rows,
                    person,
                    worker_id,
                    row.get("involvement_start") or None,
                    row.get("involvement_end") or None,
                    "Y" if sensitive else "N",
                )
            )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        with conn.cursor().copy("COPY workers FROM STDIN") as copy:
            for key, worker_id in workers.items():
                copy.write_row((worker_id, *key))
        for statement in SCHEMA[4:]:
            conn.execute(statement)
        conn.execute("ANALYZE")
    return filled


def _person(row: dict[str, str]) -> tuple[Any, ...]:
    aliases = "|".join(n for n in row.get("other_names", "").split(";") if n) or None
    return (
        row["record_id"],
        row["given_name"],
        row.get("middle_names") or None,
        row["family_name"],
        aliases,
        row["date_of_birth"],
        SEX_CODES.get(row.get("sex", ""), 0),
        row.get("nhs_number") or None,
        "Y" if row.get("shielded") == "true" else "N",
        "2026-01-01 00:00:00",
    )


def _worker_key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(
        row.get(k, "")
        for k in (
            "practitioner_name",
            "practitioner_role",
            "practitioner_phone",
            "practitioner_email",
            "team",
            "service",
        )
    )


def change_given_names(url: str, people: list[Person], given_name: str) -> None:
    """What a day's casework does to a source: these children's forename corrected, ``updated_at`` bumped."""
    with psycopg.connect(_conninfo(url)) as conn:
        conn.execute(
            "UPDATE people SET forename = %s, updated_at = now() WHERE person_id = ANY(%s)",
            (given_name, [p.person_id for p in people]),
        )
