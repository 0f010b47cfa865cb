"""Certificate revocation: an X.509 CRL signed by the federation CA, reloaded when its file changes.

``signpost certs revoke`` adds a serial number to the CA's CRL; the broker and
every node point ``tls.crl`` at a copy of it. A CRL that does not verify
against the CA, or cannot be read, is refused loudly at start-up and, once
running, keeps the last good list (failing open to *no* list would un-revoke
everyone). The list is consulted on every call rather than per handshake, so
a revoked client certificate is refused on connections already open too; the
file is looked at no more than once a second, so that takes at most a second.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

log = structlog.get_logger("signpost.certs")


class RevocationError(ValueError):
    """A CRL that cannot be used."""


def load_crl(path: Path, ca_cert: x509.Certificate) -> frozenset[int]:
    """The revoked serial numbers in a CRL, after checking the CA signed it."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise RevocationError(f"{path}: cannot read the revocation list ({exc})") from None
    if not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        raise RevocationError(f"{path}: revocation list is not signed by the federation CA")
    return frozenset(r.serial_number for r in crl)


class RevocationList:
    """Revoked serials from a CRL file, re-read when the file's modification time changes."""

    def __init__(
        self, path: Path | None, ca_path: Path, *, clock: Callable[[], float] = time.monotonic, check_every: float = 1.0
    ) -> None:
        self.path = path
        self._clock, self._check_every, self._checked = clock, check_every, float("-inf")
        self._ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        self._serials: frozenset[int] = frozenset()
        self._mtime = 0.0
        if path is not None:
            self._serials = load_crl(path, self._ca)  # at start-up a bad CRL is fatal
            self._mtime = os.stat(path).st_mtime

    def _refresh(self) -> None:
        # At most one stat a second, however many calls: a revocation takes effect within that.
        if self.path is None or self._clock() - self._checked < self._check_every:
            return
        self._checked = self._clock()
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            log.error("crl_unreadable", path=str(self.path))
            return
        if mtime == self._mtime:
            return
        try:
            self._serials = load_crl(self.path, self._ca)
            log.info("crl_reloaded", revoked=len(self._serials))
        except RevocationError as exc:
            log.error("crl_rejected", reason=str(exc))
        self._mtime = mtime

    def is_revoked(self, serial: int) -> bool:
        self._refresh()
        return serial in self._serials


def write_crl(
    ca_key: object, ca_cert: x509.Certificate, serials: set[int], path: Path, *, now: dt.datetime | None = None
) -> Path:
    """Sign a CRL listing ``serials`` and write it atomically."""
    now = now or dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=7))
    )
    for serial in sorted(serials):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(path)
    return path


def revoked_serials(path: Path, ca_cert: x509.Certificate) -> set[int]:
    return set(load_crl(path, ca_cert)) if path.exists() else set()
