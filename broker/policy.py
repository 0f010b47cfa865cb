"""The broker's rules about who may do what and about children's data, in one reading.

- Who may call each route (``ROUTE_ROLES``): deny by default, so a route not listed here refuses
  everyone, and ``broker.routes`` will not start with a route this table does not name. The practitioner
  portal's pages, reached with a signed-in session instead of a certificate, have their own table
  (``PORTAL_ROUTE_ROLES``) and open routes (``PORTAL_OPEN_ROUTES``), under the same rule.
- Why a search may be made (``PURPOSES``) and what its justification must be: 10 to 500 characters,
  and not the child's name (nor a nickname), date of birth, postcode or NHS number, however disguised, because it
  is kept in clear in the audit log and in node journals.
- How much a search must say about the child (the minimum query, defined once in ``core.subject``
  for the broker and the nodes alike), and that each name in it is a name (``core.names.name_problem``).
- How many searches one practitioner, and one organisation, may make, and when their volume or pattern
  is unusual (the defaults of ``BrokerConfig``; ``broker.ratelimit`` and ``broker.patterns`` count).
- What a result discloses to the practitioner: the authority, the band ("match" or "possible"), the
  score, the node's reasons and who to contact, and never the authority's record of the child. A
  ``match`` gives the named practitioners; a ``possible`` only the authority's front door, whatever a
  node sends (defence in depth: ``node.policy`` already withholds them).

Rules and small pure functions only: enforcing them is elsewhere (``broker.auth`` checks roles,
``broker.search_request`` parses, ``broker.ratelimit`` counts, ``broker.routes`` answer). This module
must never do I/O, log, or hold state, and none of its messages may repeat a child's details.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from broker.fanout import Outcome
from certs.identity import Role
from core.identifiers import postcode_parts
from core.names import fold, skeleton, tokens
from core.nicknames import default_variants
from core.subject import Subject, minimum_query_problems
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
OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/healthz"), ("GET", "/readyz")})
"""Routes that need no certificate: they must say nothing about data."""


PORTAL_ROUTE_ROLES: Mapping[tuple[str, str], tuple[Role, ...]] = MappingProxyType(
    {
        ("GET", "/portal/search"): (Role.PRACTITIONER,),
        ("POST", "/portal/search"): (Role.PRACTITIONER,),
        ("GET", "/portal/recent"): (Role.PRACTITIONER,),
        ("POST", "/portal/sign-out"): (Role.PRACTITIONER, Role.AUDITOR, Role.OPERATOR),
    }
)
"""The practitioner portal's pages that need a signed-in session (never a certificate), and the roles
each admits: the role the user's own authority's identity provider grants (broker.portal.signin).
Auditors and operators have no portal pages yet: they use the certificate API. Every POST here must
also carry the session's CSRF token (broker.portal.sessions)."""
PORTAL_OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/"),
        ("GET", "/portal"),
        ("GET", "/portal/sign-in"),
        ("GET", "/portal/sign-in/start"),
        ("GET", "/portal/sign-in/callback"),
        ("GET", "/portal/assets"),
    }
)
"""Portal routes anyone may reach, signed in or not: the start page, signing in, and GOV.UK Frontend's
static files. They must say nothing about data."""


def roles_for(method: str, path: str) -> tuple[Role, ...]:
    """The roles admitted to ``method`` ``path`` (a route's canonical path); () for a route not listed.

    HEAD is answered by the GET handler, so it admits the same roles.
    """
    return ROUTE_ROLES.get(("GET" if method == "HEAD" else method, path), ())


def portal_roles_for(method: str, path: str) -> tuple[Role, ...]:
    """The roles a signed-in portal user needs for ``method`` ``path``; () for a route not listed."""
    return PORTAL_ROUTE_ROLES.get(("GET" if method == "HEAD" else method, path), ())


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
    "must not contain the child's name, date of birth, postcode or NHS number "
    "(it is kept in the audit log); give a case reference instead"
)


