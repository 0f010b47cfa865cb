"""What the portal's pages say about a search's answer, in plain English.

The API's answer (broker.policy's ``results`` and ``coverage``) is put into words here and nowhere
else: the band as "Match" or "Possible match — check before acting", phone numbers as click-to-call
links, and every authority that could not be asked in words that cannot be read as "no contact":
silence from an authority says nothing about whether it knows the child.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from broker.policy import PURPOSES

BANDS = {"match": "Match", "possible": "Possible match — check before acting"}
NOT_ANSWERED = {
    "timeout": "did not answer in time",
    "unavailable": "could not be reached",
    "refused": "refused the connection",
    "error": "answered with an error",
    "circuit_open": "has been failing, so was not asked",
}
"""Why an authority gave no answer, by the coverage reason (broker.errors.NodeCallError.reason)."""
OUTCOMES = {
    "answered": "Answered",
    "invalid": "Not made: the form had errors",
    "unauthenticated": "Not made: not signed in",
    "forbidden": "Not made: not allowed",
    "rate_limited": "Not made: too many searches",
    "unavailable": "Not made: the service was unavailable",
    "audit_unavailable": "Not made: could not be recorded",
    "overloaded": "Not made: the service was busy",
}
"""An audit entry's outcome, as "my recent searches" shows it."""
_PHONE = re.compile(r"[^0-9+]")
_MAILBOX = re.compile(r"[A-Za-z0-9.!$&'*+/=^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
"""An address plain enough to link: no ``?`` to add a subject, body or second recipient, no spaces, no
``%`` (a mail program may decode ``%2C`` or ``%3F`` into a delimiter) and no ``#`` (the link's fragment)."""


def tel_href(phone: str) -> str:
    """A ``tel:`` link for a phone number as written ("0113 496 0000" → "tel:01134960000")."""
    return "tel:" + _PHONE.sub("", phone)


def when(timestamp: str) -> str:
    """An ISO 8601 time as the pages show it: "3 December 2026, 08:37 UTC"."""
    return dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC).strftime("%-d %B %Y, %H:%M UTC")


def purpose_words(code: str) -> str:
    return PURPOSES.get(code, code)


@dataclass(frozen=True)
class Contact:
    """Who to call, with links ready for the page."""

    heading: str
    name: str
    role: str
    phone: str
    email: str
    since: str

    @property
    def tel(self) -> str:
        return tel_href(self.phone)

    @property
    def mailto(self) -> str:
        """A ``mailto:`` link, or "" when the node's address is not plain enough to link.

        The address comes from an authority's own records, which the broker does not vouch for: a
        ``mailto:`` with ``?cc=`` or ``&body=`` would have the practitioner's mail program write to
        someone else. The address is still shown, as text.
        """
        return f"mailto:{self.email}" if _MAILBOX.fullmatch(self.email) else ""


@dataclass(frozen=True)
class Result:
    authority: str
    band: str
    band_words: str
    reasons: tuple[str, ...]
    contacts: tuple[Contact, ...]
    """Named practitioners (a match) or the authority's front door (a possible)."""


def _named(c: dict[str, Any]) -> Contact:
    heading = " — ".join(p for p in (c.get("service") or "", c.get("team") or "") if p)
    since = f"since {c['involvement_start']}" if c.get("involvement_start") else ""
    return Contact(
        heading,
        c.get("practitioner_name") or "",
        c.get("practitioner_role") or "",
        c.get("practitioner_phone") or "",
        c.get("practitioner_email") or "",
        since,
    )


def _front_door(door: dict[str, str]) -> Contact:
    heading = " — ".join(p for p in (door.get("service", ""), door.get("team", "")) if p) or "Front door"
    return Contact(heading, "", "", door.get("phone", ""), door.get("email", ""), "")


def results(api_results: list[dict[str, Any]]) -> list[Result]:
    """Each result as the page shows it, in the API's order (matches first)."""
    shown = []
    for r in api_results:
        if r["band"] == "match":
            contacts = tuple(_named(c) for c in r["contacts"])
        else:
            contacts = (_front_door(r["front_door"]),) if r.get("front_door") else ()
        shown.append(
            Result(r["authority"]["name"], r["band"], BANDS.get(r["band"], r["band"]), tuple(r["reasons"]), contacts)
        )
    return shown


def not_answered(coverage: dict[str, Any]) -> list[str]:
    """One sentence per authority that gave no answer: "Kent did not answer in time — this search does not
    tell you whether Kent knows this child"."""
    sentences = []
    for gap in coverage.get("not_answered", []):
        name = gap.get("name") or gap["code"]
        why = NOT_ANSWERED.get(gap["reason"], "gave no answer")
        sentences.append(f"{name} {why} — this search does not tell you whether {name} knows this child")
    return sentences
