"""One search attempt's audit: committed before any node is asked, its outcome committed after.

Every POST /v1/searches — answered or refused — is in the log: who (from the certificate), role,
organisation, purpose, time, the outcome, the bands each authority returned and which authorities
answered. The child appears only as keyed hashes (``subject_hashes``): an auditor holding the key can
find "who searched for this child?", and without the key the log is no register of children.

Audit first: a search that passes its checks is committed as a ``started`` entry (requester, purpose,
subject hashes, search id) *before* any node is asked; if the store cannot take it within
``BrokerConfig.audit_timeout`` the search is refused with 503 ``audit_unavailable`` and no node is
asked. Its outcome (status, results, answered, not_answered) is then a second entry with the same
``search_id`` — the log stays append-only — committed before the results are released, within what is
left of the search's deadline; if that write fails the searcher gets 503 and no results. The receipt a
search returns is the outcome entry's. A refusal before that point (400, 401, 403, 429) is one entry;
a 400 given once every subject value was read (``RefusedSearch``: a name that is no name, the minimum
query, the justification) carries the child's hashes too, so a subject access request finds the attempt.

``audited_search`` is the one place entries are made: the search handler runs inside it, fills in the
record as it learns things, calls ``SearchAudit.started`` before the fan-out and ``answered`` before
it answers. An attempt that leaves with an error is committed on the way out with the status the
error will be answered with — except 429s and certificate-less 401s past the first of their interval
for the same client, which ``broker.refusals`` only counts, so abuse cannot flood the log. Every
attempt is also counted here, by outcome. This module must never log a child's details or put them
in an entry other than as keyed hashes, and never wait on the audit store without a bound.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from broker.appkeys import ADMISSION, AUDIT, CLOCK, CONFIG, METRICS, SUBJECT_KEY
from broker.audit.errors import AuditError
from broker.audit.keys import subject_hashes
from broker.audit.log import Receipt
from broker.errors import ApiError, http_status
from broker.fanout import Outcome
from broker.policy import AUDIT_OUTCOME_RESERVE_SECONDS
from broker.refusals import REFUSALS
from broker.search_request import SearchRequest
from certs.identity import Identity
from core.subject import Subject

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
STARTED = "started"
"""The outcome of a search's first entry: committed, and about to ask the nodes."""
AGGREGATED = (401, 429)
"""Refusals audited in full only once per client per interval (``broker.refusals``), then counted."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with any lone surrogate replaced (U+FFFD): JSON can carry one, UTF-8 cannot store it.

    Without this a justification holding one could not be written, and any practitioner could make
    the broker answer 503 audit_unavailable, with no entry of the attempt.
    """
    return _SURROGATE.sub("\ufffd", text)


class AuditUnavailable(ApiError):
    status, code = 503, "audit_unavailable"


UNAVAILABLE_MESSAGE = "the search could not be recorded in the audit log, so it was not made; try again shortly"
WITHHELD_MESSAGE = "the search could not be recorded in the audit log, so its results are withheld; try again shortly"


