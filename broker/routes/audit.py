"""The auditors' routes: pages of audit entries, and the latest signed tree head to keep.

Entries hold the child only as keyed hashes (broker.search_audit); an auditor looks a child up by
the hash ``signpost audit subject-hash`` computes, never by name. Query values are checked and
refused by field name, never echoed.
"""

from __future__ import annotations

import datetime as dt
import re

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from broker.appkeys import AUDIT
from broker.auth import require_route
from broker.errors import InvalidRequest
from core.subject import clean_text

MAX_PAGE = 500
MAX_ACTOR = 200
# ASCII digits only, and few of them: str.isdigit() accepts "²", which int() refuses, and int() refuses
# more than 4,300 digits.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")


def _actor_param(request: web.Request) -> str | None:
    value = request.query.get("actor")
    if not value:
        return None
    try:
        actor = clean_text(value)
    except ValueError:
        actor = ""
    if not actor or len(actor) > MAX_ACTOR:
        reason = f"a user id of at most {MAX_ACTOR} characters of well-formed text"
        raise InvalidRequest(f"actor must be {reason}", fields={"actor": reason})
    return actor


def _time_param(request: web.Request, name: str) -> dt.datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
        # In UTC now, not when the store compares it: 0001-01-01T00:00:00+14:00 is before year 1 in UTC.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"{name} must be an ISO 8601 time within years 1 to 9999 in UTC",
            fields={name: "not an ISO 8601 time within years 1 to 9999 in UTC"},
        ) from None


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    value = request.query.get(name)
    if value is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(value) or not low <= int(value) <= high:
        raise InvalidRequest(
            f"{name} must be a whole number from {low} to {high}", fields={name: f"a whole number from {low} to {high}"}
        )
    return int(value)


async def list_entries(request: web.Request) -> web.Response:
    """GET /v1/audit/entries?actor=&since=&until=&subject_hash=&after=&limit= (auditor)."""
    require_route(request)
    subject = request.query.get("subject_hash") or None
    if subject is not None and (len(subject) != 64 or any(c not in "0123456789abcdef" for c in subject)):
        raise InvalidRequest(
            "subject_hash must be 64 lower-case hex digits (see signpost audit subject-hash)",
            fields={"subject_hash": "64 lower-case hex digits"},
        )
    limit = _int_param(request, "limit", 100, 1, MAX_PAGE) or 100
    entries = await request.app[AUDIT].entries(
        actor=_actor_param(request),
        since=_time_param(request, "since"),
        until=_time_param(request, "until"),
        subject_hash=subject,
        limit=limit,
        after_index=_int_param(request, "after", None, 0, 2**62),
    )
    body = [{"index": e.index, "entry": e.entry, "leaf_hash": e.leaf_hash, "head": e.head.to_json()} for e in entries]
    return web.json_response({"entries": body, "next_after": body[-1]["index"] if len(body) == limit else None})


async def checkpoint(request: web.Request) -> web.Response:
    """GET /v1/audit/checkpoint (auditor): the latest signed tree head, to keep for later verification."""
    require_route(request)
    audit = request.app[AUDIT]
    head = await audit.latest_checkpoint()
    public = audit.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return web.json_response({**head, "public_key": public})
