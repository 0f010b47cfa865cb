"""The broker's door: who may hold a connection open, and for how long, before anyone is authenticated.

A client needs no certificate to open a TCP connection, so everything here
acts before the TLS handshake or before a request is read, and costs the
broker nothing per refusal:

- at most ``max_connections`` connections, and ``max_connections_per_address``
  from one source address, counted from the moment TCP is accepted (a
  connection over either cap is closed at once, before any TLS);
- the TLS handshake must finish within ``tls_handshake_timeout_seconds``;
- a request's head must arrive within ``header_read_timeout_seconds`` of the
  handshake or of the previous response (aiohttp's keep-alive timer, which
  closes a connection still waiting for a complete head);
- a request's body must arrive within ``body_read_timeout_seconds`` (408).

:class:`DoorSite` takes the place of aiohttp's ``TCPSite``: it accepts plain
TCP, counts the peer, and only then upgrades the connection to TLS and hands
it to aiohttp. This module never reads what a request says; it only counts
connections and watches clocks, and it logs addresses, never request content.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = structlog.get_logger("signpost.broker.door")


@dataclass(frozen=True)
class DoorLimits:
    """The ``[limits]`` table of the broker's config."""

    header_read_timeout_seconds: float = 30.0
    """A request's head (request line and headers) must arrive within this of the TLS handshake or of the
    previous response on the connection; otherwise the connection is closed. Also the idle keep-alive time."""
    body_read_timeout_seconds: float = 30.0
    """A request's body must arrive within this once its head has; otherwise 408 and the connection closes."""
    tls_handshake_timeout_seconds: float = 10.0
    """A connection that has not finished the TLS handshake within this is closed."""
    max_connections_per_address: int = 100
    """Most connections open at once from one source address; more are closed before the TLS handshake.
    An office behind one NAT address shares this, so it is generous."""
    max_connections: int = 768
    """Most connections open at once in all; more are closed before the TLS handshake. Below the usual
    open-file limit of 1024, leaving room for one gRPC channel per node, the audit log and the key files."""


class Door:
    """Counts open connections per source address and in all; admits or refuses each new one."""

    def __init__(self, limits: DoorLimits) -> None:
        self.limits = limits
        self.open: Counter[str] = Counter()
        self.total = 0
        self.refused = 0
        self._at_cap: set[str] = set()  # addresses already logged as at their cap

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``, or refuse it (and count nothing) if a cap is reached."""
        limits = self.limits
        if self.total >= limits.max_connections or self.open[address] >= limits.max_connections_per_address:
            self.refused += 1
            if address not in self._at_cap:  # once per episode, so a flood cannot flood the log too
                self._at_cap.add(address)
                log.warning("door_connection_refused", address=address, open=self.open[address], total=self.total)
            return False
        self.open[address] += 1
        self.total += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
        self.total -= 1
        self._at_cap.discard(address)


class _Gate(asyncio.Protocol):
    """One connection: counted at accept, upgraded to TLS under a deadline, then relayed to aiohttp's handler."""

    def __init__(self, door: Door, handler_factory: web.Server, context: ssl.SSLContext, pending: set[_Gate]):
        self.door, self.handler_factory, self.context, self.pending = door, handler_factory, context, pending
        self.address: str | None = None  # set once counted, cleared once released
        self.raw: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None
        self.handshake: asyncio.Task[None] | None = None  # held so the task is not collected mid-handshake
        # Bytes (and an end of stream) that arrive with the handshake's last flight, before the handler exists:
        # a client may send its request together with its TLS Finished message.
        self.early: list[bytes] = []
        self.early_eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = transport if isinstance(transport, asyncio.Transport) else None
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        if raw is None or not self.door.admit(address):
            transport.close()
            return
        self.address, self.raw = address, raw
        raw.pause_reading()  # the ClientHello waits for start_tls, which resumes reading
        self.pending.add(self)
        self.handshake = asyncio.get_running_loop().create_task(self._upgrade(raw))

    async def _upgrade(self, raw: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.door.limits.tls_handshake_timeout_seconds
        try:
            tls = await loop.start_tls(raw, self, self.context, server_side=True, ssl_handshake_timeout=timeout)
        except Exception as exc:  # any failed handshake (timeout, bad TLS, reset): start_tls has closed the
            # transport and, the handshake unfinished, connection_lost never comes: release the count here.
            # OpenSSL's reason (UNKNOWN_CA, WRONG_VERSION_NUMBER...) says why; the client sent nothing else yet.
            why = getattr(exc, "reason", None) or ("timeout" if isinstance(exc, TimeoutError) else None)
            log.info("tls_handshake_failed", address=self.address, error_type=type(exc).__name__, reason=why)
            self._release()
            return
        finally:
            self.pending.discard(self)
        if tls is None or self.lost:  # closed during, or straight after, the handshake
            self._release()
            return
        self.inner = self.handler_factory()
        self.inner.connection_made(tls)
        for data in self.early:
            self.inner.data_received(data)
        self.early.clear()
        if self.early_eof:
            self.inner.eof_received()

    def close(self) -> None:
        """Drop a connection still in its handshake (the broker is stopping)."""
        if self.raw is not None:
            self.raw.close()

    def _release(self) -> None:
        if self.address is not None:
            self.door.release(self.address)
            self.address = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._release()
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
        else:
            self.early.append(data)

    def eof_received(self) -> bool | None:
        if self.inner is None:
            self.early_eof = True
            return None
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class DoorSite(web.BaseSite):
    """aiohttp's TCPSite with the door in front: count at accept, TLS under a deadline, then aiohttp."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, ssl_context: ssl.SSLContext, door: Door
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.host, self.requested_port, self.door = host, port, door
        self.pending: set[_Gate] = set()

    @property
    def name(self) -> str:
        return f"https://{self.host}:{self.requested_port}"

    async def start(self) -> None:
        await super().start()
        server, context = self._runner.server, self._ssl_context
        assert isinstance(server, web.Server) and context is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(self.door, server, context, self.pending), self.host, self.requested_port
        )

    async def stop(self) -> None:
        await super().stop()
        for gate in list(self.pending):
            gate.close()


def body_deadline(seconds: float) -> Middleware:
    """Middleware: the whole body must arrive within ``seconds`` (handlers then read it from memory).

    A body still trickling in gets the contract's JSON 408 and the connection is closed at once, rather than
    left to aiohttp's lingering read of an unread body.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(seconds):
                    await request.read()
            except TimeoutError:
                return await _refuse_slow_body(request, seconds)
        return await handler(request)

    return middleware


async def _refuse_slow_body(request: web.Request, seconds: float) -> web.StreamResponse:
    message = f"request body not received within {seconds:g} seconds"
    response = web.json_response({"error": {"code": "request_timeout", "message": message}}, status=408)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()  # the rest of the body is not worth waiting for
    return response
