"""Refusals cannot flood the audit log or spend the quota (issue 14, must-have 4): malformed requests
give their quota back, 429s and certificate-less 401s are audited in full once per client per interval
and counted otherwise, and a source address over its request rate is refused before any certificate
or body work."""

from __future__ import annotations

import asyncio

from broker.appkeys import AUDIT
from broker.refusals import PREAUTH_LIMITER, RefusalTally, flush
from tests.broker.test_audit_broker import CHILD, PURPOSE, leeds

FLOOD = 300
FLOOD_DEADLINE = 10.0
"""Seconds: the one refusal audited in full waits at most this for its commit (see the 429 flood test)."""


async def by_outcome(fed) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for e in await fed.server.app[AUDIT].entries(limit=10_000):
        grouped.setdefault(f"{e.entry['type']}:{e.entry['outcome']}", []).append(e.entry)
    return grouped


def no_preauth_limit(fed) -> None:
    fed.server.app[PREAUTH_LIMITER].burst = 0  # these tests are about what is audited, not the address limit


async def test_malformed_requests_do_not_spend_the_practitioners_quota(federation):
    fed = await federation(leeds(), rate_limit=3)
    for _ in range(10):
        assert (await fed.search({**CHILD, "date_of_birth": "30/02/2013"}, purpose=PURPOSE))[0] == 400
    status, answer = await fed.search(CHILD, purpose=PURPOSE)
    assert status == 200, answer


async def test_a_flood_of_429s_is_one_entry_in_full_and_one_count(federation):
    # The flood's client runs on the broker's own event loop, so its TLS handshakes hold up the commit of
    # the one 429 audited in full; past its search's deadline that would be a 503 audit_unavailable (as it
    # should be). A generous deadline keeps a loaded machine from turning this test about what is audited
    # into one about how fast; and one practitioner floods over one client's connections, not 300 clients'.
    fed = await federation(leeds(), rate_limit=1, deadline=FLOOD_DEADLINE)
    no_preauth_limit(fed)
    assert (await fed.search(CHILD, purpose=PURPOSE))[0] == 200
    session = fed.session()

    async def search() -> int:
        async with session.post(f"{fed.url}/v1/searches", json={"subject": CHILD, "purpose": PURPOSE}) as resp:
            return resp.status

    statuses = await asyncio.gather(*(search() for _ in range(FLOOD)))
    assert set(statuses) == {429}
    entries = await by_outcome(fed)
    assert len(entries["search:rate_limited"]) == 1  # the first of the interval, in full
    assert await flush(fed.server.app, everything=True) == 1
    entries = await by_outcome(fed)
    [summary] = entries["refusals:rate_limited"]
    assert summary["count"] == FLOOD - 1 and summary["status"] == 429
    assert summary["actor"]["user_id"] == "practitioner"  # an auditor's actor query finds it
    found = await fed.server.app[AUDIT].entries(actor="practitioner", limit=10_000)
    assert any(e.entry["type"] == "refusals" for e in found)
    assert sum(len(v) for v in entries.values()) == 4  # started, answered, one 429 in full, one count


async def test_a_flood_without_a_certificate_is_one_entry_in_full_and_one_count(federation):
    fed = await federation(leeds(), deadline=FLOOD_DEADLINE)  # as for the 429s above
    no_preauth_limit(fed)
    session = fed.session(role=None)

    async def anonymous() -> int:
        async with session.post(f"{fed.url}/v1/searches", json={}) as resp:
            return resp.status

    assert set(await asyncio.gather(*(anonymous() for _ in range(FLOOD)))) == {401}
    entries = await by_outcome(fed)
    [full] = entries["search:unauthenticated"]
    assert full["client"] == {"address": "127.0.0.1"}
    await flush(fed.server.app, everything=True)
    [summary] = (await by_outcome(fed))["refusals:unauthenticated"]
    assert summary["count"] == FLOOD - 1 and summary["client"] == {"address": "127.0.0.1"}


async def test_an_address_over_its_request_rate_is_refused_before_any_certificate_or_body_work(federation):
    fed = await federation(leeds())
    limiter = fed.server.app[PREAUTH_LIMITER]
    limiter.per_second, limiter.burst = 0.01, 5
    session = fed.session(role=None)
    answers = []
    for _ in range(20):
        # Not even valid JSON: a request that reached the body would be a 401 (no certificate) or a 400.
        async with session.post(f"{fed.url}/v1/searches", data=b"{" * 10_000) as resp:
            answers.append((resp.status, resp.headers.get("Retry-After"), await resp.json()))
    assert [s for s, _, _ in answers] == [401] * 5 + [429] * 15
    _, retry_after, body = answers[-1]
    assert body["error"]["code"] == "rate_limited" and int(retry_after) >= 1
    assert len((await by_outcome(fed))["search:unauthenticated"]) == 1  # nothing more audited one by one
    await flush(fed.server.app, everything=True)
    [counted] = (await by_outcome(fed))["refusals:preauth_limited"]
    assert counted["count"] == 15


def test_each_interval_has_its_first_refusal_in_full_and_the_rest_counted():
    now = [1000.0]
    tally = RefusalTally(60.0, clock=lambda: now[0], max_clients=2)
    assert tally.note(429, "jsmith") is True
    assert [tally.note(429, "jsmith") for _ in range(5)] == [False] * 5
    assert tally.due() == []  # the interval has not ended
    now[0] += 61
    assert tally.note(429, "jsmith") is True  # a new interval: in full again
    [summary] = tally.due()
    assert (summary.client, summary.count) == ("jsmith", 5)
    assert tally.note(401, "address:10.0.0.1") is True
    assert tally.note(401, "address:10.0.0.2") is True  # past max_clients: shares the overflow count
    assert tally.note(401, "address:10.0.0.3") is False
    [overflow] = tally.due(everything=True)[-1:]
    assert overflow.client == "*" and overflow.count == 1
