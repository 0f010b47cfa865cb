"""When the broker's certificates and the federation's CRL run out: dates read from their files.

The broker's own certificate, the federation CA's and the CRL's next update are read from the files
the config names, when a scrape or a readiness check asks, and parsed again only when a file's
modification time changes (a rotation is seen at the next ask). Operators alert on these dates
(deploy/monitoring) well before a certificate lapses: a broker whose certificate has expired is
refused by every node.

Never raises for a missing or broken file: the date is None and the caller says the file is unreadable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

Parse = Callable[[bytes], float]


def certificate_not_after(pem: bytes) -> float:
    """The POSIX time a PEM certificate stops being valid."""
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()


def certificate_not_before(pem: bytes) -> float:
    return x509.load_pem_x509_certificate(pem).not_valid_before_utc.timestamp()


def crl_next_update(pem: bytes) -> float:
    """The POSIX time by which the CA promised a newer CRL; ValueError if the CRL names none."""
    when = x509.load_pem_x509_crl(pem).next_update_utc
    if when is None:
        raise ValueError("the CRL has no next update")
    return when.timestamp()


class FileDate:
    """One date read from one file, re-parsed only when the file's modification time changes."""

    def __init__(self, path: Path, parse: Parse) -> None:
        self.path, self._parse = path, parse
        self._stamp: float | None = None
        self._value: float | None = None

    def get(self) -> float | None:
        """The date, or None if the file cannot be read or parsed now."""
        try:
            stamp = os.stat(self.path).st_mtime
        except OSError:
            self._stamp = self._value = None
            return None
        if stamp != self._stamp:
            try:
                self._value = self._parse(self.path.read_bytes())
            except (OSError, ValueError):
                self._value = None
            self._stamp = stamp
        return self._value
