"""The certificate each node presents in its TLS handshake: when it expires, as the broker sees it.

A node reports its own certificate's expiry in Describe; what matters is the certificate the
broker is actually shown. So the health monitor asks here, at most every ``interval`` seconds per
node: one short TLS handshake with the broker's own client certificate, the federation CA, the
node's registered DNS identity and gRPC's ALPN (``h2``), read for the peer certificate and aborted
at once (a polite close would wait seconds for the node's close_notify). Nothing is sent over it.

Never raises: None when the node cannot be reached or the handshake fails, and the monitor falls
back to what the node reported. Must never be used to decide a search's outcome.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from cryptography import x509

from broker.registry import Authority
from certs.tls import TLSConfig


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class PeerCertificates:
    """Handshake-observed certificate expiry per authority, refreshed at most every ``interval`` seconds."""

    def __init__(
        self,
        tls: TLSConfig,
        *,
        interval: float = 300.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tls, self.interval, self.timeout, self._clock = tls, interval, timeout, clock
        self._seen: dict[Authority, tuple[float, float | None]] = {}
        """Per authority (code, address and identity): when it was looked at, and the expiry seen then."""

    async def expiry(self, authority: Authority) -> float | None:
        """POSIX time the node's presented certificate expires; None if no handshake could be made."""
        now = self._clock()
        seen = self._seen.get(authority)
        if seen is not None and now - seen[0] < self.interval:
            return seen[1]
        value = await self._handshake(authority)
        self._seen = {a: s for a, s in self._seen.items() if a.code != authority.code}  # a moved node: one entry
        self._seen[authority] = (now, value)
        return value

    def _context(self) -> ssl.SSLContext:
        # Built for each look (minutes apart), so a rotated broker certificate or CA is used at once.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        context.set_alpn_protocols(["h2"])
        return context

    async def _handshake(self, authority: Authority) -> float | None:
        try:
            host, port = _host_port(authority.address)
            connecting = asyncio.open_connection(host, port, ssl=self._context(), server_hostname=authority.identity)
            _, writer = await asyncio.wait_for(connecting, self.timeout)
        except (OSError, ValueError, TimeoutError):  # ssl.SSLError is an OSError
            return None
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp() if der else None
        except ValueError:
            return None
        finally:
            writer.transport.abort()
