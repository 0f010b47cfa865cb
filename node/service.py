"""The node's gRPC NodeService: answers the broker, refuses everyone else.

Every call is checked against the caller's certificate (already verified
against the federation CA by TLS): only the broker may call. Errors go back as
a gRPC status with a fixed, safe message — never a database error, never any
of the subject's details. Shielded records answer exactly as no match, and
sensitive involvements are never disclosed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

import grpc
import structlog

from certs.assertions import AssertionRejected, AssertionVerifier
from certs.identity import Identity, IdentityError, Role, identity_from_pem
from certs.revocation import RevocationList
from node.errors import MatchRequestError, StoreError
from node.matching import Matcher, MatchResult, Query
from node.journal import Journal
from node.timing import TIMER
from node.records import Involvement
from node.refresh import Generation, GenerationHolder
from protos.signpost.v1 import node_pb2, node_pb2_grpc
from signpost import __version__
from signpost.identifiers import nhs_number_valid, parse_date

log = structlog.get_logger("signpost.node")


@functools.lru_cache(maxsize=256)
def _identity_of_pem(pem: bytes) -> Identity | None:
    try:
        return identity_from_pem(pem)
    except (IdentityError, ValueError):
        return None


def caller_identity(context: grpc.aio.ServicerContext) -> Identity | None:
    """The Signpost identity in the peer's client certificate, or None.

    Parsed once per certificate: the broker presents the same one on every call, and parsing it
    each time was a noticeable share of a node's CPU at 150 calls a search.
    """
    pems = context.auth_context().get("x509_pem_cert") or []
    return _identity_of_pem(pems[0]) if pems else None


def query_from(subject: node_pb2.Subject) -> Query:
    """Check a subject the broker sent; raise MatchRequestError with a safe message."""
    if not (subject.family_name or subject.nhs_number):
        raise MatchRequestError("subject needs a family name or an NHS number")
    for name, value in (("date_of_birth", subject.date_of_birth),):
        if value:
            try:
                parse_date(value)
            except ValueError as exc:
                raise MatchRequestError(f"subject.{name} {exc}") from None
    if subject.nhs_number and not nhs_number_valid(subject.nhs_number):
        raise MatchRequestError("subject.nhs_number has an invalid check digit")
    if subject.sex not in ("", "M", "F", "U"):
        raise MatchRequestError("subject.sex must be M, F or U")
    return Query(
        given_name=subject.given_name,
        family_name=subject.family_name,
        date_of_birth=subject.date_of_birth,
        middle_names=subject.middle_names,
        other_names=tuple(subject.other_names),
        sex=subject.sex,
        postcode=subject.postcode,
        address=subject.address,
        nhs_number=subject.nhs_number.replace(" ", ""),
    )


def candidate_of(result: MatchResult, involvements: Sequence[Involvement]) -> node_pb2.Candidate | None:
    """What the broker may see of a matched record: band, score, reasons, non-sensitive contacts."""
    contacts = [
        node_pb2.Contact(
            service=i.service, team=i.team, practitioner_name=i.practitioner_name,
            practitioner_role=i.practitioner_role, practitioner_phone=i.practitioner_phone,
            practitioner_email=i.practitioner_email, involvement_start=i.involvement_start,
            involvement_end=i.involvement_end,
        )
        for i in involvements
        if not i.sensitive
    ]
    if not contacts:
        return None  # only sensitive services know this child: disclosing even "a match" would reveal that
    return node_pb2.Candidate(band=result.band, score=result.score, reasons=list(result.reasons), contacts=contacts)


class NodeService(node_pb2_grpc.NodeServiceServicer, GenerationHolder):
    """One authority's answers, from one generation (index + snapshot) at a time; see node.refresh."""

    def __init__(self, code: str, name: str, generation: Generation, *,
                 verifier: AssertionVerifier, revocations: RevocationList, journal: Journal,
                 answer_floor_seconds: float = 0.005) -> None:
        self.code, self.name = code, name
        self.generation = generation
        self.verifier = verifier
        self.revocations = revocations
        self.journal = journal
        self.answer_floor_seconds = answer_floor_seconds
        self.certificate_expires = ""
        """RFC 3339 not-after of the certificate this node serves with; set by the server, updated on rotation."""

    @property
    def matcher(self) -> Matcher:
        return self.generation.matcher

    async def _require_broker(self, context: grpc.aio.ServicerContext) -> Identity:
        identity = caller_identity(context)
        if identity is None or identity.role is not Role.BROKER:
            log.warning("caller_refused", role=identity.role.value if identity else None)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "only the federation broker may call this node")
        assert identity is not None
        if self.revocations.is_revoked(identity.serial):
            log.warning("caller_refused", role=identity.role.value, reason="revoked")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the caller's certificate is revoked")
        return identity

    async def Match(self, request: node_pb2.MatchRequest, context: grpc.aio.ServicerContext) -> node_pb2.MatchResponse:
        await self._require_broker(context)
        started = time.perf_counter()
        try:
            self.verifier.verify(request)
        except AssertionRejected as exc:
            log.warning("assertion_rejected", search_id=request.search_id, reason=str(exc))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        try:
            query = query_from(request.subject)
        except MatchRequestError as exc:
            log.info("match_rejected", search_id=request.search_id, reason=str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if request.purpose.code == "":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "purpose.code is required")
        try:
            candidates = self._answer(request, query)
        except StoreError:
            # The store's own message stays in this node's log; the broker learns only that it failed.
            log.error("store_failed", search_id=request.search_id)
            await context.abort(grpc.StatusCode.INTERNAL, "the node could not read or record the search")
        # Answer no sooner than the floor: a shielded child's record is found and scored, which takes
        # longer than finding nothing, and neither the searcher nor the broker may be able to tell.
        await TIMER.wait_until(started + self.answer_floor_seconds)
        log.info(
            "match_answered", search_id=request.search_id, purpose=request.purpose.code,
            requester=request.requester.user_id, candidates=len(candidates),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return node_pb2.MatchResponse(authority_code=self.code, candidates=candidates)

    def _answer(self, request: node_pb2.MatchRequest, query: Query) -> list[node_pb2.Candidate]:
        """Match, read contacts and journal the search, all from one generation and with no await between."""
        candidates = []
        entries: list[tuple[str, str | None, str | None]] = []
        generation = self.generation  # one generation for the whole answer, even if a refresh swaps it
        for result in generation.matcher.match(query):
            if result.shielded:
                # Answered exactly as no match, to the broker too; the holder's safeguarding officer is alerted.
                entries.append(("alert", result.record_id, result.band))
                continue
            candidate = candidate_of(result, generation.store.involvements(result.record_id))
            if candidate is not None:
                candidates.append(candidate)
                entries.append(("match", result.record_id, result.band))
        # The journal is how the holder reviews searches: no answer goes out unrecorded.
        self.journal.record(request, entries or [("none", None, None)])
        return candidates

    async def Describe(
        self, request: node_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.DescribeResponse:
        await self._require_broker(context)
        return node_pb2.DescribeResponse(
            authority_code=self.code, authority_name=self.name, record_count=self.generation.matcher.size,
            data_as_of=self.generation.store.data_as_of(), software_version=__version__,
            certificate_expires=self.certificate_expires,
        )
