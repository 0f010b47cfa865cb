"""The audit log on SQLite: Merkle maths, receipts, queries, keys, and tampering found by verify.

Tampering is done the way an insider would: straight on the database file with
the ``sqlite3`` module, after the log is closed.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit import merkle
from broker.audit.errors import AuditConfigError, AuditWriteError
from broker.audit.groupcommit import GroupCommit
from broker.audit.heads import canonical_json
from broker.audit.keys import (
    load_or_create_hmac_key,
    load_or_create_signing_key,
    load_public_key,
    public_key_path,
    subject_hashes,
)
from broker.audit.log import AuditLog, open_audit_log
from broker.audit.sealing import leaf_bytes
from broker.audit.store import open_store
from broker.audit.verify import VerifyReport, run_verify, verify_database

T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
HMAC_KEY = bytes(range(32))


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_entry(i: int, *, user: str | None = None, hashes: list[str] | None = None) -> dict[str, Any]:
    """What the broker records for one search (identifiers already HMACed)."""
    return {
        "actor": {"user_id": user or f"user{i % 3}", "role": "practitioner", "organisation": "Leeds CSC"},
        "purpose": "safeguarding",
        "time": (T0 + dt.timedelta(minutes=i)).isoformat(),
        "bands": ["strong"] if i % 2 else [],
        "authorities": {"answered": ["LEEDS", "KENT"], "unanswered": []},
        "subject_hashes": hashes if hashes is not None else [hashlib.sha256(f"child{i % 4}".encode()).hexdigest()],
        "seq": i,
    }


# ---------------------------------------------------------------- Merkle tree

# RFC 6962 test vectors (certificate-transparency's merkle tree tests): roots of the first 1..8 leaves.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_rfc6962_vectors():
    hashes = [merkle.leaf_hash(leaf) for leaf in CT_LEAVES]
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    frontier = merkle.Frontier()
    for n, expected in enumerate(CT_ROOTS, start=1):
        assert merkle.root(hashes[:n]).hex() == expected
        assert frontier.append(hashes[n - 1]).hex() == expected


def test_frontier_matches_reference_for_every_size_up_to_300():
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
    frontier = merkle.Frontier()
    assert frontier.root() == merkle.root([])
    for n in range(1, 301):
        assert frontier.append(leaves[n - 1]) == merkle.root(leaves[:n]), n
        # The frontier survives JSON (it lives in the state row between appends).
        frontier = merkle.Frontier.from_json(json.loads(json.dumps(frontier.to_json())))
        assert frontier.size == n and len(frontier.to_json()["hashes"]) == bin(n).count("1")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=300), st.data())
def test_frontier_matches_reference_for_any_leaves(leaves: list[bytes], data: st.DataObject):
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    cut = data.draw(st.integers(0, len(hashes)))
    frontier = merkle.Frontier()
    for h in hashes[:cut]:
        frontier.append(h)
    frontier = merkle.Frontier.from_json(frontier.to_json())
    for h in hashes[cut:]:
        frontier.append(h)
    assert frontier.root() == merkle.root(hashes)


def test_frontier_rejects_inconsistent_json():
    with pytest.raises(ValueError):
        merkle.Frontier.from_json({"size": 3, "hashes": ["00" * 32]})  # size 3 needs two subtrees
    with pytest.raises(ValueError):
        merkle.Frontier.from_json({"size": 1, "hashes": ["zz"]})


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_inclusion_proofs_verify_and_fail_when_tampered(data: st.DataObject):
    n = data.draw(st.integers(1, 300), label="leaves")
    leaves = [merkle.leaf_hash(b"leaf %d" % i) for i in range(n)]
    tree_size = data.draw(st.integers(1, n), label="tree_size")
    index = data.draw(st.integers(0, tree_size - 1), label="index")
    head = merkle.root(leaves[:tree_size])
    proof = merkle.inclusion_proof(leaves, index, tree_size)
    assert merkle.verify_inclusion(leaves[index], index, tree_size, proof, head)

    other = merkle.leaf_hash(b"forged")
    assert not merkle.verify_inclusion(other, index, tree_size, proof, head)
    assert not merkle.verify_inclusion(leaves[index], index, tree_size, proof, merkle.node_hash(head, head))
    assert not merkle.verify_inclusion(leaves[index], tree_size, tree_size, proof, head)
    if tree_size > 1:
        moved = data.draw(st.integers(0, tree_size - 1).filter(lambda m: m != index), label="moved")
        assert not merkle.verify_inclusion(leaves[index], moved, tree_size, proof, head)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        flipped = bytearray(proof[at])
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad = [*proof[:at], bytes(flipped), *proof[at + 1 :]]
        assert not merkle.verify_inclusion(leaves[index], index, tree_size, bad, head)
        assert not merkle.verify_inclusion(leaves[index], index, tree_size, proof[:-1], head)
    assert not merkle.verify_inclusion(leaves[index], index, tree_size, [*proof, head], head)


# ---------------------------------------------------------------- the log


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit.key"


@pytest.fixture
async def open_log(tmp_path: Path, key_path: Path) -> AsyncIterator[Callable[..., Any]]:
    opened: list[AuditLog] = []

    async def opener(name: str = "audit.db", **kwargs: Any) -> AuditLog:
        log = await open_audit_log(str(tmp_path / name), key_path, **kwargs)
        opened.append(log)
        return log

    yield opener
    for log in opened:
        await log.close()


async def filled(open_log: Callable[..., Any], n: int = 12) -> tuple[Path, list[dict[str, Any]]]:
    """A closed log of ``n`` entries, ready to be tampered with."""
    log = await open_log()
    entries = [make_entry(i) for i in range(n)]
    for e in entries:
        await log.append(e)
    await log.close()
    return log.store.path, entries


async def report_for(db: Path, key_path: Path, checkpoint: dict[str, Any] | None = None) -> VerifyReport:
    return await verify_database(str(db), load_public_key(public_key_path(key_path)), checkpoint)


async def cli_verify(db: str, public_key: Path, checkpoint: Path | None) -> tuple[int, str]:
    """``run_verify`` as the CLI calls it: synchronously, with its own event loop (so off this one)."""
    return await asyncio.to_thread(run_verify, db, public_key, checkpoint)


def tamper(db: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    with sqlite3.connect(db) as conn:
        for sql, params in statements:
            conn.execute(sql, params)


def row(db: Path, idx: int) -> tuple[Any, ...]:
    with sqlite3.connect(db) as conn:
        found: tuple[Any, ...] = conn.execute(
            "SELECT idx, body, leaf_hash, head_json, head_signature, actor_user_id, created_at "
            "FROM audit_entries WHERE idx = ?",
            (idx,),
        ).fetchone()
    return found


def forged_head(tree_size: int, root: str) -> tuple[str, str]:
    """A tree head signed with a key that is not the log's."""
    message = canonical_json({"tree_size": tree_size, "root": root, "timestamp": "2024-05-01T09:00:00.000000Z"})
    return message.decode(), base64.b64encode(Ed25519PrivateKey.generate().sign(message)).decode()


