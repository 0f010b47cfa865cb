"""Notifications from a node: alerts, digests and practitioner notices over real SMTP (STARTTLS) and a webhook.

The mail relay is a real aiosmtpd server on loopback that requires STARTTLS with a certificate from
the test CA and a login; the webhook receiver is a real aiohttp server that checks the signature.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from structlog.testing import capture_logs

from certs.pki import CertificateAuthority, broker_subject
from core.config import ConfigError
from node import notices
from node.config import NotifyConfig, load_node_config
from node.delivery import SIGNATURE_HEADER, signature, verify_signature
from node.journal import Journal
from node.notify import Notifier, NotifyMetrics
from node.records import Involvement
from node.server import start_notifier
from protos.signpost.v1 import node_pb2
from signpost.federation import Pki
from tests.conftest import row

CHILD = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09", "postcode": "LS6 2AB"}
# What must never appear in a message: the child's details, and the free-text justification.
FORBIDDEN = ("Amelia", "Smith", "2014-03-09", "LS6", "2AB", "Oak Road", "9434765919", "case 2291", "Case 2291")
JUSTIFICATION = "Strategy discussion, case 2291"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MailServer:
    """aiosmtpd on a fixed loopback port, requiring STARTTLS and a login; start and stop at will."""

    context: ssl.SSLContext
    port: int = field(default_factory=_free_port)
    messages: list[tuple[list[str], email.message.EmailMessage, bool]] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message, session.ssl is not None))
        return "250 OK"

    @staticmethod
    def _login(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.login == b"signpost" and auth_data.password == b"s3cret")

    def start(self) -> None:
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self.context,
            require_starttls=True,
            auth_required=True,
            authenticator=self._login,
            ready_timeout=10,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def bodies(self) -> list[str]:
        return [m.get_body(("plain",)).get_content() for _, m, _ in self.messages]


@pytest.fixture(scope="session")
def smtp_context(pki: Pki) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 issued by the test CA."""
    ca = CertificateAuthority.load(pki.directory)
    files = ca.issue_to(pki.directory, "smtp", broker_subject("smtp"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    return context


@pytest.fixture
def mail(smtp_context: ssl.SSLContext) -> Iterator[MailServer]:
    server = MailServer(smtp_context)
    server.start()
    yield server
    server.stop()


def notify_config(pki: Pki, tmp_path: Path, mail: MailServer, **overrides: object) -> NotifyConfig:
    password = tmp_path / "smtp-password"
    password.write_text("s3cret\n")
    config = NotifyConfig(
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        smtp_ca=pki.ca.cert,
        username="signpost",
        password_file=password,
        from_address="signpost@leeds.example",
        safeguarding_to=("dso@leeds.example",),
        poll_seconds=0.05,
        retry_pause_seconds=0.0,
    )
    return replace(config, **overrides)  # type: ignore[arg-type]


def request(search_id: str, **requester: str) -> node_pb2.MatchRequest:
    who = {"user_id": "pat", "name": "Pat Practitioner", "organisation": "Kent County Council"}
    who |= {"role": "practitioner", "email": "pat@kent.example"} | requester
    return node_pb2.MatchRequest(
        search_id=search_id,
        purpose=node_pb2.Purpose(code="child-protection-enquiry", justification=JUSTIFICATION),
        requester=node_pb2.Requester(**who),
    )


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def no_sleep(_: float) -> None:
    return None


def notifier(config: NotifyConfig, journal: Journal, clock: Clock | None = None, **kwargs: object) -> Notifier:
    involvements = kwargs.pop("involvements", ())
    return Notifier(
        config,
        journal,
        code="LEEDS",
        name="Leeds",
        involvements_of=lambda _: involvements,  # type: ignore[arg-type,return-value]
        clock=clock,
        sleep=no_sleep,
        **kwargs,  # type: ignore[arg-type]
    )


def sample(metrics: NotifyMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def assert_no_child_details(text: str) -> None:
    for forbidden in FORBIDDEN:
        assert forbidden not in text, forbidden


# --- end to end: a search through the broker that finds a shielded child -------------------------------


async def test_a_shielded_hit_reaches_the_safeguarding_mailbox_without_the_childs_details(
    federation, pki, tmp_path, mail
):
    shielded = row(record_id="S1", shielded="true", nhs_number="9434765919")
    fed = await federation({"LEEDS": [shielded], "KENT": []}, notify={"LEEDS": notify_config(pki, tmp_path, mail)})
    status, body = await fed.search(
        {**CHILD, "sex": "F"}, purpose={"code": "child-protection-enquiry", "justification": JUSTIFICATION}
    )
    assert status == 200 and body["results"] == []  # answered as no match, to the searcher
    for _ in range(200):
        if mail.messages:
            break
        await asyncio.sleep(0.05)
    alert = fed.nodes["LEEDS"].service.journal.alerts()[0]
    [(to, message, over_tls)] = mail.messages
    text = message.as_string()
    assert to == ["dso@leeds.example"] and over_tls
    assert f"alert {alert.id}" in message["Subject"]
    content = mail.bodies()[0]
    assert f"Alert (journal id): {alert.id}" in content and "S1" in content
    assert "Pat Practitioner" in content and "child-protection-enquiry" in content and body["search_id"] in content
    assert_no_child_details(text)
    assert_no_child_details(content)


async def test_a_match_through_the_broker_tells_the_disclosed_practitioner(federation, pki, tmp_path, mail):
    config = notify_config(pki, tmp_path, mail, safeguarding_to=(), notify_practitioners=True)
    fed = await federation({"LEEDS": [row(record_id="R7")]}, notify={"LEEDS": config})
    status, body = await fed.search({**CHILD, "sex": "F"})
    assert status == 200 and body["results"][0]["band"] == "match"
    for _ in range(200):
        if mail.messages:
            break
        await asyncio.sleep(0.05)
    [(to, message, over_tls)] = mail.messages
    assert to == ["jo.bloggs@leeds.example"] and over_tls
    content = mail.bodies()[0]
    assert "Pat Practitioner" in content and "Leeds City Council" in content and "R7" in content
    assert body["search_id"] in content
    assert_no_child_details(message.as_string())


# --- the outbox: outages, restarts ------------------------------------------------------------------------


async def test_mail_outage_is_retried_counted_and_delivered_later_exactly_once(pki, tmp_path, mail):
    journal = Journal(tmp_path / "j.sqlite3")
    metrics = NotifyMetrics()
    mail.stop()
    sender = notifier(notify_config(pki, tmp_path, mail), journal, metrics=metrics)
    await sender.deliver_once()  # first configured now: from here on rows are pushed
    journal.record_many([(request("s1"), [("alert", "S1", "match")]), (request("s2"), [("alert", "S2", "match")])])
    with capture_logs() as logs:
        assert await sender.deliver_once() is False
    assert sample(metrics, "signpost_node_notification_retries_total", kind="alert", channel="email") == 3
    assert sample(metrics, "signpost_node_notifications_total", kind="alert", channel="email", outcome="failed") == 1
    failed = [e for e in logs if e["event"] == "notification_failed"]
    assert failed and failed[0]["journal_id"] == 1 and "cannot reach the relay" in failed[0]["error"]
    assert len(journal.pending("alert", "alert:email", since="")) == 2  # nothing lost

    mail.start()
    assert await sender.deliver_once() is True
    assert [m["Subject"][-9:] for _, m, _ in mail.messages] == ["(alert 1)", "(alert 2)"]
    assert sample(metrics, "signpost_node_notifications_total", kind="alert", channel="email", outcome="sent") == 2
    assert await sender.deliver_once() is True
    assert len(mail.messages) == 2  # delivered ones are not sent again


async def test_a_failed_channel_rests_instead_of_retrying_on_every_new_alert(pki, tmp_path, mail):
    journal = Journal(tmp_path / "j.sqlite3")
    metrics = NotifyMetrics()
    mail.stop()
    sender = notifier(notify_config(pki, tmp_path, mail, retry_pause_seconds=60.0), journal, metrics=metrics)
    await sender.deliver_once()
    journal.record_many([(request("s1"), [("alert", "S1", "match")])])
    assert await sender.deliver_once() is False
    mail.start()
    journal.record_many([(request("s2"), [("alert", "S2", "match")])])
    assert await sender.deliver_once() is False  # resting: not tried again yet, however many alerts arrive
    assert mail.messages == []
    assert sample(metrics, "signpost_node_notification_retries_total", kind="alert", channel="email") == 3


async def test_a_restarted_notifier_sends_what_was_pending_and_nothing_it_had_sent(pki, tmp_path, mail):
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    first = notifier(notify_config(pki, tmp_path, mail), journal)
    await first.deliver_once()
    journal.record_many([(request("s1"), [("alert", "S1", "match")])])
    assert await first.deliver_once()
    journal.record_many([(request("s2"), [("alert", "S2", "match")])])  # journalled; the node then dies
    journal.close()

    journal = Journal(path)
    again = notifier(notify_config(pki, tmp_path, mail), journal)
    assert await again.deliver_once()
    assert [m["Subject"][-9:] for _, m, _ in mail.messages] == ["(alert 1)", "(alert 2)"]


async def test_the_background_loop_sends_an_alert_as_soon_as_it_is_journalled(pki, tmp_path, mail):
    journal = Journal(tmp_path / "j.sqlite3")
    sender = notifier(notify_config(pki, tmp_path, mail, poll_seconds=60.0), journal)
    sender.start()
    try:
        await asyncio.sleep(0.2)  # started: the route's first turn has run
        journal.record_many([(request("s1"), [("alert", "S1", "match")])])
        for _ in range(100):  # woken by the journal, not by the 60 s poll
            if mail.messages:
                break
            await asyncio.sleep(0.05)
    finally:
        await sender.stop()
    assert len(mail.messages) == 1


@pytest.mark.parametrize(
    "overrides",
    [{"smtp_ca": None}, {"starttls": False}],  # the test CA is not in the system store; no TLS at all
    ids=["untrusted-certificate", "no-starttls"],
)
async def test_nothing_is_sent_unless_the_relay_is_verified_over_tls(pki, tmp_path, mail, overrides):
    journal = Journal(tmp_path / "j.sqlite3")
    metrics = NotifyMetrics()
    sender = notifier(notify_config(pki, tmp_path, mail, **overrides), journal, metrics=metrics)
    await sender.deliver_once()
    journal.record_many([(request("s1"), [("alert", "S1", "match")])])
    assert await sender.deliver_once() is False
    assert mail.messages == []
    assert sample(metrics, "signpost_node_notifications_total", kind="alert", channel="email", outcome="failed") == 1
    assert len(journal.pending("alert", "alert:email", since="")) == 1


async def test_a_node_without_notify_says_so_once_and_starts_nothing(tmp_path):
    config = load_node_config(_write(tmp_path, ""), {})
    with capture_logs() as logs:
        assert start_notifier(config, Journal(tmp_path / "j.sqlite3"), None, None) is None  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["notify_not_configured"]


# --- digest -----------------------------------------------------------------------------------------------


async def test_the_digest_lists_the_periods_rows_and_nothing_when_empty(pki, tmp_path, mail):
    clock = Clock()
    journal = Journal(tmp_path / "j.sqlite3", clock=clock)
    config = notify_config(pki, tmp_path, mail, safeguarding_to=(), digest_to=("ig@leeds.example",))
    sender = notifier(config, journal, clock)
    await sender.deliver_once()  # the first period starts now
    clock.now += dt.timedelta(hours=1)
    journal.record_many([(request("s1"), [("match", "R1", "match")])])
    clock.now += dt.timedelta(hours=2)
    journal.record_many([(request("s2", name="Sam Other", organisation="Devon NHS"), [("alert", "S9", "possible")])])
    journal.record_many([(request("s3"), [("none", None, None)])])  # found nothing: counted, not listed
    clock.now += dt.timedelta(hours=20)
    assert await sender.deliver_once()
    assert mail.messages == []  # the period is not over yet
    clock.now += dt.timedelta(hours=1, seconds=1)
    assert await sender.deliver_once()
    [(to, message, _)] = mail.messages
    assert to == ["ig@leeds.example"]
    assert "(2 searches, 1 alerts)" in message["Subject"]
    lines = [line for line in mail.bodies()[0].splitlines() if line.startswith("#")]
    assert len(lines) == 2
    assert lines[0].startswith("#1  2026-12-01T10:00:00+00:00  match  match") and "search s1" in lines[0]
    assert "Kent County Council" in lines[0] and "child-protection-enquiry" in lines[0]
    assert lines[1].startswith("#2  2026-12-01T12:00:00+00:00  alert  possible") and "Devon NHS" in lines[1]
    assert_no_child_details(message.as_string())

    clock.now += dt.timedelta(hours=24)  # a period with nothing in it
    assert await sender.deliver_once()
    assert len(mail.messages) == 1


def test_a_long_digest_says_how_many_more_and_where_to_read_them(tmp_path):
    clock = Clock()
    journal = Journal(tmp_path / "j.sqlite3", clock=clock)
    journal.record_many([(request(f"s{i}"), [("match", f"R{i}", "match")]) for i in range(5)])
    rows, total = journal.between("2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00", limit=3)
    subject, body = notices.digest_email("LEEDS", "Leeds", "a", "b", rows, total)
    assert total == 5 and "(5 searches, 0 alerts)" in subject
    assert [line.split()[0] for line in body.splitlines() if line.startswith("#")] == ["#1", "#2", "#3"]
    assert "and 2 more: signpost node access-log" in body


# --- practitioner notices ---------------------------------------------------------------------------------


def involvement(email_address: str, *, sensitive: bool = False) -> Involvement:
    return Involvement(
        service="Children's social care",
        team="Duty team",
        practitioner_name="Jo Bloggs",
        practitioner_role="Social worker",
        practitioner_phone="0113 496 0000",
        practitioner_email=email_address,
        involvement_start="2022-01-04",
        involvement_end="",
        sensitive=sensitive,
    )


async def test_a_disclosed_practitioner_is_told_who_else_is_looking(pki, tmp_path, mail):
    journal = Journal(tmp_path / "j.sqlite3")
    config = notify_config(pki, tmp_path, mail, safeguarding_to=(), notify_practitioners=True)
    people = (involvement("jo@leeds.example"), involvement("hidden@leeds.example", sensitive=True))
    sender = notifier(config, journal, involvements=people)
    await sender.deliver_once()
    journal.record_many(
        [
            (request("s1"), [("match", "R1", "match")]),
            (request("s2"), [("match", "R1", "possible")]),  # a possible disclosed nobody
            (request("s3", email="jo@leeds.example", name="Jo Bloggs"), [("match", "R1", "match")]),  # jo herself
        ]
    )
    assert await sender.deliver_once()
    [(to, message, _)] = mail.messages
    assert to == ["jo@leeds.example"]
    content = mail.bodies()[0]
    for part in (
        "Pat Practitioner",
        "Kent County Council",
        "practitioner",
        "pat@kent.example",
        "child-protection-enquiry",
        "journal 1",
        "search s1",
        "R1",
    ):
        assert part in content, part
    assert_no_child_details(message.as_string())
    assert await sender.deliver_once() and len(mail.messages) == 1


async def test_the_loop_survives_an_unexpected_error_and_delivers_on_the_next_turn(pki, tmp_path, mail):
    journal = Journal(tmp_path / "j.sqlite3")
    config = notify_config(pki, tmp_path, mail, safeguarding_to=(), notify_practitioners=True)
    calls = []

    def involvements_of(record_id: str) -> tuple[Involvement, ...]:
        calls.append(record_id)
        if len(calls) == 1:
            raise RuntimeError("the record store was being swapped")
        return (involvement("jo@leeds.example"),)

    sender = Notifier(config, journal, code="LEEDS", name="Leeds", involvements_of=involvements_of, sleep=no_sleep)
    sender.start()
    try:
        await asyncio.sleep(0.1)
        with capture_logs() as logs:
            journal.record_many([(request("s1"), [("match", "R1", "match")])])
            for _ in range(100):
                if mail.messages:
                    break
                await asyncio.sleep(0.05)
    finally:
        await sender.stop()
    assert "notify_turn_failed" in [e["event"] for e in logs]
    assert [to for to, _, _ in mail.messages] == [["jo@leeds.example"]]


# --- webhook ----------------------------------------------------------------------------------------------


async def test_webhook_alerts_and_digests_are_signed_and_retried(pki, tmp_path):
    secret = tmp_path / "webhook-secret"
    secret.write_text("whsec-test\n")
    received: list[dict[str, object]] = []
    answers = [500]  # the first delivery is refused: it must be retried

    async def hook(req: web.Request) -> web.Response:
        body = await req.read()
        if not verify_signature(b"whsec-test", body, req.headers[SIGNATURE_HEADER]):
            return web.Response(status=401)
        if answers:
            return web.Response(status=answers.pop())
        received.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        clock = Clock()
        journal = Journal(tmp_path / "j.sqlite3", clock=clock)
        config = NotifyConfig(webhook_url=f"http://127.0.0.1:{port}/hook", webhook_secret_file=secret)
        metrics = NotifyMetrics()
        sender = notifier(config, journal, clock, metrics=metrics)
        await sender.deliver_once()
        journal.record_many([(request("s1"), [("alert", "S1", "match")])])
        assert await sender.deliver_once()
        clock.now += dt.timedelta(hours=25)
        assert await sender.deliver_once()
    finally:
        await runner.cleanup()
    alert, digest = received
    assert alert["type"] == "alert" and alert["journal_id"] == 1 and alert["record_id"] == "S1"
    assert alert["requester"]["name"] == "Pat Practitioner" and alert["purpose_code"] == "child-protection-enquiry"
    assert "justification" not in json.dumps(alert) and JUSTIFICATION not in json.dumps(received)
    assert digest["type"] == "digest" and digest["total"] == 1 and digest["entries"][0]["journal_id"] == 1
    assert sample(metrics, "signpost_node_notification_retries_total", kind="alert", channel="webhook") == 1


def test_the_signature_is_an_hmac_of_time_and_body_and_stale_or_forged_ones_fail():
    body, secret = b'{"type":"alert"}', b"k"
    header = signature(secret, body, 1_700_000_000)
    mac = hmac.new(secret, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"
    assert verify_signature(secret, body, header, now=1_700_000_100)
    assert not verify_signature(secret, body, header, now=1_700_001_000)  # replayed later
    assert not verify_signature(b"other", body, header, now=1_700_000_100)
    assert not verify_signature(secret, body + b" ", header, now=1_700_000_100)


# --- configuration ----------------------------------------------------------------------------------------

BASE = """
store = "records.sqlite3"
broker_public_keys = ["assertion.pub"]
[authority]
code = "LEEDS"
name = "Leeds"
[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"
"""


def _write(tmp_path: Path, notify: str) -> Path:
    (tmp_path / "pw").write_text("x")
    path = tmp_path / "node.toml"
    path.write_text(BASE + notify)
    return path


def _load(tmp_path: Path, notify: str, env: dict[str, str] | None = None):
    return load_node_config(_write(tmp_path, notify), env or {})


def test_config_without_notify_sends_nothing(tmp_path):
    assert _load(tmp_path, "").notify is None


def test_config_reads_notify_with_defaults_and_environment_overrides(tmp_path):
    config = _load(
        tmp_path,
        '[notify]\nsmtp_host = "smtp.leeds.example"\nusername = "u"\npassword_file = "pw"\n'
        'from_address = "signpost@leeds.example"\nsafeguarding_to = ["dso@leeds.example"]\n',
        {"SIGNPOST_NODE_NOTIFY__DIGEST_TO": "ig@leeds.example, audit@leeds.example"},
    ).notify
    assert config is not None and config.starttls and config.smtp_port == 587 and config.digest_interval_hours == 24
    assert config.digest_to == ("ig@leeds.example", "audit@leeds.example")
    assert config.password_file == tmp_path / "pw" and "pw" not in repr(config)
    assert not config.notify_practitioners


@pytest.mark.parametrize(
    ("table", "key"),
    [
        (
            'smtp_host = "smtp.leeds.example"\nstarttls = false\nfrom_address = "a@b.example"\n'
            'safeguarding_to = ["d@b.example"]',
            "notify.starttls",
        ),
        (
            'smtp_host = "127.0.0.1"\nusername = "u"\npassword = "hunter2"\nfrom_address = "a@b.example"',
            "notify.password",
        ),
        (
            'smtp_host = "127.0.0.1"\nfrom_address = "a@b.example"\nsafeguarding_to = ["not an address"]',
            "notify.safeguarding_to",
        ),
        ('webhook_url = "http://hooks.example/x"\nwebhook_secret_file = "pw"', "notify.webhook_url"),
        ('webhook_url = "https://hooks.example/x"', "notify.webhook_secret_file"),
        ("notify_practitioners = true", "notify.smtp_host"),
    ],
)
def test_config_refuses_an_unsafe_or_incomplete_notify_table(tmp_path, table, key):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, "[notify]\n" + table + "\n")
    assert f"'{key}'" in str(raised.value) and "hunter2" not in str(raised.value)


def test_plain_smtp_is_allowed_to_a_loopback_relay_only(tmp_path):
    config = _load(
        tmp_path,
        '[notify]\nsmtp_host = "127.0.0.1"\nstarttls = false\n'
        'from_address = "a@b.example"\nsafeguarding_to = ["d@b.example"]\n',
    ).notify
    assert config is not None and not config.starttls
