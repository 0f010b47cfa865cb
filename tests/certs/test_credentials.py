"""Every negative credential case, through real TLS: expired, not yet valid, revoked, wrong role."""

from __future__ import annotations

import datetime as dt
import ssl

import aiohttp
import pytest
from cryptography import x509

from certs.identity import Role
from certs.pki import CertificateAuthority, user_subject
from signpost.federation import create_pki
from tests.conftest import AUTHORITIES, row

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}
PURPOSE = {"code": "child-protection-enquiry", "justification": "Strategy discussion, case 2291"}


@pytest.fixture
def own_pki(tmp_path):
    """A PKI of the test's own: these tests revoke certificates and must not touch the shared CRL."""
    return create_pki(tmp_path / "pki", AUTHORITIES)


def issue(pki, user_id: str, *, not_before: dt.datetime | None = None, validity=dt.timedelta(days=30)):
    ca = CertificateAuthority.load(pki.directory)
    return ca.issue_to(
        pki.directory,
        user_id,
        user_subject(Role.PRACTITIONER, user_id, "Test User", "Leeds CC"),
        not_before=not_before,
        validity=validity,
    )


async def until(call, done, *, seconds: float = 5.0):
    """Repeat ``call`` until ``done(result)``: the CRL is re-read at most once a second."""
    import asyncio
    import time

    deadline = time.monotonic() + seconds
    while True:
        result = await call()
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


def serial_of(path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


async def post(session, url):
    async with session.post(f"{url}/v1/searches", json={"subject": AMELIA, "purpose": PURPOSE}) as resp:
        return resp.status, await resp.json()


@pytest.mark.parametrize("when", ["expired", "not yet valid"])
async def test_expired_or_not_yet_valid_practitioner_is_refused_at_the_handshake(federation, own_pki, when):
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=40) if when == "expired" else now + dt.timedelta(days=1)
    files = issue(own_pki, "timebound", not_before=start)
    fed = await federation({"LEEDS": [row()]}, pki=own_pki)
    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
        await post(fed.session(files), fed.url)


async def test_revoked_practitioner_gets_401_even_on_an_open_connection(federation, own_pki):
    files = issue(own_pki, "soon-revoked")
    fed = await federation({"LEEDS": [row()]}, pki=own_pki)
    session = fed.session(files)
    status, _ = await post(session, fed.url)
    assert status == 200  # the keep-alive connection is now open
    own_pki.revoke(serial_of(files.cert))
    status, body = await until(lambda: post(session, fed.url), lambda r: r[0] != 200)
    assert status == 401 and "revoked" in body["error"]["message"]


async def test_revoked_broker_is_refused_by_every_node(federation, own_pki):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]}, pki=own_pki)
    assert (await fed.search(AMELIA))[0] == 200
    own_pki.revoke(serial_of(own_pki.broker.cert))
    status, body = await until(lambda: fed.search(AMELIA), lambda r: r[0] != 200)
    assert status == 503
    assert {n["reason"] for n in body["error"]["coverage"]["not_answered"]} == {"refused"}


async def test_expired_node_certificate_is_refused_by_the_broker(federation, own_pki):
    from certs.pki import node_subject

    ca = CertificateAuthority.load(own_pki.directory)
    old = ca.issue_to(
        own_pki.directory,
        "node-KENT-old",
        node_subject("KENT", "Kent"),
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=60),
        validity=dt.timedelta(days=30),
    )
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]}, pki=own_pki, node_files={"KENT": old})
    status, body = await fed.search(AMELIA)
    assert status == 200
    assert body["coverage"]["not_answered"] == [{"code": "KENT", "name": "Kent", "reason": "refused"}]


async def test_a_crl_not_signed_by_the_ca_is_ignored_once_running(federation, own_pki, foreign):
    """A forged CRL must not un-revoke anyone, nor revoke anyone: the last good list stays."""
    from certs.revocation import RevocationList, write_crl

    # The broker's list looks at its file only when this clock has moved on a second: the test says when.
    now = [0.0]
    revocations = RevocationList(own_pki.crl, own_pki.ca.cert, clock=lambda: now[0])

    def reread() -> None:
        now[0] += 1.0

    keeps, revoked = issue(own_pki, "keeps-access"), issue(own_pki, "stays-revoked")
    fed = await federation({"LEEDS": [row()]}, pki=own_pki, revocations=revocations)
    keeps_session, revoked_session = fed.session(keeps), fed.session(revoked)
    assert (await post(keeps_session, fed.url))[0] == 200
    assert (await post(revoked_session, fed.url))[0] == 200
    own_pki.revoke(serial_of(revoked.cert))
    reread()
    assert (await post(revoked_session, fed.url))[0] == 401  # the good list was read: the re-read is real
    # The forgery swaps the two: it would un-revoke one practitioner and revoke the other.
    write_crl(foreign.ca.key, foreign.ca.cert, {serial_of(keeps.cert)}, own_pki.crl)
    reread()
    assert (await post(keeps_session, fed.url))[0] == 200
    reread()
    assert (await post(revoked_session, fed.url))[0] == 401


def test_a_forged_crl_is_read_and_refused_and_a_good_one_after_it_is_taken(own_pki, foreign):
    """The list itself, on an injected clock: the forged file is looked at, refused, and not sticky."""
    from certs.revocation import RevocationList, write_crl

    ca = CertificateAuthority.load(own_pki.directory)
    now = [0.0]
    revocations = RevocationList(own_pki.crl, own_pki.ca.cert, clock=lambda: now[0])
    write_crl(ca.key, ca.cert, {1}, own_pki.crl)
    now[0] += 1.0
    assert revocations.is_revoked(1) and not revocations.is_revoked(2)
    write_crl(foreign.ca.key, foreign.ca.cert, {2}, own_pki.crl)
    now[0] += 1.0
    assert revocations.is_revoked(1) and not revocations.is_revoked(2)
    write_crl(ca.key, ca.cert, {2}, own_pki.crl)
    now[0] += 1.0
    assert revocations.is_revoked(2) and not revocations.is_revoked(1)


async def test_a_node_whose_certificate_expires_while_serving_is_refused_afterwards(federation, own_pki):
    """Its running server keeps the file, but new handshakes after expiry fail: reported as refused."""
    import asyncio

    from certs.pki import node_subject

    ca = CertificateAuthority.load(own_pki.directory)
    now = dt.datetime.now(dt.UTC)
    short = ca.issue_to(
        own_pki.directory,
        "node-KENT-short",
        node_subject("KENT", "Kent"),
        not_before=now - dt.timedelta(minutes=5),
        validity=dt.timedelta(minutes=5, seconds=3),
    )
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]}, pki=own_pki, node_files={"KENT": short})
    status, body = await fed.search(AMELIA)
    assert body["coverage"]["answered"] == 2
    while dt.datetime.now(dt.UTC) < now + dt.timedelta(seconds=4):
        await asyncio.sleep(0.2)
    # Close the broker's warm channel to KENT, as max_connection_age would: the next call handshakes anew.
    from broker.appkeys import FANOUT
    from broker.nodeclient import NodeClient
    from certs.tls import channel_credentials

    fanout = fed.server.app[FANOUT]
    credentials = channel_credentials(own_pki.tls(own_pki.broker))
    retired = fanout.replace([NodeClient(c.authority, credentials) for c in fanout.clients])
    for client in retired:
        await client.close()
    status, body = await fed.search(AMELIA)
    assert status == 200
    assert {n["code"]: n["reason"] for n in body["coverage"]["not_answered"]} == {"KENT": "refused"}