async def test_receipts_follow_the_reference_tree(open_log, key_path):
    log = await open_log()
    entries = [make_entry(i) for i in range(40)]
    receipts = [await log.append(e) for e in entries]
    # The leaf is the canonical JSON of {"index", "entry"}, computed here independently of the store.
    leaves = [merkle.leaf_hash(canonical({"index": i, "entry": e})) for i, e in enumerate(entries)]
    public = load_public_key(public_key_path(key_path))
    for i, receipt in enumerate(receipts):
        assert (receipt.index, receipt.tree_size) == (i, i + 1)
        assert receipt.root == merkle.root(leaves[: i + 1]).hex()
        message = canonical({"tree_size": i + 1, "root": receipt.root, "timestamp": receipt.timestamp})
        public.verify(base64.b64decode(receipt.signature), message)  # raises if not the log's signature
    checkpoint = await log.latest_checkpoint()
    assert checkpoint == {k: v for k, v in receipts[-1].to_json().items() if k != "index"}
    proof = [bytes.fromhex(h) for h in await log.inclusion_proof(17, 40)]
    assert merkle.verify_inclusion(leaves[17], 17, 40, proof, bytes.fromhex(receipts[-1].root))


def test_leaf_bytes_are_the_canonical_json_of_index_and_entry():
    entry = {"b": [1, {"z": "Zoë", "a": None}], "a": "x"}
    assert leaf_bytes(7, canonical(entry)) == canonical({"index": 7, "entry": entry})


