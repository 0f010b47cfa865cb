"""Node agent configuration: a TOML file plus ``SIGNPOST_NODE_*`` environment overrides.

Example (top-level keys must come before the first table)::

    listen = "0.0.0.0:50051"
    store = "/var/lib/signpost/leeds.sqlite3"
    metrics_listen = "127.0.0.1:9464"    # optional: Prometheus metrics over plain HTTP; off if absent

    [authority]
    code = "LEEDS"
    name = "Leeds"

    [tls]
    ca = "/etc/signpost/ca.pem"
    cert = "/etc/signpost/node.pem"
    key = "/etc/signpost/node.key"
    crl = "/etc/signpost/crl.pem"        # optional

    [retention]
    journal_days = 400                   # optional: the journal (access log) is pruned after this
    disclose_ended_years = 6             # optional: involvements ended longer ago are not disclosed

    [front_door]                         # recommended: what a `possible` gives instead of a named worker
    service = "Children's Services Front Door"
    team = "Duty and Advice Team"        # optional
    phone = "0306 999 0113"              # phone or email (or both) required
    email = "frontdoor@leeds.example"

    [notify]                             # optional: push alerts and a digest (node.notify)
    smtp_host = "smtp.leeds.example"
    from_address = "signpost@leeds.example"
    safeguarding_to = ["dso@leeds.example"]

``broker_public_keys`` (top level, a list) names the broker's Ed25519 assertion keys.

``[source]`` (optional) reads the records from the authority's own database instead of a CSV
import: see :class:`SourceConfig` and the README's "Connecting a node to your database".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from certs.identity import AUTHORITY_CODE
from certs.tls import TLSConfig, read_tls
from core.config import ConfigError, Reader, read_toml
from node.matching import MatchSettings
from node.policy import ANSWER_FLOOR_SECONDS, DISCLOSE_ENDED_YEARS, FrontDoor
from node.records import COLUMNS

ENV_PREFIX = "SIGNPOST_NODE_"
JOURNAL_DAYS = 400
"""Default journal retention: a year of access log for the authority's annual safeguarding audit and
for a subject access request about that year (answered within a month), with a month's margin.
An authority sets its own records retention schedule with ``[retention] journal_days``."""


@dataclass(frozen=True)
class NotifyConfig:
    """``[notify]``: push safeguarding alerts, the access-log digest and (optionally) practitioner notices.

    Either or both channels: email (``smtp_host`` set) and a signed webhook (``webhook_url`` set).
    """

    smtp_host: str = ""
    """The authority's mail relay; empty sends no email."""
    smtp_port: int = 587
    """587, the submission port, where STARTTLS is expected."""
    starttls: bool = True
    """Upgrade to TLS before anything is sent; ``false`` is accepted only for a relay on loopback."""
    smtp_ca: Path | None = None
    """CA bundle to verify the relay's certificate by; default the system's trust store."""
    username: str = ""
    """SMTP login, if the relay asks for one (then ``password_file`` too)."""
    password_file: Path | None = field(default=None, repr=False)
    """A file holding only the SMTP password: never in the TOML, read when sending, never logged."""
    from_address: str = ""
    safeguarding_to: tuple[str, ...] = ()
    """The designated safeguarding officer's mailbox(es): each shielded-child alert at once."""
    digest_to: tuple[str, ...] = ()
    """Who gets the access-log digest (e.g. the information governance team)."""
    digest_interval_hours: float = 24.0
    """One digest of the journal's matches and alerts per this many hours; none when there were none."""
    webhook_url: str = ""
    """Alerts and digests are also POSTed here as JSON, signed with ``webhook_secret_file``."""
    webhook_secret_file: Path | None = field(default=None, repr=False)
    """A file holding the webhook's HMAC-SHA256 secret (required with ``webhook_url``)."""
    notify_practitioners: bool = False
    """Tell the practitioners a ``match`` disclosed that another professional is looking for the same child."""
    poll_seconds: float = 5.0
    """How often the outbox is checked besides being woken by each new journal row."""
    retry_pause_seconds: float = 60.0
    """After a channel failed all its retries, wait this long (doubling to 15 minutes) before trying again."""

    @property
    def email(self) -> bool:
        return bool(self.smtp_host)