def justification_names_the_child(justification: str, subject: Subject) -> bool:
    """Whether the justification identifies the child: it is stored in clear, in the audit log and node journals.

    A heuristic (docs/security.md, residual risk 5), read through disguises: the text is read as it looks
    (``core.names.skeleton``: invisible characters removed, Cyrillic and Greek look-alikes as Latin) and
    with digits inside words read as letters ("Ch4rles"). It finds the child's given, middle, family and
    other names and the given names' nicknames and variants (``core.nicknames``); the date of birth in
    numeric and written forms with two- or four-digit years; the NHS number however spaced, dashed or
    spelt out in words; and the full postcode in any spacing, case or punctuation (it says where the child lives).
    """
    names, variants = _names_of(subject)
    if any(_mentions(words, names, variants) for words in _letter_readings(justification)):
        return True
    digits = _digit_text(justification)
    if subject.date_of_birth and _mentions_date(digits, subject.date_of_birth):
        return True
    if subject.postcode and _mentions_postcode(digits, subject.postcode):
        return True
    return bool(subject.nhs_number) and _mentions_number(digits, subject.nhs_number)


# How names are found in a justification. A name of 3 letters or more counts as a whole word, and inside a
# word when the word is made of the child's names ("CharlesBall"); one of 6 or more also anywhere inside a
# word ("xCharlesx"). Shorter names inside words would refuse ordinary words (Day in "today", Tom in
# "tomorrow"), so they count only as whole words, words being split at case changes too ("TomDay").
_INSIDE_WORDS = 6
_WHOLE_WORD = 3
# A two-letter name counts as a whole word unless it is also a common English word ("Do", "An").
_SHORT_WORDS = frozenset(
    "am an as at be by do go he if in is it me my no of oh ok on or re so to up us we dr mr ms gp id st uk".split()
)
# Nicknames that are also everyday words: refusing "will" for every William would refuse most text.
# The child's own name is searched for even when it is one of these.
_ORDINARY_WORDS = frozenset(
    """will wills bill art arch ash bee cat col con den des dot gene ion jan kit mat max may nan pat peg rob rod
    sal sky sly sol sue win ray bob sep don del ore val ant august frank mark chuck nick dick jack sandy pip joy
    hope rose grace penny drew tel norm rich herb cliff mart tory jean eve ken lou guy dolly daisy ivy ruby
    belle sunny hank mike asia fin nat mal sid les lex gus ted ned hal tab rusty bud""".split()
)
# Digits and signs written for letters; "1" is read both as "i" and as "l".
_LEET = {"4": "a", "@": "a", "3": "e", "0": "o", "5": "s", "$": "s", "7": "t"}
_WORD_WITH_SIGNS = re.compile(r"[\w@$]+")
_CASE_CHANGE = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _names_of(subject: Subject) -> tuple[frozenset[str], frozenset[str]]:
    """The child's names as folded words (each part, and multi-part names joined), and their variants."""
    written = (subject.given_name, subject.middle_names, subject.family_name, *subject.other_names)
    names: set[str] = set()
    for text in written:
        parts = tokens(text)
        names.update(parts)
        names.add("".join(parts))
    given = [*tokens(subject.given_name), *tokens(subject.middle_names)]
    given += [tokens(other)[0] for other in subject.other_names if tokens(other)]
    variants = {v for g in given for v in default_variants().variants_of(g)} - _ORDINARY_WORDS - names
    names.discard("")
    return frozenset(names), frozenset(variants)


def _letter_readings(text: str) -> list[list[str]]:
    """The justification's words, each reading folded: with and without splitting at case changes, and
    with "1" read as "i" and as "l"."""
    plain = skeleton(text)
    readings = []
    for split in (plain, _CASE_CHANGE.sub(" ", plain)):
        for one in "il":
            letters = _WORD_WITH_SIGNS.sub(functools.partial(_as_letters, table={**_LEET, "1": one}), split)
            readings.append(fold(letters).split())
    return readings


