"""Create a federation CA and issue its certificates with ``cryptography``.

Keys are ECDSA P-256: small, fast to handshake (the broker opens one channel
per authority) and supported by grpc's BoringSSL and Python's OpenSSL alike.
Private keys are written with mode 0600 and never leave the directory given.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.identity import AUTHORITY_CODE, USER_ID, Role, identity_uri, node_dns_name

DEFAULT_VALIDITY = dt.timedelta(days=397)
CA_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class IssuedFiles:
    """Where an issued certificate and its key were written."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Subject:
    """What a new certificate says about its holder."""

    role: Role
    id: str
    """User id, authority code or broker name."""
    name: str
    """Display name: a person's name, an authority's name."""
    organisation: str = ""
    email: str = ""
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    extra_uris: tuple[str, ...] = field(default=())


class CertificateAuthority:
    """A federation CA held in memory; load it from or save it to a directory."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    @classmethod
    def create(cls, name: str = "Signpost Federation CA", *, now: dt.datetime | None = None) -> CertificateAuthority:
        now = now or dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / 'ca.key'}: expected an EC private key")
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        return cls(key, cert)

    def save(self, directory: Path) -> IssuedFiles:
        return write_pair(directory, "ca", self.cert, self.key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        subject: Subject,
        *,
        validity: dt.timedelta = DEFAULT_VALIDITY,
        now: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Issue a certificate for ``subject``; ``not_before`` lets tests mint not-yet-valid ones."""
        now = now or dt.datetime.now(dt.UTC)
        start = not_before or now - dt.timedelta(minutes=5)
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.NameAttribute(NameOID.COMMON_NAME, subject.name)]
        if subject.organisation:
            names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject.organisation))
        names.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, subject.role.value))
        general: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity_uri(subject.role, subject.id))]
        general += [x509.UniformResourceIdentifier(u) for u in subject.extra_uris]
        general += [x509.DNSName(d) for d in subject.dns_names]
        general += [x509.IPAddress(ipaddress.ip_address(i)) for i in subject.ip_addresses]
        if subject.email:
            general.append(x509.RFC822Name(subject.email))
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if subject.role in (Role.BROKER, Role.NODE):
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(names))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(general), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert, key

    def issue_to(self, directory: Path, stem: str, subject: Subject, **kwargs: object) -> IssuedFiles:
        cert, key = self.issue(subject, **kwargs)  # type: ignore[arg-type]
        return write_pair(directory, stem, cert, key)


def broker_subject(
    name: str = "central", *, hostnames: tuple[str, ...] = ("localhost",), ips: tuple[str, ...] = ("127.0.0.1", "::1")
) -> Subject:
    return Subject(Role.BROKER, name, f"Signpost broker {name}", "Signpost", dns_names=hostnames, ip_addresses=ips)


def node_subject(code: str, name: str) -> Subject:
    if not AUTHORITY_CODE.match(code):
        raise ValueError(f"authority code {code!r} must be 2-32 of A-Z, 0-9 and '-'")
    return Subject(Role.NODE, code, f"{name} node", name, dns_names=(node_dns_name(code),))


def user_subject(role: Role, user_id: str, name: str, organisation: str, email: str = "") -> Subject:
    if not USER_ID.match(user_id):
        raise ValueError(f"user id {user_id!r} must be 1-64 of letters, digits and . _ @ -")
    return Subject(role, user_id, name, organisation, email=email)


def write_pair(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> IssuedFiles:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Create with 0600 from the start: a chmod after write leaves a window where the key is world-readable.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    os.chmod(key_path, 0o600)
    return IssuedFiles(cert_path.resolve(), key_path.resolve())