@dataclass(frozen=True)
class NodeConfig:
    """Everything one authority's node agent needs."""

    code: str
    """The authority's code, as in its certificate: e.g. ``LEEDS``."""
    name: str
    """The authority's display name."""
    listen: tuple[str, int]
    """Host and port the gRPC server binds; port 0 picks a free one."""
    store: Path
    """The node's SQLite database of records."""
    tls: TLSConfig
    broker_public_keys: tuple[Path, ...]
    """Ed25519 public keys whose signed query assertions this node accepts (more than one during rotation)."""
    max_message_bytes: int = 64 * 1024
    """Largest gRPC message accepted: a Match request is a few hundred bytes."""
    answer_floor_seconds: float = ANSWER_FLOOR_SECONDS
    """Every Match answer takes at least this long, so a shielded match times like no match (:mod:`node.policy`)."""
    matching: MatchSettings = MatchSettings()
    """Bands: ``[matching] match_threshold`` (default 0.95) and ``possible_threshold`` (0.30)."""
    refresh_interval_seconds: float = 10.0
    """How often the node checks its store for a new import to swap in."""
    max_connection_age_seconds: float = 300.0
    """Connections older than this are closed (after a grace), so rotated certificates take over."""
    journal_path: Path | None = None
    """The node's journal of searches (access log, safeguarding alerts); default beside the store."""
    journal_days: int = JOURNAL_DAYS
    """Journal rows (and no-match counts) older than this many days are deleted; unseen alerts are kept."""
    disclose_ended_years: int | None = None
    """``[retention] disclose_ended_years``: involvements that ended longer ago than this are not loaded and are
    swept from the store, and a record with none left is gone (:mod:`node.policy` rule 6). A node's TOML
    defaults to :data:`node.policy.DISCLOSE_ENDED_YEARS` (6); None, possible only in code, keeps everything:
    the demo, benchmarks and tests run over synthetic histories whose ground truth counts every involvement."""
    front_door: FrontDoor | None = None
    """``[front_door]``: the authority's MASH or duty line, all a ``possible`` discloses (:mod:`node.policy`).
    None when not configured: the node still serves, warns at start-up, and a possible names the authority only."""
    metrics_listen: tuple[str, int] | None = None
    """Host and port of the plain-HTTP Prometheus endpoint (node.metrics); None (the default) serves none.
    Counts only, but they include safeguarding alerts: bind loopback or the authority's monitoring network."""
    log_level: str = "info"
    notify: NotifyConfig | None = None
    """``[notify]``: who is told of alerts and sent the access-log digest (:mod:`node.notify`); None sends nothing."""
    source: SourceConfig | None = None
    """``[source]``: load the records from the authority's database at start-up and every ``refresh_seconds``."""

    @property
    def journal(self) -> Path:
        return self.journal_path or self.store.with_name(self.store.stem + ".journal.sqlite3")


def load_node_config(path: Path, env: Mapping[str, str]) -> NodeConfig:
    """Read a node's config; raise ConfigError naming the file and key on any problem."""
    reader = Reader(path, read_toml(path, env, ENV_PREFIX), path.parent)
    authority = reader.sub("authority")
    code = authority.text("code")
    if not AUTHORITY_CODE.match(code):
        raise ConfigError(f"{path}: key 'authority.code' must be 2-32 of A-Z, 0-9 and '-'")
    return NodeConfig(
        code=code,
        name=authority.text("name"),
        listen=reader.address("listen", "127.0.0.1:50051"),
        store=reader.path("store"),
        tls=read_tls(reader),
        broker_public_keys=reader.paths("broker_public_keys"),
        max_message_bytes=reader.integer("max_message_bytes", 64 * 1024, minimum=1024),
        journal_path=reader.optional_path("journal"),
        answer_floor_seconds=reader.number("answer_floor_ms", ANSWER_FLOOR_SECONDS * 1000) / 1000,
        refresh_interval_seconds=reader.number("refresh_interval_seconds", 10.0, minimum=0.1),
        matching=_matching(reader.sub("matching")),
        max_connection_age_seconds=reader.number("max_connection_age_seconds", 300.0, minimum=1.0),
        journal_days=reader.sub("retention").integer("journal_days", JOURNAL_DAYS, minimum=1),
        disclose_ended_years=_disclose_ended_years(reader),
        front_door=_front_door(reader),
        metrics_listen=reader.address("metrics_listen") if "metrics_listen" in reader.table else None,
        log_level=reader.text("log_level", "info"),
        notify=_notify(reader),
        source=_source(reader, env),
    )


