"""The node's rules about children's data, in one reading.

A node holds one authority's records of children; these are the rules it keeps whatever the broker
does. :mod:`node.service` applies them to gRPC calls; everything here is a rule or a small pure function.

1. **Who may call.** NodeService answers the federation broker's certificate only (role ``broker``,
   read by :mod:`node.caller` from a certificate TLS has already chained to the federation CA), and
   not once that certificate is revoked: checked on every call, and on every batch of an open stream.
   Each search must also carry a fresh query assertion signed by a broker key this node knows and
   addressed to this authority (:mod:`certs.assertions`).
2. **What a search must carry.** The same subject checks the broker applies (:mod:`core.subject`,
   :mod:`core.identifiers`): a valid date of birth and NHS number, a known sex, the minimum query,
   and a purpose code. A node does not rely on the broker to have refused a fishing trip.
3. **What a band discloses.** Band, score and reasons, and then who to contact (:func:`candidate_of`):
   a ``match`` gives the named practitioners of the record's non-sensitive involvements; a ``possible``
   gives only the authority's front door (:class:`FrontDoor`, its MASH or duty line), never a named
   practitioner, because a possible may be a sibling, a twin or a stranger who looks alike and their
   worker must not be revealed. The named contacts of a possible are not even put in the message.
   A child known only to sensitive services is answered as no match: even "a match" would reveal that.
4. **Shielded children.** A shielded record is answered exactly as no match, to the broker too, while
   the holder's journal records an alert for its safeguarding officer (:func:`disclose`).
5. **Errors.** A refusal or failure goes back with a fixed, safe message: never a database error and
   never any of the subject's details.
6. **Retention: what has ended long ago is not disclosed.** An involvement that ended more than
   ``[retention] disclose_ended_years`` (default :data:`DISCLOSE_ENDED_YEARS`) ago is not a contact any
   more (:func:`disclosure_cutoff`, :func:`still_disclosed`), and a record with nothing left is not held
   at all: expiry is applied when data is loaded and by an hourly sweep of the store
   (:mod:`node.retention`), never at answer time, so an expired record is exactly as absent as one never
   loaded — not in the match index, not in its frequencies, and no different in time.
7. **The answer floor.** Every answer waits until :data:`ANSWER_FLOOR_SECONDS` (configurable) after the
   call or batch arrived. A shielded child's record is found and scored, which takes longer than finding
   nothing; if answers went out as soon as they were ready, the time alone would tell the searcher (or
   the broker) that this authority holds a shielded child. The wait is timed by :mod:`node.timing`.

This module must never log, never await, and never put a child's details in a message or a result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from certs.identity import Identity, Role
from core.identifiers import nhs_number_valid, normalise_nhs_number, parse_date_of_birth
from core.subject import MINIMUM_QUERY, SEXES, Subject, missing_for_minimum_query
from node.errors import MatchRequestError
from node.matching import MatchResult
from node.records import Involvement
from protos.signpost.v1 import node_pb2

JournalEntry = tuple[str, str | None, str | None]
"""One journal row of a search: kind ("match" or "alert"), record id and band.

