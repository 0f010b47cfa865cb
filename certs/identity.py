"""Who a certificate says its holder is.

A Signpost certificate names its holder with one SAN URI of the form
``urn:signpost:<role>:<id>`` — e.g. ``urn:signpost:practitioner:jsmith``,
``urn:signpost:node:LEEDS``, ``urn:signpost:broker:central``. The subject's
common name and organisation carry the display name and employer, which nodes
show to their safeguarding officers.

Node certificates additionally carry the DNS name ``<code>.node.signpost.internal``:
the broker dials every node with that name as the TLS target, so a valid
certificate of authority A answering at authority B's address fails the
handshake's hostname check.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.x509.oid import NameOID


class Role(StrEnum):
    BROKER = "broker"
    NODE = "node"
    PRACTITIONER = "practitioner"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    NODE_ADMIN = "node-admin"


USER_ROLES = frozenset({Role.PRACTITIONER, Role.AUDITOR, Role.OPERATOR, Role.NODE_ADMIN})
URI_PREFIX = "urn:signpost:"
AUTHORITY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
USER_ID = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
NODE_DNS_SUFFIX = ".node.signpost.internal"


class IdentityError(ValueError):
    """A certificate that does not name a Signpost party."""


@dataclass(frozen=True)
class Identity:
    """The party a certificate identifies."""

    role: Role
    id: str
    """User id, authority code (nodes) or broker name."""
    name: str
    """Display name (certificate common name)."""
    organisation: str
    email: str = ""
    serial: int = 0
    """Certificate serial number, for revocation lists."""

    @property
    def uri(self) -> str:
        return identity_uri(self.role, self.id)


def identity_uri(role: Role, ident: str) -> str:
    return f"{URI_PREFIX}{role.value}:{ident}"


def node_dns_name(code: str) -> str:
    """The TLS name a node's certificate must carry and the broker dials."""
    return f"{code.lower()}{NODE_DNS_SUFFIX}"


def _attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def identity_of(cert: x509.Certificate) -> Identity:
    """Read the Signpost identity from a certificate already verified by TLS."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise IdentityError("certificate has no subject alternative name") from exc
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith(URI_PREFIX)]
    if len(uris) != 1:
        raise IdentityError("certificate must carry exactly one urn:signpost: URI")
    role_text, _, ident = uris[0][len(URI_PREFIX) :].partition(":")
    try:
        role = Role(role_text)
    except ValueError as exc:
        raise IdentityError(f"unknown role {role_text!r}") from exc
    if not ident:
        raise IdentityError("certificate URI has no id")
    emails = san.get_values_for_type(x509.RFC822Name)
    return Identity(
        role=role,
        id=ident,
        name=_attr(cert, NameOID.COMMON_NAME),
        organisation=_attr(cert, NameOID.ORGANIZATION_NAME),
        email=emails[0] if emails else "",
        serial=cert.serial_number,
    )


@functools.lru_cache(maxsize=4096)
def identity_from_der(der: bytes) -> Identity:
    """The identity in a DER certificate, parsed once per distinct certificate.

    The broker reads the caller's certificate on every request, and parsing it cost more than the rest
    of authentication; the answer is a pure function of the bytes (a certificate that fails raises,
    and failures are not cached). Revocation is not part of it: callers check that on every request.
    """
    return identity_of(x509.load_der_x509_certificate(der))


def identity_from_pem(pem: bytes) -> Identity:
    return identity_of(x509.load_pem_x509_certificate(pem))