DATE_FIELDS = ("date_of_birth", "involvement_start", "involvement_end")


@dataclass(frozen=True)
class SourceConfig:
    """``[source]``: where a node reads its authority's records, and how the columns map (contract section 5).

    The password is never in the TOML: it comes from ``password_file`` or ``password_env`` and is kept
    out of ``repr`` so that no log line or traceback that prints the config shows it.
    """

    url: str
    """SQLAlchemy database URL without a password, e.g. ``postgresql://signpost_reader@db:5432/cms``."""
    query: str
    """The SQL that returns one row per involvement (``view = "name"`` becomes ``SELECT * FROM name``)."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """Signpost field (contract section 3) = the source's column; unmapped fields read a same-named column."""
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per field, source value = Signpost value (``[source.values.sex] "1" = "M"``); others pass unchanged."""
    password: str = field(default="", repr=False)
    refresh_seconds: float = 300.0
    """How often the node reloads from the source while serving."""
    change_column: str = ""
    """Optional: a column that grows whenever any of a record's rows changes (``updated_at``, a rowversion, a
    sequence). With it, loads between full ones fetch only the records with a row changed since the last load."""
    full_refresh_seconds: float = 3600.0
    """With ``change_column``: how often a full load reconciles, removing records deleted or withdrawn at source."""
    date_format: str = ""
    """``strptime`` format of dates the source gives as text (``%d/%m/%Y``); dates as DATE columns need none."""
    other_names_delimiter: str = ";"
    """What separates several other names in the ``other_names`` column."""
    other_names_query: str = ""
    """Optional: SQL returning a record's other names from a table of their own, one name a row, in two
    columns: the record id (as ``query`` gives it) and the name. Added to any ``other_names`` column's."""
    connect_timeout_seconds: float = 15.0
    query_timeout_seconds: float = 600.0
    """A load that takes longer is abandoned (the node keeps its last good data) and retried."""
    retry_attempts: int = 4
    """Tries per refresh when the source is unavailable, with exponential backoff between them."""
    retry_initial_seconds: float = 5.0


def _disclose_ended_years(reader: Reader) -> int:
    return reader.sub("retention").integer("disclose_ended_years", DISCLOSE_ENDED_YEARS, minimum=1)


def load_disclose_ended_years(path: Path, env: Mapping[str, str]) -> int:
    """Only ``[retention] disclose_ended_years`` (default 6) of a node's config, for ``check-source``."""
    return _disclose_ended_years(Reader(path, read_toml(path, env, ENV_PREFIX), path.parent))


def load_source_config(path: Path, env: Mapping[str, str]) -> SourceConfig:
    """Only the ``[source]`` tables of a node's config (``signpost node check-source``); the rest may be absent."""
    reader = Reader(path, read_toml(path, env, ENV_PREFIX), path.parent)
    source = _source(reader, env)
    if source is None:
        raise ConfigError(f"{path}: no [source] table: nothing to check")
    return source


def _source(reader: Reader, env: Mapping[str, str]) -> SourceConfig | None:
    if "source" not in reader.table:
        return None
    table = reader.sub("source")
    url = table.text("url")
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # sqlalchemy's ArgumentError, or a bad port: the message would echo the URL
        raise table.fail("url", "a database URL such as postgresql://reader@host:5432/cms") from None
    if parsed.password is not None:
        raise table.fail("url", "a URL without a password (use source.password_file or source.password_env)")
    return SourceConfig(
        url=url,
        query=_source_query(table),
        columns=_source_columns(table),
        values=_source_values(table),
        password=_source_password(table, env),
        refresh_seconds=table.number("refresh_seconds", 300.0, minimum=1.0),
        change_column=_optional_text(table, "change_column"),
        full_refresh_seconds=table.number("full_refresh_seconds", 3600.0, minimum=1.0),
        date_format=_optional_text(table, "date_format"),
        other_names_delimiter=table.text("other_names_delimiter", ";"),
        other_names_query=_optional_text(table, "other_names_query"),
        connect_timeout_seconds=table.number("connect_timeout_seconds", 15.0, minimum=1.0),
        query_timeout_seconds=table.number("query_timeout_seconds", 600.0, minimum=1.0),
        retry_attempts=table.integer("retry_attempts", 4, minimum=1),
        retry_initial_seconds=table.number("retry_initial_seconds", 5.0, minimum=0.0),
    )


