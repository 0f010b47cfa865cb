"""The broker's rules about who may do what and about children's data, in one reading.

- Who may call each route (``ROUTE_ROLES``): deny by default, so a route not listed here refuses
  everyone, and ``broker.routes`` will not start with a route this table does not name.
- Why a search may be made (``PURPOSES``) and what its justification must be: 10 to 500 characters,
  and not the child's name, date of birth or NHS number, because it is kept in clear in the audit log
  and in every node's journal.
- How much a search must say about the child (the minimum query, defined once in ``core.subject``
  for the broker and the nodes alike).
- How many searches one practitioner may make, and when their volume is unusual (the defaults of
  ``BrokerConfig``; ``broker.ratelimit`` counts).
- What a result discloses to the practitioner: the authority, the band ("match" or "possible"), the
  score, the node's reasons and who to contact, and never the authority's record of the child.

Rules and small pure functions only: enforcing them is elsewhere (``broker.auth`` checks roles,
``broker.search_request`` parses, ``broker.ratelimit`` counts, ``broker.routes`` answer). This module
must never do I/O, log, or hold state, and none of its messages may repeat a child's details.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from broker.fanout import Outcome
from certs.identity import Role
from core.names import fold
from core.subject import MINIMUM_QUERY, Subject, missing_for_minimum_query
from protos.signpost.v1 import node_pb2

# --- Who may do what -------------------------------------------------------------------------------

ROUTE_ROLES: Mapping[tuple[str, str], tuple[Role, ...]] = MappingProxyType(
    {
        ("POST", "/v1/searches"): (Role.PRACTITIONER,),
        ("GET", "/v1/nodes"): (Role.OPERATOR,),
        ("GET", "/metrics"): (Role.OPERATOR,),
        ("GET", "/dashboard"): (Role.OPERATOR,),
        ("GET", "/v1/purposes"): (Role.PRACTITIONER, Role.AUDITOR, Role.OPERATOR),
        ("GET", "/v1/audit/entries"): (Role.AUDITOR,),
        ("GET", "/v1/audit/checkpoint"): (Role.AUDITOR,),
    }
)
"""The roles each route admits, in the order a refusal names them. Node admins call no HTTPS route."""
OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/healthz")})
"""Routes that need no certificate: they must say nothing about data."""


def roles_for(method: str, path: str) -> tuple[Role, ...]:
    """The roles admitted to ``method`` ``path`` (a route's canonical path); () for a route not listed.

    HEAD is answered by the GET handler, so it admits the same roles.
    """
    return ROUTE_ROLES.get(("GET" if method == "HEAD" else method, path), ())


# --- Why a search may be made ----------------------------------------------------------------------

PURPOSES: Mapping[str, str] = MappingProxyType(
    {
        "child-protection-enquiry": "Section 47 enquiry or strategy discussion about significant harm",
        "child-in-need-assessment": "Section 17 assessment of a child in need",
        "early-help-assessment": "Early help assessment with the family's consent",
        "looked-after-child-review": "Review of a looked-after child's care plan",
        "missing-child": "A child missing from home, care or education",
        "private-fostering-assessment": "Assessment of a private fostering arrangement",
        "youth-justice-assessment": "Assessment by a youth offending team",
    }
)
"""The purpose codes a search may give, with what each means (served by GET /v1/purposes)."""
JUSTIFICATION_LENGTH = (10, 500)
"""Fewest and most characters of a justification, after trimming."""
JUSTIFICATION_NAMES_THE_CHILD = (
    "must not contain the child's name, date of birth or NHS number "
    "(it is kept in the audit log); give a case reference instead"
)


def justification_names_the_child(justification: str, subject: Subject) -> bool:
    """Whether the justification identifies the child: it is stored in clear, in the audit log and node journals.

    A heuristic (docs/security.md, residual risk 5): it catches the given, family and other names (3 letters
    or more, as whole words), the date of birth as eight digits in year-month-day, day-month-year or
    month-day-year order, and the NHS number.
    """
    text = " " + fold(justification) + " "
    digits = "".join(c for c in justification if c.isdigit())
    names = [fold(n) for n in (subject.given_name, subject.family_name, *subject.other_names)]
    leaks = any(len(n) >= 3 and f" {n} " in text for n in names)
    if subject.date_of_birth:
        y, m, d = subject.date_of_birth.split("-")
        leaks |= any(form in digits for form in (y + m + d, d + m + y, m + d + y))
    leaks |= bool(subject.nhs_number) and subject.nhs_number in digits
    return leaks


# --- How much a search must say (the minimum query, against trawling) --------------------------------


def minimum_query_refusals(subject: Subject) -> dict[str, str]:
    """Each field the minimum query (``core.subject.MINIMUM_QUERY``) still needs, with the reason given."""
    return {f"subject.{name}": "required: " + MINIMUM_QUERY for name in missing_for_minimum_query(subject)}


# --- How many searches (defaults; broker.config reads the deployed values) --------------------------

RATE_LIMIT_PER_MINUTE = 30
"""Searches per practitioner per minute; 0 turns the limit off."""
RATE_LIMIT_PER_DAY = 300
"""Searches per practitioner per rolling 24 hours; 0 turns the limit off."""
ALERT_SEARCHES_PER_HOUR = 60
"""More searches than this by one practitioner in an hour raise an unusual-volume alert; 0 = never."""
PREAUTH_REQUESTS_PER_SECOND = 20.0
"""Requests per second one source address may make, sustained, before any certificate or body is read."""
PREAUTH_BURST = 200
"""Requests one source address may make at once above that rate (a token bucket's size); 0 turns it off."""
REFUSAL_AUDIT_INTERVAL_SECONDS = 60.0
"""Per client, the first 429 and the first certificate-less 401 of each such interval are audited in full;
the rest of the interval's are one entry with their count, so abuse cannot flood the audit log."""
REFUSAL_AUDIT_MAX_CLIENTS = 10_000
"""Most clients whose refusals are counted apart in one interval; beyond, they share one count."""
AUDIT_TIMEOUT_SHARE = 0.25
"""By default a search waits at most this share of its deadline for its first audit entry; then 503."""
AUDIT_OUTCOME_RESERVE_SECONDS = 0.1
"""Of a search's deadline, kept back from the nodes for committing its outcome entry."""


# --- What a result discloses to the practitioner -----------------------------------------------------


def result_json(outcome: Outcome, candidate: node_pb2.Candidate) -> dict[str, Any]:
    """One candidate as the practitioner sees it: who holds a record and who to contact, not the record."""
    return {
        "authority": {"code": outcome.authority.code, "name": outcome.authority.name},
        "band": candidate.band,
        "score": round(candidate.score, 3),
        "reasons": list(candidate.reasons),
        "contacts": [
            {
                "service": c.service,
                "team": c.team,
                "practitioner_name": c.practitioner_name,
                "practitioner_role": c.practitioner_role,
                "practitioner_phone": c.practitioner_phone,
                "practitioner_email": c.practitioner_email,
                "involvement_start": c.involvement_start or None,
                "involvement_end": c.involvement_end or None,
            }
            for c in candidate.contacts
        ],
    }


def results_json(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Every authority's candidates: matches first, then by score, then by authority code."""
    results = [result_json(o, c) for o in outcomes if o.response for c in o.response.candidates]
    results.sort(key=lambda r: (r["band"] != "match", -r["score"], r["authority"]["code"]))
    return results


def coverage_json(outcomes: list[Outcome]) -> dict[str, Any]:
    """Which authorities were asked and which did not answer, and why: silence is never "no contact"."""
    missing = [o for o in outcomes if o.error is not None]
    return {
        "asked": len(outcomes),
        "answered": len(outcomes) - len(missing),
        "not_answered": [
            {"code": o.authority.code, "name": o.authority.name, "reason": o.error.reason}
            for o in missing
            if o.error is not None
        ],
    }
