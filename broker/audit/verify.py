"""Prove an audit log untouched, or name the first entry that is not.

``verify_log`` walks the entries in index order, rebuilding each leaf hash
from the stored body and the tree head incrementally, and checks each entry
against the head the log signed when it was appended:

==================  ==========================================================
reason              what was found at the first bad index k
==================  ==========================================================
``deleted``         index k is missing (a gap), or the log's own state counts
                    more entries than are stored after k
``edited``          entry k's body (or a query column) differs from what was hashed
``inserted``        entry k carries a signed head from an earlier position:
                    rows were pushed up, or an index is out of sequence
``reordered``       entry k carries a head from a later position, or the root
                    over entries 0..k differs from the one signed for k
``bad signature``   the head stored with entry k is not signed by the log's key
``truncated``       a checkpoint (a signed head kept by an auditor) covers more
                    entries than the log now holds; k is the first missing one
``rewritten``       the log's root at the checkpoint's size differs from the
                    checkpoint's: history was rebuilt and re-signed
==================  ==========================================================

Without a checkpoint, removing the newest entries and repairing the state row
cannot be detected: nothing after them is signed over them. That is why an
auditor keeps ``latest_checkpoint()`` from time to time.

Tampering is reported, never raised. The report carries indexes and reasons
only, never an entry's body.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit import merkle
from broker.audit.errors import AuditConfigError, AuditError
from broker.audit.heads import SignedHead, iso_utc
from broker.audit.keys import load_public_key
from broker.audit.sealing import RawRow, indexed_fields, leaf_bytes
from broker.audit.store import AuditStore, open_store

EDITED, DELETED, INSERTED, REORDERED = "edited", "deleted", "inserted", "reordered"
BAD_SIGNATURE, TRUNCATED, REWRITTEN = "bad signature", "truncated", "rewritten"
BATCH = 1000


@dataclass(frozen=True)
class VerifyReport:
    """The outcome: ``ok``, or the first bad index and why."""

    ok: bool
    tree_size: int
    """Entries that verified, from index 0."""
    root: str
    """Hex root over those entries."""
    first_bad_index: int | None = None
    """None when ok, or when the fault cannot be pinned to one entry (a bad checkpoint)."""
    reason: str | None = None
    detail: str = ""
    checkpoint_size: int | None = None

    @property
    def message(self) -> str:
        if self.ok:
            against = (
                ""
                if self.checkpoint_size is None
                else f", consistent with the checkpoint of size {self.checkpoint_size}"
            )
            return (
                f"audit log intact: {self.tree_size} entries, root {self.root}; "
                f"every signed tree head checks out{against}"
            )
        where = "" if self.first_bad_index is None else f" at entry {self.first_bad_index}"
        return f"audit log TAMPERED{where} ({self.reason}): {self.detail}"


@dataclass(frozen=True)
class _Fault:
    index: int | None
    reason: str
    detail: str


def _signature_ok(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _check_row(row: RawRow, k: int, frontier: merkle.Frontier, public_key: Ed25519PublicKey) -> _Fault | None:
    """Check the row expected at index ``k``; on success ``frontier`` has grown by its leaf."""
    if row.index > k:
        return _Fault(k, DELETED, f"entry {k} is missing: the next stored entry is {row.index}")
    if row.index < k:
        return _Fault(row.index, INSERTED, f"index {row.index} is out of sequence (expected {k})")
    # The signature covers the stored head bytes exactly, so it is checked before they are parsed.
    if not _signature_ok(public_key, row.head_json.encode(), row.head_signature):
        return _Fault(k, BAD_SIGNATURE, f"the tree head stored with entry {k} is not signed by this log's key")
    try:
        head = SignedHead.from_json({**json.loads(row.head_json), "signature": row.head_signature})
    except (TypeError, ValueError):
        return _Fault(k, BAD_SIGNATURE, f"the signed tree head stored with entry {k} is unreadable")
    # Before the leaf check: a whole row moved elsewhere is better named by where its head says it belongs.
    if head.tree_size != k + 1:
        reason = INSERTED if head.tree_size < k + 1 else REORDERED
        return _Fault(k, reason, f"entry {k} carries the signed head of entry {head.tree_size - 1}")
    leaf = merkle.leaf_hash(leaf_bytes(k, row.body))
    if leaf.hex() != row.leaf_hash:
        return _Fault(k, EDITED, f"entry {k}'s stored body does not match its leaf hash")
    if frontier.append(leaf).hex() != head.root:
        return _Fault(
            k,
            REORDERED,
            f"the root over entries 0..{k} is not the one signed with entry {k}: "
            "an entry up to here was replaced, inserted or moved",
        )
    return _check_columns(row, k, head)


def _check_columns(row: RawRow, k: int, head: SignedHead) -> _Fault | None:
    """The query columns must say what the (now proven) body says, or a search could be hidden from queries."""
    try:
        fields = indexed_fields(json.loads(row.body))
        created = iso_utc(fields.time or dt.datetime.fromisoformat(head.timestamp))
    except (TypeError, ValueError, AttributeError):
        return _Fault(k, EDITED, f"entry {k}'s body cannot be read back")
    if (fields.actor, created, fields.subject_hashes) != (row.actor, row.created_at, row.subject_hashes):
        return _Fault(k, EDITED, f"entry {k}'s actor, time or subject-hash index disagrees with its body")
    return None


def _read_checkpoint(checkpoint: dict[str, Any] | None) -> SignedHead | None:
    if checkpoint is None:
        return None
    try:
        return SignedHead.from_json(checkpoint)
    except ValueError as exc:
        raise AuditConfigError(f"the checkpoint is not a signed tree head: {exc}") from None


async def verify_log(
    store: AuditStore, public_key: Ed25519PublicKey, *, checkpoint: dict[str, Any] | None = None
) -> VerifyReport:
    """Walk the whole log; the report names the first bad entry, or says it is intact."""
    saved = _read_checkpoint(checkpoint)
    # Read before the walk: entries appended meanwhile are checked too, but never mistaken for missing ones.
    state_size, state_frontier = await store.state()
    frontier, k, after = merkle.Frontier(), 0, None
    root_at_checkpoint = merkle.EMPTY_ROOT if saved is not None and saved.tree_size == 0 else None
    state_at_size = merkle.Frontier() if state_size == 0 else None
    while rows := await store.scan(after, BATCH):
        for row in rows:
            fault = _check_row(row, k, frontier, public_key)
            if fault is not None:
                return _report(fault, k, frontier, saved)
            k += 1
            if saved is not None and k == saved.tree_size:
                root_at_checkpoint = frontier.root()
            if k == state_size:
                state_at_size = frontier.copy()
        after = rows[-1].index
    fault = _final_checks(k, saved, root_at_checkpoint, public_key, state_size, state_frontier, state_at_size)
    return _report(fault, k, frontier, saved)


def _final_checks(
    k: int,
    saved: SignedHead | None,
    root_at_checkpoint: bytes | None,
    public_key: Ed25519PublicKey,
    state_size: int,
    state_frontier: str,
    state_at_size: merkle.Frontier | None,
) -> _Fault | None:
    if saved is not None:
        if not saved.valid(public_key):
            return _Fault(None, BAD_SIGNATURE, "the checkpoint is not signed by this log's key")
        if saved.tree_size > k:
            return _Fault(
                k,
                TRUNCATED,
                f"the checkpoint covers {saved.tree_size} entries but the log holds {k}: "
                f"entries {k}..{saved.tree_size - 1} are gone",
            )
        if root_at_checkpoint is None or root_at_checkpoint.hex() != saved.root:
            return _Fault(
                None,
                REWRITTEN,
                f"the log's root at size {saved.tree_size} differs from the checkpoint's: "
                "history before it was rebuilt and re-signed",
            )
    if state_size > k:
        return _Fault(k, TRUNCATED, f"the log's state counts {state_size} entries but only {k} are stored")
    try:
        stored = merkle.Frontier.from_json(json.loads(state_frontier))
    except ValueError:
        stored = None
    if state_at_size is not None and stored != state_at_size:
        return _Fault(
            state_size,
            EDITED,
            "the stored frontier disagrees with the entries: the next append would be signed over the wrong tree",
        )
    return None


def _report(fault: _Fault | None, k: int, frontier: merkle.Frontier, saved: SignedHead | None) -> VerifyReport:
    size = saved.tree_size if saved is not None else None
    if fault is None:
        return VerifyReport(True, k, frontier.root().hex(), checkpoint_size=size)
    # A failed row may already be in the frontier (root mismatch): report only what verified.
    good = frontier if frontier.size == k else None
    root = good.root().hex() if good is not None else ""
    return VerifyReport(False, k, root, fault.index, fault.reason, fault.detail, size)


async def verify_database(
    db: str, public_key: Ed25519PublicKey, checkpoint: dict[str, Any] | None = None
) -> VerifyReport:
    """Open an existing log (SQLite path or ``postgresql://`` URL) read-only in intent, verify it, close it."""
    store = await open_store(db, create=False)
    try:
        return await verify_log(store, public_key, checkpoint=checkpoint)
    finally:
        await store.close()


def run_verify(db: str, public_key_path: Path, checkpoint_path: Path | None = None) -> tuple[int, str]:
    """``signpost audit verify``: (0, summary) when intact, (1, what and where) otherwise."""
    try:
        public_key = load_public_key(public_key_path)
        checkpoint = None
        if checkpoint_path is not None:
            try:
                checkpoint = json.loads(checkpoint_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problem = type(exc).__name__
                raise AuditConfigError(f"{checkpoint_path}: cannot read the checkpoint ({problem})") from exc
        report = asyncio.run(verify_database(db, public_key, checkpoint))
    except AuditError as exc:
        return 1, f"error: {exc}"
    return (0 if report.ok else 1), report.message