@dataclass
class SearchRecord:
    """What is known about one search attempt so far; filled in as the request is handled."""

    search_id: str = ""
    actor: dict[str, str] = field(default_factory=lambda: {"user_id": "", "role": ""})
    purpose: dict[str, str] = field(default_factory=dict)
    subject_hashes: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    """What the broker read differently from what was typed (``date_of_birth_read``); never the values."""
    results: dict[str, list[str]] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)
    not_answered: list[dict[str, str]] = field(default_factory=list)
    client_address: str = ""
    """The source address, recorded only for a caller without a usable certificate (no other name)."""
    started: Receipt | None = None
    """The ``started`` entry's receipt, once committed: from then on nodes may be asked."""
    receipt: Receipt | None = None
    """The final entry's receipt (the outcome, or the refusal): the attempt is fully recorded."""
    store_failed: bool = False
    """The store did not take the started entry in time: do not wait on it again for this attempt."""

    def identify(self, caller: Identity) -> None:
        self.actor = {
            "user_id": caller.id,
            "name": caller.name,
            "organisation": caller.organisation,
            "role": caller.role.value,
            "email": caller.email,
        }

    def describe(self, search: SearchRequest, key: bytes) -> None:
        self.purpose = {"code": storable(search.purpose_code), "justification": storable(search.justification)}
        self.hash_child(search.subject, key)
        self.notices = list(search.notices)

    def hash_child(self, s: Subject, key: bytes) -> None:
        """The child's keyed hashes, from a subject whose every value was read as valid."""
        self.subject_hashes = subject_hashes(
            key,
            given_name=storable(s.given_name),
            family_name=storable(s.family_name),
            date_of_birth=storable(s.date_of_birth) or None,
            nhs_number=storable(s.nhs_number),
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

    def _common(self, now: dt.datetime) -> dict[str, Any]:
        common: dict[str, Any] = {
            "type": "search",
            "time": now.isoformat(timespec="milliseconds"),
            "search_id": self.search_id,
            "actor": self.actor,
            "purpose": self.purpose,
            "subject_hashes": self.subject_hashes,
        }
        if self.notices:
            common["notices"] = self.notices
        if not self.actor.get("user_id") and self.client_address:
            common["client"] = {"address": self.client_address}
        return common

    def started_entry(self, now: dt.datetime) -> dict[str, Any]:
        """The entry committed before any node is asked: who, why, and the child's hashes; no outcome yet."""
        return {**self._common(now), "outcome": STARTED}

    def entry(self, status: int, outcome: str, now: dt.datetime) -> dict[str, Any]:
        """The outcome entry (or a refusal's only entry): the started entry's fields and what happened."""
        return {
            **self._common(now),
            "status": status,
            "outcome": outcome,
            "results": self.results,
            "answered": self.answered,
            "not_answered": self.not_answered,
        }


def _now(app: web.Application) -> dt.datetime:
    return dt.datetime.fromtimestamp(app[CLOCK](), dt.UTC)


async def commit(app: web.Application, entry: dict[str, Any], timeout: float, message: str) -> Receipt:
    """Append ``entry`` within ``timeout`` seconds; AuditUnavailable (with ``message``) if not durably written."""
    started = time.perf_counter()
    # Every awaited entry, refusals' included, is work ahead of the next search's first entry (broker.admission).
    waits = app[ADMISSION].audit
    waiting = waits.begin()
    try:
        return await app[AUDIT].append_within(entry, timeout)
    except AuditError as exc:
        app[METRICS].audit_write_failures.inc()
        log.error("audit_write_failed", search_id=entry.get("search_id", ""), error_type=type(exc).__name__)
        raise AuditUnavailable(message) from None
    finally:
        waits.end(waiting)
        app[METRICS].audit_seconds.observe(time.perf_counter() - started)


def submit_unwaited(app: web.Application, entry: dict[str, Any]) -> None:
    """Queue ``entry`` without waiting: recorded if the store recovers, and nobody is held up if not."""
    try:
        app[AUDIT].submit(entry)
    except AuditError as exc:
        app[METRICS].audit_write_failures.inc()
        log.error("audit_write_failed", search_id=entry.get("search_id", ""), error_type=type(exc).__name__)


class SearchAudit:
    """The audit of the search attempt under way, as ``audited_search`` hands it to the handler."""

    def __init__(self, app: web.Application, client_address: str = "") -> None:
        self._app = app
        config = app[CONFIG]
        self._deadline_at = time.monotonic() + config.search_deadline_seconds
        self._audit_timeout = config.audit_timeout
        self.record = SearchRecord(search_id=str(uuid.uuid4()), client_address=client_address)

    @property
    def search_id(self) -> str:
        return self.record.search_id

    def identify(self, caller: Identity) -> None:
        """Who is searching: called before their role is checked, so a refused caller is audited by name."""
        self.record.identify(caller)

    def describe(self, search: SearchRequest) -> None:
        """The purpose and the child, hashed with the app's subject key."""
        self.record.describe(search, self._app[SUBJECT_KEY])

    def describe_refused(self, subject: Subject) -> None:
        """The child of a search refused after its subject was read (broker.errors.RefusedSearch): hashes only."""
        self.record.hash_child(subject, self._app[SUBJECT_KEY])

    def outcomes(self, outcomes: list[Outcome]) -> None:
        """Which authorities answered, with which bands, and which did not."""
        self.record.outcomes(outcomes)

    def time_left(self) -> float:
        """Seconds of the search's deadline the nodes may have: what remains, less time to record the outcome."""
        reserve = min(AUDIT_OUTCOME_RESERVE_SECONDS, self._audit_timeout)
        return max(0.0, self._deadline_at - time.monotonic() - reserve)

    async def started(self) -> Receipt:
        """Commit the started entry; only then may any node be asked (AuditUnavailable, within the bound, if not).

        A started entry that was not committed in time may still be written if the store recovers, so
        its refusal is queued behind it: the log then says the search was refused and no node asked.
        """
        record = self.record
        try:
            record.started = await commit(
                self._app, record.started_entry(_now(self._app)), self._audit_timeout, UNAVAILABLE_MESSAGE
            )
        except AuditUnavailable:
            record.store_failed = True
            submit_unwaited(self._app, record.entry(503, "audit_unavailable", _now(self._app)))
            raise
        return record.started

    async def answered(self) -> Receipt:
        """Commit the answered search's outcome; only then may its results be released (AuditUnavailable if not)."""
        return await self.finish(200, "answered")

    async def finish(self, status: int, outcome: str) -> Receipt:
        """Commit the attempt's final entry, waiting no longer than what is left of the deadline.

        A refusal before the fan-out may wait at least the audit bound: it holds up no node.
        """
        timeout = self._deadline_at - time.monotonic()
        if self.record.started is None:
            timeout = max(timeout, self._audit_timeout)
        timeout = max(timeout, 0.01)
        message = WITHHELD_MESSAGE if status == 200 else UNAVAILABLE_MESSAGE
        self.record.receipt = await commit(
            self._app, self.record.entry(status, outcome, _now(self._app)), timeout, message
        )
        return self.record.receipt

    async def refused(self, status: int) -> None:
        """Record a refusal as it will be answered; AuditUnavailable replaces it if that write fails."""
        record = self.record
        if record.receipt is not None or record.store_failed:
            return  # recorded already, or the store is known not to answer in time (its refusal is queued)
        if record.started is None and status in AGGREGATED:
            client = record.actor.get("user_id") or f"address:{record.client_address}"
            if not self._app[REFUSALS].note(status, client):
                return  # counted: the interval's summary entry says how many
        await self.finish(status, OUTCOMES.get(status, "error"))


@asynccontextmanager
async def audited_search(app: web.Application, client_address: str = "") -> AsyncIterator[SearchAudit]:
    """Audit and count one search attempt, whatever happens inside.

    Leaving normally means answered, and the handler must have committed with ``answered()`` first.
    Leaving with an error commits the final entry with the status that error is answered with (unless
    it was already committed, or is a refusal ``broker.refusals`` only counts); if that write fails,
    AuditUnavailable replaces the error. A cancelled request (the client went away) is neither
    audited nor counted beyond what was already committed.
    """
    started = time.perf_counter()
    audit = SearchAudit(app, client_address)
    status: int | None = None  # stays None when cancelled
    try:
        yield audit
        if audit.record.receipt is None:
            raise RuntimeError("a search finished without committing its audit entry")
        status = 200
    except Exception as exc:
        status = http_status(exc)
        try:
            await audit.refused(status)
        except AuditUnavailable as unavailable:
            status = unavailable.status
            raise unavailable from None
        raise
    finally:
        if status is not None:
            m = app[METRICS]
            m.searches.labels(OUTCOMES.get(status, "error")).inc()
            m.search_seconds.observe(time.perf_counter() - started)
