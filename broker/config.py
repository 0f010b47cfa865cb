"""Broker configuration: a TOML file plus ``SIGNPOST_BROKER_*`` environment overrides.

Example::

    listen = "0.0.0.0:8443"
    registry = "/etc/signpost/registry.json"
    assertion_key = "/etc/signpost/assertion.key"
    search_deadline_seconds = 2.0
    rate_limit_per_minute = 30
    org_rate_limit_per_minute = 120
    limits_store = "redis://redis:6379/0"   # replicas share the limits; "memory" for one broker only

    [patterns]
    dates_per_name = 6
    names_per_date = 8
    names_per_home = 10

    [tls]
    ca = "/etc/signpost/ca.pem"
    cert = "/etc/signpost/broker.pem"
    key = "/etc/signpost/broker.key"

    [portal]                     # optional: sign-in to the practitioner portal (broker.portal.config)
    public_url = "https://signpost.example.gov.uk"
    idle_minutes = 15            # a session unused this long ends; absolute_hours = 8 ends any session
    [[portal.authorities]]
    code = "LEEDS"
    issuer = "https://login.microsoftonline.com/<tenant-id>/v2.0"
    client_id = "..."
    client_secret_file = "/etc/signpost/leeds-oidc.secret"
    roles = { practitioner = "signpost-practitioners" }
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from broker import policy
from broker.dispatch import DISPATCH_WINDOW_SECONDS
from broker.door import DoorLimits
from broker.health import HealthSettings
from broker.limits_store import MEMORY, REDIS_SCHEMES
from broker.patterns import PatternSettings
from broker.portal.config import PortalConfig, SessionSettings, read_portal, read_sessions
from certs.tls import TLSConfig, read_tls
from core.config import Reader, read_toml

ENV_PREFIX = "SIGNPOST_BROKER_"


@dataclass(frozen=True)
class BrokerConfig:
    """Everything the broker needs."""

    listen: tuple[str, int]
    """Host and port of the HTTPS API; port 0 picks a free one."""
    registry: Path
    """JSON file listing the authorities (see broker.registry)."""
    tls: TLSConfig
    """The broker's certificate serves HTTPS and is its client certificate towards nodes."""
    assertion_key: Path
    """Ed25519 private key that signs every query sent to nodes (nodes hold the public half)."""
    search_deadline_seconds: float = 2.0
    """Every search answers within this, listing the authorities that did not."""
    rate_limit_per_minute: int = policy.RATE_LIMIT_PER_MINUTE
    """Searches per practitioner per minute; 0 turns the limit off."""
    rate_limit_per_day: int = policy.RATE_LIMIT_PER_DAY
    """Searches per practitioner per rolling 24 hours; 0 turns the limit off."""
    org_rate_limit_per_minute: int = policy.ORG_RATE_LIMIT_PER_MINUTE
    """Searches per organisation (named by its members' certificates) per minute; 0 turns the limit off."""
    org_rate_limit_per_day: int = policy.ORG_RATE_LIMIT_PER_DAY
    """Searches per organisation per rolling 24 hours; 0 turns the limit off."""
    alert_searches_per_hour: int = policy.ALERT_SEARCHES_PER_HOUR
    """More searches than this by one practitioner in an hour raises an unusual-volume alert; 0 = never."""
    limits_store: str = MEMORY
    """Where the rate limits, the unusual-volume alert and the pattern counts are kept (broker.limits_store):
    ``memory`` (this process: one broker only) or a ``redis://`` URL shared by every replica. Memory is the
    default because a single broker needs no other server; a broker with a PostgreSQL audit log (that is,
    replicas) must name it, or it refuses to start, so replicas never each keep their own windows."""
    limits_key_prefix: str = "signpost:"
    """Prefix of every key in Redis: several deployments (or test runs) can share one database."""
    limits_timeout_seconds: float = 0.25
    """Longest a search waits for the limits store; then it is refused (503 limits_unavailable)."""
    audit_log: str = "audit.sqlite3"
    """The audit log: a SQLite file (one broker) or a postgresql:// URL (replicas sharing one log)."""
    audit_signing_key: Path = Path("audit.key")
    """Ed25519 key that signs the audit log's tree heads; created if missing (public half beside it)."""
    subject_key: Path = Path("subject.key")
    """HMAC key for the child's identifiers in the audit log; auditors hold a copy. Created if missing."""
    max_searches_in_flight: int = 64
    """Most searches the broker works on at once; more are refused with 503 and Retry-After, not queued.
    While searches come back congested the broker admits fewer, growing back to this. A backstop: searches
    that would not be heard from every node in time are refused before this is reached (broker.admission)."""
    dispatch_window_seconds: float = DISPATCH_WINDOW_SECONDS
    """Searches arriving while a dispatch to the nodes is out wait for it (at most this long) and go
    together in the next (broker.dispatch); a search alone never waits. 0 sends each search at once."""
    reload_interval_seconds: float = 2.0
    """How often the registry and the broker's certificate files are checked for changes."""
    health: HealthSettings = HealthSettings()
    """How nodes are polled, when circuits open, when a slow node is put on probation."""
    max_body_bytes: int = 64 * 1024
    """Largest request body accepted."""
    audit_timeout_seconds: float | None = None
    """Longest a search waits for its first audit entry to commit; then it is refused (503 audit_unavailable)
    and no node is asked. At most half of search_deadline_seconds; None (the default) means a quarter of it."""
    preauth_requests_per_second: float = policy.PREAUTH_REQUESTS_PER_SECOND
    """Sustained requests per second per source address, checked before any certificate or body work."""
    preauth_burst: int = policy.PREAUTH_BURST
    """Requests per source address allowed at once above that rate; 0 turns the pre-authentication limit off."""
    refusal_audit_interval_seconds: float = policy.REFUSAL_AUDIT_INTERVAL_SECONDS
    """Per client, 429s and certificate-less 401s after the first of each interval are audited as one count."""
    limits: DoorLimits = DoorLimits()
    """The ``[limits]`` table: connection caps and read timeouts at the door, before anyone is authenticated."""
    patterns: PatternSettings = PatternSettings()
    """The ``[patterns]`` table: when one name with many dates of birth, many names with one date, or many
    given names at one home, alerts."""
    log_level: str = "info"
    portal: PortalConfig | None = None
    """The ``[portal]`` table: the public address and each authority's identity provider for signing in
    (broker.portal.config); None serves no portal sign-in."""
    portal_sessions: SessionSettings = SessionSettings()
    """``[portal]``'s ``idle_minutes`` (15), ``absolute_hours`` (8) and ``max_sessions`` (10000): how long
    a portal session lasts and how many one broker process keeps."""

    @property
    def audit_timeout(self) -> float:
        """``audit_timeout_seconds``, or its default share of the deadline."""
        if self.audit_timeout_seconds is not None:
            return self.audit_timeout_seconds
        return self.search_deadline_seconds * policy.AUDIT_TIMEOUT_SHARE


