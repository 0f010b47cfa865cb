"""The broker's working path to a node: one long-lived MatchStream, searches batched under load.

Real node servers over real mTLS; the broker side is broker.nodeclient's own NodeClient and MatchPipe.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from broker.breaker import CircuitBreaker
from broker.errors import NodeFailed, NodeRefused, NodeTimeout, NodeUnavailable
from broker.health import HealthSettings, NodeHealth, Peers
from broker.nodeclient import NodeClient, batch_piece
from broker.registry import Authority
from certs.assertions import AssertionRejected, AssertionSigner, AssertionVerifier, load_private_key, load_public_key
from certs.identity import node_dns_name
from certs.tls import TLSConfig, channel_credentials
from node.config import NodeConfig
from node.server import start_node
from protos.signpost.v1 import node_pb2
from signpost.federation import import_authority
from tests.conftest import row, write_csv


def signed(signer: AssertionSigner, search_id: str, **subject: str) -> node_pb2.MatchRequest:
    req = node_pb2.MatchRequest(
        search_id=search_id,
        subject=node_pb2.Subject(**subject),
        purpose=node_pb2.Purpose(code="missing-child", justification="test search"),
        requester=node_pb2.Requester(user_id="pat", role="practitioner"),
    )
    signer.sign(req)
    return req


AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}


@pytest.fixture
async def leeds(federation, pki):
    fed = await federation({"LEEDS": [row()]})
    node = fed.nodes["LEEDS"]
    client = NodeClient(
        Authority("LEEDS", "Leeds", node.address, node_dns_name("LEEDS")), channel_credentials(pki.tls(pki.broker))
    )
    signer = AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: ["LEEDS"])
    batches: list[int] = []
    original = node.service._answer_batch

    def counting(batch):
        batches.append(len(batch.requests))
        return original(batch)

    node.service._answer_batch = counting  # type: ignore[method-assign]
    yield node, client, signer, batches
    await client.close()


async def test_concurrent_searches_share_batches_and_each_gets_its_own_answer(leeds):
    _node, client, signer, batches = leeds
    requests = [
        signed(signer, f"s{i}", **(AMELIA if i % 2 == 0 else {**AMELIA, "given_name": "Zebedee"})) for i in range(40)
    ]
    answers = await asyncio.gather(*(client.match(r.SerializeToString(), 5.0) for r in requests))
    assert [len(a.candidates) for a in answers] == [1 if i % 2 == 0 else 0 for i in range(40)]
    assert sum(batches) == 40
    assert len(batches) < 40  # while one batch was out, the rest queued and went together
    assert max(batches) > 1


async def test_one_search_alone_goes_in_a_batch_of_one(leeds):
    _node, client, signer, batches = leeds
    for i in range(3):
        await client.match(signed(signer, f"s{i}", **AMELIA).SerializeToString(), 5.0)
    assert batches == [1, 1, 1]


async def test_a_refused_search_is_refused_alone(leeds):
    _node, client, signer, _batches = leeds
    good = signed(signer, "good", **AMELIA)
    replayed = signed(signer, "replay", **AMELIA)
    await client.match(replayed.SerializeToString(), 5.0)
    tampered = signed(signer, "tampered", **AMELIA)
    tampered.subject.given_name = "Ben"  # the assertion no longer covers the request
    invalid = signed(signer, "invalid", family_name="Smith", date_of_birth="2014-13-45")
    results = await asyncio.gather(
        *(client.match(r.SerializeToString(), 5.0) for r in (good, replayed, tampered, invalid)), return_exceptions=True
    )
    assert isinstance(results[0], node_pb2.MatchResponse) and len(results[0].candidates) == 1
    assert isinstance(results[1], NodeRefused) and isinstance(results[2], NodeRefused)
    assert isinstance(results[3], NodeFailed)
    # The next search on the same stream is answered: a refused search does not end the stream.
    assert (await client.match(signed(signer, "after", **AMELIA).SerializeToString(), 5.0)).candidates


async def test_streams_are_retired_without_losing_a_search(leeds):
    node, client, signer, _batches = leeds
    await client.match(signed(signer, "first", **AMELIA).SerializeToString(), 5.0)
    pipe = client._pipe
    assert pipe is not None
    for i in range(30):
        # Retired while idle, and while searches are out: each of them still gets its answer.
        searches = [client.match(signed(signer, f"s{i}-{j}", **AMELIA).SerializeToString(), 5.0) for j in range(3)]
        if i % 2:
            pipe.retire()
        answers = await asyncio.gather(*searches)
        assert all(len(a.candidates) == 1 for a in answers)
        pipe.retire()
    await asyncio.sleep(0.2)
    assert len(node.service._streams) <= 1  # retired streams were half-closed and ended by the node


async def test_a_recycled_connection_moves_the_stream_before_the_node_s_grace_cuts_it(pki, tmp_path, monkeypatch):
    """The node closes its connections after max_connection_age (here 1 s, give or take a tenth) and cuts calls
    still open a grace later (here 1 s too): the broker's stream follows the connection, not a clock, so
    searches sent back to back through several recycles are every one answered."""
    monkeypatch.setattr("node.server.CONNECTION_AGE_GRACE_SECONDS", 1.0)
    store = tmp_path / "LEEDS.sqlite3"
    import_authority(store, write_csv(tmp_path / "LEEDS.csv", [row()]))
    files = pki.nodes["LEEDS"]
    tls = TLSConfig(ca=pki.ca.cert, cert=files.cert, key=files.key, crl=pki.crl)
    config = NodeConfig(
        "LEEDS",
        "Leeds",
        ("127.0.0.1", 0),
        store,
        tls,
        broker_public_keys=(pki.assertion_pub,),
        max_connection_age_seconds=1.0,
    )
    node = await start_node(config)
    client = NodeClient(
        Authority("LEEDS", "Leeds", node.address, node_dns_name("LEEDS")), channel_credentials(pki.tls(pki.broker))
    )
    opened = 0
    open_stream = client._open_stream

    def counting():
        nonlocal opened
        opened += 1
        return open_stream()

    client._open_stream = counting  # type: ignore[method-assign]
    signer = AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: ["LEEDS"])
    try:
        began, i = time.monotonic(), 0
        while time.monotonic() - began < 4.0:
            answer = await client.match(signed(signer, f"s{i}", **AMELIA).SerializeToString(), 2.0)
            assert len(answer.candidates) == 1
            i += 1
        assert opened >= 3  # a new stream for each new connection
    finally:
        await client.close()
        await node.stop(grace=0.5)


async def test_a_node_stopping_ends_its_streams_without_waiting_out_the_grace(leeds):
    node, client, signer, _batches = leeds
    await client.match(signed(signer, "first", **AMELIA).SerializeToString(), 5.0)
    assert node.service._streams
    # A grace no test waits out: stopping inside the 30 s safety stop means the streams ended it, not the grace.
    await asyncio.wait_for(node.stop(grace=600.0), timeout=30)
    with pytest.raises(NodeUnavailable):
        await client.match(signed(signer, "after", **AMELIA).SerializeToString(), 2.0)


async def test_a_stream_opened_while_the_node_is_stopping_ends_too(leeds):
    """Between close_streams and the server's stop (the refresher, retention and notifier stopping) the
    broker, seeing its stream end, opens another for its next search: that one must end as well, or it
    holds the node's stop for all of the grace."""
    node, client, signer, _batches = leeds
    await client.match(signed(signer, "first", **AMELIA).SerializeToString(), 5.0)
    stop_refresher, during = node.refresher.stop, []

    async def search_while_stopping() -> None:
        for _ in range(100):  # the broker sees its stream end
            if not node.service._streams:
                break
            await asyncio.sleep(0.01)
        try:
            await client.match(signed(signer, "during", **AMELIA).SerializeToString(), 5.0)
        except NodeUnavailable as exc:  # said at once, as for a batch sent on a stream being closed
            during.append(exc)
        await stop_refresher()

    node.refresher.stop = search_while_stopping
    await asyncio.wait_for(node.stop(grace=600.0), timeout=10)
    assert during


