"""One search attempt's audit entry: opened when the attempt starts, committed exactly once.

Every POST /v1/searches — answered or refused — becomes one entry: who (from
the certificate), role, organisation, purpose, time, the outcome, the bands
each authority returned and which authorities answered. The child appears only
as keyed hashes (``subject_hashes``): an auditor holding the key can find
"who searched for this child?", and without the key the log is no register of
children. An answered search is committed to the log *before* its results are
released; if the write fails the searcher gets 503 and no results.

``audited_search`` is the one place an entry is made: the search handler runs
inside it, fills in the entry as it learns things, and commits it with
``SearchAudit.answered`` before it answers. Any attempt that leaves with an
error is committed on the way out with the status the error will be answered
with. Every attempt is also counted here, by outcome. This module must never
log a child's details or put them in an entry other than as keyed hashes.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from broker.appkeys import AUDIT, CLOCK, METRICS, SUBJECT_KEY
from broker.audit.errors import AuditError
from broker.audit.keys import subject_hashes
from broker.audit.log import Receipt
from broker.errors import ApiError, http_status
from broker.fanout import Outcome
from broker.search_request import SearchRequest
from certs.identity import Identity

log = structlog.get_logger("signpost.broker")
OUTCOMES = {
    200: "answered",
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    429: "rate_limited",
    503: "unavailable",
}
"""The outcome an entry (and the searches metric) records for each status; any other is "error"."""


class AuditUnavailable(ApiError):
    status, code = 503, "audit_unavailable"


@dataclass
class SearchRecord:
    """What is known about one search attempt so far; filled in as the request is handled."""

    search_id: str = ""
    actor: dict[str, str] = field(default_factory=lambda: {"user_id": "", "role": ""})
    purpose: dict[str, str] = field(default_factory=dict)
    subject_hashes: list[str] = field(default_factory=list)
    results: dict[str, list[str]] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)
    not_answered: list[dict[str, str]] = field(default_factory=list)
    receipt: Receipt | None = None

    def identify(self, caller: Identity) -> None:
        self.actor = {
            "user_id": caller.id,
            "name": caller.name,
            "organisation": caller.organisation,
            "role": caller.role.value,
            "email": caller.email,
        }

    def describe(self, search: SearchRequest, key: bytes) -> None:
        s = search.subject
        self.purpose = {"code": search.purpose_code, "justification": search.justification}
        self.subject_hashes = subject_hashes(
            key,
            given_name=s.given_name,
            family_name=s.family_name,
            date_of_birth=s.date_of_birth or None,
            nhs_number=s.nhs_number,
        )

    def outcomes(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            if o.error is None and o.response is not None:
                self.answered.append(o.authority.code)
                bands = [c.band for c in o.response.candidates]
                if bands:
                    self.results[o.authority.code] = bands
            elif o.error is not None:
                self.not_answered.append({"code": o.authority.code, "reason": o.error.reason})

    def entry(self, status: int, outcome: str, now: dt.datetime) -> dict[str, Any]:
        return {
            "type": "search",
            "time": now.isoformat(timespec="milliseconds"),
            "search_id": self.search_id,
            "status": status,
            "outcome": outcome,
            "actor": self.actor,
            "purpose": self.purpose,
            "subject_hashes": self.subject_hashes,
            "results": self.results,
            "answered": self.answered,
            "not_answered": self.not_answered,
        }


async def commit(app: web.Application, record: SearchRecord, status: int, outcome: str) -> Receipt:
    """Append the search's entry, timed by the app's clock; raise AuditUnavailable if it is not durably written."""
    now = dt.datetime.fromtimestamp(app[CLOCK](), dt.UTC)
    metrics = app[METRICS]
    started = time.perf_counter()
    try:
        receipt = await app[AUDIT].append(record.entry(status, outcome, now))
    except AuditError as exc:
        log.error("audit_write_failed", search_id=record.search_id, error_type=type(exc).__name__)
        raise AuditUnavailable(
            "the search could not be recorded in the audit log, so its results are withheld; try again shortly"
        ) from None
    finally:
        metrics.audit_seconds.observe(time.perf_counter() - started)
    record.receipt = receipt
    return receipt


class SearchAudit:
    """The audit of the search attempt under way, as ``audited_search`` hands it to the handler."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self.record = SearchRecord(search_id=str(uuid.uuid4()))

    @property
    def search_id(self) -> str:
        return self.record.search_id

    def identify(self, caller: Identity) -> None:
        """Who is searching: called before their role is checked, so a refused caller is audited by name."""
        self.record.identify(caller)

    def describe(self, search: SearchRequest) -> None:
        """The purpose and the child, hashed with the app's subject key."""
        self.record.describe(search, self._app[SUBJECT_KEY])

    def outcomes(self, outcomes: list[Outcome]) -> None:
        """Which authorities answered, with which bands, and which did not."""
        self.record.outcomes(outcomes)

    async def answered(self) -> Receipt:
        """Commit the answered search; only then may its results be released (AuditUnavailable if not)."""
        return await commit(self._app, self.record, 200, "answered")


@asynccontextmanager
async def audited_search(app: web.Application) -> AsyncIterator[SearchAudit]:
    """Audit and count one search attempt: exactly one entry, whatever happens inside.

    Leaving normally means answered, and the handler must have committed with ``answered()`` first.
    Leaving with an error commits the entry with the status that error is answered with (unless it was
    already committed); if that write fails, AuditUnavailable replaces the error. A cancelled request
    (the client went away) is neither audited nor counted.
    """
    started = time.perf_counter()
    audit = SearchAudit(app)
    status: int | None = None  # stays None when cancelled
    try:
        yield audit
        if audit.record.receipt is None:
            raise RuntimeError("a search finished without committing its audit entry")
        status = 200
    except Exception as exc:
        status = http_status(exc)
        if audit.record.receipt is None:  # refused, or failed: audited now, as it will be answered
            try:
                await commit(app, audit.record, status, OUTCOMES.get(status, "error"))
            except AuditUnavailable as unavailable:
                status = unavailable.status
                raise unavailable from None
        raise
    finally:
        if status is not None:
            m = app[METRICS]
            m.searches.labels(OUTCOMES.get(status, "error")).inc()
            m.search_seconds.observe(time.perf_counter() - started)
