"""The node's gRPC NodeService: answers the broker, refuses everyone else.

Every call is checked against the caller's certificate (already verified
against the federation CA by TLS): only the broker may call. Errors go back as
a gRPC status with a fixed, safe message — never a database error, never any
of the subject's details. Shielded records answer exactly as no match, and
sensitive involvements are never disclosed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Sequence

import grpc
import structlog
from google.protobuf.message import DecodeError

from certs.assertions import AssertionRejected, AssertionVerifier
from certs.identity import Identity, IdentityError, Role, identity_from_pem
from certs.revocation import RevocationList
from node.errors import MatchRequestError, StoreError
from node.matching import Matcher, MatchResult
from node.journal import Journal
from node.timing import TIMER
from node.records import Involvement
from node.refresh import Generation, GenerationHolder
from protos.signpost.v1 import node_pb2, node_pb2_grpc
from core import __version__
from core.identifiers import nhs_number_valid, normalise_nhs_number, parse_date
from core.subject import MINIMUM_QUERY, SEXES, Subject, missing_for_minimum_query

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


def query_from(message: node_pb2.Subject) -> Subject:
    """Check a subject the broker sent; raise MatchRequestError with a safe message.

    The same rules the broker applies (:mod:`core.subject`, :mod:`core.identifiers`): a node does
    not rely on the broker to have refused a fishing trip.
    """
    subject = Subject.from_proto(message)
    if subject.date_of_birth:
        try:
            parse_date(subject.date_of_birth)
        except ValueError as exc:
            raise MatchRequestError(f"subject.date_of_birth {exc}") from None
    if subject.nhs_number and not nhs_number_valid(subject.nhs_number):
        raise MatchRequestError("subject.nhs_number has an invalid check digit")
    if subject.sex not in SEXES:
        raise MatchRequestError("subject.sex must be M, F or U")
    if missing_for_minimum_query(subject):
        raise MatchRequestError("subject: " + MINIMUM_QUERY)
    return dataclasses.replace(subject, nhs_number=normalise_nhs_number(subject.nhs_number))


@functools.lru_cache(maxsize=1024)
def _query_of_request(raw: bytes) -> Subject | str:
    """query_from for a serialised request, worked out once per process however many nodes it hosts.

    A pure function of the bytes (which are unique to one search), like prepare_query; a refusal is
    kept as its safe message, so each node refuses with the same words.
    """
    try:
        return query_from(node_pb2.MatchRequest.FromString(raw).subject)
    except MatchRequestError as exc:
        return str(exc)


STORE_FAILED = "the node could not read or record the search"


class _Refused(Exception):
    """A search this node will not answer, with the status and safe message the broker gets."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _refusal(code: grpc.StatusCode, message: str) -> node_pb2.MatchOutcome:
    return node_pb2.MatchOutcome(status_code=code.value[0], status_message=message)


