"""What each credential file must hold, checked before a service starts (:mod:`core.files` does the reading).

A certificate that is not PEM, a key that is not the certificate's, a CRL the
CA did not sign: each would otherwise surface deep inside ``ssl`` or ``grpc``
as a traceback once the service is half started. These checks parse each file
the way the service will, so the failure is one sentence naming the config key.
They never put a key's bytes in a message.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from certs.tls import TLSConfig
from core.files import FileProblem, ReadableFile, Requirement


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tls_requirements(tls: TLSConfig, prefix: str = "tls.") -> list[Requirement]:
    """The ``[tls]`` files: the CA, this party's certificate and its key (which must match), and the CRL."""

    def key_matches_cert(data: bytes) -> None:
        key = serialization.load_pem_private_key(data, password=None)
        cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
        if _public_bytes(key.public_key()) != _public_bytes(cert.public_key()):
            raise FileProblem(f"is not the private key of {prefix}cert ({tls.cert})")

    def crl_signed_by_ca(data: bytes) -> None:
        crl = x509.load_pem_x509_crl(data)
        ca = x509.load_pem_x509_certificate(tls.ca.read_bytes())
        if not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
            raise FileProblem(f"is not signed by the federation CA in {prefix}ca ({tls.ca})")

    files: list[Requirement] = [
        ReadableFile(f"{prefix}ca", tls.ca, "a PEM certificate", x509.load_pem_x509_certificate),
        ReadableFile(f"{prefix}cert", tls.cert, "a PEM certificate", x509.load_pem_x509_certificate),
        ReadableFile(f"{prefix}key", tls.key, "a PEM private key", key_matches_cert),
    ]
    if tls.crl is not None:
        files.append(ReadableFile(f"{prefix}crl", tls.crl, "a PEM certificate revocation list", crl_signed_by_ca))
    return files


def ed25519_private(data: bytes) -> None:
    if not isinstance(serialization.load_pem_private_key(data, password=None), Ed25519PrivateKey):
        raise FileProblem("is not an Ed25519 private key")


def ed25519_public(data: bytes) -> None:
    if not isinstance(serialization.load_pem_public_key(data), Ed25519PublicKey):
        raise FileProblem("is not an Ed25519 public key")
