"""The portal's sign-in configuration: which authorities' identity providers are trusted, and for what.

It lives in the broker's TOML file, beside the rest of the broker's settings, rather than in the
registry: the registry says where each authority's *node* is and is rewritten by ``signpost registry``,
while these are the broker's own credentials at each identity provider (a client id, a secret file) and
its own policy (which group grants which role). Example::

    [portal]
    public_url = "https://signpost.example.gov.uk"     # the callback is <public_url>/portal/sign-in/callback
    idle_minutes = 15                                   # sessions (optional; these are the defaults)
    absolute_hours = 8
    max_sessions = 10000

    [[portal.authorities]]
    code = "LEEDS"                                      # the registry code of the authority
    name = "Leeds City Council"                         # shown on the sign-in page
    issuer = "https://login.microsoftonline.com/<tenant-id>/v2.0"
    client_id = "6f1c...-..."
    client_secret_file = "secrets/leeds-oidc.secret"    # never the secret itself
    scopes = ["openid", "profile", "email"]
    role_claim = "groups"
    [portal.authorities.roles]
    practitioner = "signpost-practitioners"
    auditor = "signpost-auditors"

Rules it keeps: an issuer belongs to exactly one authority (the organisation a signed-in user searches
for is the authority whose issuer signed their token, so two authorities sharing an issuer would make it
ambiguous); a secret never appears in the TOML or in any error or log; identity providers are reached
over HTTPS except on loopback (the demo and the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker.portal.paths import SIGN_IN_CALLBACK
from certs.identity import AUTHORITY_CODE, Role
from core.config import ConfigError, Reader

MAPPABLE_ROLES = (Role.PRACTITIONER, Role.AUDITOR, Role.OPERATOR)
"""Roles an identity provider's claim may grant. A node-admin administers one node and signs in with a
certificate naming it; the broker itself and nodes are never people."""
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class AuthorityIdp:
    """One authority's identity provider, as the broker is registered with it."""

    code: str
    """The authority's registry code (``LEEDS``): who signed-in users search for."""
    name: str
    """Display name on the sign-in page."""
    organisation: str
    """The organisation a signed-in user's searches are counted and audited under. Defaults to ``name``;
    set it to what the authority's staff certificates carry (their O=) so API and portal share one quota."""
    issuer: str
    """The one issuer (``iss``) trusted for this authority, exactly as its discovery document states it."""
    client_id: str
    client_secret_file: Path = field(repr=False)
    """File holding the client secret; read when a code is exchanged, so a rotated secret needs no restart."""
    roles: Mapping[Role, str]
    """Role → the value of ``role_claim`` that grants it (e.g. practitioner → ``signpost-practitioners``)."""
    role_claim: str = "groups"
    """The ID token claim (a string or a list of strings) holding group names or app roles; ``outer.inner``
    reads ``inner`` of an object or of each object in a list (CIS2: ``nhsid_nrbac_roles.role_code``)."""
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    token_auth_method: str = "client_secret_basic"
    """How the broker authenticates at the token endpoint: ``client_secret_basic`` or ``client_secret_post``."""
    discovery_url: str = ""
    """Where the discovery document is; defaults to ``<issuer>/.well-known/openid-configuration``."""

    @property
    def discovery(self) -> str:
        return self.discovery_url or f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


@dataclass(frozen=True)
class SessionSettings:
    """How long a portal session lasts, and how many one broker process keeps (``[portal]``'s
    ``idle_minutes``, ``absolute_hours`` and ``max_sessions``)."""

    idle_seconds: float = 15 * 60
    """A session unused this long is over (the user signs in again)."""
    absolute_seconds: float = 8 * 60 * 60
    """A session this old is over however busy: a working day, then sign in again."""
    max_sessions: int = 10_000
    """Most sessions kept at once; beyond, expired ones and then the least recently used are dropped."""


def read_sessions(reader: Reader) -> SessionSettings:
    """``[portal]``'s session settings; every key optional, the defaults those of the issue (15 min, 8 h)."""
    idle = reader.number("idle_minutes", 15.0, minimum=1.0)
    absolute = reader.number("absolute_hours", 8.0, minimum=0.25)
    if idle * 60 > absolute * 3600:
        raise reader.fail("idle_minutes", "at most absolute_hours (a session cannot idle longer than it may live)")
    return SessionSettings(
        idle_seconds=idle * 60,
        absolute_seconds=absolute * 3600,
        max_sessions=reader.integer("max_sessions", 10_000, minimum=1),
    )


@dataclass(frozen=True)
class PortalConfig:
    """The ``[portal]`` table's sign-in settings."""

    public_url: str
    """The portal's address as browsers reach it; the redirect URI registered at every IdP is
    ``<public_url>/portal/sign-in/callback``."""
    authorities: tuple[AuthorityIdp, ...]
    sign_in_seconds: float = 600.0
    """How long a started sign-in may take before its state, nonce and PKCE verifier are forgotten."""
    max_pending_sign_ins: int = 10_000
    """Most sign-ins in progress at once (the oldest is forgotten first), so abandoned ones cannot fill memory."""
    clock_leeway_seconds: int = 60
    """Tolerance for clock differences when checking a token's ``exp``, ``iat`` and ``nbf``."""
    http_timeout_seconds: float = 5.0
    """Longest any call to an identity provider (discovery, keys, token) may take."""
    discovery_max_age_seconds: float = 3600.0
    """How long a discovery document and its key set are kept before being fetched again."""
    jwks_min_refetch_seconds: float = 60.0
    """At most one key-set fetch per issuer in this interval when a token names a key not yet seen: an
    identity provider rotating its keys is followed, while forged ``kid``s cannot make the broker hammer it."""

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url.rstrip('/')}{SIGN_IN_CALLBACK}"

    def authority(self, code: str) -> AuthorityIdp | None:
        return next((a for a in self.authorities if a.code == code), None)


