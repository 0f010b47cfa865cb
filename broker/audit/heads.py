"""Signed tree heads: the checkpoints of the audit log, and the one serialisation that is hashed or signed.

The log's Ed25519 key (loaded by :mod:`broker.audit.keys`) signs every tree head
the log reaches, and nothing else, so a signature can never be lifted from some
other message. A head names a tree size, its Merkle root and a time; an auditor
keeps one as a checkpoint and checks later heads against it.
Nothing here sees an entry's contents.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def canonical_json(value: Any) -> bytes:
    """The one serialisation everything hashed or signed here goes through."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True)
class SignedHead:
    """A tree head the log's key signed: the checkpoint an auditor keeps."""

    tree_size: int
    root: str
    """Hex SHA-256 of the Merkle tree over entries 0..tree_size-1."""
    timestamp: str
    """When the log signed it, ISO 8601 UTC."""
    signature: str
    """Base64 Ed25519 signature over ``message()``."""

    def message(self) -> bytes:
        """What is signed: the canonical JSON of tree_size, root and timestamp."""
        return canonical_json({"tree_size": self.tree_size, "root": self.root, "timestamp": self.timestamp})

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "root": self.root,
            "timestamp": self.timestamp,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Any) -> SignedHead:
        """Read a checkpoint; ValueError when a field is missing or of the wrong type."""
        if not isinstance(data, dict):
            raise ValueError("a signed head is a JSON object")
        size, root, ts, sig = (data.get(k) for k in ("tree_size", "root", "timestamp", "signature"))
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
            raise ValueError("tree_size must be a non-negative integer")
        if not (isinstance(root, str) and isinstance(ts, str) and isinstance(sig, str)):
            raise ValueError("root, timestamp and signature must be strings")
        return cls(size, root, ts, sig)

    def valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_utc(when: dt.datetime) -> str:
    """Fixed-width ISO 8601 in UTC with microseconds, so text order is time order."""
    if when.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HeadSigner:
    """Signs tree heads with the log's key at the time ``clock`` says."""

    def __init__(self, key: Ed25519PrivateKey, *, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self._key = key
        self._clock = clock
        self.public_key = key.public_key()

    def __call__(self, tree_size: int, root: bytes) -> SignedHead:
        unsigned = SignedHead(tree_size, root.hex(), iso_utc(self._clock()), "")
        signature = base64.b64encode(self._key.sign(unsigned.message())).decode("ascii")
        return SignedHead(unsigned.tree_size, unsigned.root, unsigned.timestamp, signature)
