"""What a notification says: the words of each message, built from journal rows, and nothing else.

Three kinds, all from :class:`node.journal.JournalRow`: an **alert** for the safeguarding officer (a
search found a shielded child's record), a **digest** of the access log for a period, and a
**practitioner notice** (another professional is looking for a child you work with).

A message carries ids (journal, record, search), times, band, who searched (the broker-signed
requester: name, organisation, role, email, user id) and the purpose code. It never carries a
child's name, date of birth, address, postcode or NHS number: the journal does not hold them, and
nothing here reads the record store for them. Nor the purpose's free-text justification, though
the journal holds it: a person typed it, and people type a child's name or address into such
boxes ("strategy discussion re Amelia S, 12 Oak Rd"); email leaves the authority's control, so the
officer reads the justification in the journal itself (``signpost node alerts``).

Pure functions: no I/O, no logging.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from node.journal import JournalRow
from node.records import Involvement

ALERT_HELP = "Review and acknowledge it with: signpost node alerts --config <node.toml> --ack {id} --by <your name>"


def _searcher(row: JournalRow) -> str:
    email = f" <{row.requester_email}>" if row.requester_email else ""
    return f"{row.requester_name}{email}, {row.requester_role}, {row.requester_organisation} (user {row.requester_id})"


def fields(row: JournalRow) -> dict[str, Any]:
    """A row as a webhook sends it: every field but the justification (see the module docstring)."""
    return {
        "journal_id": row.id,
        "time": row.time,
        "kind": row.kind,
        "search_id": row.search_id,
        "record_id": row.record_id,
        "band": row.band,
        "requester": {
            "user_id": row.requester_id,
            "name": row.requester_name,
            "organisation": row.requester_organisation,
            "role": row.requester_role,
            "email": row.requester_email,
        },
        "purpose_code": row.purpose_code,
    }


def alert_email(code: str, name: str, row: JournalRow) -> tuple[str, str]:
    """Subject and body of the safeguarding officer's email for one alert."""
    subject = f"Signpost {code}: a search found a shielded child's record (alert {row.id})"
    body = "\n".join(
        [
            f"A search found the record of a shielded child held by {name} ({code}).",
            "The searcher was answered as if there were no match here.",
            "",
            f"Alert (journal id): {row.id}",
            f"Time (UTC):         {row.time}",
            f"Record id:          {row.record_id}",
            f"Band:               {row.band}",
            f"Search id:          {row.search_id}",
            f"Searcher:           {_searcher(row)}",
            f"Purpose:            {row.purpose_code}",
            "",
            "The justification the searcher gave is in the journal, not in this email.",
            ALERT_HELP.format(id=row.id),
        ]
    )
    return subject, body


def alert_document(code: str, row: JournalRow) -> dict[str, Any]:
    return {"type": "alert", "authority": code, **fields(row)}


def _digest_line(row: JournalRow) -> str:
    return (
        f"#{row.id}  {row.time}  {row.kind:<5}  {row.band or '-':<8}  record {row.record_id}  "
        f"search {row.search_id}  {row.purpose_code}  by {_searcher(row)}"
    )


def digest_email(code: str, name: str, start: str, end: str, rows: Sequence[JournalRow], total: int) -> tuple[str, str]:
    """Subject and body of the access-log digest for [start, end): one line a journal row."""
    alerts = sum(r.kind == "alert" for r in rows)
    subject = f"Signpost {code}: access log {start} to {end} ({total} searches, {alerts} alerts)"
    lines = [
        f"Searches that matched {name}'s ({code}) records or found a shielded child's, {start} to {end} (UTC).",
        "Columns: journal id, time, kind (match or alert), band, record id, search id, purpose, searcher.",
        "",
        *(_digest_line(r) for r in rows),
    ]
    if total > len(rows):
        lines += [
            "",
            f"... and {total - len(rows)} more: signpost node access-log --config <node.toml> --since {start}",
        ]
    return subject, "\n".join(lines)


def digest_document(code: str, start: str, end: str, rows: Sequence[JournalRow], total: int) -> dict[str, Any]:
    return {
        "type": "digest",
        "authority": code,
        "from": start,
        "to": end,
        "total": total,
        "entries": [fields(r) for r in rows],
    }


def practitioner_addresses(involvements: Iterable[Involvement], requester_email: str) -> tuple[str, ...]:
    """Whom a match disclosed (the named practitioners of non-sensitive involvements, as node.policy
    discloses them), less the searcher: telling someone of their own search is noise."""
    seen: dict[str, None] = {}
    for i in involvements:
        if not i.sensitive and i.practitioner_email and i.practitioner_email.lower() != requester_email.lower():
            seen.setdefault(i.practitioner_email, None)
    return tuple(seen)


def practitioner_email(code: str, name: str, row: JournalRow) -> tuple[str, str]:
    """Subject and body of the notice to a practitioner whose contact a match disclosed."""
    subject = f"Signpost {code}: another professional is looking for a child you work with"
    body = "\n".join(
        [
            f"A search through Signpost matched {name}'s ({code}) record {row.record_id}, and your contact",
            "details were given to the searcher. They may get in touch; you may want to contact them.",
            "",
            f"Searcher:  {row.requester_name}, {row.requester_role}, {row.requester_organisation}",
            f"Email:     {row.requester_email or '(none given)'}",
            f"Purpose:   {row.purpose_code}",
            f"Time (UTC): {row.time}",
            f"Reference: journal {row.id}, search {row.search_id}",
        ]
    )
    return subject, body
