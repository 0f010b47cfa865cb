"""Turning each search attempt into one audit entry, and the auditor's endpoints.

Every POST /v1/searches — answered or refused — becomes one entry: who (from
the certificate), role, organisation, purpose, time, the outcome, the bands
each authority returned and which authorities answered. The child appears only
as keyed hashes (``subject_hashes``): an auditor holding the key can find
"who searched for this child?", and without the key the log is no register of
children. An answered search is committed to the log *before* its results are
released; if the write fails the searcher gets 503 and no results.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from broker.audit.errors import AuditError
from broker.audit.keys import subject_hashes
from broker.audit.log import AuditLog, Receipt
from broker.auth import require
from broker.errors import ApiError, InvalidRequest
from broker.fanout import Outcome
from broker.metrics import METRICS
from broker.searches import SearchRequest
from certs.identity import Identity, Role

log = structlog.get_logger("signpost.broker")
AUDIT = web.AppKey("audit", AuditLog)
SUBJECT_KEY = web.AppKey("subject_key", bytes)
MAX_PAGE = 500


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
        self.actor = {"user_id": caller.id, "name": caller.name, "organisation": caller.organisation,
                      "role": caller.role.value, "email": caller.email}

    def describe(self, search: SearchRequest, key: bytes) -> None:
        s = search.subject
        self.purpose = {"code": search.purpose_code, "justification": search.justification}
        self.subject_hashes = subject_hashes(key, given_name=s.given_name, family_name=s.family_name,
                                             date_of_birth=s.date_of_birth or None, nhs_number=s.nhs_number)

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
            "type": "search", "time": now.isoformat(timespec="milliseconds"), "search_id": self.search_id,
            "status": status, "outcome": outcome, "actor": self.actor, "purpose": self.purpose,
            "subject_hashes": self.subject_hashes, "results": self.results, "answered": self.answered,
            "not_answered": self.not_answered,
        }


async def commit(app: web.Application, record: SearchRecord, status: int, outcome: str,
                 now: dt.datetime) -> Receipt:
    """Append the search's entry; raise AuditUnavailable if it is not durably written."""
    metrics = app[METRICS]
    started = time.perf_counter()
    try:
        receipt = await app[AUDIT].append(record.entry(status, outcome, now))
    except AuditError as exc:
        log.error("audit_write_failed", search_id=record.search_id, error_type=type(exc).__name__)
        raise AuditUnavailable("the search could not be recorded in the audit log, so its results are "
                               "withheld; try again shortly") from None
    finally:
        metrics.audit_seconds.observe(time.perf_counter() - started)
    record.receipt = receipt
    return receipt


def _time_param(request: web.Request, name: str) -> dt.datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 time", fields={name: "not an ISO 8601 time"}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    value = request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}",
                             fields={name: f"a whole number from {low} to {high}"})
    return int(value)


async def list_entries(request: web.Request) -> web.Response:
    """GET /v1/audit/entries?actor=&since=&until=&subject_hash=&after=&limit= (auditor)."""
    require(request, Role.AUDITOR)
    subject = request.query.get("subject_hash") or None
    if subject is not None and (len(subject) != 64 or any(c not in "0123456789abcdef" for c in subject)):
        raise InvalidRequest("subject_hash must be 64 lower-case hex digits (see signpost audit subject-hash)",
                             fields={"subject_hash": "64 lower-case hex digits"})
    limit = _int_param(request, "limit", 100, 1, MAX_PAGE) or 100
    entries = await request.app[AUDIT].entries(
        actor=request.query.get("actor") or None, since=_time_param(request, "since"),
        until=_time_param(request, "until"), subject_hash=subject, limit=limit,
        after_index=_int_param(request, "after", None, 0, 2**62),
    )
    body = [{"index": e.index, "entry": e.entry, "leaf_hash": e.leaf_hash, "head": e.head.to_json()}
            for e in entries]
    return web.json_response({"entries": body, "next_after": body[-1]["index"] if len(body) == limit else None})


async def checkpoint(request: web.Request) -> web.Response:
    """GET /v1/audit/checkpoint (auditor): the latest signed tree head, to keep for later verification."""
    require(request, Role.AUDITOR)
    audit = request.app[AUDIT]
    head = await audit.latest_checkpoint()
    public = audit.public_key.public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return web.json_response({**head, "public_key": public})