def _source_query(table: Reader) -> str:
    query, view = table.table.get("query"), table.table.get("view")
    if (query is None) == (view is None):
        raise table.fail("query", "set, or 'source.view' set (one of them, not both)")
    if query is not None:
        return table.text("query")
    name = table.text("view")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?", name):
        raise table.fail("view", "a view name such as signpost_children_v or cms.signpost_children_v")
    return f"SELECT * FROM {name}"


def _source_columns(table: Reader) -> dict[str, str]:
    columns = table.sub("columns")
    for name in columns.table:
        if name not in COLUMNS:
            raise columns.fail(name, f"one of Signpost's fields ({', '.join(COLUMNS)})")
    return {name: columns.text(name) for name in columns.table}


def _source_values(table: Reader) -> dict[str, dict[str, str]]:
    """``[source.values.<field>]``: TOML true/false are accepted for flags and stored as "true"/"false"."""
    values = table.sub("values")
    mapped: dict[str, dict[str, str]] = {}
    for name in values.table:
        if name not in COLUMNS:
            raise values.fail(name, "a table for a Signpost field such as sex, shielded or sensitive")
        pairs = values.sub(name)
        mapped[name] = {}
        for key, value in pairs.table.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str):
                raise pairs.fail(key, 'a string (or true/false for a flag), e.g. "1" = "M"')
            mapped[name][key] = value
    return mapped


def _optional_text(table: Reader, key: str) -> str:
    return table.text(key) if key in table.table else ""


def _source_password(table: Reader, env: Mapping[str, str]) -> str:
    """The password, from a file or an environment variable; the messages never include it."""
    if "password" in table.table:
        raise table.fail(
            "password", "absent: the password never goes in the TOML (source.password_file or password_env)"
        )
    file, var = table.table.get("password_file"), table.table.get("password_env")
    if file is not None and var is not None:
        raise table.fail("password_file", "set alone: set source.password_file or source.password_env, not both")
    if file is not None:
        path = table.path("password_file")
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise table.fail("password_file", f"a readable file ({path}: {type(exc).__name__})") from None
    if var is not None:
        name = table.text("password_env")
        if not env.get(name):
            raise table.fail("password_env", f"the name of a set environment variable ({name} is not set)")
        return env[name]
    return ""


# A UK or international number as written for people: 7 to 15 digits with spaces, brackets and hyphens,
# perhaps a leading +. Anything else (a name, "ext. 4") would give the practitioner no way in.
_PHONE = re.compile(r"\+?[0-9 ()-]{7,30}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _digits(text: str) -> int:
    return sum(c.isdigit() for c in text)


def _front_door(reader: Reader) -> FrontDoor | None:
    """The ``[front_door]`` table, or None if there is none (the caller warns; see NodeConfig.front_door)."""
    if "front_door" not in reader.table:
        return None
    table = reader.sub("front_door")
    phone, email = table.table.get("phone", ""), table.table.get("email", "")
    if not isinstance(phone, str) or (phone and not (_PHONE.fullmatch(phone) and 7 <= _digits(phone) <= 15)):
        raise table.fail("phone", 'a telephone number such as "0300 555 0101"')
    if not isinstance(email, str) or (email and not _EMAIL.fullmatch(email)):
        raise table.fail("email", 'an email address such as "frontdoor@leeds.gov.uk"')
    if not phone and not email:
        raise table.fail("phone", "set, or 'front_door.email' set: a front door needs a way in")
    team = table.table.get("team", "")
    if not isinstance(team, str):
        raise table.fail("team", "a string")
    return FrontDoor(service=table.text("service"), team=team, phone=phone, email=email)


def _matching(reader: Reader) -> MatchSettings:
    """The match bands an authority may tune; the probability scale is explained in the README."""
    default = MatchSettings()
    match = reader.number("match_threshold", default.match_threshold)
    possible = reader.number("possible_threshold", default.possible_threshold)
    if not 0 < possible < match <= 1:
        raise ConfigError(
            f"{reader.source}: key 'matching.possible_threshold' and 'matching.match_threshold' "
            "must satisfy 0 < possible_threshold < match_threshold <= 1"
        )
    return MatchSettings(match_threshold=match, possible_threshold=possible)


def _addresses(table: Reader, key: str) -> tuple[str, ...]:
    """A list of email addresses; a comma-separated string too (as an environment override gives)."""
    value = table.table.get(key, [])
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and _EMAIL.fullmatch(v) for v in value):
        raise table.fail(key, 'a list of email addresses such as ["dso@leeds.gov.uk"]')
    return tuple(value)


