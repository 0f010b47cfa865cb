"""A data set's queries through a running local federation: the broker's HTTPS API, as a practitioner sends them.

Scored by authority (what the broker discloses: which authority answered ``match`` or ``possible``),
and counting searches whose coverage was incomplete; a 400 is a miss for whatever was expected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from certs.identity import Role
from certs.tls import client_ssl_context
from signpost.bench.datasets import Dataset
from signpost.federation import LocalFederation


async def search_all(
    fed: LocalFederation, data: Dataset, concurrency: int, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    context = client_ssl_context(fed.pki.ca.cert, fed.pki.users[Role.PRACTITIONER])
    answers: list[dict[str, Any]] = [{} for _ in data.queries]
    semaphore = asyncio.Semaphore(concurrency)
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=concurrency)) as session:

        async def one(n: int) -> None:
            nonlocal done
            async with semaphore:
                started = time.perf_counter()
                async with session.post(f"{fed.broker_url}/v1/searches", json=data.queries[n].body) as resp:
                    answers[n] = {"status": resp.status, **(await resp.json())}
                answers[n]["ms"] = (time.perf_counter() - started) * 1000
            done += 1
            if done % 1000 == 0 or done == len(data.queries):
                progress(f"  searched {done}/{len(data.queries)} through the broker")

        await asyncio.gather(*(one(n) for n in range(len(data.queries))))
    return answers


def score_federation(data: Dataset, answers: list[dict[str, Any]]) -> dict[str, Any]:
    from signpost.bench.accuracy import Tally

    match, anywhere = Tally(), Tally()
    incomplete = refused = 0
    hidden = data.answered_as_absent()  # by design found by no search
    for query, answer in zip(data.queries, answers, strict=True):
        coverage = answer.get("coverage", {})
        if answer["status"] == 400:
            refused += 1
        elif answer["status"] != 200 or coverage.get("answered") != coverage.get("asked"):
            incomplete += 1
        expected = {code for code, record_id in query.expected if (code, record_id) not in hidden}
        results = answer.get("results", [])
        match.add({r["authority"]["code"] for r in results if r["band"] == "match"}, expected)
        anywhere.add({r["authority"]["code"] for r in results}, expected)
    return {
        "match": match.summary(),
        "match_or_possible": anywhere.summary(),
        "refused_400": refused,
        "incomplete": incomplete,
    }