async def test_junk_in_a_batch_is_refused_as_malformed(leeds):
    _node, client, _signer, _batches = leeds
    future = client.submit(batch_piece(b"\xff\xff\xff"), 5.0)
    with pytest.raises(NodeFailed):
        await future


def test_probation_singles_out_a_node_slow_among_its_peers():
    settings = HealthSettings(slow_ms=100)
    peers = Peers(settings, interval=0)

    def health(code: str, ms: float) -> NodeHealth:
        h = NodeHealth(
            Authority(code, code, "127.0.0.1:1", node_dns_name(code)),
            CircuitBreaker(failure_threshold=5, reset_after=5.0, clock=time.monotonic),
            settings,
            time.time,
            peers=peers,
        )
        for _ in range(10):
            h.succeeded(ms)
        return h

    fast = [health(f"F{i}", 20.0) for i in range(5)]
    slow = health("SLOW", 400.0)
    assert slow.on_probation and not any(h.on_probation for h in fast)
    # The whole machine busy: every node slow alike, so none is singled out and given less time.
    busy = Peers(settings, interval=0)
    everyone = [
        NodeHealth(
            Authority(f"B{i}", "b", "127.0.0.1:1", node_dns_name(f"B{i}")),
            CircuitBreaker(failure_threshold=5, reset_after=5.0, clock=time.monotonic),
            settings,
            time.time,
            peers=busy,
        )
        for i in range(6)
    ]
    for i, h in enumerate(everyone):
        for _ in range(10):
            h.succeeded(600.0 + 50 * i)
    assert not any(h.on_probation for h in everyone)


