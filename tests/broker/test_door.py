"""The door of the real HTTPS server (broker.server's site, not TestServer): slow clients and connection floods.

Each test opens real TCP/TLS connections on loopback (127.0.0.1, 127.0.0.2, ... are all loopback on Linux, so
they are distinct source addresses) and watches whether the server hangs up. ``SAFETY`` only bounds how long
a test waits; nothing asserts how fast the server was.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from broker.app import create_app
from broker.config import BrokerConfig, load_broker_config
from broker.door import DoorLimits
from broker.fanout import build_fanout
from broker.registry import save_registry
from broker.server import RunningBroker, start_broker
from certs.identity import Role
from certs.tls import client_ssl_context
from core.config import ConfigError
from signpost.federation import Pki
from tests.conftest import FAST_HEALTH

SAFETY = 5.0  # seconds a test waits for the server to hang up before calling the connection "still open"
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def broker(pki: Pki, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await broker(header_read_timeout_seconds=0.5, ...)`` starts the real server with those limits."""
    started: list[RunningBroker] = []

    async def start(**limits: Any) -> RunningBroker:
        registry = tmp_path / "registry.json"
        save_registry(registry, ())
        config = BrokerConfig(
            listen=("127.0.0.1", 0),
            registry=registry,
            tls=pki.tls(pki.broker),
            assertion_key=pki.assertion_key,
            rate_limit_per_minute=0,
            rate_limit_per_day=0,
            alert_searches_per_hour=0,
            audit_log=str(tmp_path / "audit.sqlite3"),
            audit_signing_key=tmp_path / "audit.key",
            subject_key=tmp_path / "subject.key",
            health=FAST_HEALTH,
            limits=DoorLimits(**limits),
        )
        app = create_app(config, fanout=build_fanout((), config.tls, settings=config.health))
        running = await start_broker(config, app)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()


def tls_context(pki: Pki) -> ssl.SSLContext:
    return client_ssl_context(pki.ca.cert, pki.users[Role.PRACTITIONER])


async def connect(port: int, source: str = "127.0.0.1", context: ssl.SSLContext | None = None) -> Streams:
    """A connection from ``source``: plain TCP, or TLS (handshake finished) when given a context."""
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, local_addr=(source, 0)), SAFETY
    )


async def hung_up(reader: asyncio.StreamReader) -> bool:
    """True once the server closes the connection; False if it is still open after SAFETY seconds."""
    try:
        async with asyncio.timeout(SAFETY):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        pass
    return True


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float = 0.1) -> None:
    """Send ``data`` one byte at a time, as a slowloris client does."""
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)


async def answers(port: int, pki: Pki, source: str = "127.0.0.1") -> bytes:
    """The status line of a whole, promptly sent request from ``source``."""
    reader, writer = await connect(port, source, tls_context(pki))
    writer.write(b"GET /v1/nodes HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n")
    line = await asyncio.wait_for(reader.readline(), SAFETY)
    writer.close()
    return line


async def close(*writers: asyncio.StreamWriter) -> None:
    for writer in writers:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def test_a_request_head_trickled_byte_by_byte_is_cut_off(broker, pki):
    running = await broker(header_read_timeout_seconds=0.5)
    reader, writer = await connect(running.port, context=tls_context(pki))
    slow = asyncio.create_task(trickle(writer, b"GET /v1/nodes HTTP/1.1\r\nHost: broker\r\nX-Pad: " + b"a" * 200))
    try:
        assert await hung_up(reader)
    finally:
        slow.cancel()
        await close(writer)
    assert (await answers(running.port, pki)).startswith(b"HTTP/1.1 ")  # a whole head in time is still served


