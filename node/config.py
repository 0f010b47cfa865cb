"""Node agent configuration: a TOML file plus ``SIGNPOST_NODE_*`` environment overrides.

Example (top-level keys must come before the first table)::

    listen = "0.0.0.0:50051"
    store = "/var/lib/signpost/leeds.sqlite3"

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

``broker_public_keys`` (top level, a list) names the broker's Ed25519 assertion keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from certs.identity import AUTHORITY_CODE
from certs.tls import TLSConfig, read_tls
from core.config import ConfigError, Reader, read_toml
from node.matching import MatchSettings
from node.policy import ANSWER_FLOOR_SECONDS

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
        log_level=reader.text("log_level", "info"),
    )


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
