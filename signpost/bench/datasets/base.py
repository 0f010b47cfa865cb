"""The shape every development data set takes: held records per authority, and queries with known answers.

A :class:`Dataset` is what a federation would see: each authority's records as rows of the records
CSV (contract section 3), validated by the importer's own rule (:func:`node.records.parse_row`), and
queries as a practitioner's POST /v1/searches body, validated by the broker's own rule
(:func:`broker.search_request.parse_search`). A row or query that fails is counted, never dropped
silently: a refused query is a miss for whatever it should have found.

Nothing here prints or logs a row's values; the data sets are public or invented, but the bench
must keep the habit the service keeps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from broker.errors import InvalidRequest
from broker.search_request import parse_search
from core.subject import Subject
from node.records import COLUMNS, Record, parse_row, same_child

AUTHORITIES: tuple[tuple[str, str], ...] = (
    ("DEV-A", "Development authority A"),
    ("DEV-B", "Development authority B"),
    ("DEV-C", "Development authority C"),
    ("DEV-D", "Development authority D"),
    ("DEV-E", "Development authority E"),
)
"""Five invented authorities the foreign data sets are split over."""

PURPOSE = {"code": "child-in-need-assessment", "justification": "Development data set evaluation query"}
# Every node needs someone to name; the foreign sets have no practitioners.
_CONTACT = {
    "service": "Children's social care",
    "team": "Development team",
    "practitioner_name": "Dev Practitioner",
    "practitioner_role": "Social worker",
    "practitioner_phone": "01632 960000",
    "practitioner_email": "dev.practitioner@example.org",
}

Key = tuple[str, str]
"""(authority code, record_id)."""


def authority_of(entity: str, count: int = len(AUTHORITIES)) -> str:
    """A stable authority for an entity (or household): the same split on every machine and run."""
    digest = hashlib.blake2b(entity.encode(), digest_size=4).digest()
    return AUTHORITIES[int.from_bytes(digest, "big") % count][0]


def held_out(entity: str, share: float) -> bool:
    """Is this entity held nowhere (its queries test precision)? Stable, like :func:`authority_of`."""
    digest = hashlib.blake2b(b"absent:" + entity.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") < share * 2**32


@dataclass(frozen=True)
class Query:
    """One search and its right answer."""

    query_id: str
    body: dict[str, Any]
    """A POST /v1/searches body: {"subject": ..., "purpose": ...}."""
    expected: frozenset[Key]
    households: frozenset[str] = frozenset()
    """The household keys of the searched-for child (empty when the data knows none)."""
    subject: Subject | None = None
    """The broker's reading of ``body``; None when the broker refuses it with 400."""
    refusal: str = ""


@dataclass
class Dataset:
    """Held records per authority, and the queries, with every rejection counted."""

    name: str
    description: str
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Per authority, the records-CSV rows that passed the importer's validation."""
    records: dict[str, list[Record]] = field(default_factory=dict)
    households: dict[Key, frozenset[str]] = field(default_factory=dict)
    """Each held record's household keys; two records share a household when their keys meet."""
    queries: list[Query] = field(default_factory=list)
    rejected_rows: dict[str, int] = field(default_factory=dict)
    """Per reason (column: rule), rows the importer would refuse."""
    authority_names: dict[str, str] = field(default_factory=lambda: dict(AUTHORITIES))
    _where: dict[Key, int] = field(default_factory=dict, repr=False)

    @property
    def refused_queries(self) -> int:
        return sum(1 for q in self.queries if q.subject is None)

    def held(self) -> int:
        return sum(len(r) for r in self.records.values())

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.name,
            "records_held": self.held(),
            "records_answered_as_absent": len(self.answered_as_absent()),
            "rows_rejected": sum(self.rejected_rows.values()),
            "rows_rejected_by_reason": dict(sorted(self.rejected_rows.items())),
            "queries": len(self.queries),
            "queries_expecting_nobody": sum(1 for q in self.queries if not q.expected),
            "queries_refused_400": self.refused_queries,
            "queries_refused_by_field": dict(
                sorted(Counter(f for q in self.queries if q.refusal for f in q.refusal.split(",")).items())
            ),
        }

    def add_record(self, authority: str, row: Mapping[str, str], households: Iterable[str] = ()) -> bool:
        """Validate ``row`` as the importer would; keep it, or count why not."""
        full = {c: row.get(c, "") for c in COLUMNS} | {k: v for k, v in _CONTACT.items() if not row.get(k)}
        try:
            record, involvement = parse_row(full, today=TODAY)
        except ValueError as exc:
            return self._reject(str(exc).split(":")[0])
        key = (authority, record.record_id)
        records = self.records.setdefault(authority, [])
        at = self._where.get(key)
        # Rows sharing a record_id are one child's involvements, merged as node.importer merges them.
        if at is None:
            self._where[key] = len(records)
            records.append(replace(record, involvements=(involvement,)))
        elif same_child(records[at], record):
            records[at] = replace(records[at], involvements=(*records[at].involvements, involvement))
        else:
            return self._reject("record_id")
        self.rows.setdefault(authority, []).append(full)
        self.households[key] = frozenset(households)
        return True

    def _reject(self, reason: str) -> bool:
        self.rejected_rows[reason] = self.rejected_rows.get(reason, 0) + 1
        return False

    def answered_as_absent(self) -> set[Key]:
        """Held records a node answers as if absent (shielded or sensitive-only): no search may find them."""
        return {(code, r.record_id) for code, rs in self.records.items() for r in rs if r.answered_as_absent}

    def add_query(
        self, query_id: str, subject: Mapping[str, Any], expected: Iterable[Key], households: Iterable[str] = ()
    ) -> None:
        body = {"subject": {k: v for k, v in subject.items() if v}, "purpose": dict(PURPOSE)}
        parsed, refusal = read_subject(body)
        self.queries.append(Query(query_id, body, frozenset(expected), frozenset(households), parsed, refusal))


TODAY = dt.date(2026, 1, 1)
"""The day records and queries are judged on: fixed, so a data set never changes with the calendar."""


def read_subject(body: dict[str, Any]) -> tuple[Subject | None, str]:
    """The broker's Subject for ``body``, or None and the refused fields (never their values)."""
    try:
        return parse_search(body, today=TODAY).subject, ""
    except InvalidRequest as exc:
        return None, ",".join(sorted(exc.fields))
