"""Broker-signed query assertions (Ed25519): what a node checks before it answers.

TLS tells a node that the broker's certificate is on the line; the assertion
tells it that *this* search, with *this* requester and purpose, was issued by
the broker just now and never before. The broker signs a ``QueryAssertion``
holding the requester, purpose, a SHA-256 of the whole request (assertion
fields cleared, deterministic serialisation), a timestamp, a random nonce and the
audience: the codes of the authorities the search is addressed to. A node refuses
a request whose signature fails, whose timestamp is more than ``max_skew`` from
its clock, whose nonce it has seen, whose hash differs, or whose audience does not
name its own authority.

The broker signs each search once for every node (one signature, not one per
authority: the fan-out splices the same bytes into every node's batch), so the
audience is the whole list. A replay to another authority in the audience is
caught by that node's nonce cache when the search reached it. What remains: an
authority in the audience that the search never reached (its circuit open, or no
time left) would accept a replay within ``max_skew`` from someone who also holds
the broker's TLS credentials. Nothing here logs or returns request contents.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protos.signpost.v1 import node_pb2

MAX_SKEW_SECONDS = 60.0
MAX_NONCES = 1_000_000
"""Enough for 60 s of any plausible load; the oldest are dropped first (they are past the skew anyway)."""


class AssertionRejected(Exception):
    """Why a node refused a request's assertion; the message is safe to log and return."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def request_digest(request: node_pb2.MatchRequest) -> bytes:
    """SHA-256 of the request as it would be without its assertion fields."""
    bare = node_pb2.MatchRequest()
    bare.CopyFrom(request)
    bare.ClearField("assertion")
    bare.ClearField("assertion_signature")
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).digest()


def create_assertion_key(directory: Path, stem: str = "assertion") -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``<stem>.key`` (0600) and ``<stem>.pub``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path, pub_path = directory / f"{stem}.key", directory / f"{stem}.pub"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    pub_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key_path.resolve(), pub_path.resolve()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


Audience = Callable[[], Collection[str]]
"""The codes of the authorities a search about to be signed will be sent to (the broker's fan-out's)."""


class AssertionSigner:
    """The broker's side: fills in a request's assertion and signature, addressed to ``audience()``."""

    def __init__(self, key: Ed25519PrivateKey, *, audience: Audience, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._audience = audience
        self._clock = clock
        self.key_id = key_id(key.public_key())

    def sign(self, request: node_pb2.MatchRequest) -> None:
        assertion = node_pb2.QueryAssertion(
            search_id=request.search_id,
            user_id=request.requester.user_id,
            organisation=request.requester.organisation,
            role=request.requester.role,
            purpose_code=request.purpose.code,
            query_sha256=request_digest(request),
            issued_at_ms=int(self._clock() * 1000),
            nonce=secrets.token_bytes(16),
            key_id=self.key_id,
            audience=sorted(self._audience()),
        )
        request.assertion = assertion.SerializeToString(deterministic=True)
        request.assertion_signature = self._key.sign(request.assertion)


class AssertionVerifier:
    """A node's side: accepts each signed search once, while fresh, from a known broker key, if addressed to it.

    ``authority`` is the code of the node this verifier belongs to; in a process hosting several
    authorities each node has its own verifier (its own code and nonces) over a shared signature cache.
    """

    def __init__(
        self,
        public_keys: Iterable[Ed25519PublicKey],
        *,
        authority: str,
        max_skew: float = MAX_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = {key_id(k): k for k in public_keys}
        if not self._keys:
            raise ValueError("at least one broker public key is needed")
        if not authority:
            raise ValueError("the verifier needs its node's authority code")
        self._authority = authority
        self._max_skew = max_skew
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def verify(self, request: node_pb2.MatchRequest, raw: bytes | None = None) -> node_pb2.QueryAssertion:
        """Check ``request`` (``raw``: its bytes as received, when the caller has them) or raise AssertionRejected."""
        checked = _VERIFIED.get(raw) if raw is not None else None
        if checked is None:
            checked = self._check_signed(request)
            if raw is not None:
                _VERIFIED.put(raw, checked)
        elif checked.assertion.key_id not in self._keys:
            raise AssertionRejected("assertion signed with an unknown broker key")
        assertion = checked.assertion
        # The audience, freshness and the nonce are this node's own: checked on every request, cached or not.
        if self._authority not in checked.audience:
            raise AssertionRejected("assertion is not addressed to this authority")
        now = self._clock()
        if abs(now - assertion.issued_at_ms / 1000) > self._max_skew:
            raise AssertionRejected("assertion is not fresh")
        self._remember(assertion.nonce, now)
        return assertion

    def _check_signed(self, request: node_pb2.MatchRequest) -> _Checked:
        """What depends only on the request and the broker's key: the signature and what it covers."""
        if not request.assertion or not request.assertion_signature:
            raise AssertionRejected("request carries no broker assertion")
        assertion = node_pb2.QueryAssertion.FromString(request.assertion)
        key = self._keys.get(assertion.key_id)
        if key is None:
            raise AssertionRejected("assertion signed with an unknown broker key")
        try:
            key.verify(request.assertion_signature, request.assertion)
        except InvalidSignature:
            raise AssertionRejected("assertion signature is not valid") from None
        if assertion.query_sha256 != request_digest(request):
            raise AssertionRejected("assertion does not match the request")
        if (assertion.search_id, assertion.user_id, assertion.purpose_code) != (
            request.search_id,
            request.requester.user_id,
            request.purpose.code,
        ):
            raise AssertionRejected("assertion does not match the request")
        return _Checked(assertion, frozenset(assertion.audience))

    def _remember(self, nonce: bytes, now: float) -> None:
        if len(nonce) < 16:
            raise AssertionRejected("assertion nonce is too short")
        if nonce in self._seen:
            raise AssertionRejected("assertion has been used before")
        horizon = now - 2 * self._max_skew
        while self._seen and (next(iter(self._seen.values())) < horizon or len(self._seen) >= MAX_NONCES):
            self._seen.popitem(last=False)
        self._seen[nonce] = now


class _Checked(NamedTuple):
    """A request whose signature checked out: its assertion, and its audience as a set (one lookup per node)."""

    assertion: node_pb2.QueryAssertion
    audience: frozenset[str]


class _VerifiedRequests:
    """Requests whose signature has been checked, by their exact bytes, shared by every node in the process.

    A host that serves several authorities' nodes (an IT provider's, or the scale benchmark's) receives
    the same signed request once per authority; checking the Ed25519 signature and the request hash is a
    pure function of those bytes and the broker's key (named by key id, a hash of the key), so it is done
    once. Only successes are kept; the audience, freshness and the nonce stay per node. Bounded, in memory only.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, _Checked] = OrderedDict()

    def get(self, raw: bytes) -> _Checked | None:
        return self._entries.get(raw)

    def put(self, raw: bytes, checked: _Checked) -> None:
        self._entries[raw] = checked
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


_VERIFIED = _VerifiedRequests()
