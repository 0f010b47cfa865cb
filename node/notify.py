"""Telling people when it matters: the node's notifier, which delivers what the journal records.

Pushes (a) every shielded-child alert at once to the safeguarding officer, (b) a digest of the
access log every ``digest_interval_hours``, and optionally (c) a notice to each practitioner a
``match`` disclosed, by email and/or a signed webhook (:mod:`node.delivery`), in the words of
:mod:`node.notices` (ids, times, searcher, purpose code: never a child's details).

Nothing is lost and nothing delivered is sent again: the journal is the outbox. Its rows are
committed before a search is answered; a row is pending on a channel until the journal marks it
delivered there, which happens only after the relay or webhook accepted it (a crash in between
sends it once more: at least once, never lost). Each delivery is retried with exponential backoff
(tenacity, bounded); if every attempt fails the row stays pending, the failure is logged
(``notification_failed``) and counted, and the channel is tried again after ``retry_pause_seconds``.

It must never stop the node answering: it runs as a background loop and only reads the journal
between searches; :meth:`node.journal.Journal.record_many` wakes it after each commit with an alert.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential

from core.tasks import BackgroundLoop
from node import notices
from node.config import NotifyConfig
from node.delivery import Mailer, Webhook
from node.errors import DeliveryError, StoreError
from node.journal import Journal, JournalRow
from node.records import Involvement

log = structlog.get_logger("signpost.node")

ATTEMPTS = 4
"""Tries per delivery before it is left pending for the next turn (1 + 2 + 4 s of backoff between)."""
MAX_PAUSE_SECONDS = 900.0
"""A channel that keeps failing is tried at least every 15 minutes."""
PRUNE_SECONDS = 3600.0
BATCH = 100
TURN_BATCHES = 50


@dataclass
class NotifyMetrics:
    """Counters of the notifier, in a registry of its own (as broker.metrics; tests run many nodes).

    The node's metrics endpoint collects ``registry`` (or passes its own). Labels are kind, channel
    and outcome only: never a recipient, a searcher or anything about a child.
    """

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.notifications = Counter(
            "signpost_node_notifications",
            "Notifications by kind (alert, digest, practitioner), channel (email, webhook) and outcome (sent, failed)",
            ["kind", "channel", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "signpost_node_notification_retries",
            "Delivery attempts that failed and were retried",
            ["kind", "channel"],
            registry=r,
        )


@dataclass(frozen=True)
class Route:
    """Journal rows of one kind delivered on one channel; ``key`` marks them delivered in the journal."""

    kind: str
    """``alert`` or ``practitioner`` (journal rows of kind match, band match)."""
    channel: str
    """``email`` or ``webhook``."""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.channel}"

    @property
    def journal_kind(self) -> str:
        return "alert" if self.kind == "alert" else "match"


def routes_of(config: NotifyConfig) -> tuple[list[Route], list[str]]:
    """The row routes and digest channels a config asks for."""
    routes, digests = [], []
    if config.email and config.safeguarding_to:
        routes.append(Route("alert", "email"))
    if config.webhook_url:
        routes.append(Route("alert", "webhook"))
    if config.email and config.notify_practitioners:
        routes.append(Route("practitioner", "email"))
    if config.email and config.digest_to:
        digests.append("email")
    if config.webhook_url:
        digests.append("webhook")
    return routes, digests


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")  # the journal's own format, so times compare as text


class Notifier:
    """Delivers pending alerts, notices and digests from ``start()`` until ``stop()``."""

    def __init__(
        self,
        config: NotifyConfig,
        journal: Journal,
        *,
        code: str,
        name: str,
        involvements_of: Callable[[str], Sequence[Involvement]],
        mailer: Mailer | None = None,
        webhook: Webhook | None = None,
        metrics: NotifyMetrics | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        backoff_seconds: float = 1.0,
    ) -> None:
        self.config, self.journal, self.code, self.name = config, journal, code, name
        self.involvements_of = involvements_of
        self.mailer = mailer or Mailer(config)
        self.webhook = webhook or Webhook(config)
        self.metrics = metrics or NotifyMetrics()
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._sleep, self._backoff = sleep, backoff_seconds
        self.routes, self.digests = routes_of(config)
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("signpost-notify", self._run)
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._pruned = 0.0
        self._failures: dict[str, int] = {}
        self._resting: dict[str, float] = {}
        """Monotonic time until which a failing channel is not tried again."""

    def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        self.journal.on_reviewed = self.poke
        self._loop.start()

    async def stop(self) -> None:
        self.journal.on_reviewed = None
        await self._loop.stop()

    def poke(self) -> None:
        """Deliver now (a new alert or match was journalled); safe from any thread."""
        if self._event_loop is not None:
            self._event_loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.deliver_once()
            except StoreError as exc:
                log.error("notify_journal_failed", error_type=type(exc.__cause__).__name__)
            except Exception as exc:  # a dead loop would silently stop every alert: log, and try again
                log.error("notify_turn_failed", error_type=type(exc).__name__)
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)
            except TimeoutError:
                pass

    async def deliver_once(self) -> bool:
        """One turn: every pending row on every route, then any digest due; False if something failed.

        A channel that failed all its retries rests (``retry_pause_seconds``, doubling) while the
        others go on: during a mail outage each new alert must not start its own round of retries,
        and the webhook must not wait for the mail relay.
        """
        ok = True
        for route in self.routes:
            ok = await self._rested(route.key, functools.partial(self._drain, route)) and ok
        for channel in self.digests:
            ok = await self._rested(f"digest:{channel}", functools.partial(self._digests, channel)) and ok
        if time.monotonic() - self._pruned > PRUNE_SECONDS:
            self.journal.forget_delivered()
            self._pruned = time.monotonic()
        return ok

    async def _rested(self, key: str, turn: Callable[[], Awaitable[bool]]) -> bool:
        """Run one channel's turn unless it is resting after failures; False if it failed or rests."""
        if time.monotonic() < self._resting.get(key, 0.0):
            return False
        if await turn():
            self._failures.pop(key, None)
            self._resting.pop(key, None)
            return True
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        pause = min(self.config.retry_pause_seconds * 2 ** (failures - 1), MAX_PAUSE_SECONDS)
        self._resting[key] = time.monotonic() + pause
        return False

    def _started(self, key: str) -> str:
        """When this route or digest was first configured: earlier rows were for the CLI, and stay so."""
        since = self.journal.state(key)
        if since is None:
            since = _iso(self._clock())
            self.journal.set_state(key, since)
        return since

    async def _drain(self, route: Route) -> bool:
        since = self._started(f"since:{route.key}")
        for _ in range(TURN_BATCHES):  # bounded: whatever is left waits for the next turn
            rows = self.journal.pending(route.journal_kind, route.key, since=since, limit=BATCH)
            for row in rows:
                if not await self._deliver(route, row):
                    return False  # keep order: later rows wait behind the one that failed
            if len(rows) < BATCH:
                break
        return True

    async def _deliver(self, route: Route, row: JournalRow) -> bool:
        send = self._sender(route, row)
        if send is None:  # a match whose record names no practitioner with an email: nobody to tell
            self.journal.mark_notified(row, route.key)
            return True
        if not await self._attempt(route.kind, route.channel, send, journal_id=row.id):
            return False
        self.journal.mark_notified(row, route.key)
        return True

    def _sender(self, route: Route, row: JournalRow) -> Callable[[], Awaitable[None]] | None:
        if route.key == "alert:webhook":
            document = notices.alert_document(self.code, row)
            return lambda: self.webhook.send(document)
        if route.kind == "alert":
            subject, body = notices.alert_email(self.code, self.name, row)
            return lambda: self.mailer.send(subject, body, self.config.safeguarding_to)
        to = notices.practitioner_addresses(self.involvements_of(row.record_id or ""), row.requester_email)
        if not to:
            return None
        subject, body = notices.practitioner_email(self.code, self.name, row)
        return lambda: self.mailer.send(subject, body, to)

    async def _digests(self, channel: str) -> bool:
        """Every whole period since the last digest on ``channel``, one message each (none if empty)."""
        key, period = f"digest:{channel}", dt.timedelta(hours=self.config.digest_interval_hours)
        for _ in range(1000):  # bounded catch-up after a long outage; the rest on later turns
            start = self._started(key)
            end = _iso(dt.datetime.fromisoformat(start) + period)
            if end > _iso(self._clock()):
                return True
            rows, total = self.journal.between(start, end)
            if total and not await self._attempt(
                "digest", channel, self._digest_sender(channel, start, end, rows, total)
            ):
                return False
            self.journal.set_state(key, end)
            log.info("digest_closed", channel=channel, start=start, end=end, searches=total)
        return True

    def _digest_sender(
        self, channel: str, start: str, end: str, rows: list[JournalRow], total: int
    ) -> Callable[[], Awaitable[None]]:
        if channel == "webhook":
            document = notices.digest_document(self.code, start, end, rows, total)
            return lambda: self.webhook.send(document)
        subject, body = notices.digest_email(self.code, self.name, start, end, rows, total)
        return lambda: self.mailer.send(subject, body, self.config.digest_to)

    async def _attempt(
        self, kind: str, channel: str, send: Callable[[], Awaitable[None]], *, journal_id: int | None = None
    ) -> bool:
        """Send with bounded exponential backoff; True once accepted, False (logged, counted) if never."""

        def retrying(state: RetryCallState) -> None:
            self.metrics.retries.labels(kind, channel).inc()
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "notification_retrying",
                kind=kind,
                channel=channel,
                journal_id=journal_id,
                attempt=state.attempt_number,
                error=str(error),
            )

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(ATTEMPTS),
                wait=wait_exponential(multiplier=self._backoff, max=30 * self._backoff),
                retry=retry_if_exception_type(DeliveryError),
                sleep=self._sleep,
                before_sleep=retrying,
                reraise=True,
            ):
                with attempt:
                    await send()
        except DeliveryError as exc:
            self.metrics.notifications.labels(kind, channel, "failed").inc()
            log.error("notification_failed", kind=kind, channel=channel, journal_id=journal_id, error=str(exc))
            return False
        self.metrics.notifications.labels(kind, channel, "sent").inc()
        log.info("notification_sent", kind=kind, channel=channel, journal_id=journal_id)
        return True
