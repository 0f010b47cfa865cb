"""What one entry becomes in the log, and how a stored row is read back: no database here.

``seal`` places an entry in the tree: its canonical JSON body, the leaf hash of
``leaf_bytes(index, body)``, the new root signed by the caller's ``HeadSign`` and
the new frontier, plus the query columns (actor, time, subject hashes) derived
from the body. ``seal_group`` does the same for several entries in turn, so a
group committed together is byte for byte what one append at a time would make.
Going the other way, ``stored_entry``, ``head_from_row``, ``raw_row`` and
``check_leaves`` turn a backend's rows into the objects the log and the verifier
use. Both stores (``broker.audit.sqlite``, ``broker.audit.postgres``) call these
same functions, so what is stored is the same whichever database holds it.

This module must never do I/O or log, never put an entry's body or any value of
it in an error message (errors name the field only), and never index a child's
identifiers in clear: only HMAC-shaped ``subject_hashes`` are accepted.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.audit import merkle
from broker.audit.errors import AuditIntegrityError, AuditWriteError, write_failed
from broker.audit.heads import SignedHead, canonical_json, iso_utc

HeadSign = Callable[[int, bytes], SignedHead]
"""Signs (tree_size, root): a ``heads.HeadSigner``."""
Pending = tuple[Mapping[str, Any], HeadSign]
"""An entry to append and the signer of its head."""

_HMAC_HEX = re.compile(r"^[0-9a-f]{64}$")
EMPTY_FRONTIER = json.dumps(merkle.Frontier().to_json(), separators=(",", ":"))
"""The frontier JSON of an empty log: what a new store's state row starts from."""
ENTRY_COLUMNS = "idx, body, leaf_hash, head_json, head_signature"
"""The audit_entries columns an auditor's query selects, in the order ``stored_entry`` takes them."""


@dataclass(frozen=True)
class StoredEntry:
    """One entry as an auditor's query returns it."""

    index: int
    entry: dict[str, Any]
    leaf_hash: str
    head: SignedHead
    """The head signed when this entry was appended (tree_size = index + 1)."""


@dataclass(frozen=True)
class RawRow:
    """One row exactly as stored, nothing trusted: what verification reads."""

    index: int
    body: bytes
    leaf_hash: str
    head_json: str
    head_signature: str
    actor: str | None
    created_at: str
    subject_hashes: tuple[str, ...]


@dataclass(frozen=True)
class IndexedFields:
    """What the query columns hold for an entry, derived from its body."""

    actor: str | None
    time: dt.datetime | None
    subject_hashes: tuple[str, ...]


@dataclass(frozen=True)
class Sealed:
    """An entry placed in the tree and signed, ready to be written in the same transaction."""

    index: int
    body: str
    leaf_hash: str
    head: SignedHead
    fields: IndexedFields
    created_at: dt.datetime
    frontier_json: str


def leaf_bytes(index: int, body: bytes) -> bytes:
    """Canonical JSON of {"index": index, "entry": <body>}, built around the stored bytes.

    Splicing rather than re-serialising means verification hashes exactly what
    is stored, so even a change that parses to the same object is caught.
    """
    return b'{"entry":' + body + b',"index":' + str(index).encode() + b"}"