def read_portal(reader: Reader) -> PortalConfig | None:
    """The ``[portal]`` table's sign-in settings, or None when it lists no authorities (no portal sign-in).

    ``reader`` is the portal table's. Other keys of ``[portal]`` (the portal's sessions) are read elsewhere."""
    if "authorities" not in reader.table and "public_url" not in reader.table:
        return None
    public_url = _url(reader, "public_url")
    items = reader.table.get("authorities")
    if not isinstance(items, list) or not items or not all(isinstance(i, Mapping) for i in items):
        raise reader.fail("authorities", "a non-empty array of tables ([[portal.authorities]])")
    authorities = tuple(
        _authority(Reader(reader.source, item, reader.base, f"{reader.prefix}authorities[{i}]."))
        for i, item in enumerate(items)
    )
    _check_unique(reader, authorities)
    return PortalConfig(
        public_url=public_url,
        authorities=authorities,
        sign_in_seconds=reader.number("sign_in_seconds", 600.0, minimum=30.0),
        max_pending_sign_ins=reader.integer("max_pending_sign_ins", 10_000, minimum=10),
        clock_leeway_seconds=_leeway(reader),
        http_timeout_seconds=reader.number("http_timeout_seconds", 5.0, minimum=0.1),
        discovery_max_age_seconds=reader.number("discovery_max_age_seconds", 3600.0, minimum=1.0),
        jwks_min_refetch_seconds=reader.number("jwks_min_refetch_seconds", 60.0, minimum=0.0),
    )


def _leeway(reader: Reader) -> int:
    leeway = reader.integer("clock_leeway_seconds", 60)
    if leeway > 300:  # more would keep an expired token good for longer than the tokens themselves often live
        raise reader.fail("clock_leeway_seconds", "at most 300")
    return leeway


def _authority(reader: Reader) -> AuthorityIdp:
    code = reader.text("code")
    if not AUTHORITY_CODE.match(code):
        raise reader.fail("code", "a registry code: 2-32 of A-Z, 0-9 and '-'")
    name = reader.text("name", code)
    secret = reader.path("client_secret_file")
    if not secret.is_file():
        raise reader.fail("client_secret_file", f"a file holding the client secret ({secret} does not exist)")
    method = reader.text("token_auth_method", "client_secret_basic")
    if method not in TOKEN_AUTH_METHODS:
        raise reader.fail("token_auth_method", " or ".join(TOKEN_AUTH_METHODS))
    scopes = _strings(reader, "scopes", ["openid", "profile", "email"])
    if "openid" not in scopes:
        raise reader.fail("scopes", "a list including 'openid'")
    return AuthorityIdp(
        code=code,
        name=name,
        organisation=reader.text("organisation", name),
        issuer=_url(reader, "issuer"),
        client_id=reader.text("client_id"),
        client_secret_file=secret,
        roles=_roles(reader.sub("roles")),
        role_claim=reader.text("role_claim", "groups"),
        scopes=tuple(scopes),
        token_auth_method=method,
        discovery_url=_url(reader, "discovery_url") if reader.table.get("discovery_url") else "",
    )


def _roles(reader: Reader) -> dict[Role, str]:
    allowed = {r.value: r for r in MAPPABLE_ROLES}
    roles: dict[Role, str] = {}
    for key in reader.table:
        if key not in allowed:
            raise reader.fail(key, f"one of the roles {', '.join(allowed)}")
        roles[allowed[key]] = reader.text(key)
    table = reader.prefix.rstrip(".")
    if not roles:
        raise ConfigError(f"{reader.source}: table '{table}' must map at least one role to a claim value")
    if len(set(roles.values())) != len(roles):
        raise ConfigError(f"{reader.source}: table '{table}' grants two roles by the same value")
    return roles


def _strings(reader: Reader, key: str, default: list[str]) -> list[str]:
    value: Any = reader.table.get(key, default)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise reader.fail(key, "a non-empty list of strings")
    return list(value)


def _url(reader: Reader, key: str) -> str:
    """An https URL, or http on loopback (the demo's and the tests' identity providers)."""
    value = reader.text(key)
    if not allowed_url(value) or urlsplit(value).query or urlsplit(value).fragment:
        raise reader.fail(key, "an https:// URL without query or fragment (http:// only on 127.0.0.1 or localhost)")
    return value


def allowed_url(value: str) -> bool:
    """Whether the broker may talk to (or send a browser to) this address: https, or http on loopback."""
    parts = urlsplit(value)
    local = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    return bool(parts.hostname) and (parts.scheme == "https" or local)


def _check_unique(reader: Reader, authorities: tuple[AuthorityIdp, ...]) -> None:
    codes = [a.code for a in authorities]
    issuers = [a.issuer for a in authorities]
    if len(set(codes)) != len(codes):
        raise reader.fail("authorities", "each authority listed once (a code appears twice)")
    if len(set(issuers)) != len(issuers):
        # The organisation is read from the issuer: one issuer for two authorities would let either's staff
        # search as the other.
        raise reader.fail("authorities", "one issuer per authority (an issuer appears twice)")
