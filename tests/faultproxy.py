"""A TCP fault proxy, for tests only: stand it between the broker and a node to make the node misbehave.

It listens on loopback only (127.0.0.1, a port the kernel picks) and forwards
bytes to one upstream ``host:port``. Its mode can be switched while tests run:

``pass``
    forward both ways.
``latency``
    forward, delivering each chunk ``ms`` after it arrived, in both directions
    (a delay line: the delay does not pile up over a stream of chunks).
``blackhole``
    a hung node: accept and read, but never forward or answer. Connections that
    were open when the mode was set go silent too. A connection that has lost
    bytes can never carry TLS again, so leaving ``blackhole`` resets it.
``reset``
    accept, then close with a TCP RST (``SO_LINGER`` 0), at once or after ``ms``
    (long enough for the client to be mid-TLS-handshake). Open connections are
    reset when the mode is set: the node has gone away.
``refuse``
    stop listening, so connects are refused; open connections are reset. Leaving
    ``refuse`` listens again on the same port, so the registered address stays right.
``slow_close``
    forward, but pass a close (EOF) on only ``ms`` after it arrived.

It must never be bound to anything but loopback, and never used outside tests.
Every task it starts is tracked; reads are not timed but ``close()`` cancels
every task and awaits it, so nothing outlives the proxy.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, get_args

Mode = Literal["pass", "latency", "blackhole", "reset", "refuse", "slow_close"]
MODES: frozenset[str] = frozenset(get_args(Mode))
LOOPBACK = "127.0.0.1"
_RST_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 seconds: close() sends RST, not FIN
_Line = asyncio.Queue[tuple[float, bytes | None]]  # (deliver at, chunk); b"" is EOF, None a broken read


@dataclass
class Counters:
    """What the proxy has seen since it started."""

    accepted: int = 0
    """Connections accepted (in every mode but ``refuse``, which accepts none)."""
    bytes_up: int = 0
    """Bytes forwarded from clients to the upstream."""
    bytes_down: int = 0
    """Bytes forwarded from the upstream to clients."""


def _reset_socket(sock: Any) -> None:
    """Close with RST; ``sock`` is a socket or an asyncio TransportSocket."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_ON_CLOSE)
    except OSError:
        pass  # already closed: nothing left to reset
    sock.close()


def _reset_writer(writer: asyncio.StreamWriter) -> None:
    if writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_ON_CLOSE)
        except OSError:
            pass
    writer.transport.abort()


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    hung: bool = False
    """Bytes have been dropped: this connection never forwards again."""

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _reset_writer(writer)

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None and not writer.transport.is_closing():
                writer.close()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the fault proxy forwards to loopback only, not {address!r}")
    return host, int(port)


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``, misbehaving as its mode says. Use ``async with``."""

    def __init__(self, upstream: str, *, connect_timeout: float = 2.0, chunk_size: int = 64 * 1024) -> None:
        self.upstream = _split(upstream)
        self.connect_timeout, self.chunk_size = connect_timeout, chunk_size
        self.mode: Mode = "pass"
        self.counters = Counters()
        self._delay = 0.0
        self._port = 0
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self._port}"

    async def start(self) -> FaultProxy:
        self._listen()
        return self

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def set_mode(self, mode: Mode, *, ms: float = 0.0) -> None:
        """Switch behaviour now; ``ms`` is the delay for ``latency``, ``slow_close`` and ``reset``."""
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {sorted(MODES)}")
        if self._closed:
            raise RuntimeError("the proxy is closed")
        previous, self.mode, self._delay = self.mode, mode, ms / 1000
        if mode == "blackhole":
            for conn in self._connections:
                conn.hung = True
        elif previous == "blackhole":
            for conn in [c for c in self._connections if c.hung]:
                conn.reset()
        if mode in ("reset", "refuse"):
            for conn in list(self._connections):
                conn.reset()
        if mode == "refuse":
            await self._stop_listening()
        elif self._listener is None:
            self._listen()

    async def close(self) -> None:
        """Stop listening, reset every connection, cancel every task and wait for them all."""
        self._closed = True
        await self._stop_listening()
        for conn in list(self._connections):
            conn.reset()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)

    # -- listening -----------------------------------------------------------------------------

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Reopening the same port while old connections sit in TIME_WAIT needs SO_REUSEADDR.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, self._port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise OSError(f"fault proxy cannot listen on {LOOPBACK}:{self._port}: {exc}") from exc
        self._port = int(sock.getsockname()[1])
        self._listener = sock
        self._accept_task = asyncio.create_task(self._accept(sock), name=f"faultproxy-accept-{self._port}")

    async def _stop_listening(self) -> None:
        task, sock = self._accept_task, self._listener
        self._accept_task = self._listener = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if sock is not None:
            sock.close()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock, _ = await loop.sock_accept(listener)
            self.counters.accepted += 1
            self._spawn(self._serve(sock))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one connection ------------------------------------------------------------------------

    async def _serve(self, sock: socket.socket) -> None:
        if self.mode in ("reset", "refuse"):
            try:
                await asyncio.sleep(self._delay if self.mode == "reset" else 0.0)
            finally:
                _reset_socket(sock)
            return
        try:
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        conn = _Connection(writer, hung=self.mode == "blackhole")
        self._connections.add(conn)
        clean = False
        try:
            clean = await self._forward(conn, reader)
        except (TimeoutError, OSError):
            pass  # the upstream is not there, or a socket broke: the client sees a reset
        finally:
            self._connections.discard(conn)
            if clean:
                conn.close()
            else:
                conn.reset()

    async def _forward(self, conn: _Connection, reader: asyncio.StreamReader) -> bool:
        if conn.hung:
            # Read and drop until the client gives up or the mode changes: a hung node answers nothing.
            while await reader.read(self.chunk_size):
                pass
            return False
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), self.connect_timeout)
        conn.upstream = up_writer
        if self.mode in ("reset", "refuse"):  # switched while we were dialling
            return False
        results = await asyncio.gather(
            self._pipe(conn, reader, up_writer, up=True), self._pipe(conn, up_reader, conn.client, up=False)
        )
        return all(results)

    async def _pipe(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> bool:
        """Carry one direction until EOF (True) or a break (False, and the whole connection is reset)."""
        line: _Line = asyncio.Queue(maxsize=64)
        feeder = asyncio.create_task(self._feed(conn, reader, line))
        try:
            return await self._deliver(conn, line, writer, up=up)
        except OSError:
            conn.reset()
            return False
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)

    async def _feed(self, conn: _Connection, reader: asyncio.StreamReader, line: _Line) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk: bytes | None = await reader.read(self.chunk_size)
            except OSError:
                chunk = None
            if chunk and conn.hung:
                continue
            delay = self._delay if self.mode == "latency" else 0.0
            await line.put((loop.time() + delay, chunk))
            if not chunk:
                return

    async def _deliver(self, conn: _Connection, line: _Line, writer: asyncio.StreamWriter, *, up: bool) -> bool:
        loop = asyncio.get_running_loop()
        while True:
            due, chunk = await line.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if chunk is None:
                conn.reset()
                return False
            if not chunk:
                if self.mode == "slow_close":
                    await asyncio.sleep(self._delay)
                if not conn.hung and writer.can_write_eof():
                    writer.write_eof()
                return True
            if conn.hung:
                continue  # arrived before the hang, delivered after it: dropped like the rest
            writer.write(chunk)
            if up:
                self.counters.bytes_up += len(chunk)
            else:
                self.counters.bytes_down += len(chunk)
            await writer.drain()