def load_broker_config(path: Path, env: Mapping[str, str]) -> BrokerConfig:
    """Read the broker's config; raise ConfigError naming the file and key on any problem."""
    reader = Reader(path, read_toml(path, env, ENV_PREFIX), path.parent)
    deadline = reader.number("search_deadline_seconds", 2.0, minimum=0.05)
    # A search may wait up to the window before it is sent: most of its deadline must be left for the nodes.
    dispatch_window = reader.number("dispatch_window_seconds", DISPATCH_WINDOW_SECONDS, minimum=0.0)
    if dispatch_window > deadline / 4:
        raise reader.fail("dispatch_window_seconds", f"at most a quarter of search_deadline_seconds ({deadline / 4:g})")
    return BrokerConfig(
        listen=reader.address("listen", "127.0.0.1:8443"),
        registry=reader.path("registry"),
        tls=read_tls(reader),
        assertion_key=reader.path("assertion_key"),
        search_deadline_seconds=deadline,
        rate_limit_per_minute=reader.integer("rate_limit_per_minute", policy.RATE_LIMIT_PER_MINUTE),
        rate_limit_per_day=reader.integer("rate_limit_per_day", policy.RATE_LIMIT_PER_DAY),
        org_rate_limit_per_minute=reader.integer("org_rate_limit_per_minute", policy.ORG_RATE_LIMIT_PER_MINUTE),
        org_rate_limit_per_day=reader.integer("org_rate_limit_per_day", policy.ORG_RATE_LIMIT_PER_DAY),
        alert_searches_per_hour=reader.integer("alert_searches_per_hour", policy.ALERT_SEARCHES_PER_HOUR),
        audit_log=_audit_location(reader),
        limits_store=_limits_store(reader),
        limits_key_prefix=reader.text("limits_key_prefix", "signpost:"),
        limits_timeout_seconds=_limits_timeout(reader, deadline),
        audit_signing_key=reader.path("audit_signing_key", "audit.key"),
        subject_key=reader.path("subject_key", "subject.key"),
        reload_interval_seconds=reader.number("reload_interval_seconds", 2.0, minimum=0.1),
        max_searches_in_flight=reader.integer("max_searches_in_flight", 64, minimum=1),
        dispatch_window_seconds=dispatch_window,
        health=_health(reader.sub("health")),
        max_body_bytes=reader.integer("max_body_bytes", 64 * 1024, minimum=1024),
        audit_timeout_seconds=_audit_timeout(reader, deadline),
        preauth_requests_per_second=reader.number(
            "preauth_requests_per_second", policy.PREAUTH_REQUESTS_PER_SECOND, minimum=0.1
        ),
        preauth_burst=reader.integer("preauth_burst", policy.PREAUTH_BURST, minimum=0),
        refusal_audit_interval_seconds=reader.number(
            "refusal_audit_interval_seconds", policy.REFUSAL_AUDIT_INTERVAL_SECONDS, minimum=1.0
        ),
        limits=_limits(reader.sub("limits")),
        patterns=_patterns(reader.sub("patterns")),
        log_level=reader.text("log_level", "info"),
        portal=read_portal(reader.sub("portal")),
        portal_sessions=read_sessions(reader.sub("portal")),
    )