async def test_empty_log_checkpoint_is_signed(open_log, key_path):
    log = await open_log()
    checkpoint = await log.latest_checkpoint()
    assert checkpoint["tree_size"] == 0 and checkpoint["root"] == merkle.EMPTY_ROOT.hex()
    report = await verify_database(str(log.store.path), log.public_key, checkpoint)
    assert report.ok, report.message


async def test_intact_log_verifies(open_log, key_path):
    db, _ = await filled(open_log, 25)
    code, message = await cli_verify(str(db), public_key_path(key_path), None)
    assert code == 0 and "intact: 25 entries" in message


async def test_intact_log_verifies_against_its_checkpoint(open_log, key_path, tmp_path):
    log = await open_log()
    for i in range(10):
        await log.append(make_entry(i))
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(await log.latest_checkpoint()))
    for i in range(10, 15):
        await log.append(make_entry(i))  # a log may grow past a checkpoint
    await log.close()
    code, message = await cli_verify(str(log.store.path), public_key_path(key_path), saved)
    assert code == 0 and "checkpoint of size 10" in message, message


async def test_a_flipped_byte_in_one_body_names_that_entry(open_log, key_path):
    db, _ = await filled(open_log)
    body = bytearray(row(db, 5)[1].encode())
    body[body.index(b"safeguarding") + 3] ^= 0x01  # 'e' -> 'd': still valid JSON, different bytes
    tamper(db, ("UPDATE audit_entries SET body = ? WHERE idx = 5", (body.decode(),)))
    report = await report_for(db, key_path)
    assert (report.ok, report.first_bad_index, report.reason) == (False, 5, "edited")
    code, message = await cli_verify(str(db), public_key_path(key_path), None)
    assert code == 1 and "entry 5" in message and "edited" in message


async def test_an_edit_with_a_recomputed_leaf_hash_is_still_found(open_log, key_path):
    db, entries = await filled(open_log)
    forged = {**entries[4], "purpose": "curiosity"}
    leaf = merkle.leaf_hash(canonical({"index": 4, "entry": forged})).hex()
    tamper(db, ("UPDATE audit_entries SET body = ?, leaf_hash = ? WHERE idx = 4", (canonical(forged).decode(), leaf)))
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (4, "reordered")  # the signed root no longer matches


async def test_a_deleted_middle_entry_is_named(open_log, key_path):
    db, _ = await filled(open_log)
    tamper(db, ("DELETE FROM audit_entries WHERE idx = 6", ()), ("DELETE FROM audit_subject_hashes WHERE idx = 6", ()))
    report = await report_for(db, key_path)
    assert (report.ok, report.first_bad_index, report.reason) == (False, 6, "deleted")
    assert report.tree_size == 6


def _shift_up_from(db: Path, start: int) -> None:
    with sqlite3.connect(db) as conn:
        top = conn.execute("SELECT max(idx) FROM audit_entries").fetchone()[0]
        for idx in range(top, start - 1, -1):  # from the top, so the primary key never collides
            conn.execute("UPDATE audit_entries SET idx = idx + 1 WHERE idx = ?", (idx,))
            conn.execute("UPDATE audit_subject_hashes SET idx = idx + 1 WHERE idx = ?", (idx,))


def _insert(db: Path, idx: int, entry: dict[str, Any], head_json: str, signature: str) -> None:
    leaf = merkle.leaf_hash(canonical({"index": idx, "entry": entry})).hex()
    tamper(
        db,
        (
            "INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                idx,
                canonical(entry).decode(),
                leaf,
                head_json,
                signature,
                entry["actor"]["user_id"],
                entry["time"].replace("+00:00", ".000000Z"),
            ),
        ),
    )


async def test_a_row_inserted_in_the_middle_with_a_forged_head_is_named(open_log, key_path):
    db, _entries = await filled(open_log)
    _shift_up_from(db, 4)
    forged = make_entry(99, user="intruder")
    _insert(db, 4, forged, *forged_head(5, "00" * 32))
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (4, "bad signature")


async def test_a_row_inserted_in_the_middle_reusing_a_genuine_head_is_named(open_log, key_path):
    db, _entries = await filled(open_log)
    genuine = row(db, 4)
    _shift_up_from(db, 4)
    _insert(db, 4, make_entry(99, user="intruder"), genuine[3], genuine[4])
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (4, "reordered")
    assert report.tree_size == 4