def _as_letters(match: re.Match[str], table: dict[str, str]) -> str:
    """Digits and signs in a word that has letters, read as letters; a number stays a number."""
    word = match[0]
    return "".join(table.get(c, c) for c in word) if any(c.isalpha() for c in word) else word


def _mentions(words: list[str], names: frozenset[str], variants: frozenset[str]) -> bool:
    searched = names | variants
    for word in words:
        if word in searched and (len(word) >= _WHOLE_WORD or word not in _SHORT_WORDS):
            return True
        if any(len(n) >= _INSIDE_WORDS and n in word for n in searched):
            return True
        if _made_of(word, {n for n in searched if len(n) >= _WHOLE_WORD}):
            return True
    return False


def _made_of(word: str, pieces: set[str]) -> bool:
    """Whether the word is two or more of the pieces run together ("charlesball")."""
    ends = {0: 0}  # index in word -> fewest pieces that reach it
    for start in range(len(word)):
        if start in ends:
            for piece in pieces:
                if word.startswith(piece, start):
                    end = start + len(piece)
                    ends[end] = min(ends.get(end, 99), ends[start] + 1)
    return ends.get(len(word), 0) >= 2


# How dates and numbers are found: every decimal digit as ASCII, month names as numbers, "18th" as 18.
_MONTHS = {
    **{name: n for n, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)},
    **{
        name: n
        for n, name in enumerate(
            "january february march april may june july august september october november december".split(), start=1
        )
    },
    "sept": 9,
}
_MONTH_NAME = re.compile(r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b")
_ORDINAL = re.compile(r"(\d)(?:st|nd|rd|th)\b")
_FILLER = re.compile(r"\b(?:of|the)\b")
_NUMBER = re.compile(r"\d+")
_DATE_SEPARATOR = re.compile(r"[\s./\-,]{1,6}")
_NUMBER_WORDS = dict(
    zip("zero nought oh one two three four five six seven eight nine".split(), "000123456789", strict=True)
)
_DIGIT_OR_WORD = re.compile(r"\d|[a-z]+")


def _digit_text(text: str) -> str:
    """The justification lower-cased and read as it looks, with every decimal digit (any script) as 0-9."""
    plain = skeleton(text).lower()
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in plain)


def _mentions_date(text: str, date_of_birth: str) -> bool:
    year, month, day = (int(p) for p in date_of_birth.split("-"))
    compact = {f"{year:04}{month:02}{day:02}", f"{day:02}{month:02}{year:04}", f"{month:02}{day:02}{year:04}"}
    short = {f"{year % 100:02}{month:02}{day:02}", f"{day:02}{month:02}{year % 100:02}"}
    short.add(f"{month:02}{day:02}{year % 100:02}")
    digits = "".join(c for c in text if c.isdigit())
    if any(form in digits for form in compact):
        return True
    numeric = _FILLER.sub(" ", _ORDINAL.sub(r"\1", _MONTH_NAME.sub(lambda m: f" {_MONTHS[m[1]]} ", text)))
    numbers = list(_NUMBER.finditer(numeric))
    if any(n[0] in short for n in numbers):
        return True
    for a, b, c in zip(numbers, numbers[1:], numbers[2:], strict=False):
        gaps = numeric[a.end() : b.start()], numeric[b.end() : c.start()]
        if all(_DATE_SEPARATOR.fullmatch(gap) for gap in gaps) and _is_date((a[0], b[0], c[0]), year, month, day):
            return True
    return False


def _is_date(parts: tuple[str, str, str], year: int, month: int, day: int) -> bool:
    """Whether three numbers read as the date, day-month-year, month-day-year or year-month-day."""

    def is_year(p: str) -> bool:
        return (len(p) == 4 and int(p) == year) or (len(p) == 2 and int(p) == year % 100)

    def is_(p: str, value: int) -> bool:
        return len(p) <= 2 and int(p) == value

    first, second, third = parts
    return (
        (is_(first, day) and is_(second, month) and is_year(third))
        or (is_(first, month) and is_(second, day) and is_year(third))
        or (is_year(first) and is_(second, month) and is_(third, day))
    )


