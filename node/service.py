"""The node's gRPC NodeService: answers the broker, refuses everyone else.

The plumbing that applies :mod:`node.policy` to gRPC calls: who may call, the checks on each
search, what each band discloses (a named practitioner for a match, only the authority's front door
for a possible), shielded records answered as no match, and the answer floor (timed by the injected
:class:`node.timing.PreciseTimer`). Match answers one search, MatchStream
answers batches on a long-lived stream, Describe says what this node serves. Errors go back as a
gRPC status with the fixed, safe messages of :mod:`node.policy` — never a database error, never
any of the subject's details.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError

from certs.assertions import AssertionRejected, AssertionVerifier
from certs.identity import Identity
from certs.revocation import RevocationList
from core import __version__
from core.subject import Subject
from node import policy
from node.errors import MatchRequestError, StoreError
from node.gate import require_broker
from node.journal import Journal
from node.matching import Matcher
from node.refresh import Generation, GenerationHolder
from node.timing import TIMER, PreciseTimer
from protos.signpost.v1 import node_pb2, node_pb2_grpc

log = structlog.get_logger("signpost.node")


class _Refused(Exception):
    """A search this node will not answer, with the status and safe message the broker gets."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _refusal(code: grpc.StatusCode, message: str) -> node_pb2.MatchOutcome:
    return node_pb2.MatchOutcome(status_code=code.value[0], status_message=message)


class _OpenStream:
    """One MatchStream being served: the task that reads and answers its batches, and what it is doing."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.reading = False
        """Waiting for the broker's next batch: the only moment a shutdown may cut the stream short."""
        self.closing = False
        """Shutting down: end the stream once the batch in hand is answered."""

    def close(self) -> None:
        self.closing = True
        if self.reading and self.task is not None:
            self.task.cancel()