async def test_the_next_head_on_a_kept_alive_connection_is_cut_off_too(broker, pki):
    running = await broker(header_read_timeout_seconds=0.5)
    reader, writer = await connect(running.port, context=tls_context(pki))
    writer.write(b"GET /v1/nodes HTTP/1.1\r\nHost: broker\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), SAFETY)).startswith(b"HTTP/1.1 ")
    slow = asyncio.create_task(trickle(writer, b"GET /v1/nodes HTTP/1.1\r\nX-Pad: " + b"a" * 200))
    try:
        assert await hung_up(reader)
    finally:
        slow.cancel()
        await close(writer)


async def test_a_trickled_body_gets_408_and_the_connection_is_closed(broker, pki):
    running = await broker(body_read_timeout_seconds=0.5)
    reader, writer = await connect(running.port, context=tls_context(pki))
    head = (
        b"POST /v1/searches HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    )
    writer.write(head)
    slow = asyncio.create_task(trickle(writer, b'{"subject": ' + b" " * 300))
    try:
        status = await asyncio.wait_for(reader.readline(), SAFETY)
        rest = await asyncio.wait_for(reader.read(4096), SAFETY)
        assert status.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in rest
        assert await hung_up(reader)
    finally:
        slow.cancel()
        await close(writer)


async def test_a_request_sent_with_the_last_handshake_flight_is_answered(broker, pki):
    """A client may send its request in the same packet as its TLS Finished: those bytes must not be lost
    while the door hands the connection to aiohttp (found by the scale benchmark: a search hung, then
    ServerDisconnectedError)."""
    running = await broker()
    reader, writer = await connect(running.port)
    tls, incoming, outgoing = memory_tls(pki)
    try:
        while True:  # the handshake by hand, so that what the client sends last can be chosen
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                writer.write(outgoing.read())
                incoming.write(await asyncio.wait_for(reader.read(65536), SAFETY))
        tls.write(b"GET /v1/nodes HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n")
        writer.write(outgoing.read())  # Finished and the request in one write
        answer = b""
        async with asyncio.timeout(SAFETY):
            while not answer:
                incoming.write(await reader.read(65536))
                with contextlib.suppress(ssl.SSLWantReadError):
                    answer = tls.read(65536)
        assert answer.startswith(b"HTTP/1.1 ")
    finally:
        await close(writer)


def memory_tls(pki: Pki) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    return tls_context(pki).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1"), incoming, outgoing


async def test_a_tls_handshake_never_finished_is_cut_off(broker):
    running = await broker(tls_handshake_timeout_seconds=0.5)
    reader, writer = await connect(running.port)  # TCP only: no ClientHello is ever sent
    try:
        assert await hung_up(reader)
    finally:
        await close(writer)


async def test_connections_from_one_address_are_capped_before_tls(broker, pki):
    running = await broker(max_connections_per_address=2, tls_handshake_timeout_seconds=60)
    held = [await connect(running.port) for _ in range(2)]  # bare TCP: no certificate, no handshake
    extra_reader, extra_writer = await connect(running.port)
    try:
        assert await hung_up(extra_reader)
        assert (await answers(running.port, pki, source="127.0.0.2")).startswith(b"HTTP/1.1 ")  # another address
        await close(held[0][1])
        for _ in range(50):  # the server notices the close in its own time
            with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError):
                if (await answers(running.port, pki)).startswith(b"HTTP/1.1 "):
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("a closed connection was never given back to its address")
    finally:
        await close(extra_writer, *(writer for _, writer in held))


async def test_connections_in_all_are_capped(broker):
    running = await broker(max_connections=2, tls_handshake_timeout_seconds=60)
    held = [await connect(running.port, source) for source in ("127.0.0.1", "127.0.0.2")]
    extra_reader, extra_writer = await connect(running.port, "127.0.0.3")
    try:
        assert await hung_up(extra_reader)
    finally:
        await close(extra_writer, *(writer for _, writer in held))


def test_limits_are_read_from_the_config_and_checked(tmp_path):
    path = tmp_path / "broker.toml"
    base = 'registry = "r.json"\nassertion_key = "a.key"\n[tls]\nca = "ca.pem"\ncert = "b.pem"\nkey = "b.key"\n'
    path.write_text(base + "[limits]\nheader_read_timeout_seconds = 5\nmax_connections_per_address = 7\n")
    limits = load_broker_config(path, {}).limits
    assert limits.header_read_timeout_seconds == 5 and limits.max_connections_per_address == 7
    assert limits.max_connections == DoorLimits().max_connections
    path.write_text(base + "[limits]\nmax_connections = 0\n")
    with pytest.raises(ConfigError, match=r"limits\.max_connections"):
        load_broker_config(path, {})


def test_the_example_config_documents_the_defaults():
    """deploy/config/broker.toml shows the [limits] table commented out, with the defaults: they must not drift."""
    import dataclasses
    import re
    import tomllib

    text = (Path(__file__).parents[2] / "deploy" / "config" / "broker.toml").read_text(encoding="utf-8")
    shown = "\n".join(re.findall(r"^# (\w+ = [\d.]+)$", text.split("# [limits]", 1)[1].split("\n\n", 1)[0], re.M))
    documented = tomllib.loads(shown)
    assert documented == dataclasses.asdict(DoorLimits())
