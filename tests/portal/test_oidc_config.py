"""The ``[portal]`` table of the broker's TOML: each authority's identity provider, and what a bad one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import load_broker_config
from certs.identity import Role
from core.config import ConfigError

BROKER = 'registry = "r.json"\nassertion_key = "k"\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n'
PORTAL = """
[portal]
public_url = "https://signpost.example.gov.uk"

[[portal.authorities]]
code = "LEEDS"
name = "Leeds City Council"
issuer = "https://login.microsoftonline.com/tenant-leeds/v2.0"
client_id = "leeds-client"
client_secret_file = "leeds.secret"
role_claim = "roles"
[portal.authorities.roles]
practitioner = "Signpost.Practitioner"
auditor = "Signpost.Auditor"

[[portal.authorities]]
code = "KENT"
issuer = "https://kent-idp.example/"
client_id = "kent-client"
client_secret_file = "kent.secret"
token_auth_method = "client_secret_post"
roles = { operator = "signpost-operators" }
"""


@pytest.fixture
def write(tmp_path: Path):  # type: ignore[no-untyped-def]
    for name in ("leeds.secret", "kent.secret"):
        (tmp_path / name).write_text("not-in-the-toml")

    def write(text: str) -> Path:
        path = tmp_path / "broker.toml"
        path.write_text(BROKER + text)
        return path

    return write


def test_the_portal_table_lists_each_authority_s_identity_provider(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    portal = load_broker_config(write(PORTAL), {}).portal

    assert portal is not None
    assert portal.redirect_uri == "https://signpost.example.gov.uk/portal/sign-in/callback"
    leeds, kent = portal.authorities
    assert (leeds.code, leeds.name, leeds.organisation) == ("LEEDS", "Leeds City Council", "Leeds City Council")
    assert leeds.roles == {Role.PRACTITIONER: "Signpost.Practitioner", Role.AUDITOR: "Signpost.Auditor"}
    assert leeds.role_claim == "roles" and leeds.token_auth_method == "client_secret_basic"
    assert leeds.discovery == "https://login.microsoftonline.com/tenant-leeds/v2.0/.well-known/openid-configuration"
    assert leeds.client_secret_file == tmp_path / "leeds.secret"
    assert (kent.name, kent.roles, kent.token_auth_method) == (
        "KENT",
        {Role.OPERATOR: "signpost-operators"},
        "client_secret_post",
    )
    assert kent.discovery == "https://kent-idp.example/.well-known/openid-configuration"
    assert "not-in-the-toml" not in repr(portal)


def test_no_portal_table_means_no_portal_sign_in(write) -> None:  # type: ignore[no-untyped-def]
    assert load_broker_config(write(""), {}).portal is None


def test_the_public_address_can_come_from_the_environment(write) -> None:  # type: ignore[no-untyped-def]
    env = {"SIGNPOST_BROKER_PORTAL__PUBLIC_URL": "https://other.example"}
    portal = load_broker_config(write(PORTAL), env).portal
    assert portal is not None and portal.redirect_uri == "https://other.example/portal/sign-in/callback"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('issuer = "https://kent-idp.example/"', 'issuer = "http://kent-idp.example/"'),
            "issuer' must be an https://",
        ),
        (('code = "KENT"', 'code = "LEEDS"'), "each authority listed once"),
        (
            ('https://kent-idp.example/"', 'https://login.microsoftonline.com/tenant-leeds/v2.0"'),
            "one issuer per authority",
        ),
        (('client_secret_file = "kent.secret"', 'client_secret_file = "missing.secret"'), "does not exist"),
        (("operator = ", "node-admin = "), "one of the roles practitioner, auditor, operator"),
        (('auditor = "Signpost.Auditor"', 'auditor = "Signpost.Practitioner"'), "two roles by the same value"),
        (('"client_secret_post"', '"private_key_jwt"'), "client_secret_basic or client_secret_post"),
        (("[portal.authorities.roles]", "[portal.authorities.nothing]"), "must map at least one role"),
        (
            ('public_url = "https', 'clock_leeway_seconds = 3600\npublic_url = "https'),
            "clock_leeway_seconds' must be at most 300",
        ),
    ],
)
def test_a_bad_portal_table_fails_with_one_sentence_naming_the_key(write, change, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message) as caught:
        load_broker_config(write(PORTAL.replace(*change)), {})
    assert "broker.toml" in str(caught.value) and "not-in-the-toml" not in str(caught.value)


def test_an_identity_provider_on_loopback_may_use_http(write) -> None:  # type: ignore[no-untyped-def]
    text = PORTAL.replace('"https://kent-idp.example/"', '"http://127.0.0.1:9000"')
    portal = load_broker_config(write(text), {}).portal
    assert portal is not None and portal.authorities[1].issuer == "http://127.0.0.1:9000"


def test_the_readme_s_worked_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Signing in (OpenID Connect)") :]
    start = section.index("```toml\n") + len("```toml\n")
    example = section[start : section.index("```\n", start)]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("leeds-oidc.secret", "ltht-cis2.secret"):
        (secrets / name).write_text("x")
    path = tmp_path / "broker.toml"
    path.write_text(BROKER + example.replace("/etc/signpost/secrets/", f"{secrets}/"))

    portal = load_broker_config(path, {}).portal
    assert portal is not None and [a.code for a in portal.authorities] == ["LEEDS", "LTHT"]
    assert portal.authorities[1].role_claim == "nhsid_nrbac_roles.role_code"


def test_session_timeouts_default_to_15_minutes_idle_and_8_hours(write) -> None:  # type: ignore[no-untyped-def]
    sessions = load_broker_config(write(PORTAL), {}).portal_sessions
    assert (sessions.idle_seconds, sessions.absolute_seconds, sessions.max_sessions) == (900, 8 * 3600, 10_000)


def test_session_settings_are_read_from_the_portal_table(write) -> None:  # type: ignore[no-untyped-def]
    text = PORTAL.replace("[portal]\n", "[portal]\nidle_minutes = 5\nabsolute_hours = 2\nmax_sessions = 50\n", 1)
    sessions = load_broker_config(write(text), {}).portal_sessions
    assert (sessions.idle_seconds, sessions.absolute_seconds, sessions.max_sessions) == (300, 7200, 50)


def test_an_idle_timeout_longer_than_a_session_may_live_fails_at_start_up(write) -> None:  # type: ignore[no-untyped-def]
    text = PORTAL.replace("[portal]\n", "[portal]\nidle_minutes = 90\nabsolute_hours = 1\n", 1)
    with pytest.raises(ConfigError, match="idle_minutes"):
        load_broker_config(write(text), {})


async def test_the_broker_keeps_its_portal_sessions_as_configured(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from broker.app import create_app
    from broker.appkeys import SESSIONS, SIGN_IN
    from broker.portal.oidc import OidcSignIn
    from certs.assertions import create_assertion_key

    config = load_broker_config(write(PORTAL.replace("[portal]\n", "[portal]\nidle_minutes = 5\n", 1)), {})
    config = replace(config, assertion_key=create_assertion_key(tmp_path)[0])
    app = create_app(config, fanout=object(), audit=object(), revocations=object())  # type: ignore[arg-type]
    assert app[SESSIONS].settings.idle_seconds == 300
    assert isinstance(app[SIGN_IN], OidcSignIn)  # [portal] lists identity providers: they sign people in