async def test_an_extra_row_at_the_end_is_named(open_log, key_path):
    db, _ = await filled(open_log)
    last = row(db, 11)
    _insert(db, 12, make_entry(12, user="intruder"), last[3], last[4])  # the newest genuine head, copied
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (12, "inserted")


async def test_two_swapped_bodies_name_the_lower_index(open_log, key_path):
    db, _ = await filled(open_log)
    b3, b8 = row(db, 3)[1], row(db, 8)[1]
    tamper(
        db,
        ("UPDATE audit_entries SET body = ? WHERE idx = 3", (b8,)),
        ("UPDATE audit_entries SET body = ? WHERE idx = 8", (b3,)),
    )
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (3, "edited")


async def test_two_swapped_whole_rows_name_the_lower_index(open_log, key_path):
    db, _ = await filled(open_log)
    r3, r8 = row(db, 3), row(db, 8)
    swap = (
        "UPDATE audit_entries SET body = ?, leaf_hash = ?, head_json = ?, head_signature = ?, "
        "actor_user_id = ?, created_at = ? WHERE idx = ?"
    )
    tamper(db, (swap, (*r8[1:], 3)), (swap, (*r3[1:], 8)))
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (3, "reordered")


async def test_truncation_is_found_with_a_saved_checkpoint(open_log, key_path, tmp_path):
    log = await open_log()
    for i in range(12):
        await log.append(make_entry(i))
    checkpoint = await log.latest_checkpoint()
    saved = tmp_path / "checkpoint.json"
    saved.write_text(json.dumps(checkpoint))
    await log.close()
    db = log.store.path
    tamper(
        db, ("DELETE FROM audit_entries WHERE idx >= 9", ()), ("DELETE FROM audit_subject_hashes WHERE idx >= 9", ())
    )
    # The log's own state row still counts 12: a careless truncation is found even without a checkpoint.
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (9, "truncated")

    # A careful one repairs the state row too; then only the auditor's checkpoint shows what is gone.
    with sqlite3.connect(db) as conn:
        leaves = [bytes.fromhex(h) for (h,) in conn.execute("SELECT leaf_hash FROM audit_entries ORDER BY idx")]
    frontier = merkle.Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    tamper(db, ("UPDATE audit_state SET tree_size = 9, frontier = ?", (json.dumps(frontier.to_json()),)))
    assert (await report_for(db, key_path)).ok  # the documented limit: nothing signed covers entries 9..11
    report = await report_for(db, key_path, checkpoint)
    assert (report.ok, report.first_bad_index, report.reason) == (False, 9, "truncated")
    code, message = await cli_verify(str(db), public_key_path(key_path), saved)
    assert code == 1 and "truncated" in message and "entry 9" in message


async def test_a_head_forged_without_the_key_is_a_bad_signature(open_log, key_path):
    db, _ = await filled(open_log)
    genuine = json.loads(row(db, 7)[3])
    tamper(
        db,
        ("UPDATE audit_entries SET head_json = ?, head_signature = ? WHERE idx = 7", forged_head(8, genuine["root"])),
    )
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (7, "bad signature")


async def test_an_edited_head_keeping_its_signature_is_a_bad_signature(open_log, key_path):
    db, _ = await filled(open_log)
    head = json.loads(row(db, 2)[3])
    head["timestamp"] = "2020-01-01T00:00:00.000000Z"
    tamper(db, ("UPDATE audit_entries SET head_json = ? WHERE idx = 2", (canonical(head).decode(),)))
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (2, "bad signature")


async def test_another_key_fails_at_the_first_entry(open_log, key_path, tmp_path):
    db, _ = await filled(open_log)
    other = tmp_path / "other.key"
    load_or_create_signing_key(other)
    code, message = await cli_verify(str(db), public_key_path(other), None)
    assert code == 1 and "entry 0" in message and "bad signature" in message


async def test_a_checkpoint_from_another_key_is_refused(open_log, key_path, tmp_path):
    db, _ = await filled(open_log)
    stranger = await open_audit_log(str(tmp_path / "stranger.db"), tmp_path / "stranger.key")
    await stranger.append(make_entry(0))
    checkpoint = await stranger.latest_checkpoint()
    await stranger.close()
    report = await report_for(db, key_path, checkpoint)
    assert (report.ok, report.first_bad_index, report.reason) == (False, None, "bad signature")