def test_stalls_that_delay_every_node_together_put_none_on_probation():
    """A loaded machine stalls the broker now and then: every node's answers in those searches are late alike,
    so every p90 is slow while the p50s stay fast. That is the machine, not a node to give less time."""
    settings = HealthSettings(slow_ms=100)
    peers = Peers(settings, interval=0)
    nodes = [
        NodeHealth(
            Authority(code, code, "127.0.0.1:1", node_dns_name(code)),
            CircuitBreaker(failure_threshold=5, reset_after=5.0, clock=time.monotonic),
            settings,
            time.time,
            peers=peers,
        )
        for code in ("LEEDS", "KENT", "CORNWALL")
    ]
    for search in range(20):
        stalled = search % 5 == 4  # one search in five waited a second in the broker
        for h in nodes:
            h.succeeded(1000.0 if stalled else 10.0)
    assert not any(h.on_probation for h in nodes)
    # One of them slow on its own account, once the stalls are past, is still singled out.
    for _ in range(20):
        for h, ms in zip(nodes, (400.0, 10.0, 10.0), strict=True):
            h.succeeded(ms)
    assert nodes[0].on_probation and not any(h.on_probation for h in nodes[1:])


def test_a_cached_signature_check_still_applies_each_nodes_own_rules(pki, tmp_path):
    from certs.assertions import create_assertion_key

    signer = AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: ["LEEDS", "KENT", "CORNWALL"])
    key = [load_public_key(pki.assertion_pub)]
    leeds, kent, hackney = (AssertionVerifier(key, authority=code) for code in ("LEEDS", "KENT", "HACKNEY"))
    _, other_pub = create_assertion_key(tmp_path, "other")
    stranger = AssertionVerifier([load_public_key(other_pub)], authority="CORNWALL")
    req = signed(signer, "s1", **AMELIA)
    raw = req.SerializeToString()
    leeds.verify(req, raw)
    kent.verify(req, raw)  # the same search reaches every node once
    with pytest.raises(AssertionRejected, match="used before"):
        kent.verify(req, raw)  # ...but not twice
    with pytest.raises(AssertionRejected, match="not addressed to this authority"):
        hackney.verify(req, raw)  # the signature is cached, the audience is still this node's own check
    with pytest.raises(AssertionRejected, match="unknown broker key"):
        stranger.verify(req, raw)
    req.subject.given_name = "Ben"
    with pytest.raises(AssertionRejected, match="does not match"):
        leeds.verify(req, req.SerializeToString())
    late = AssertionVerifier(key, authority="LEEDS", clock=lambda: time.time() + 3600)
    with pytest.raises(AssertionRejected, match="not fresh"):
        late.verify(signed(signer, "s2", **AMELIA), raw)


async def test_one_process_hosting_two_authorities_checks_each_ones_audience(federation, pki):
    # Both nodes run in this process, so KENT finds the bytes LEEDS verified in the shared signature cache.
    fed = await federation({"LEEDS": [row()], "KENT": [row()]})
    credentials = channel_credentials(pki.tls(pki.broker))
    leeds, kent = (
        NodeClient(Authority(code, code.title(), fed.nodes[code].address, node_dns_name(code)), credentials)
        for code in ("LEEDS", "KENT")
    )
    signer = AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: ["LEEDS"])
    try:
        raw = signed(signer, "for-leeds", **AMELIA).SerializeToString()
        assert (await leeds.match(raw, 5.0)).candidates
        with capture_logs() as logs, pytest.raises(NodeRefused):
            await kent.match(raw, 5.0)
        assert [e["reason"] for e in logs if e["event"] == "assertion_rejected"] == [
            "assertion is not addressed to this authority"
        ]
    finally:
        await leeds.close()
        await kent.close()