def indexed_fields(entry: Mapping[str, Any]) -> IndexedFields:
    """The actor, time and subject hashes of an entry; ValueError (naming the field only) when malformed."""
    actor = entry.get("actor")
    user_id = actor.get("user_id") if isinstance(actor, Mapping) else None
    if actor is not None and not isinstance(user_id, str):
        raise ValueError("entry field actor.user_id must be a string")
    when = entry.get("time")
    parsed: dt.datetime | None = None
    if when is not None:
        try:
            parsed = dt.datetime.fromisoformat(when) if isinstance(when, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise ValueError("entry field time must be ISO 8601 with a UTC offset")
    hashes = entry.get("subject_hashes", [])
    # Only HMAC-shaped values are indexed: a plaintext name put here by mistake is refused, not stored.
    if not isinstance(hashes, list) or not all(isinstance(h, str) and _HMAC_HEX.match(h) for h in hashes):
        raise ValueError("entry field subject_hashes must be a list of lowercase hex HMAC-SHA256 values")
    return IndexedFields(user_id, parsed, tuple(sorted(set(hashes))))


def seal(entry: Mapping[str, Any], tree_size: int, frontier_json: str, sign: HeadSign) -> Sealed:
    """Place ``entry`` at index ``tree_size``: leaf hash, new root, signed head, new frontier."""
    if not isinstance(entry, Mapping):
        raise ValueError("an audit entry must be a JSON object")
    fields = indexed_fields(entry)
    try:
        body = canonical_json(entry)
    except (TypeError, ValueError):
        raise ValueError("an audit entry must be serialisable as JSON") from None
    try:
        frontier = merkle.Frontier.from_json(json.loads(frontier_json))
    except ValueError as exc:
        raise AuditIntegrityError(f"the stored frontier is unreadable: {exc}") from None
    if frontier.size != tree_size:
        raise AuditIntegrityError(f"the stored frontier covers {frontier.size} entries, the log {tree_size}")
    leaf = merkle.leaf_hash(leaf_bytes(tree_size, body))
    head = sign(tree_size + 1, frontier.append(leaf))
    created = fields.time or dt.datetime.fromisoformat(head.timestamp)
    return Sealed(
        tree_size,
        body.decode(),
        leaf.hex(),
        head,
        fields,
        created,
        json.dumps(frontier.to_json(), separators=(",", ":")),
    )


@dataclass(frozen=True)
class SealedGroup:
    """A group of entries placed in the tree one after another, ready to be written in one transaction."""

    results: list[Sealed | AuditWriteError]
    """Per entry, in order: its Sealed, or the error that refused it alone."""
    sealed: list[Sealed]
    """The entries to write."""
    tree_size: int
    frontier_json: str
    """The state after the last of them (unchanged if none was sealed)."""


def seal_group(group: Sequence[Pending], tree_size: int, frontier_json: str) -> SealedGroup:
    """``seal`` each entry in turn from the stored state; a malformed one is refused alone and takes no index."""
    results: list[Sealed | AuditWriteError] = []
    sealed: list[Sealed] = []
    for entry, sign in group:
        try:
            placed = seal(entry, tree_size, frontier_json, sign)
        except ValueError as exc:
            results.append(write_failed(exc))
            continue
        tree_size, frontier_json = placed.index + 1, placed.frontier_json
        results.append(placed)
        sealed.append(placed)
    return SealedGroup(results, sealed, tree_size, frontier_json)


def head_from_row(head_json: str, signature: str, index: int) -> SignedHead:
    try:
        return SignedHead.from_json({**json.loads(head_json), "signature": signature})
    except (TypeError, ValueError):
        raise AuditIntegrityError(f"entry {index}: its stored tree head is unreadable") from None


def stored_entry(index: int, body: Any, leaf: str, head_json: str, signature: str) -> StoredEntry:
    try:
        entry = json.loads(body)
    except (TypeError, ValueError):
        raise AuditIntegrityError(f"entry {index}: its stored body is not JSON") from None
    if not isinstance(entry, dict):
        raise AuditIntegrityError(f"entry {index}: its stored body is not a JSON object")
    return StoredEntry(index, entry, leaf, head_from_row(head_json, signature, index))


def raw_row(row: Sequence[Any]) -> RawRow:
    """A scan row (idx, body, leaf_hash, head_json, head_signature, actor, created_at, hashes) as stored."""
    body = row[1] if isinstance(row[1], bytes) else str(row[1]).encode()
    created = row[6] if isinstance(row[6], str) else iso_utc(row[6]) if isinstance(row[6], dt.datetime) else ""
    return RawRow(
        int(row[0]),
        body,
        str(row[2]),
        str(row[3]),
        str(row[4]),
        row[5],
        created,
        tuple(sorted(row[7].split(","))) if row[7] else (),
    )


def check_leaves(rows: Sequence[tuple[int, str]], tree_size: int) -> list[bytes]:
    """The leaf hashes of (idx, hex) rows that must be exactly entries 0..tree_size-1; AuditIntegrityError if not."""
    if [i for i, _ in rows] != list(range(tree_size)):
        raise AuditIntegrityError(f"entries 0..{tree_size - 1} are not all present")
    try:
        return [bytes.fromhex(h) for _, h in rows]
    except (TypeError, ValueError):
        raise AuditIntegrityError("a stored leaf hash is not hex") from None
