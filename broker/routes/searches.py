"""POST /v1/searches: a practitioner's search over mutual TLS, the certificate naming the caller.

The search itself (limits, checks, audit first, the signed fan-out, the answer's shape) is
broker.search_service's, shared with the practitioner portal: this door only reads the certificate
and the JSON body, and writes the contract's JSON.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from broker.auth import peer_identity
from broker.policy import roles_for
from broker.search_request import SearchRequest, decode_body, parse_search
from broker.search_service import run_search

ROUTE = ("POST", "/v1/searches")


async def read_json(request: web.Request) -> Any:
    return decode_body(await request.read())


async def create_search(request: web.Request) -> web.Response:
    async def read(today: dt.date) -> SearchRequest:
        return parse_search(await read_json(request), today=today)

    answer = await run_search(
        request.app,
        lambda: peer_identity(request),
        roles_for(*ROUTE),
        read,
        client_address=request.remote or "",
    )
    return web.json_response(answer.to_json())