async def test_history_rebuilt_with_the_key_is_found_by_a_checkpoint(open_log, key_path):
    original = await open_log("original.db")
    for i in range(10):
        await original.append(make_entry(i))
    checkpoint = await original.latest_checkpoint()
    # Someone holding the signing key rebuilds the log without entry 3 and re-signs every head.
    rebuilt = await open_log("rebuilt.db")
    for i in [*range(3), *range(4, 12)]:
        await rebuilt.append(make_entry(i))
    assert (await report_for(rebuilt.store.path, key_path)).ok
    report = await report_for(rebuilt.store.path, key_path, checkpoint)
    assert (report.ok, report.reason) == (False, "rewritten")


async def test_tampered_query_columns_are_found(open_log, key_path):
    db, entries = await filled(open_log)
    # Dropping a subject hash would hide a search from a subject access request without touching its body.
    tamper(db, ("DELETE FROM audit_subject_hashes WHERE idx = 5", ()))
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (5, "edited")
    tamper(
        db,
        ("INSERT INTO audit_subject_hashes VALUES (?, 5)", (entries[5]["subject_hashes"][0],)),
        ("UPDATE audit_entries SET actor_user_id = 'someone-else' WHERE idx = 2", ()),
    )
    report = await report_for(db, key_path)
    assert (report.first_bad_index, report.reason) == (2, "edited")


async def test_queries_by_actor_time_subject_and_page(open_log):
    log = await open_log()
    child = subject_hashes(HMAC_KEY, given_name="Amelia", family_name="Smith", date_of_birth="2014-03-09")
    for i in range(30):
        await log.append(make_entry(i, hashes=child if i in (4, 17, 25) else None))
    by_actor = await log.entries(actor="user1", limit=100)
    assert [e.index for e in by_actor] == list(range(1, 30, 3))
    assert all(e.entry["actor"]["user_id"] == "user1" for e in by_actor)
    window = await log.entries(since=T0 + dt.timedelta(minutes=10), until=T0 + dt.timedelta(minutes=13))
    assert [e.index for e in window] == [10, 11, 12]
    found = await log.entries(subject_hash=child[1])
    assert [e.index for e in found] == [4, 17, 25]
    assert (
        found[0].head.tree_size == 5
        and found[0].leaf_hash == merkle.leaf_hash(canonical({"index": 4, "entry": found[0].entry})).hex()
    )
    page1 = await log.entries(limit=12)
    page2 = await log.entries(limit=12, after_index=page1[-1].index)
    assert [e.index for e in page1 + page2] == list(range(24))
    with pytest.raises(ValueError):
        await log.entries(since=dt.datetime(2024, 5, 1))  # a naive time would be silently misread


async def test_200_concurrent_appends_get_contiguous_indexes(open_log, key_path):
    log = await open_log()
    receipts = await asyncio.gather(*(log.append(make_entry(i)) for i in range(200)))
    assert sorted(r.index for r in receipts) == list(range(200))
    assert len({r.root for r in receipts}) == 200
    report = await verify_database(str(log.store.path), log.public_key)
    assert report.ok and report.tree_size == 200, report.message


async def test_appends_arriving_together_share_a_commit_and_a_bad_one_fails_alone(open_log, key_path):
    log = await open_log()
    entries: list[dict[str, Any]] = [make_entry(i) for i in range(9)]
    entries[4] = {**entries[4], "subject_hashes": ["Amelia Smith 2014-03-09"]}  # refused: not an HMAC
    results = await asyncio.gather(*(log.append(e) for e in entries), return_exceptions=True)
    assert isinstance(results[4], AuditWriteError) and "Amelia" not in str(results[4])
    good = [r for i, r in enumerate(results) if i != 4]
    assert [r.index for r in good] == list(range(8))  # in arrival order, no gap where the bad one was
    assert [r.tree_size for r in good] == list(range(1, 9))  # each with a head of its own
    report = await verify_database(str(log.store.path), log.public_key)
    assert report.ok and report.tree_size == 8, report.message


