"""Every TLS credential and SSL context Signpost builds, in one place.

Which files a party presents and trusts is :class:`TLSConfig`; this module
turns those files into what gRPC (broker → node channels, node servers, with
their certificate rotation) and Python's ``ssl`` (the broker's HTTPS server, a
practitioner's HTTPS client) need. Nothing else calls ``grpc.ssl_*`` or
``ssl.create_default_context``, so the protocol floor (TLS 1.2) and the rule that
both ends authenticate are set here once.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import grpc

from core.config import Reader


@dataclass(frozen=True)
class TLSConfig:
    """The files a server or client presents and trusts."""

    ca: Path
    """The federation CA certificate; peers must chain to it."""
    cert: Path
    """This party's certificate (PEM)."""
    key: Path
    """This party's private key (PEM, mode 0600)."""
    crl: Path | None = None
    """The federation CA's certificate revocation list; re-read when it changes."""


class KeyPair(Protocol):
    """Anything naming a certificate file and its key file (an issued user, a TLSConfig)."""

    @property
    def cert(self) -> Path: ...

    @property
    def key(self) -> Path: ...


def read_tls(reader: Reader) -> TLSConfig:
    """The ``[tls]`` table of a broker's or node's config."""
    tls = reader.sub("tls")
    return TLSConfig(ca=tls.path("ca"), cert=tls.path("cert"), key=tls.path("key"), crl=tls.optional_path("crl"))


def channel_credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    """A gRPC client's credentials: trust the federation CA, present this party's certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.key.read_bytes(),
        certificate_chain=tls.cert.read_bytes(),
    )


def server_certificate_configuration(tls: TLSConfig) -> grpc.ServerCertificateConfiguration:
    """The files a gRPC server presents and the CA it holds clients to, read now."""
    return grpc.ssl_server_certificate_configuration(
        [(tls.key.read_bytes(), tls.cert.read_bytes())], root_certificates=tls.ca.read_bytes()
    )


def rotating_server_credentials(
    initial: grpc.ServerCertificateConfiguration,
    fetch: Callable[[], grpc.ServerCertificateConfiguration | None],
) -> grpc.ServerCredentials:
    """Server credentials that ask ``fetch`` before each handshake whether the files changed; clients must
    present a certificate."""
    # grpc documents None from the fetcher as "keep the current files"; its type stubs omit that case.
    fetcher = cast(Callable[[], grpc.ServerCertificateConfiguration], fetch)
    return grpc.dynamic_ssl_server_credentials(initial, fetcher, require_client_authentication=True)


def server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """Fixed server credentials that demand a client certificate from the federation CA."""
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())], root_certificates=tls.ca.read_bytes(), require_client_auth=True
    )


def server_ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """The broker's HTTPS context: asks for (does not demand) a client certificate.

    ``CERT_OPTIONAL`` lets a caller with no certificate reach the app and get the
    contract's 401 JSON; a certificate that does not chain to the federation CA
    still fails the handshake, before any HTTP is spoken.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca))
    context.load_cert_chain(str(tls.cert), str(tls.key))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_ssl_context(ca: Path, user: KeyPair | None) -> ssl.SSLContext:
    """What a practitioner's HTTPS client uses: trust the federation CA, present the user's certificate."""
    context = ssl.create_default_context(cafile=str(ca))
    if user is not None:
        context.load_cert_chain(str(user.cert), str(user.key))
    return context
