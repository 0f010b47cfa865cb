"""Sign-ins in progress: the state, nonce and PKCE verifier of each, kept server-side.

A browser starting a sign-in gets only an unguessable handle to its entry (in a short-lived cookie);
the state, nonce and verifier never leave the broker except as the identity provider needs them (the
state and nonce in the redirect, the verifier to the token endpoint). Each entry is:

- single-use: taken out when the browser comes back, so a replayed callback, state or nonce finds
  nothing;
- short-lived: older than ``sign_in_seconds`` is as good as absent;
- bounded: at most ``max_pending_sign_ins`` at once, the oldest forgotten first, so abandoned sign-ins
  (or a flood of them) cannot fill memory.

In memory, per broker process: a browser must come back to the replica it left from (the portal's
sessions need the same stickiness).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PendingSignIn:
    """One sign-in between the redirect to the identity provider and the browser's return."""

    authority: str
    """Registry code of the authority the browser chose; the token must come from its issuer."""
    state: str
    nonce: str
    verifier: str
    """PKCE code verifier; the identity provider saw only its S256 challenge."""
    started: float


class PendingSignIns:
    """Bounded, expiring, single-use store of sign-ins in progress, keyed by an unguessable handle."""

    def __init__(self, *, ttl_seconds: float, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._capacity, self._clock = ttl_seconds, capacity, clock
        self._entries: OrderedDict[str, PendingSignIn] = OrderedDict()

    def start(self, authority: str) -> tuple[str, PendingSignIn]:
        """A new sign-in for ``authority``: its handle (for the browser's cookie) and its secrets."""
        self._prune()
        while len(self._entries) >= self._capacity:
            self._entries.popitem(last=False)
        pending = PendingSignIn(
            authority=authority,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            # RFC 7636 4.1: 43-128 characters of unreserved text; 64 random bytes give 86.
            verifier=secrets.token_urlsafe(64),
            started=self._clock(),
        )
        handle = secrets.token_urlsafe(32)
        self._entries[handle] = pending
        return handle, pending

    def take(self, handle: str) -> PendingSignIn | None:
        """The sign-in behind ``handle``, removed so it can never be completed twice; None if unknown or stale."""
        pending = self._entries.pop(handle, None)
        if pending is None or self._clock() - pending.started > self._ttl:
            return None
        return pending

    def __len__(self) -> int:
        return len(self._entries)

    def _prune(self) -> None:
        cutoff = self._clock() - self._ttl
        while self._entries:
            handle, oldest = next(iter(self._entries.items()))
            if oldest.started >= cutoff:
                break
            del self._entries[handle]
