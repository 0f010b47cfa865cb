"""The one search path: every search, whichever door it comes through, from its caller to its answer.

``POST /v1/searches`` (a certificate) and the practitioner portal's search form (a session) both call
:func:`run_search` with the caller and a way to read their request; nothing else may ask the nodes about
a child. The attempt runs inside ``audited_search``, so it is audited whatever happens: refused (401,
403, 429, 400, 503) or answered. Then, in order: the caller's role, the practitioner's limits, the
request's checks (a malformed request gives its quota back), admission (refuse at once when busy rather
than queue), the search's first audit entry (no node is asked until it is committed), the signed
fan-out to every authority within what is left of the deadline, and the answer, which is returned only
after its outcome entry is committed. The rules themselves are broker.policy's; shielded children are
the nodes' (they answer no match). Logs carry ids, counts and timings, never the child.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from broker.appkeys import (
    ADMISSION,
    CLOCK,
    FANOUT,
    IN_FLIGHT,
    LIMITER,
    METRICS,
    ORG_LIMITER,
    PATTERNS,
    SIGNER,
    SUBJECT_KEY,
)
from broker.audit.log import Receipt
from broker.errors import Forbidden, InvalidRequest, NoNodesReachable, Overloaded, RateLimited, RefusedSearch
from broker.fanout import Outcome
from broker.metrics import Metrics
from broker.patterns import pattern_keys
from broker.policy import coverage_json, oversharing_authorities, results_json
from broker.search_audit import AuditUnavailable, SearchAudit, audited_search
from broker.search_request import SearchRequest
from certs.identity import Identity, Role
from protos.signpost.v1 import node_pb2

log = structlog.get_logger("signpost.broker")

ReadRequest = Callable[[dt.date], Awaitable[SearchRequest]]
"""Reads and checks the caller's request, given today's date (UTC); InvalidRequest naming each bad field."""


@dataclass(frozen=True)
class SearchAnswer:
    """An answered search, as both doors show it: the contract's ``results`` and ``coverage``
    (broker.policy's shapes), what was read differently from what was typed, and the audit receipt."""

    search_id: str
    results: list[dict[str, Any]]
    coverage: dict[str, Any]
    notices: tuple[str, ...]
    receipt: Receipt

    def to_json(self) -> dict[str, Any]:
        return {
            "search_id": self.search_id,
            "results": self.results,
            "coverage": self.coverage,
            "notices": list(self.notices),
            "audit": self.receipt.to_json(),
        }


def require_role(caller: Identity, roles: tuple[Role, ...]) -> None:
    """Forbidden unless ``caller``'s role is one of ``roles`` (broker.policy's, for the door's route)."""
    if caller.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"this needs the role {allowed}; your role is {caller.role.value}")


async def run_search(
    app: web.Application,
    identify: Callable[[], Identity],
    roles: tuple[Role, ...],
    read: ReadRequest,
    *,
    client_address: str = "",
) -> SearchAnswer:
    """Make one search, audited whatever happens; the answer only once its outcome is in the audit log.

    ``identify`` names the caller (raising Unauthenticated if it cannot): it is called inside the audit,
    so an unauthenticated attempt is audited too, and a caller whose role is not in ``roles`` is audited
    by name. ``read`` parses the request after the limits are spent. Every refusal is an ApiError.
    """
    async with audited_search(app, client_address) as audit:
        caller = identify()
        audit.identify(caller)  # a refused caller is audited too, by name
        require_role(caller, roles)
        await check_limits(app, caller)
        today = dt.datetime.fromtimestamp(app[CLOCK](), dt.UTC).date()
        try:
            search = await read(today)
        except (InvalidRequest, web.HTTPRequestEntityTooLarge) as exc:
            await refund(app, caller)  # a malformed request is no search: it spends no quota
            if isinstance(exc, RefusedSearch):
                audit.describe_refused(exc.subject)  # a refused attempt on a child is findable by its hashes
            raise
        audit.describe(search)
        await watch_patterns(app, caller, search)
        started = time.perf_counter()
        in_flight = app[IN_FLIGHT]
        admission = app[ADMISSION]
        ticket = admission.admit(in_flight[0], audit.time_left())
        if isinstance(ticket, str):
            # Admitted now, it would not be heard from everyone in time: say so at once instead.
            app[METRICS].overloaded.labels(ticket).inc()
            raise Overloaded("the service is busy; try again in a moment", headers={"Retry-After": "1"})
        in_flight[0] += 1
        try:
            try:
                await audit.started()  # audit first: no node is asked about a search the log does not hold
            except AuditUnavailable:
                # An audit log that cannot keep up is congestion like any other: admit fewer searches at once,
                # so later ones are refused at once (overloaded) instead of all waiting out the audit bound.
                admitted(app, ticket, was_congested=True)
                raise
            finally:
                admission.sent()  # at the dispatch gate next (FanOut.search), or never asking anyone
            return await _fan_out(app, audit, search, caller, started, ticket)
        finally:
            in_flight[0] -= 1