async def test_group_commit_gathers_what_arrives_during_a_write_up_to_its_limit():
    groups: list[int] = []
    release = asyncio.Event()

    async def write(group: list[Any]) -> list[Any]:
        groups.append(len(group))
        await release.wait()
        return [f"sealed-{entry['seq']}" for entry, _ in group]

    commit = GroupCommit(write, max_group=4)  # type: ignore[arg-type]
    first = asyncio.ensure_future(commit.append({"seq": 0}, None))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # the first write is under way with one entry
    later = [asyncio.ensure_future(commit.append({"seq": i}, None)) for i in range(1, 7)]  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), timeout=5) == [f"sealed-{i}" for i in range(7)]
    assert groups == [1, 4, 2]


async def test_group_commit_a_failed_write_fails_its_whole_group_and_not_the_next():
    calls = 0

    async def write(group: list[Any]) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise AuditWriteError("audit entry not written: OperationalError")
        return ["ok" for _ in group]

    commit = GroupCommit(write)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(commit.append({}, None) for _ in range(3)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert all(isinstance(r, AuditWriteError) for r in results)
    assert await commit.append({}, None) == "ok"  # type: ignore[arg-type]


async def test_an_append_whose_caller_gives_up_is_still_written(open_log, key_path):
    log = await open_log()
    first = asyncio.ensure_future(log.append(make_entry(0)))
    await asyncio.sleep(0)  # entry 0 is being written: entry 1 queues behind it
    queued = asyncio.ensure_future(log.append(make_entry(1)))
    await asyncio.sleep(0)
    queued.cancel()  # its caller gives up while it waits (a job dropped from the queue, before)
    await first
    receipt = await log.append(make_entry(2))
    assert receipt.index == 2  # entry 1 was written, though nobody waited for its receipt
    assert [e.entry["seq"] for e in await log.entries()] == [0, 1, 2]


async def test_group_commit_fails_every_waiting_entry_when_the_store_misbehaves():
    async def short(group: list[Any]) -> list[Any]:
        return []  # answers for fewer entries than it was given

    commit = GroupCommit(short)  # type: ignore[arg-type]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(commit.append({}, None) for _ in range(3)),  # type: ignore[arg-type]
            return_exceptions=True,
        ),
        timeout=5,
    )
    assert all(isinstance(r, AuditWriteError) for r in results)


async def test_closing_waits_for_queued_appends_and_then_refuses_more(open_log):
    log = await open_log()
    pending = [asyncio.ensure_future(log.append(make_entry(i))) for i in range(5)]
    await asyncio.sleep(0)
    await log.close()
    assert sorted(r.index for r in await asyncio.gather(*pending)) == list(range(5))
    with pytest.raises(AuditWriteError):
        await log.append(make_entry(5))


async def test_a_failed_write_raises_and_leaves_nothing_behind(open_log):
    log = await open_log()
    await log.append(make_entry(0))
    tamper(log.store.path, ("DROP TABLE audit_subject_hashes", ()))
    with pytest.raises(AuditWriteError):
        await log.append(make_entry(1))
    with sqlite3.connect(log.store.path) as conn:
        assert conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0] == 1
        assert conn.execute("SELECT tree_size FROM audit_state").fetchone()[0] == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"subject_hashes": ["Amelia Smith 2014-03-09"]},
        {"time": "2024-05-01T09:00:00"},
        {"actor": {"user_id": 7}},
        {"value": float("nan")},
    ],
)
async def test_malformed_entries_are_refused_without_echoing_them(open_log, bad):
    log = await open_log()
    with pytest.raises(AuditWriteError) as caught:
        await log.append({**make_entry(0), **bad})
    assert "Amelia" not in str(caught.value)
    assert (await log.latest_checkpoint())["tree_size"] == 0


async def test_append_after_close_raises_write_error(open_log):
    log = await open_log()
    await log.close()
    with pytest.raises(AuditWriteError):
        await log.append(make_entry(0))


async def test_verifying_a_missing_log_is_an_error_not_a_new_log(tmp_path, key_path):
    load_or_create_signing_key(key_path)
    with pytest.raises(AuditConfigError):
        await open_store(str(tmp_path / "missing.db"), create=False)
    code, message = await cli_verify(str(tmp_path / "missing.db"), public_key_path(key_path), None)
    assert code == 1 and "no audit log" in message
    assert not (tmp_path / "missing.db").exists()