def _audit_timeout(reader: Reader, deadline: float) -> float:
    """The first audit entry must commit well inside the deadline: the nodes need most of it."""
    timeout = reader.number("audit_timeout_seconds", deadline * policy.AUDIT_TIMEOUT_SHARE, minimum=0.001)
    if timeout > deadline / 2:
        raise reader.fail("audit_timeout_seconds", f"at most half of search_deadline_seconds ({deadline / 2:g})")
    return timeout


def _audit_location(reader: Reader) -> str:
    """A postgresql:// URL as given; anything else is a SQLite path relative to the config file."""
    value = reader.text("audit_log", "audit.sqlite3")
    return value if value.startswith(("postgresql://", "postgres://")) else str(reader.path("audit_log", value))


def _limits_store(reader: Reader) -> str:
    """``memory`` or a Redis URL; never memory by default for replicas (a PostgreSQL audit log)."""
    value = reader.text("limits_store", MEMORY)
    if value != MEMORY and not value.startswith(REDIS_SCHEMES):
        raise reader.fail("limits_store", '"memory" or a redis://, rediss:// or unix:// URL')
    if "limits_store" not in reader.table and _audit_location(reader).startswith(("postgresql://", "postgres://")):
        # A shared audit log means several replicas: each keeping its own windows would give a practitioner
        # the limit once per replica. Saying "memory" explicitly is allowed (one broker on PostgreSQL).
        raise reader.fail(
            "limits_store",
            'set when audit_log is PostgreSQL (replicas share it): a redis:// URL, or "memory" for exactly one broker',
        )
    return value


def _limits_timeout(reader: Reader, deadline: float) -> float:
    # Unset, it is 0.25 s or a quarter of a shorter deadline: only a value someone wrote can be refused.
    timeout = reader.number("limits_timeout_seconds", min(0.25, deadline / 4), minimum=0.01)
    if timeout > deadline / 4:
        raise reader.fail("limits_timeout_seconds", f"at most a quarter of search_deadline_seconds ({deadline / 4:g})")
    return timeout


def _limits(reader: Reader) -> DoorLimits:
    d = DoorLimits()
    return DoorLimits(
        header_read_timeout_seconds=reader.number(
            "header_read_timeout_seconds", d.header_read_timeout_seconds, minimum=0.1
        ),
        body_read_timeout_seconds=reader.number("body_read_timeout_seconds", d.body_read_timeout_seconds, minimum=0.1),
        tls_handshake_timeout_seconds=reader.number(
            "tls_handshake_timeout_seconds", d.tls_handshake_timeout_seconds, minimum=0.1
        ),
        max_connections_per_address=reader.integer(
            "max_connections_per_address", d.max_connections_per_address, minimum=1
        ),
        max_connections=reader.integer("max_connections", d.max_connections, minimum=1),
    )


def _patterns(reader: Reader) -> PatternSettings:
    d = PatternSettings()
    return PatternSettings(
        dates_per_name=reader.integer("dates_per_name", d.dates_per_name),
        names_per_date=reader.integer("names_per_date", d.names_per_date),
        names_per_home=reader.integer("names_per_home", d.names_per_home),
        window_seconds=reader.number("window_seconds", d.window_seconds, minimum=60.0),
        max_tracked=reader.integer("max_tracked", d.max_tracked, minimum=100),
    )


def _health(reader: Reader) -> HealthSettings:
    d = HealthSettings()
    return HealthSettings(
        poll_interval=reader.number("poll_interval_seconds", d.poll_interval, minimum=0.05),
        poll_timeout=reader.number("poll_timeout_seconds", d.poll_timeout, minimum=0.05),
        describe_interval=reader.number("describe_interval_seconds", d.describe_interval),
        failure_threshold=reader.integer("failure_threshold", d.failure_threshold, minimum=1),
        reset_after=reader.number("reset_after_seconds", d.reset_after, minimum=0.1),
        slow_ms=reader.number("slow_ms", d.slow_ms, minimum=1),
        probation_timeout=reader.number("probation_timeout_seconds", d.probation_timeout, minimum=0.01),
    )