async def test_a_search_on_a_closed_client_is_unavailable_not_left_to_time_out(leeds):
    _node, client, signer, _batches = leeds
    await client.match(signed(signer, "first", **AMELIA).SerializeToString(), 5.0)
    await client.close()
    # Unavailable, not a timeout: with a deadline no test waits out, inside a 30 s safety stop.
    with pytest.raises(NodeUnavailable):
        await asyncio.wait_for(client.match(signed(signer, "after", **AMELIA).SerializeToString(), 600.0), timeout=30)


async def test_batches_of_searches_addressed_to_all_england_fit_a_nodes_largest_message(leeds, pki):
    """Each search names its whole audience (~2.4 KB at 152 authorities): 63 at once must not make one
    message the node refuses as too large, which would fail every search in it."""
    _node, client, _signer, batches = leeds
    england = [f"AUTHORITY-{i:03d}" for i in range(151)] + ["LEEDS"]  # real codes run to 10-20 letters
    signer = AssertionSigner(load_private_key(pki.assertion_key), audience=lambda: england)
    requests = [signed(signer, f"e{i}", **AMELIA) for i in range(64)]
    assert len(requests[0].SerializeToString()) > 2000
    answers = await asyncio.gather(*(client.match(r.SerializeToString(), 10.0) for r in requests))
    assert [len(a.candidates) for a in answers] == [1] * 64
    assert sum(batches) == 64 and len(batches) > 2  # split by size, not only by count


class _Slow:
    """The node's answer floor, plus ``delay``: a node busy elsewhere."""

    def __init__(self, timer, delay: float) -> None:
        self.timer, self.delay = timer, delay

    async def wait_until(self, deadline: float) -> None:
        await self.timer.wait_until(deadline)
        await asyncio.sleep(self.delay)


async def test_a_stream_reports_the_work_outstanding_at_its_node_for_admission(leeds):
    node, client, signer, batches = leeds
    nothing = client.load(time.perf_counter())
    assert (nothing.out, nothing.queued, nothing.oldest_age, nothing.per_search) == (0, 0, 0.0, 0.0)
    node.service.timer = _Slow(node.service.timer, 0.3)
    first = client.submit(batch_piece(signed(signer, "first", **AMELIA).SerializeToString()), 5.0)
    await asyncio.sleep(0.1)  # the first batch is out, alone
    rest = [client.submit(batch_piece(signed(signer, f"s{i}", **AMELIA).SerializeToString()), 5.0) for i in range(9)]
    load = client.load(time.perf_counter())
    assert (load.out, load.queued) == (1, 9) and load.oldest_age >= 0.1
    await asyncio.gather(first, *rest)
    load = client.load(time.perf_counter())
    assert (load.out, load.queued, load.oldest_age) == (0, 0, 0.0) and batches == [1, 9]
    # A moving average per search: the batch of one took its whole round trip (at least 0.3 s), the batch of
    # nine a ninth of its own each: 0.2 x 0.8 x 0.3 + 0.2 x 0.3 / 9 = 0.055 s at the least.
    assert 0.05 < load.per_search < 0.1


async def test_a_stuck_stream_is_abandoned_and_the_next_search_goes_on_a_new_one(leeds):
    """A stream lives as long as its connection; a call stuck on a live connection must not hold every later
    search behind it until the node next recycles the connection (minutes)."""
    node, client, signer, _batches = leeds
    await client.match(signed(signer, "first", **AMELIA).SerializeToString(), 5.0)
    pipe = client._pipe
    assert pipe is not None
    pipe.stall_after = 0.5
    timer = node.service.timer
    node.service.timer = _Slow(timer, 4.0)  # this batch is answered long after its deadline
    with pytest.raises(NodeTimeout):
        await client.match(signed(signer, "stuck", **AMELIA).SerializeToString(), 0.3)
    node.service.timer = timer
    await asyncio.sleep(0.4)  # the stuck batch is now older than stall_after
    answer = await client.match(signed(signer, "after", **AMELIA).SerializeToString(), 2.0)
    assert len(answer.candidates) == 1
