"""The broker's tamper-evident audit log: append a search, get back a signed receipt.

Every search is one entry: a JSON object the broker builds (who, role,
organisation, purpose, time, bands returned, which authorities answered, and
the child's ``subject_hashes`` computed with ``keys.subject_hashes``). Each
entry becomes a leaf of an RFC 6962 Merkle tree; after every append the log
signs the new tree head with its Ed25519 key and stores that head with the
entry, so ``broker.audit.verify`` can name the first entry that was edited,
deleted, inserted or moved.

``append`` returns only once the entry and its head are durably committed;
if they are not, it raises ``AuditWriteError`` and the broker must fail the
search rather than answer it unaudited. ``append_within`` does the same but
gives up waiting after a bounded time (``AuditTimeout``), so a stalled store
(a write-locked SQLite file, a PostgreSQL failover) cannot hold a search past
its deadline; the entry itself is still written if the store recovers, as
one whose caller stopped waiting always was. At most ``MAX_BACKLOG`` entries
wait at once: past that an append is refused at once rather than queued. On SQLite a commit costs one fsync
(a few milliseconds), shared by every append that arrived while the last was
being written, plus about 0.1 ms of hashing and signing per entry; ``signpost
bench`` reports the real figure.

Never give this module a plaintext identifier, and never log an entry: it
says who searched for which child, even with the child hashed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import merkle
from broker.audit.errors import AuditWriteError
from broker.audit.heads import HeadSigner, utc_now
from broker.audit.keys import load_or_create_signing_key
from broker.audit.sealing import StoredEntry
from broker.audit.store import AuditStore, open_store

MAX_BACKLOG = 4096
"""Most entries waiting to be committed at once; a stalled store refuses more at once instead of queueing."""


class AuditTimeout(AuditWriteError):
    """The entry was not committed within the time allowed (it may still be, if the store recovers)."""


@dataclass(frozen=True)
class Receipt:
    """What a search response carries to show it was logged: the entry's place and the signed head."""

    index: int
    tree_size: int
    root: str
    timestamp: str
    signature: str
    """Base64 Ed25519 over the canonical JSON of tree_size, root and timestamp."""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "root": self.root,
            "timestamp": self.timestamp,
            "signature": self.signature,
        }


class AuditLog:
    """An audit store plus the key that signs its tree heads."""

    def __init__(
        self, store: AuditStore, signing_key: Ed25519PrivateKey, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.store = store
        self._sign = HeadSigner(signing_key, clock=clock)
        self.public_key = signing_key.public_key()
        self.max_backlog = MAX_BACKLOG
        self._waiting: set[asyncio.Future[Receipt]] = set()

    @property
    def backlog(self) -> int:
        """Entries submitted and not yet committed or refused."""
        return len(self._waiting)

    def submit(self, entry: Mapping[str, Any]) -> asyncio.Future[Receipt]:
        """Start appending ``entry`` and return its future at once; it is written whether or not anyone waits.

        AuditWriteError at once when ``max_backlog`` entries already wait: the store is not keeping up.
        """
        if len(self._waiting) >= self.max_backlog:
            raise AuditWriteError(f"audit entry not written: {len(self._waiting)} entries already wait for the store")
        future = asyncio.ensure_future(self.append(entry))
        self._waiting.add(future)
        future.add_done_callback(self._settled)
        return future

    def _settled(self, future: asyncio.Future[Receipt]) -> None:
        self._waiting.discard(future)
        if not future.cancelled():
            future.exception()  # retrieved: a failure nobody waited for is not an "unretrieved" error

    async def append_within(self, entry: Mapping[str, Any], timeout: float) -> Receipt:
        """``append``, waiting at most ``timeout`` seconds; AuditTimeout after that (the write goes on)."""
        future = self.submit(entry)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(timeout, 0.0))
        except TimeoutError:
            raise AuditTimeout(f"audit entry not committed within {timeout:.3g} s") from None

    async def append(self, entry: Mapping[str, Any]) -> Receipt:
        """Commit ``entry`` durably and return its receipt; AuditWriteError if it was not committed."""
        sealed = await self.store.append(entry, self._sign)
        head = sealed.head
        return Receipt(sealed.index, head.tree_size, head.root, head.timestamp, head.signature)

    async def latest_checkpoint(self) -> dict[str, Any]:
        """The newest signed head, for an auditor to keep and later pass to ``verify_log``.

        An empty log has no stored head, so one is signed now for size 0.
        """
        head = await self.store.latest_head()
        if head is None:
            head = self._sign(0, merkle.EMPTY_ROOT)
        return head.to_json()

    async def entries(
        self,
        *,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        subject_hash: str | None = None,
        limit: int = 100,
        after_index: int | None = None,
    ) -> list[StoredEntry]:
        """Entries in index order matching every filter; page with ``after_index`` = last index seen."""
        return await self.store.entries(
            actor=actor, since=since, until=until, subject_hash=subject_hash, limit=limit, after_index=after_index
        )

    async def inclusion_proof(self, index: int, tree_size: int) -> list[str]:
        """The RFC 9162 audit path (hex) of entry ``index`` in the tree of ``tree_size`` entries.

        Reads every leaf hash below ``tree_size``: O(n), fine for an auditor's
        occasional request, not for every search.
        """
        head = await self.store.latest_head()
        if not 0 <= index < tree_size <= (head.tree_size if head else 0):
            raise ValueError(
                f"no entry {index} in a tree of {tree_size} (the log holds {head.tree_size if head else 0})"
            )
        leaves = await self.store.leaf_hashes(tree_size)
        return [h.hex() for h in merkle.inclusion_proof(leaves, index, tree_size)]

    async def close(self) -> None:
        await self.store.close()

    async def __aenter__(self) -> AuditLog:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def open_audit_log(
    url_or_path: str, signing_key_path: Path, *, schema: str | None = None, clock: Callable[[], dt.datetime] = utc_now
) -> AuditLog:
    """Open (creating if missing) the log at a ``postgresql://`` URL or SQLite path, and its signing key.

    Every broker process writing to one PostgreSQL log must use the same
    signing key file, or verification will report their heads as bad signatures.
    """
    key = load_or_create_signing_key(signing_key_path)
    store = await open_store(url_or_path, create=True, schema=schema)
    return AuditLog(store, key, clock=clock)