def match_request(search_id: str, search: SearchRequest, caller: Identity) -> node_pb2.MatchRequest:
    return node_pb2.MatchRequest(
        search_id=search_id,
        subject=search.subject.to_proto(),
        purpose=node_pb2.Purpose(code=search.purpose_code, justification=search.justification),
        requester=node_pb2.Requester(
            user_id=caller.id,
            name=caller.name,
            organisation=caller.organisation,
            role=caller.role.value,
            email=caller.email,
        ),
    )


def record_outcomes(m: Metrics, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        m.observe_node(o.authority.code, o.ms / 1000)
        if o.error is not None:
            m.coverage_gaps.labels(o.authority.code, o.error.reason).inc()


def admitted(app: web.Application, ticket: float, was_congested: bool) -> None:
    """Tell the admission limit how this search went: congested, or answered in time."""
    limit = app[ADMISSION]
    limit.completed(ticket, was_congested)
    if was_congested:
        app[METRICS].congested.inc()
    app[METRICS].admission_limit.set(int(limit.limit))


class NoNodes(NoNodesReachable):
    def __init__(self, coverage: dict[str, Any]) -> None:
        super().__init__("no authority could be asked; try again shortly")
        self.extra = {"coverage": coverage}


async def check_limits(app: web.Application, caller: Identity) -> None:
    """Spend one search of the practitioner's quota and their organisation's; RateLimited naming the limit if not."""
    decision = await app[LIMITER].check(caller.id)
    if decision.unusual:
        log.warning("unusual_search_volume", user=caller.id, organisation=caller.organisation)
        app[METRICS].unusual_volume.inc()
    if decision.allowed:
        # Keyed by the certificate's organisation: its members share one quota however many certificates.
        decision = await app[ORG_LIMITER].check(caller.organisation or f"user:{caller.id}")
        if not decision.allowed:
            await app[LIMITER].refund(caller.id)  # not searched: the practitioner's own quota is not spent
    if not decision.allowed:
        app[METRICS].rate_limited.labels(decision.limit).inc()
        whose = "your organisation's searches" if decision.scope == "organisation" else "searches"
        raise RateLimited(
            f"too many {whose} this {decision.window}; wait before searching again",
            headers={"Retry-After": str(math.ceil(decision.retry_after))},
            limit=decision.limit,
        )


async def refund(app: web.Application, caller: Identity) -> None:
    await app[LIMITER].refund(caller.id)
    await app[ORG_LIMITER].refund(caller.organisation or f"user:{caller.id}")


async def watch_patterns(app: web.Application, caller: Identity, search: SearchRequest) -> None:
    """Alert on one name swept over many dates of birth, or many names on one (broker.patterns); never refuse."""
    for alert in await app[PATTERNS].observe(
        caller.id, caller.organisation, pattern_keys(app[SUBJECT_KEY], search.subject)
    ):
        log.warning(
            "unusual_search_pattern",
            user=caller.id,
            organisation=caller.organisation,
            kind=alert.kind,
            scope=alert.scope,
            count=alert.count,
        )
        app[METRICS].unusual_patterns.labels(alert.kind).inc()


async def _fan_out(
    app: web.Application, audit: SearchAudit, search: SearchRequest, caller: Identity, started: float, ticket: float
) -> SearchAnswer:
    search_id = audit.search_id
    node_request = match_request(search_id, search, caller)
    signer = app[SIGNER]
    signer.sign(node_request)

    def resign() -> bytes:
        fresh = match_request(search_id, search, caller)
        signer.sign(fresh)
        return fresh.SerializeToString()

    fanned = await app[FANOUT].search(node_request, audit.time_left(), resign)
    outcomes = fanned.outcomes
    coverage = coverage_json(outcomes)
    record_outcomes(app[METRICS], outcomes)
    admitted(app, ticket, fanned.congested)
    audit.outcomes(outcomes)
    results = results_json(outcomes)
    for code in oversharing_authorities(outcomes):
        # Dropped already (broker.policy); the node's operator must fix it. Names the authority only.
        log.warning("possible_with_named_contact_dropped", search_id=search_id, authority=code)
    log.info(
        "search_completed",
        search_id=search_id,
        user=caller.id,
        purpose=search.purpose_code,
        asked=coverage["asked"],
        answered=coverage["answered"],
        results=len(results),
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    if coverage["answered"] == 0:
        raise NoNodes(coverage)
    # The outcome is committed before the results leave: a search whose outcome is not logged is not answered.
    receipt = await audit.answered()
    return SearchAnswer(search_id, results, coverage, tuple(search.notices), receipt)