def _flag(table: Reader, key: str, default: bool) -> bool:
    value = table.table.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):  # an environment override
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise table.fail(key, "true or false")
    return value


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _readable(table: Reader, key: str) -> Path:
    path = table.path(key)
    if not path.is_file():
        raise table.fail(key, f"a readable file ({path} is not one)")
    return path


def _notify(reader: Reader) -> NotifyConfig | None:
    """The ``[notify]`` table, or None if there is none (the node then sends nothing and says so once)."""
    if "notify" not in reader.table:
        return None
    t = reader.sub("notify")
    host = t.table.get("smtp_host", "")
    url = t.table.get("webhook_url", "")
    if not isinstance(host, str) or not isinstance(url, str):
        raise t.fail("smtp_host", "a host name (and 'notify.webhook_url' a URL)")
    if not host and not url:
        raise t.fail("smtp_host", "set, or 'notify.webhook_url' set: [notify] needs a way to send")
    starttls = _flag(t, "starttls", True)
    if host and not starttls and not _loopback(host):
        # A password and a child's safeguarding alert would cross the network in clear.
        raise t.fail("starttls", "true unless smtp_host is a loopback relay (127.0.0.1, ::1 or localhost)")
    username = t.table.get("username", "")
    if not isinstance(username, str):
        raise t.fail("username", "a string")
    if "password" in t.table:
        raise t.fail("password", "absent: put the password in a file named by 'notify.password_file'")
    if username and "password_file" not in t.table:
        raise t.fail("password_file", "set when 'notify.username' is (the password is never in the TOML)")
    safeguarding, digest = _addresses(t, "safeguarding_to"), _addresses(t, "digest_to")
    practitioners = _flag(t, "notify_practitioners", False)
    if host:
        from_address = t.text("from_address")
        if not _EMAIL.fullmatch(from_address):
            raise t.fail("from_address", 'an email address such as "signpost@leeds.gov.uk"')
        if not safeguarding and not digest and not practitioners:
            raise t.fail("safeguarding_to", "a list of addresses (or 'notify.digest_to'): email to nobody")
    else:
        from_address = ""
    if url and not (url.startswith("https://") or (url.startswith("http://") and _loopback(_url_host(url)))):
        raise t.fail("webhook_url", "an https:// URL (http:// only to a loopback address)")
    return NotifyConfig(
        smtp_host=host,
        smtp_port=t.integer("smtp_port", 587, minimum=1),
        starttls=starttls,
        smtp_ca=_readable(t, "smtp_ca") if t.table.get("smtp_ca") else None,
        username=username,
        password_file=_readable(t, "password_file") if username else None,
        from_address=from_address,
        safeguarding_to=safeguarding,
        digest_to=digest,
        digest_interval_hours=t.number("digest_interval_hours", 24.0, minimum=0.001),
        webhook_url=url,
        webhook_secret_file=_readable(t, "webhook_secret_file") if url else None,
        notify_practitioners=practitioners,
        poll_seconds=t.number("poll_seconds", 5.0, minimum=0.01),
        retry_pause_seconds=t.number("retry_pause_seconds", 60.0, minimum=0.01),
    )


def _url_host(url: str) -> str:
    return urlsplit(url).hostname or ""