async def _pump(batches: AsyncIterator[node_pb2.MatchBatch], inbox: asyncio.Queue[node_pb2.MatchBatch | None]) -> None:
    try:
        async for batch in batches:
            inbox.put_nowait(batch)
    except grpc.aio.AioRpcError:
        pass  # the broker went away; the handler ends on the None below
    finally:
        inbox.put_nowait(None)


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
        self._inboxes: set[asyncio.Queue[node_pb2.MatchBatch | None]] = set()
        """One per open MatchStream."""
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

    def _checked(self, request: node_pb2.MatchRequest, raw: bytes | None = None) -> Subject:
        """The query of a search this node may answer, or _Refused with a safe status and message."""
        try:
            self.verifier.verify(request, raw)
        except AssertionRejected as exc:
            log.warning("assertion_rejected", search_id=request.search_id, reason=str(exc))
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None
        try:
            query = query_from(request.subject) if raw is None else _query_of_request(raw)
            if isinstance(query, str):
                raise MatchRequestError(query)
        except MatchRequestError as exc:
            log.info("match_rejected", search_id=request.search_id, reason=str(exc))
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        if request.purpose.code == "":
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "purpose.code is required")
        return query

    async def Match(self, request: node_pb2.MatchRequest, context: grpc.aio.ServicerContext) -> node_pb2.MatchResponse:
        await self._require_broker(context)
        started = time.perf_counter()
        try:
            query = self._checked(request)
            [candidates] = self._answer([(request, query)])
        except _Refused as refused:
            await context.abort(refused.code, refused.message)
        except StoreError:
            # The store's own message stays in this node's log; the broker learns only that it failed.
            log.error("store_failed", search_id=request.search_id)
            await context.abort(grpc.StatusCode.INTERNAL, STORE_FAILED)
        # Answer no sooner than the floor: a shielded child's record is found and scored, which takes
        # longer than finding nothing, and neither the searcher nor the broker may be able to tell.
        await TIMER.wait_until(started + self.answer_floor_seconds)
        log.info(
            "match_answered", search_id=request.search_id, purpose=request.purpose.code,
            requester=request.requester.user_id, candidates=len(candidates),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return node_pb2.MatchResponse(authority_code=self.code, candidates=candidates)

    async def MatchStream(self, request_iterator: AsyncIterator[node_pb2.MatchBatch],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[node_pb2.MatchBatchResult]:
        """Batches of searches on one long-lived stream; each batch answered as one, after the floor."""
        identity = await self._require_broker(context)
        # Batches come through an inbox so that a shutdown can end the stream cleanly (close_streams):
        # a cancelled handler leaves grpc holding the call open for all of the server's grace.
        inbox: asyncio.Queue[node_pb2.MatchBatch | None] = asyncio.Queue()
        pump = asyncio.get_running_loop().create_task(_pump(request_iterator, inbox))
        self._inboxes.add(inbox)
        try:
            while (batch := await inbox.get()) is not None:
                if self.revocations.is_revoked(identity.serial):  # checked per batch, as Match checks per call
                    log.warning("caller_refused", role=identity.role.value, reason="revoked")
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the caller's certificate is revoked")
                started = time.perf_counter()
                outcomes = self._answer_batch(batch)
                await TIMER.wait_until(started + self.answer_floor_seconds)
                yield node_pb2.MatchBatchResult(batch_id=batch.batch_id, outcomes=outcomes)
                log.debug("batch_answered", searches=len(outcomes), ms=round((time.perf_counter() - started) * 1000, 2))
        finally:
            self._inboxes.discard(inbox)
            pump.cancel()

    def close_streams(self) -> None:
        """Shutting down: each stream ends once the batches already received are answered.

        The broker sees the stream end, reports any batch it had sent since as unavailable, and
        retries on a new connection (to another instance, or once this one is back).
        """
        for inbox in self._inboxes:
            inbox.put_nowait(None)

    def _answer_batch(self, batch: node_pb2.MatchBatch) -> list[node_pb2.MatchOutcome]:
        outcomes: list[node_pb2.MatchOutcome | None] = []
        accepted: list[tuple[int, node_pb2.MatchRequest, Subject]] = []
        for raw in batch.requests:
            try:
                request = node_pb2.MatchRequest.FromString(raw)
            except DecodeError:
                outcomes.append(_refusal(grpc.StatusCode.INVALID_ARGUMENT, "a request in the batch is malformed"))
                continue
            try:
                accepted.append((len(outcomes), request, self._checked(request, raw)))
                outcomes.append(None)
            except _Refused as refused:
                outcomes.append(_refusal(refused.code, refused.message))
        try:
            answers = self._answer([(request, query) for _, request, query in accepted])
        except StoreError:
            log.error("store_failed", searches=len(accepted))
            for at, _, _ in accepted:
                outcomes[at] = _refusal(grpc.StatusCode.INTERNAL, STORE_FAILED)
            return [o for o in outcomes if o is not None]
        answered = log.bind().info  # one bind a batch: each call on the lazy proxy would bind anew
        for (at, request, _), candidates in zip(accepted, answers):
            outcomes[at] = node_pb2.MatchOutcome(
                response=node_pb2.MatchResponse(authority_code=self.code, candidates=candidates))
            answered("match_answered", search_id=request.search_id, purpose=request.purpose.code,
                     requester=request.requester.user_id, candidates=len(candidates))
        return [o for o in outcomes if o is not None]

    def _answer(self, searches: list[tuple[node_pb2.MatchRequest, Subject]]) -> list[list[node_pb2.Candidate]]:
        """Match, read contacts and journal each search, all from one generation and with no await between."""
        answers: list[list[node_pb2.Candidate]] = []
        journal: list[tuple[node_pb2.MatchRequest, list[tuple[str, str | None, str | None]]]] = []
        generation = self.generation  # one generation for the whole batch, even if a refresh swaps it
        for request, query in searches:
            candidates = []
            entries: list[tuple[str, str | None, str | None]] = []
            for result in generation.matcher.match(query):
                if result.shielded:
                    # Answered exactly as no match, to the broker too; the holder's safeguarding officer is alerted.
                    entries.append(("alert", result.record_id, result.band))
                    continue
                candidate = candidate_of(result, generation.store.involvements(result.record_id))
                if candidate is not None:
                    candidates.append(candidate)
                    entries.append(("match", result.record_id, result.band))
            answers.append(candidates)
            journal.append((request, entries or [("none", None, None)]))
        # The journal is how the holder reviews searches: no answer goes out unrecorded (one commit a batch).
        self.journal.record_many(journal)
        return answers

    async def Describe(
        self, request: node_pb2.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.DescribeResponse:
        await self._require_broker(context)
        return node_pb2.DescribeResponse(
            authority_code=self.code, authority_name=self.name, record_count=self.generation.matcher.size,
            data_as_of=self.generation.store.data_as_of(), software_version=__version__,
            certificate_expires=self.certificate_expires,
        )
