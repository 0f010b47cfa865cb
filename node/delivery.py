"""Handing a notification to the authority's mail relay or webhook: the only module that talks to either.

Email goes over SMTP with STARTTLS (stdlib :mod:`smtplib`, in a worker thread so the node keeps
answering); plain SMTP only to a loopback relay, which :mod:`node.config` enforces. A webhook is an
HTTPS POST of JSON signed as :func:`signature` describes. Every foreign failure (socket, TLS, SMTP
reply, HTTP status) becomes :class:`node.errors.DeliveryError` here, with ``raise ... from``, and its
message names the channel and the failure only: never a recipient's mailbox content, never the
password or secret (read from their files when sending, so a rotated file takes effect at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from node.config import NotifyConfig
from node.errors import DeliveryError

log = structlog.get_logger("signpost.node")

SMTP_TIMEOUT_SECONDS = 20.0
"""Per socket operation; also how long a stopping node may wait for a hung relay."""
WEBHOOK_TIMEOUT_SECONDS = 15.0
SIGNATURE_HEADER = "Signpost-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
"""How old a signed webhook may be before a receiver should refuse it (a replayed request)."""


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``Signpost-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``.

    Signing the time with the body lets a receiver refuse a captured request replayed later.
    """
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes, body: bytes, header: str, *, now: float | None = None, tolerance: int = SIGNATURE_TOLERANCE_SECONDS
) -> bool:
    """What a receiver does: recompute the HMAC over ``t.body``, compare in constant time, check ``t`` is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _secret(path: Path | None) -> str:
    if path is None:
        raise DeliveryError("no secret file is configured")
    try:
        return str(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise DeliveryError(f"cannot read the secret file ({type(exc).__name__})") from exc


class Mailer:
    """Sends one email through the configured relay; raises DeliveryError if it is not accepted."""

    def __init__(self, config: NotifyConfig) -> None:
        self.config = config

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.config.smtp_ca) if self.config.smtp_ca else None)

    def _send_blocking(self, message: EmailMessage) -> None:
        c = self.config
        with smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            smtp.ehlo()
            if c.starttls:
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if c.username:
                smtp.login(c.username, _secret(c.password_file))
            refused = smtp.send_message(message)
        if refused:
            # Some recipients were taken: sending again would repeat it to them, so the refusal is only
            # made visible (how many; an address may name a person, and the relay's reply may quote it).
            log.warning("notification_recipients_refused", refused=len(refused))

    async def send(self, subject: str, body: str, to: tuple[str, ...]) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.config.from_address, ", ".join(to), subject
        message.set_content(body)
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except smtplib.SMTPException as exc:
            # An SMTP reply names the failure (e.g. 421 service not available); its text may quote
            # an address, so only the class and code go into the error.
            code = getattr(exc, "smtp_code", "")
            raise DeliveryError(f"email: the relay refused ({type(exc).__name__} {code})".strip()) from exc
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"email: cannot reach the relay ({type(exc).__name__})") from exc


class Webhook:
    """POSTs one JSON document, signed; raises DeliveryError unless the receiver answers 2xx."""

    def __init__(self, config: NotifyConfig, *, session: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self.config = config
        self._session = session or (lambda: aiohttp.ClientSession())

    async def send(self, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(_secret(self.config.webhook_secret_file).encode(), body, int(time.time())),
        }
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
        try:
            async with self._session() as session:
                async with session.post(self.config.webhook_url, data=body, headers=headers, timeout=timeout) as resp:
                    if resp.status // 100 != 2:
                        raise DeliveryError(f"webhook: the receiver answered {resp.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"webhook: cannot reach the receiver ({type(exc).__name__})") from exc
