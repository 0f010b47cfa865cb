"""The broker's audit trail through the real API: every attempt recorded, before results are released,
with no child identifier in plaintext; verified by the CLI; surviving kill -9."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from structlog.testing import capture_logs

from broker.appkeys import AUDIT
from broker.audit.errors import AuditWriteError
from broker.audit.keys import load_or_create_hmac_key, public_key_path, subject_hashes
from certs.identity import Role
from certs.tls import client_ssl_context
from tests.conftest import row

CHILD = {
    "given_name": "Philippa",
    "family_name": "Quenby-Thistlewood",
    "date_of_birth": "2013-10-17",
    "nhs_number": "9434765919",
    "postcode": "LS6 2AB",
    "address": "12 Oak Road",
}
PURPOSE = {"code": "child-in-need-assessment", "justification": "Assessment visit planned for Monday"}
SIGNPOST = [sys.executable, "-m", "signpost.cli"]


def leeds():
    return {
        "LEEDS": [
            row(
                given_name="Philippa",
                family_name="Quenby-Thistlewood",
                date_of_birth="2013-10-17",
                nhs_number="9434765919",
            )
        ],
        "KENT": [row(record_id="K1", given_name="Oliver")],
    }


async def audit_get(fed, query: str = "", role: Role = Role.AUDITOR):
    async with fed.session(role=role).get(f"{fed.url}/v1/audit/entries{query}") as resp:
        return resp.status, await resp.json()


async def test_every_attempt_is_audited_and_answers_carry_their_receipt(federation, pki):
    fed = await federation(leeds())
    status, answer = await fed.search(CHILD, purpose=PURPOSE)
    assert status == 200 and answer["results"]
    receipt = answer["audit"]
    # Entry 0 is the search, committed before any node was asked; the receipt is its outcome's, entry 1.
    assert receipt["index"] == 1 and receipt["tree_size"] == 2 and receipt["signature"]
    assert (await fed.search({**CHILD, "date_of_birth": "30/02/2013"}, purpose=PURPOSE))[0] == 400
    assert (await fed.search(CHILD, purpose=PURPOSE, role=Role.OPERATOR))[0] == 403
    async with fed.session(role=None).post(f"{fed.url}/v1/searches", json={}) as resp:
        assert resp.status == 401
    await fed.nodes["LEEDS"].stop(grace=0)
    await fed.nodes["KENT"].stop(grace=0)
    assert (await fed.search(CHILD, purpose=PURPOSE))[0] == 503

    status, page = await audit_get(fed)
    assert status == 200
    entries = [e["entry"] for e in page["entries"]]
    assert [(e.get("status"), e["outcome"]) for e in entries] == [
        (None, "started"),
        (200, "answered"),
        (400, "invalid"),
        (403, "forbidden"),
        (401, "unauthenticated"),
        (None, "started"),
        (503, "unavailable"),
    ]
    assert entries[0]["search_id"] == entries[1]["search_id"] and entries[5]["search_id"] == entries[6]["search_id"]
    entries = entries[1:5] + entries[6:]
    first = entries[0]
    assert first["search_id"] == answer["search_id"]
    assert first["actor"]["user_id"] == "practitioner" and first["actor"]["organisation"] == "Leeds City Council"
    assert first["purpose"] == PURPOSE
    assert first["results"] == {"LEEDS": ["match"]} and sorted(first["answered"]) == ["KENT", "LEEDS"]
    assert entries[2]["actor"]["role"] == "operator"
    assert entries[4]["not_answered"] == [
        {"code": "LEEDS", "reason": "unavailable"},
        {"code": "KENT", "reason": "unavailable"},
    ]


async def test_auditor_finds_who_searched_for_a_child_by_subject_hash(federation, tmp_path):
    fed = await federation(leeds())
    await fed.search(CHILD, purpose=PURPOSE)
    await fed.search({"given_name": "Oliver", "family_name": "Smith", "date_of_birth": "2014-03-09"}, purpose=PURPOSE)
    key = load_or_create_hmac_key(tmp_path / "subject.key")  # the harness broker's key file
    digest = subject_hashes(key, given_name="PHILIPPA", family_name="quenby thistlewood", date_of_birth="2013-10-17")[0]
    status, page = await audit_get(fed, f"?subject_hash={digest}")
    assert status == 200 and [e["entry"]["outcome"] for e in page["entries"]] == ["started", "answered"]
    assert page["entries"][0]["entry"]["actor"]["user_id"] == "practitioner"
    status, page = await audit_get(fed, "?actor=practitioner&since=2000-01-01T00:00:00Z")
    assert len({e["entry"]["search_id"] for e in page["entries"]}) == 2 and len(page["entries"]) == 4
    status, page = await audit_get(fed, "?until=2000-01-01T00:00:00Z")
    assert page["entries"] == []
    assert (await audit_get(fed, "?subject_hash=Philippa"))[0] == 400
    assert (await audit_get(fed, role=Role.PRACTITIONER))[0] == 403
    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/checkpoint") as resp:
        head = await resp.json()
    assert head["tree_size"] == 4 and "BEGIN PUBLIC KEY" in head["public_key"]


async def test_if_the_audit_write_fails_the_search_fails_and_no_result_is_released(federation):
    fed = await federation(leeds())
    log = fed.server.app[AUDIT]

    async def broken(entry):
        raise AuditWriteError("disk full")

    log.append = broken  # type: ignore[method-assign]
    status, body = await fed.search(CHILD, purpose=PURPOSE)
    assert status == 503 and body["error"]["code"] == "audit_unavailable"
    assert "results" not in body and "Jo Bloggs" not in json.dumps(body)


async def test_no_plaintext_identifier_in_broker_storage_or_logs(federation, tmp_path):
    fed = await federation(leeds())
    with capture_logs() as logs:
        assert (await fed.search(CHILD, purpose=PURPOSE))[0] == 200
        assert (await fed.search({**CHILD, "sex": "Q"}, purpose=PURPOSE))[0] == 400
    broker_files = [p for p in tmp_path.iterdir() if p.name.startswith("audit.sqlite3")]
    assert broker_files, "the audit database was not where expected"
    stored = b"".join(p.read_bytes() for p in broker_files)
    text = json.dumps([e for e in logs if e["event"] in ("node_outcome", "search_completed", "internal_error")])
    for value in (
        "Philippa",
        "PHILIPPA",
        "philippa",
        "Quenby",
        "quenby",
        "Thistlewood",
        "thistlewood",
        "2013-10-17",
        "20131017",
        "9434765919",
        "943 476 5919",
        "LS6 2AB",
        "Oak Road",
    ):
        assert value.encode() not in stored, value
        assert value not in text, value


def test_audit_cli_verifies_and_names_a_tampered_entry(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    from tests.conftest import write_csv

    write_csv(data / "LEEDS.csv", [row()])
    work = tmp_path / "work"
    assert (
        subprocess.run(
            [*SIGNPOST, "demo", "--check", "--data", str(data), "--workdir", str(work)],
            capture_output=True,
            timeout=120,
        ).returncode
        == 0
    )
    db, pub = work / "audit.sqlite3", public_key_path(work / "audit.key")
    ok = subprocess.run(
        [*SIGNPOST, "audit", "verify", "--db", str(db), "--public-key", str(pub)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with sqlite3.connect(db) as conn:
        body = conn.execute("SELECT body FROM audit_entries WHERE idx = 1").fetchone()[0]
        conn.execute(
            "UPDATE audit_entries SET body = ? WHERE idx = 1",
            (
                body.replace("child-protection-enquiry", "missing-child")
                if isinstance(body, str)
                else body.replace(b"child-protection-enquiry", b"missing-child"),
            ),
        )
    bad = subprocess.run(
        [*SIGNPOST, "audit", "verify", "--db", str(db), "--public-key", str(pub)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "TAMPERED at entry 1 (edited)" in bad.stdout, bad.stdout
    hashes = subprocess.run(
        [
            *SIGNPOST,
            "audit",
            "subject-hash",
            "--key",
            str(work / "subject.key"),
            "--given",
            "Amelia",
            "--family",
            "Smith",
            "--dob",
            "2014-03-09",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Name + date, family name + date, and the two names alone (a search made without the date of birth).
    assert hashes.returncode == 0 and len(hashes.stdout.split()) == 3


async def test_kill_9_during_a_burst_loses_no_audit_entry_of_an_answered_search(tmp_path):
    """Every search whose answer reached a client has its entry after a crash, and the log verifies."""
    from tests.conftest import write_csv

    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "LEEDS.csv", [row()])
    write_csv(data / "KENT.csv", [row(record_id="K1", given_name="Oliver")])
    work = tmp_path / "work"

    def start() -> tuple[subprocess.Popen[bytes], dict]:
        (work / "federation.json").unlink(missing_ok=True)
        proc = subprocess.Popen(
            [*SIGNPOST, "demo", "--data", str(data), "--workdir", str(work), "--port", "0", "--rate-limit", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not (work / "federation.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "demo did not start"
            time.sleep(0.05)
        return proc, json.loads((work / "federation.json").read_text())

    proc, fed = start()
    user = fed["users"]["practitioner"]
    context = client_ssl_context(Path(fed["ca"]), type("F", (), {"cert": user["cert"], "key": user["key"]})())
    answered: list[str] = []
    body = {
        "subject": {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"},
        "purpose": PURPOSE,
    }
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=20)) as session:

            async def one() -> None:
                try:
                    async with session.post(f"{fed['broker_url']}/v1/searches", json=body) as resp:
                        if resp.status == 200:
                            answered.append((await resp.json())["search_id"])
                except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError):
                    pass  # the broker died under this search: no answer reached us

            async def killer() -> None:
                while len(answered) < 40:
                    await asyncio.sleep(0.005)
                proc.send_signal(signal.SIGKILL)

            await asyncio.wait_for(asyncio.gather(killer(), *(one() for _ in range(300))), timeout=120)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert len(answered) >= 40

    proc, fed = start()  # restart on the same audit log; it goes on appending after the crash
    try:
        user = fed["users"]["practitioner"]
        context = client_ssl_context(Path(fed["ca"]), type("F", (), {"cert": user["cert"], "key": user["key"]})())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            async with session.post(f"{fed['broker_url']}/v1/searches", json=body) as resp:
                assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    with sqlite3.connect(work / "audit.sqlite3") as conn:
        logged = {json.loads(b)["search_id"] for (b,) in conn.execute("SELECT body FROM audit_entries")}
    assert set(answered) <= logged
    verify = subprocess.run(
        [
            *SIGNPOST,
            "audit",
            "verify",
            "--db",
            str(work / "audit.sqlite3"),
            "--public-key",
            str(public_key_path(work / "audit.key")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout
