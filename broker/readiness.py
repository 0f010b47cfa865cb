"""Whether this broker can take searches now: the checks behind ``GET /readyz``.

``/healthz`` says only that the process answers (liveness: restart it if not). ``/readyz`` says
whether a search sent here could be answered, so a load balancer or Kubernetes sends searches
only to replicas that can. It fails, naming each part, when

* **audit**: the audit store does not answer a read within ``audit_timeout`` seconds, or its
  backlog is full. Every search is audited before it is answered, so with the store gone every
  search fails with 503 anyway; a replica that says so is taken out of rotation instead.
* **registry**: the broker holds no authority to ask. A broken registry *edit* is not a failure:
  broker.watcher refuses it and keeps serving the last good registry (failing every replica's
  readiness over a typo would turn a bad edit into an outage).
* **limits**: the limits store (``limits_store``: Redis shared by the replicas) does not answer. Every
  search is refused with 503 ``limits_unavailable`` meanwhile (the broker fails closed), so say so.
* **keys**: the broker's certificate is outside its validity period (every node and client
  would refuse it), or a key file the broker signs with or would reload (``tls.key``,
  ``assertion_key``, ``audit_signing_key``, ``subject_key``) cannot be read and parsed. The keys in
  memory still work, but a restart would fail — or, for a lost ``subject_key``, silently make a new
  one, and no earlier audit entry could be found by a child's details again.

The route needs no certificate (probes present none), so the messages name config keys and
parts, never file paths, driver messages or anything about data. Results are kept for
``cache_seconds`` and computed by one caller at a time, so probing /readyz in a loop cannot
load the audit store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from broker.audit.keys import HMAC_KEY_BYTES
from broker.audit.log import AuditLog
from broker.config import BrokerConfig
from broker.errors import LimitsUnavailable
from broker.expiry import FileDate, certificate_not_after, certificate_not_before
from broker.limits_store import LimitsStore


@dataclass(frozen=True)
class ReadinessSettings:
    """How /readyz checks."""

    audit_timeout: float = 2.0
    """Seconds the audit store has to answer a read before the broker counts it unusable."""
    cache_seconds: float = 1.0
    """How long one result answers every probe."""


def _retrieved(read: asyncio.Future[tuple[int, str]]) -> None:
    if not read.cancelled():
        read.exception()  # a read nobody waited for to the end is not an "unretrieved" error


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


class Readiness:
    """The broker's readiness, from its collaborators read anew at each check (they are set at start-up)."""

    def __init__(
        self,
        *,
        audit: Callable[[], AuditLog | None],
        authorities: Callable[[], int],
        certificate: Path,
        key_files: Mapping[str, Path],
        subject_key: Path | None = None,
        limits: LimitsStore | None = None,
        settings: ReadinessSettings = ReadinessSettings(),
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._audit, self._authorities = audit, authorities
        self._not_after = FileDate(certificate, certificate_not_after)
        self._not_before = FileDate(certificate, certificate_not_before)
        self._key_files, self._subject_key = dict(key_files), subject_key
        self._limits = limits
        self.settings, self._clock, self._monotonic = settings, clock, monotonic
        self._lock = asyncio.Lock()
        self._checked_at = float("-inf")
        self._problems: dict[str, str] = {}
        self._audit_read: asyncio.Future[tuple[int, str]] | None = None

    @classmethod
    def of(
        cls,
        config: BrokerConfig,
        *,
        audit: Callable[[], AuditLog | None],
        authorities: Callable[[], int],
        limits: LimitsStore | None = None,
    ) -> Readiness:
        """The checks for a broker run with ``config``: its certificate and the key files it names."""
        keys = {"tls.key": config.tls.key, "assertion_key": config.assertion_key}
        keys["audit_signing_key"] = config.audit_signing_key
        return cls(
            audit=audit,
            authorities=authorities,
            certificate=config.tls.cert,
            key_files=keys,
            subject_key=config.subject_key,
            limits=limits,
        )

    async def problems(self) -> dict[str, str]:
        """Each unusable part and why, in words safe for anyone; empty when ready."""
        async with self._lock:
            if self._monotonic() - self._checked_at >= self.settings.cache_seconds:
                self._problems = await self._check()
                self._checked_at = self._monotonic()
            return dict(self._problems)

    async def _check(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for part, problem in (
            ("audit", await self._audit_problem()),
            ("registry", self._registry_problem()),
            ("limits", await self._limits_problem()),
            ("keys", self._keys_problem()),
        ):
            if problem:
                found[part] = problem
        return found

    async def _audit_problem(self) -> str | None:
        audit = self._audit()
        if audit is None:
            return "the audit log is not open yet"
        if audit.backlog >= audit.max_backlog:
            return f"{audit.backlog} entries wait for the audit store: it is not keeping up"
        timeout = self.settings.audit_timeout
        # The read is never cancelled: cancelling a query on the store's one shared PostgreSQL connection
        # could leave it unusable for the appends that follow. A read that outlasts the timeout is left to
        # finish, and no other is started meanwhile, so a hung store never collects a pile of probes.
        if self._audit_read is None or self._audit_read.done():
            self._audit_read = asyncio.ensure_future(audit.store.state())
            self._audit_read.add_done_callback(_retrieved)
        read = self._audit_read
        done, _ = await asyncio.wait({read}, timeout=timeout)
        if not done:
            return f"the audit store did not answer within {timeout:g} s"
        if read.exception() is not None:  # any driver or file error: its text may quote connection details
            return "the audit store cannot be read"
        return None

    async def _limits_problem(self) -> str | None:
        if self._limits is None:
            return None
        try:
            await self._limits.check()  # bounded by the store's own timeout
        except LimitsUnavailable:
            return f"the limits store ({self._limits.kind}) does not answer: searches are refused"
        return None

    def _registry_problem(self) -> str | None:
        if self._authorities() == 0:
            return "the registry lists no authority: there is nobody to ask"
        return None

    def _keys_problem(self) -> str | None:
        now = self._clock()
        not_after, not_before = self._not_after.get(), self._not_before.get()
        if not_after is None or not_before is None:
            return "tls.cert cannot be read as a certificate"
        if now >= not_after:
            return f"tls.cert expired at {_iso(not_after)}"
        if now < not_before:
            return f"tls.cert is not valid until {_iso(not_before)}"
        for key, path in self._key_files.items():
            try:
                load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError, TypeError):
                return f"{key} cannot be read as a private key"
        if self._subject_key is not None and not _hmac_key_readable(self._subject_key):
            return f"subject_key cannot be read as a {HMAC_KEY_BYTES}-byte hex key"
        return None


def _hmac_key_readable(path: Path) -> bool:
    try:
        return len(bytes.fromhex(path.read_text(encoding="ascii").strip())) == HMAC_KEY_BYTES
    except (OSError, ValueError):
        return False
