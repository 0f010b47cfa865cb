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
    journal_days = 400                   # optional

    [front_door]                         # recommended: what a `possible` gives instead of a named worker
    service = "Children's Services Front Door"
    team = "Duty and Advice Team"        # optional
    phone = "0306 999 0113"              # phone or email (or both) required
    email = "frontdoor@leeds.example"

``broker_public_keys`` (top level, a list) names the broker's Ed25519 assertion keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from certs.identity import AUTHORITY_CODE
from certs.tls import TLSConfig, read_tls
from core.config import ConfigError, Reader, read_toml
from node.matching import MatchSettings
from node.policy import ANSWER_FLOOR_SECONDS, FrontDoor

ENV_PREFIX = "SIGNPOST_NODE_"
JOURNAL_DAYS = 400
"""Default journal retention: a year of access log for the authority's annual safeguarding audit and
for a subject access request about that year (answered within a month), with a month's margin.
An authority sets its own records retention schedule with ``[retention] journal_days``."""


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
    front_door: FrontDoor | None = None
    """``[front_door]``: the authority's MASH or duty line, all a ``possible`` discloses (:mod:`node.policy`).
    None when not configured: the node still serves, warns at start-up, and a possible names the authority only."""
    metrics_listen: tuple[str, int] | None = None
    """Host and port of the plain-HTTP Prometheus endpoint (node.metrics); None (the default) serves none.
    Counts only, but they include safeguarding alerts: bind loopback or the authority's monitoring network."""
    log_level: str = "info"

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
        front_door=_front_door(reader),
        metrics_listen=reader.address("metrics_listen") if "metrics_listen" in reader.table else None,
        log_level=reader.text("log_level", "info"),
    )


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