# ---------------------------------------------------------------- keys and subject hashes


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_key_and_log_files_are_private(open_log, key_path, tmp_path):
    log = await open_log()
    await log.append(make_entry(0))
    hmac_path = tmp_path / "keys" / "subjects.hmac"
    key = load_or_create_hmac_key(hmac_path)
    assert len(key) == 32 and load_or_create_hmac_key(hmac_path) == key
    assert _mode(key_path) == 0o600 and _mode(hmac_path) == 0o600
    assert _mode(log.store.path) == 0o600
    assert public_key_path(key_path).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    again = load_or_create_signing_key(key_path)
    assert again.public_key() == log.public_key


def test_a_public_key_that_does_not_match_is_refused(tmp_path):
    load_or_create_signing_key(tmp_path / "audit.key")
    load_or_create_signing_key(tmp_path / "other.key")
    public_key_path(tmp_path / "audit.key").write_bytes(public_key_path(tmp_path / "other.key").read_bytes())
    with pytest.raises(AuditConfigError, match="not the public half"):
        load_or_create_signing_key(tmp_path / "audit.key")


async def test_inclusion_proof_beyond_the_log_is_refused(open_log):
    log = await open_log()
    await log.append(make_entry(0))
    with pytest.raises(ValueError):
        await log.inclusion_proof(0, 2)
    assert await log.inclusion_proof(0, 1) == []


def test_racing_key_creation_ends_with_one_key(tmp_path):
    path = tmp_path / "race" / "audit.key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_or_create_signing_key(path).public_key(), range(8)))
    assert all(k == keys[0] for k in keys)
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_broken_key_file_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(AuditConfigError, match=r"bad\.key"):
        load_or_create_signing_key(bad)
    short = tmp_path / "short.hmac"
    short.write_text("abcd")
    with pytest.raises(AuditConfigError, match="32 bytes"):
        load_or_create_hmac_key(short)


def test_subject_hashes_normalise_names_dates_and_nhs_numbers():
    def hashes(given: str, family: str, dob: Any = "2014-03-09", nhs: str | None = "943 476 5919") -> list[str]:
        return subject_hashes(HMAC_KEY, given_name=given, family_name=family, date_of_birth=dob, nhs_number=nhs)

    base = hashes("Siobhan", "O'Brien")
    assert len(base) == len(set(base)) == 3
    assert hashes("SIOBHÁN", "obrien") == base
    assert hashes(" siobhán ", "O Brien", dt.date(2014, 3, 9), "9434765919") == base
    assert hashes("Zoë", "Ó Briain")[1:] != base[1:]  # a different family name is a different child
    zoe = hashes("Zoë", "Smith-Jones")
    assert hashes("ZOE", "smith jones") == zoe
    # family + dob survives a changed given name; the NHS number alone identifies.
    assert hashes("Siobhan-Marie", "O'Brien")[1:] == base[1:] and hashes("Siobhan-Marie", "O'Brien")[0] != base[0]
    assert hashes("Siobhan", "O'Brien", nhs=None) == base[:2]
    assert hashes("Siobhan", "O'Brien", dob="2014-03-10")[:2] != base[:2]
    other_key = subject_hashes(
        bytes(32), given_name="Siobhan", family_name="O'Brien", date_of_birth="2014-03-09", nhs_number="9434765919"
    )
    assert set(other_key).isdisjoint(base)
    with pytest.raises(ValueError) as caught:
        hashes("Siobhan", "O'Brien", dob="09/03/2014")
    assert "09/03" not in str(caught.value)


async def test_no_plaintext_identifier_reaches_the_database(open_log, tmp_path):
    log = await open_log("private.db")
    hashes = subject_hashes(
        HMAC_KEY,
        given_name="Zebedee",
        family_name="Quartermaine",
        date_of_birth="2015-07-21",
        nhs_number="485 777 3456",
    )
    receipt = await log.append(make_entry(0, hashes=hashes))
    db = log.store.path
    await log.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("private.db"))
    assert hashes[0].encode() in stored and receipt.root.encode() in stored  # we are reading the right bytes
    for secret in (b"zebedee", b"quartermaine", b"2015-07-21", b"4857773456", b"485 777 3456"):
        assert secret not in stored.lower(), secret
    assert db.exists()