A search with no rows found nothing here: the journal keeps only a count of it (:mod:`node.journal`).
"""

BROKER_ONLY = "only the federation broker may call this node"
REVOKED = "the caller's certificate is revoked"
PURPOSE_REQUIRED = "purpose.code is required"
STORE_FAILED = "the node could not read or record the search"
"""All the broker learns when the store fails: the store's own message stays in this node's log."""

ANSWER_FLOOR_SECONDS = 0.005
"""No answer leaves sooner than this after its call or batch arrived (rule 7 above)."""

DISCLOSE_ENDED_YEARS = 6
"""Default of ``[retention] disclose_ended_years`` (rule 6): an involvement that ended more than this many
years ago is not disclosed. A signpost is worth giving while the professional it names may still know
the child; years after a case closed that worker has usually moved on, and every disclosure of an old
involvement is an intrusion with little safeguarding value. The Dutch Verwijsindex, the nearest working
precedent, keeps a signal active for 2 years and visible for 5; six is a little more generous, for
siblings and returning families, and an authority may set its own (see the README)."""


def disclosure_cutoff(today: dt.date, years: int) -> str:
    """The ISO date before which an ended involvement is no longer disclosed: ``today`` less ``years`` years.

    ISO dates compare as text, which is how the store applies the same rule in SQL. 29 February falls
    back to the 28th in a year without one.
    """
    try:
        return today.replace(year=today.year - years).isoformat()
    except ValueError:
        return today.replace(year=today.year - years, day=28).isoformat()


def still_disclosed(involvement: Involvement, cutoff: str) -> bool:
    """Is this involvement still a contact? Ongoing (no end), or ended on or after ``cutoff`` (rule 6)."""
    return not involvement.involvement_end or involvement.involvement_end >= cutoff


def is_broker(identity: Identity | None) -> TypeGuard[Identity]:
    """May this identity call NodeService at all? (Revocation is checked separately, and again per batch.)"""
    return identity is not None and identity.role is Role.BROKER


def query_from(message: node_pb2.Subject, today: dt.date | None = None) -> Subject:
    """Check a subject the broker sent; raise MatchRequestError with a safe message.

    The same rules the broker applies (:mod:`core.subject`, :mod:`core.identifiers`): a node does
    not rely on the broker to have refused a fishing trip. ``today`` bounds the date-of-birth window;
    by default tomorrow in UTC, so a broker a little ahead of this node near midnight is not refused.
    """
    subject = Subject.from_proto(message)
    if subject.date_of_birth:
        latest = today or dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        try:
            parse_date_of_birth(subject.date_of_birth, latest)
        except ValueError as exc:
            raise MatchRequestError(f"subject.date_of_birth {exc}") from None
    if subject.nhs_number and not nhs_number_valid(subject.nhs_number):
        raise MatchRequestError("subject.nhs_number has an invalid check digit")
    if subject.sex not in SEXES:
        raise MatchRequestError("subject.sex must be M, F or U")
    if missing_for_minimum_query(subject):
        raise MatchRequestError("subject: " + MINIMUM_QUERY)
    nhs_number = normalise_nhs_number(subject.nhs_number)
    # A copy only when the number had spaces: most searches carry none, and a copy is a third of this check.
    return subject if nhs_number == subject.nhs_number else dataclasses.replace(subject, nhs_number=nhs_number)


@functools.lru_cache(maxsize=1024)
def query_of_request(raw: bytes) -> Subject | str:
    """query_from for a serialised request, worked out once per process however many nodes it hosts.

    A pure function of the bytes (which are unique to one search), like prepare_query; a refusal is
    kept as its safe message, so each node refuses with the same words.
    """
    try:
        return query_from(node_pb2.MatchRequest.FromString(raw).subject)
    except MatchRequestError as exc:
        return str(exc)


@dataclass(frozen=True)
class FrontDoor:
    """An authority's front door: where a practitioner with a ``possible`` asks (rule 3). Never a person."""

    service: str
    """e.g. ``Children's Services Front Door`` or ``MASH``."""
    team: str = ""
    """e.g. ``Duty and Advice Team``."""
    phone: str = ""
    """The duty line, e.g. ``0300 123 4567``."""
    email: str = ""
    """A team mailbox, e.g. ``frontdoor@leeds.gov.uk``."""

    def to_proto(self) -> node_pb2.FrontDoor:
        return node_pb2.FrontDoor(service=self.service, team=self.team, phone=self.phone, email=self.email)


def candidate_of(
    result: MatchResult, involvements: Sequence[Involvement], front_door: node_pb2.FrontDoor | None = None
) -> node_pb2.Candidate | None:
    """What the broker may see of a matched record: band, score, reasons, and who to contact (rule 3).

    ``front_door`` is this authority's, or None when it has configured none: a possible then names the
    authority only (the broker adds it), and the practitioner asks its switchboard.
    """
    open_involvements = [i for i in involvements if not i.sensitive]
    if not open_involvements:
        return None  # only sensitive services know this child: disclosing even "a match" would reveal that
    candidate = node_pb2.Candidate(band=result.band, score=result.score, reasons=list(result.reasons))
    if result.band != "match":
        # A possible may be a sibling or a look-alike stranger: the front door only, never their worker.
        if front_door is not None:
            candidate.front_door.CopyFrom(front_door)
        return candidate
    candidate.contacts.extend(
        node_pb2.Contact(
            service=i.service,
            team=i.team,
            practitioner_name=i.practitioner_name,
            practitioner_role=i.practitioner_role,
            practitioner_phone=i.practitioner_phone,
            practitioner_email=i.practitioner_email,
            involvement_start=i.involvement_start,
            involvement_end=i.involvement_end,
        )
        for i in open_involvements
    )
    return candidate


def disclose(
    results: Iterable[MatchResult],
    involvements_of: Callable[[str], Sequence[Involvement]],
    entries: list[JournalEntry],
    front_door: node_pb2.FrontDoor | None = None,
) -> list[node_pb2.Candidate]:
    """The candidates one search's results may disclose; appends the search's journal rows to ``entries``.

    ``entries`` is the caller's list (one a search, already needed for the journal), so that this
    costs the hot path no allocation beyond the candidates themselves.
    """
    candidates = []
    for result in results:
        if result.shielded:
            # Answered exactly as no match, to the broker too; the holder's safeguarding officer is alerted.
            entries.append(("alert", result.record_id, result.band))
            continue
        candidate = candidate_of(result, involvements_of(result.record_id), front_door)
        if candidate is not None:
            candidates.append(candidate)
            entries.append(("match", result.record_id, result.band))
    return candidates