def _mentions_postcode(text: str, postcode: str) -> bool:
    """The full postcode in the text's letters and digits, however spaced, dashed or cased ("ls6-2ab")."""
    full = postcode_parts(postcode)[0].lower()
    return bool(full) and full in "".join(c for c in text if c.isalnum())


def _mentions_number(text: str, nhs_number: str) -> bool:
    """The NHS number in the text's digits, however spaced or dashed, or with its digits as words."""
    digits = "".join(c for c in text if c.isdigit())
    spoken = "".join(t if t.isdigit() else _NUMBER_WORDS.get(t, "") for t in _DIGIT_OR_WORD.findall(text))
    return nhs_number in digits or nhs_number in spoken


# --- How much a search must say (the minimum query, against trawling) --------------------------------


def minimum_query_refusals(subject: Subject) -> dict[str, str]:
    """Each field the minimum query (``core.subject``) refuses: missing ones, and names that are no names
    ("." or zero-width spaces, an initial, "x", "Baby", "Ms"). The reasons never repeat the value."""
    return {f"subject.{name}": reason for name, reason in minimum_query_problems(subject).items()}


# --- How many searches (defaults; broker.config reads the deployed values) --------------------------

RATE_LIMIT_PER_MINUTE = 30
"""Searches per practitioner per minute; 0 turns the limit off."""
RATE_LIMIT_PER_DAY = 300
"""Searches per practitioner per rolling 24 hours; 0 turns the limit off."""
ORG_RATE_LIMIT_PER_MINUTE = 120
"""Searches per organisation (as its members' certificates name it) per minute; 0 turns the limit off."""
ORG_RATE_LIMIT_PER_DAY = 3000
"""Searches per organisation per rolling 24 hours; 0 turns the limit off."""
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


CONTACT_KINDS = {"match": "practitioner", "possible": "front_door"}
"""What kind of contact each band gives: a possible may be a sibling or a look-alike stranger, so it never
names their worker; the practitioner asks the authority's front door (its MASH or duty line) instead."""


def result_json(outcome: Outcome, candidate: node_pb2.Candidate) -> dict[str, Any]:
    """One candidate as the practitioner sees it: who holds a record and who to contact, not the record."""
    kind = CONTACT_KINDS[candidate.band]
    named = kind == "practitioner"
    door = candidate.front_door if not named and candidate.HasField("front_door") else None
    return {
        "authority": {"code": outcome.authority.code, "name": outcome.authority.name},
        "band": candidate.band,
        "score": round(candidate.score, 3),
        "reasons": list(candidate.reasons),
        "contact_kind": kind,
        # A possible's named contacts are never read, so a node that sends them discloses nothing.
        "contacts": [_named_contact(c) for c in candidate.contacts] if named else [],
        "front_door": None if door is None else _front_door(door),
    }


def _front_door(door: node_pb2.FrontDoor) -> dict[str, str]:
    return {"service": door.service, "team": door.team, "phone": door.phone, "email": door.email}


def _named_contact(c: node_pb2.Contact) -> dict[str, Any]:
    return {
        "service": c.service,
        "team": c.team,
        "practitioner_name": c.practitioner_name,
        "practitioner_role": c.practitioner_role,
        "practitioner_phone": c.practitioner_phone,
        "practitioner_email": c.practitioner_email,
        "involvement_start": c.involvement_start or None,
        "involvement_end": c.involvement_end or None,
    }


def oversharing_authorities(outcomes: list[Outcome]) -> list[str]:
    """Codes of authorities whose node sent named contacts with a possible (dropped by result_json).

    The caller logs them: such a node is misconfigured or out of date, and its operator must know.
    """
    return sorted(
        {
            o.authority.code
            for o in outcomes
            if o.response
            for c in o.response.candidates
            if CONTACT_KINDS.get(c.band) != "practitioner" and len(c.contacts)
        }
    )


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