class NodeService(node_pb2_grpc.NodeServiceServicer, GenerationHolder):
    """One authority's answers, from one generation (index + snapshot) at a time; see node.refresh."""

    def __init__(
        self,
        code: str,
        name: str,
        generation: Generation,
        *,
        verifier: AssertionVerifier,
        revocations: RevocationList,
        journal: Journal,
        front_door: policy.FrontDoor | None = None,
        answer_floor_seconds: float = policy.ANSWER_FLOOR_SECONDS,
        timer: PreciseTimer = TIMER,
    ) -> None:
        self.code, self.name = code, name
        self.generation = generation
        self.verifier = verifier
        self.revocations = revocations
        self.journal = journal
        self.front_door = front_door.to_proto() if front_door else None
        """What a ``possible`` discloses instead of a named practitioner (node.policy rule 3); None if unset."""
        self.answer_floor_seconds = answer_floor_seconds
        self.timer = timer
        """Wakes each answer at its floor: the one timer thread of the process, unless another is injected."""
        self.certificate_expires = ""
        """RFC 3339 not-after of the certificate this node serves with; set by the server, updated on rotation."""
        self.source_status: Callable[[], tuple[str, str]] | None = None
        """For a node fed by ``[source]``: the last load's outcome and time (node.source_sync); set by the server."""
        self._streams: set[_OpenStream] = set()
        self._closing = False
        """Shutting down (close_streams was called): a stream opened from now on ends at once."""

    @property
    def matcher(self) -> Matcher:
        return self.generation.matcher

    async def _require_broker(self, context: grpc.aio.ServicerContext[Any, Any]) -> Identity:
        return await require_broker(context, self.revocations)

    def _checked(self, request: node_pb2.MatchRequest, raw: bytes | None = None) -> Subject:
        """The query of a search this node may answer, or _Refused with a safe status and message."""
        try:
            self.verifier.verify(request, raw)
        except AssertionRejected as exc:
            log.warning("assertion_rejected", search_id=request.search_id, reason=str(exc))
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None
        try:
            query = policy.query_from(request.subject) if raw is None else policy.query_of_request(raw)
            if isinstance(query, str):
                raise MatchRequestError(query)
        except MatchRequestError as exc:
            log.info("match_rejected", search_id=request.search_id, reason=str(exc))
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        if request.purpose.code == "":
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, policy.PURPOSE_REQUIRED)
        return query

    async def Match(
        self,
        request: node_pb2.MatchRequest,
        context: grpc.aio.ServicerContext[node_pb2.MatchRequest, node_pb2.MatchResponse],
    ) -> node_pb2.MatchResponse:
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
            await context.abort(grpc.StatusCode.INTERNAL, policy.STORE_FAILED)
        # Answer no sooner than the floor: a shielded child's record is found and scored, which takes
        # longer than finding nothing, and neither the searcher nor the broker may be able to tell.
        await self.timer.wait_until(started + self.answer_floor_seconds)
        log.info(
            "match_answered",
            search_id=request.search_id,
            purpose=request.purpose.code,
            requester=request.requester.user_id,
            candidates=len(candidates),
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return node_pb2.MatchResponse(authority_code=self.code, candidates=candidates)

    async def MatchStream(  # type: ignore[override]  # grpc.aio's reader/writer form; the stub knows only iterators
        self,
        request_iterator: AsyncIterator[node_pb2.MatchBatch],
        context: grpc.aio.ServicerContext[node_pb2.MatchBatch, node_pb2.MatchBatchResult],
    ) -> None:
        """Batches of searches on one long-lived stream; each batch answered as one, after the floor.

        Read and written with ``context.read``/``context.write`` by one task per stream: per batch that
        is one task step, where an async generator fed through a queue by a reading task took three
        (request_iterator is therefore never iterated). The task is separate from the handler only so
        that a shutdown can cut its wait for the next batch (close_streams) while the handler still
        returns normally: a cancelled handler leaves grpc holding the call open for all of the grace.
        """
        identity = await self._require_broker(context)
        stream = _OpenStream()
        # The server accepts calls until its own stop, after close_streams: the broker, seeing its stream
        # end, may open another meanwhile, which would otherwise hold the stop for all of the grace.
        stream.closing = self._closing
        stream.task = asyncio.get_running_loop().create_task(self._serve(stream, identity, context))
        self._streams.add(stream)
        try:
            await stream.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # grpc cancelled the call itself
            # close_streams cut the wait for the next batch: the stream ends normally.
        finally:
            self._streams.discard(stream)
            stream.task.cancel()

    async def _serve(
        self,
        stream: _OpenStream,
        identity: Identity,
        context: grpc.aio.ServicerContext[node_pb2.MatchBatch, node_pb2.MatchBatchResult],
    ) -> None:
        while not stream.closing:
            stream.reading = True
            try:
                batch = await context.read()
            except grpc.aio.AioRpcError:
                return  # the broker went away
            finally:
                stream.reading = False
            if not isinstance(batch, node_pb2.MatchBatch):
                return  # EOF: the broker half-closed the stream
            if self.revocations.is_revoked(identity.serial):  # checked per batch, as Match checks per call
                log.warning("caller_refused", role=identity.role.value, reason="revoked")
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, policy.REVOKED)
            started = time.perf_counter()
            outcomes = self._answer_batch(batch)
            await self.timer.wait_until(started + self.answer_floor_seconds)
            await context.write(node_pb2.MatchBatchResult(batch_id=batch.batch_id, outcomes=outcomes))

    def close_streams(self) -> None:
        """Shutting down: each stream ends once the batches already received are answered; one opened
        after this (the server still accepts calls until its own stop) ends at once.

        The broker sees the stream end, reports any batch it had sent since as unavailable, and
        retries on a new connection (to another instance, or once this one is back).
        """
        self._closing = True
        for stream in self._streams:
            stream.close()

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
                outcomes[at] = _refusal(grpc.StatusCode.INTERNAL, policy.STORE_FAILED)
            return [o for o in outcomes if o is not None]
        answered = log.bind().info  # one bind a batch: each call on the lazy proxy would bind anew
        for (at, request, _), candidates in zip(accepted, answers, strict=False):
            outcomes[at] = node_pb2.MatchOutcome(
                response=node_pb2.MatchResponse(authority_code=self.code, candidates=candidates)
            )
            answered(
                "match_answered",
                search_id=request.search_id,
                purpose=request.purpose.code,
                requester=request.requester.user_id,
                candidates=len(candidates),
            )
        return [o for o in outcomes if o is not None]

    def _answer(self, searches: list[tuple[node_pb2.MatchRequest, Subject]]) -> list[list[node_pb2.Candidate]]:
        """Match, read contacts and journal each search, all from one generation and with no await between."""
        answers: list[list[node_pb2.Candidate]] = []
        journal: list[tuple[node_pb2.MatchRequest, list[policy.JournalEntry]]] = []
        generation = self.generation  # one generation for the whole batch, even if a refresh swaps it
        match, involvements_of = generation.matcher.match, generation.store.involvements
        for request, query in searches:
            entries: list[policy.JournalEntry] = []
            answers.append(policy.disclose(match(query), involvements_of, entries, self.front_door))
            journal.append((request, entries))  # no entries: found nothing here, so only counted
        # The journal is how the holder reviews searches: no answer goes out unrecorded (one commit a batch).
        self.journal.record_many(journal)
        return answers

    async def Describe(
        self,
        request: node_pb2.DescribeRequest,
        context: grpc.aio.ServicerContext[node_pb2.DescribeRequest, node_pb2.DescribeResponse],
    ) -> node_pb2.DescribeResponse:
        await self._require_broker(context)
        sync, sync_at = self.source_status() if self.source_status else ("", "")
        return node_pb2.DescribeResponse(
            authority_code=self.code,
            authority_name=self.name,
            record_count=self.generation.matcher.size,
            data_as_of=self.generation.store.data_as_of(),
            software_version=__version__,
            certificate_expires=self.certificate_expires,
            source_sync=sync,
            source_sync_at=sync_at,
        )
