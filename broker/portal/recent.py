"""A practitioner's own recent searches, read back from the audit log: why, when, and what came back.

Only the signed-in user's own entries (the log's ``actor.user_id``), only their final entries (a
search's ``started`` entry is not a second search), and only purpose, time and counts: an entry holds
the child as keyed hashes only, and this page shows not even those. Reads are bounded: the last
``DAYS`` days, at most ``MAX_PAGES`` pages of the log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from broker.audit.log import AuditLog
from broker.portal.wording import OUTCOMES, purpose_words, when
from broker.search_audit import STARTED

DAYS = 30
SHOWN = 20
PAGE = 500
MAX_PAGES = 20


@dataclass(frozen=True)
class RecentSearch:
    index: int
    time: str
    """UTC, to the minute, as the page shows it."""
    purpose: str
    outcome: str
    matches: int
    possibles: int
    not_answered: int


def _shown(index: int, entry: dict[str, Any]) -> RecentSearch:
    bands = [b for found in entry.get("results", {}).values() for b in found]
    return RecentSearch(
        index,
        when(entry["time"]),
        purpose_words(entry.get("purpose", {}).get("code", "")) or "None given",
        OUTCOMES.get(entry.get("outcome", ""), "Not made"),
        bands.count("match"),
        bands.count("possible"),
        len(entry.get("not_answered", [])),
    )


async def recent_searches(audit: AuditLog, user_id: str, now: dt.datetime) -> list[RecentSearch]:
    """``user_id``'s last ``SHOWN`` search attempts of the last ``DAYS`` days, newest first."""
    since = now - dt.timedelta(days=DAYS)
    found: list[RecentSearch] = []
    after: int | None = None
    for _ in range(MAX_PAGES):
        page = await audit.entries(actor=user_id, since=since, limit=PAGE, after_index=after)
        for stored in page:
            entry = stored.entry
            if entry.get("type") == "search" and entry.get("outcome") != STARTED:
                found.append(_shown(stored.index, entry))
        if len(page) < PAGE:
            break
        after = page[-1].index
    return found[::-1][:SHOWN]
