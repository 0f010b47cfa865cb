"""The audit log's Merkle tree, as RFC 6962 / RFC 9162 define it.

Leaf hash = SHA-256(0x00 || leaf bytes); interior node = SHA-256(0x01 || left || right);
the head of n leaves splits at the largest power of two below n (RFC 6962 §2.1).
The 0x00 / 0x01 prefixes keep a leaf from ever passing for an interior node.

``Frontier`` keeps only the roots of the perfect subtrees that make up the tree
(one per set bit of its size, at most 64 hashes), so appending a leaf and
computing the new head costs O(log n) whatever the log's length. ``root`` and
``inclusion_proof`` work on the full list of leaf hashes and are the reference
the frontier is tested against.

Pure functions over bytes: this module does no I/O and must never see an
entry's contents, only hashes and the leaf bytes it is asked to hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The head of the empty tree (RFC 6962 §2.1: the hash of the empty string)."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) computed recursively from every leaf hash: the reference implementation."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """PATH(index, D[tree_size]) of RFC 6962 §2.1.1, from the first ``tree_size`` leaf hashes."""
    if not 0 <= index < tree_size <= len(leaf_hashes):
        raise ValueError(f"no leaf {index} in a tree of {tree_size} (have {len(leaf_hashes)} leaves)")
    return _path(index, leaf_hashes[:tree_size])


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves[:k]), root(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """True when ``proof`` shows leaf hash ``leaf`` at ``index`` of the tree with head ``expected_root``.

    The algorithm of RFC 9162 §2.1.3.2, step for step.
    """
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


class Frontier:
    """The compact range [0, size): roots of the perfect subtrees, largest (leftmost) first.

    Subtree i covers 2**b leaves for the i-th set bit b of ``size`` counted from the top,
    which is exactly how RFC 6962 splits a tree, so folding them right to left gives its head.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or bin(size).count("1") != len(hashes) or any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"a frontier of size {size} needs {bin(max(size, 0)).count('1')} 32-byte hashes")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> bytes:
        """Add a leaf hash and return the new head."""
        h, s = leaf, self._size
        # Each trailing 1-bit of the old size is a perfect subtree the same height as the carry: merge them.
        while s & 1:
            h = node_hash(self._hashes.pop(), h)
            s >>= 1
        self._hashes.append(h)
        self._size += 1
        return self.root()

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> Frontier:
        return Frontier(self._size, self._hashes)

    def to_json(self) -> dict[str, Any]:
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_json(cls, data: Any) -> Frontier:
        """Rebuild a frontier; ValueError when ``data`` is not one ``to_json`` could have written."""
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("size"), int)
            or not isinstance(data.get("hashes"), list)
        ):
            raise ValueError("a frontier is {'size': int, 'hashes': [hex, ...]}")
        try:
            hashes = [bytes.fromhex(h) for h in data["hashes"]]
        except (TypeError, ValueError):
            raise ValueError("a frontier's hashes must be hex strings") from None
        return cls(data["size"], hashes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frontier) and (self._size, self._hashes) == (other._size, other._hashes)

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()[:16]}...)"
