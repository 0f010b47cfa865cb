"""ID tokens no honest identity provider would issue, each refused; and the ones that must pass.

The identity provider here is a small aiohttp server (tests/portal/op/harness.py, MintingIdp) whose
token endpoint answers with a token the test signed; the broker's side (discovery, key sets, PKCE,
state, nonce, every token check) is the real OidcSignIn. The real OpenID provider drives the happy
path and the redirect flow in test_oidc_flow.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc.jwk import RSAKey
from structlog.testing import capture_logs

from broker.portal.oidc import OidcSignIn
from broker.portal.oidc_provider import DISCOVERY_RETRY_SECONDS
from broker.portal.signin import PortalUser, SignInError
from certs.identity import Role
from tests.portal.op.harness import MintingIdp, authority, begin, callback, portal_config


@dataclass
class World:
    leeds: MintingIdp
    kent: MintingIdp
    stranger: MintingIdp
    """An identity provider no authority trusts."""
    sign_in: OidcSignIn
    monotonic: list[float]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    leeds, kent, stranger = [await MintingIdp().start() for _ in range(3)]
    monotonic = [1000.0]
    config = portal_config(authority("LEEDS", leeds.url, secret), authority("KENT", kent.url, secret))
    sign_in = OidcSignIn(config, monotonic=lambda: monotonic[0])
    yield World(leeds, kent, stranger, sign_in, monotonic)
    await sign_in.close()
    for idp in (leeds, kent, stranger):
        await idp.stop()


async def sign_in_with(world: World, token_for: Any, authority_code: str = "LEEDS") -> PortalUser:
    """Start a sign-in at ``authority_code``, have its IdP answer with ``token_for(nonce)``, and complete."""
    handle, _, query = await begin(world.sign_in, authority_code)
    idp = world.leeds if authority_code == "LEEDS" else world.kent
    idp.next_token = token_for(query["nonce"])
    return await world.sign_in.complete(callback(handle, {"code": "the-code", "state": query["state"]}))


def leeds_token(world: World, **overrides: Any) -> Any:
    return lambda nonce: world.leeds.mint(world.leeds.claims(client_id="signpost-leeds", nonce=nonce, **overrides))


async def test_a_valid_token_signs_in_with_the_organisation_of_the_issuer(world: World) -> None:
    user = await sign_in_with(world, leeds_token(world, organisation="KENT", tid="KENT"))

    assert user.authority == "LEEDS"
    assert user.identity.organisation == "Leeds Council"  # the issuer's authority, not the claims
    assert user.identity.role is Role.PRACTITIONER
    assert user.identity.id == f"{world.leeds.url}#user-1"
    assert (user.issuer, user.subject) == (world.leeds.url, "user-1")


async def test_the_code_is_exchanged_with_the_pkce_verifier_and_the_client_secret(world: World) -> None:
    handle, _, query = await begin(world.sign_in, "LEEDS")
    world.leeds.next_token = leeds_token(world)(query["nonce"])
    await world.sign_in.complete(callback(handle, {"code": "the-code", "state": query["state"]}))

    sent = world.leeds.token_requests[-1]
    digest = hashlib.sha256(sent["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]
    assert query["code_challenge_method"] == "S256"
    assert sent["code"] == "the-code" and sent["grant_type"] == "authorization_code"
    assert base64.b64decode(sent["authorization"].removeprefix("Basic ")) == b"signpost-leeds:s3cret-value"
    assert "client_secret" not in sent


async def test_the_logs_name_the_authority_and_outcome_but_no_token_code_secret_or_claim(world: World) -> None:
    secrets: list[str] = ["s3cret-value", "user-1", "pat@leeds"]
    with capture_logs() as logs:
        for n, aud in enumerate(("signpost-leeds", "someone-else")):
            handle, _, query = await begin(world.sign_in, "LEEDS")
            world.leeds.next_token = leeds_token(world, email="pat@leeds.example", aud=aud)(query["nonce"])
            secrets += [world.leeds.next_token, f"the-code-{n}", query["state"], query["nonce"], handle]
            try:
                await world.sign_in.complete(callback(handle, {"code": f"the-code-{n}", "state": query["state"]}))
            except SignInError:
                pass

    events = ["portal_sign_in_started", "portal_sign_in", "portal_sign_in_started", "portal_sign_in_refused"]
    assert [e["event"] for e in logs] == events
    assert all(e["authority"] == "LEEDS" for e in logs)
    text = repr(logs)
    assert not [secret for secret in secrets if secret in text]


async def test_a_token_from_an_untrusted_issuer_is_refused(world: World) -> None:
    stranger = world.stranger
    forged = lambda nonce: stranger.mint(stranger.claims(client_id="signpost-leeds", nonce=nonce))  # noqa: E731
    with pytest.raises(SignInError):
        await sign_in_with(world, forged)


async def test_a_token_naming_another_issuer_signed_with_a_trusted_key_is_refused(world: World) -> None:
    with pytest.raises(SignInError, match="did not come from"):
        await sign_in_with(world, leeds_token(world, iss=world.stranger.url))


async def test_another_authority_s_token_cannot_complete_this_authority_s_sign_in(world: World) -> None:
    """Kent's genuine token, for Kent's client, answered into a sign-in started at Leeds: refused."""
    kent = world.kent
    kents = lambda nonce: kent.mint(kent.claims(client_id="signpost-leeds", nonce=nonce))  # noqa: E731
    with pytest.raises(SignInError):
        await sign_in_with(world, kents)


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "someone-else"},
        {"aud": ["someone-else", "another"]},
        {"aud": ["signpost-leeds", "another"]},  # several audiences and no azp
        {"aud": ["signpost-leeds", "another"], "azp": "another"},
        {"azp": "another"},
        {"aud": None},
    ],
    ids=["other", "others", "several-no-azp", "several-wrong-azp", "wrong-azp", "missing"],
)
async def test_a_token_for_another_audience_is_refused(world: World, overrides: dict[str, Any]) -> None:
    with pytest.raises(SignInError, match="not meant for Signpost"):
        await sign_in_with(world, leeds_token(world, **overrides))


async def test_several_audiences_with_azp_naming_signpost_are_accepted(world: World) -> None:
    user = await sign_in_with(world, leeds_token(world, aud=["signpost-leeds", "another"], azp="signpost-leeds"))
    assert user.authority == "LEEDS"


async def test_an_expired_token_is_refused(world: World) -> None:
    with pytest.raises(SignInError, match="expired"):
        await sign_in_with(world, leeds_token(world, exp=1_000_000_000, iat=999_999_000))


@pytest.mark.parametrize("claim", ["iat", "nbf"])
async def test_a_token_from_the_future_is_refused(world: World, claim: str) -> None:
    later = int(time.time()) + 3600
    with pytest.raises(SignInError):
        await sign_in_with(world, leeds_token(world, **{claim: later, "exp": later + 3600}))


async def test_a_token_without_a_nonce_is_refused(world: World) -> None:
    with pytest.raises(SignInError, match="did not belong"):
        await sign_in_with(
            world, lambda nonce: world.leeds.mint(world.leeds.claims(client_id="signpost-leeds", nonce=None))
        )


async def test_a_token_with_another_sign_in_s_nonce_is_refused(world: World) -> None:
    with pytest.raises(SignInError, match="did not belong"):
        await sign_in_with(world, lambda nonce: leeds_token(world)(nonce + "x"))


async def test_a_replayed_token_and_a_replayed_callback_are_refused(world: World) -> None:
    handle, _, query = await begin(world.sign_in, "LEEDS")
    first = leeds_token(world)(query["nonce"])
    world.leeds.next_token = first
    back = {"code": "c", "state": query["state"]}
    assert (await world.sign_in.complete(callback(handle, back))).authority == "LEEDS"

    with pytest.raises(SignInError, match="already used"):  # the same return, again
        await world.sign_in.complete(callback(handle, back))
    with pytest.raises(SignInError, match="did not belong"):  # the same token, into a new sign-in
        await sign_in_with(world, lambda nonce: first)


async def test_a_state_that_does_not_match_is_refused_and_uses_up_the_sign_in(world: World) -> None:
    handle, _, query = await begin(world.sign_in, "LEEDS")
    world.leeds.next_token = leeds_token(world)(query["nonce"])
    with pytest.raises(SignInError, match="did not match"):
        await world.sign_in.complete(callback(handle, {"code": "c", "state": query["state"] + "x"}))
    with pytest.raises(SignInError, match="already used"):
        await world.sign_in.complete(callback(handle, {"code": "c", "state": query["state"]}))
    assert world.leeds.token_requests == []  # refused before the code was ever spent


async def test_a_return_without_the_browser_s_cookie_is_refused(world: World) -> None:
    """Login CSRF: an attacker's code and state, delivered to a victim's browser that never started it."""
    _, _, query = await begin(world.sign_in, "LEEDS")
    with pytest.raises(SignInError, match="expired"):
        await world.sign_in.complete(callback(None, {"code": "c", "state": query["state"]}))


async def test_a_sign_in_older_than_its_lifetime_is_refused(world: World) -> None:
    handle, _, query = await begin(world.sign_in, "LEEDS")
    world.leeds.next_token = leeds_token(world)(query["nonce"])
    world.monotonic[0] += world.sign_in.config.sign_in_seconds + 1
    with pytest.raises(SignInError, match="expired"):
        await world.sign_in.complete(callback(handle, {"code": "c", "state": query["state"]}))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_an_unsigned_token_is_refused(world: World) -> None:
    def unsigned(nonce: str) -> str:
        claims = world.leeds.claims(client_id="signpost-leeds", nonce=nonce)
        header = _b64(json.dumps({"alg": "none", "kid": "key-1"}).encode())
        return f"{header}.{_b64(json.dumps(claims).encode())}."

    with pytest.raises(SignInError, match="not signed in a way"):
        await sign_in_with(world, unsigned)


async def test_a_token_macd_with_the_public_key_is_refused(world: World) -> None:
    """HS256 keyed with the published RSA key: the classic confusion of a public key for a shared secret."""
    import hmac as hmac_

    def macd(nonce: str) -> str:
        claims = world.leeds.claims(client_id="signpost-leeds", nonce=nonce)
        header = _b64(json.dumps({"alg": "HS256", "kid": "key-1"}).encode())
        signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
        public_pem = world.leeds.key.as_pem(private=False)
        mac = hmac_.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    with pytest.raises(SignInError, match="not signed in a way"):
        await sign_in_with(world, macd)


async def test_a_tampered_token_is_refused(world: World) -> None:
    def tampered(nonce: str) -> str:
        header, payload, signature = leeds_token(world)(nonce).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["groups"] = ["signpost-auditors"]
        return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"

    with pytest.raises(SignInError, match="signature"):
        await sign_in_with(world, tampered)


async def test_a_rotated_key_is_fetched_but_not_more_than_once_a_minute(world: World) -> None:
    await sign_in_with(world, leeds_token(world))  # the key set, with key-1, is now cached
    fetches = world.leeds.jwks_fetches
    rotated = RSAKey.generate_key(2048, parameters={"kid": "key-2"})
    world.leeds.published = [world.leeds.key, rotated]
    signed_by_new = lambda nonce: world.leeds.mint(  # noqa: E731
        world.leeds.claims(client_id="signpost-leeds", nonce=nonce), key=rotated
    )

    world.monotonic[0] += 5  # within a minute of the last fetch: the unknown kid is not worth a fetch
    with pytest.raises(SignInError, match="signature"):
        await sign_in_with(world, signed_by_new)
    assert world.leeds.jwks_fetches == fetches

    world.monotonic[0] += 60
    assert (await sign_in_with(world, signed_by_new)).authority == "LEEDS"
    assert world.leeds.jwks_fetches == fetches + 1


async def test_a_shared_secret_key_in_a_published_key_set_is_never_used(world: World) -> None:
    """An "oct" key in a JWKS is readable by anyone: it is dropped, whatever the token's alg."""
    world.leeds.extra_jwks = [{"kty": "oct", "kid": "shared", "k": _b64(b"a-secret-everyone-can-read-0123")}]
    leeds = world.sign_in.config.authorities[0]
    meta = await world.sign_in.providers.metadata(leeds)
    keys = await world.sign_in.providers.key_set(leeds, meta, "shared")
    assert {k.kid for k in keys.keys} == {"key-1"}


async def test_a_made_up_kid_is_refused_after_at_most_one_fetch(world: World) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "never-published"})
    forged = lambda nonce: world.leeds.mint(  # noqa: E731
        world.leeds.claims(client_id="signpost-leeds", nonce=nonce), key=impostor
    )
    for _ in range(3):
        with pytest.raises(SignInError, match="signature"):
            await sign_in_with(world, forged)
    assert world.leeds.jwks_fetches == 1


@pytest.mark.parametrize(
    ("groups", "words"),
    [
        ([], "not allowed"),
        (["signpost-practitioners", "signpost-auditors"], "more than one"),
        ("signpost-x", "not allowed"),
    ],
)
async def test_an_account_without_exactly_one_signpost_group_is_refused(world: World, groups: Any, words: str) -> None:
    with pytest.raises(SignInError, match=words):
        await sign_in_with(world, leeds_token(world, groups=groups))


async def test_an_email_the_provider_has_not_verified_is_not_taken_as_the_users(world: World) -> None:
    verified = await sign_in_with(world, leeds_token(world, email="a.worker@leeds.gov.uk", email_verified=True))
    unsaid = await sign_in_with(world, leeds_token(world, email="a.worker@leeds.gov.uk"))
    unverified = await sign_in_with(
        world, leeds_token(world, name=None, email="chief@leeds.gov.uk", email_verified=False)
    )

    assert verified.identity.email == unsaid.identity.email == "a.worker@leeds.gov.uk"
    assert (unverified.identity.email, unverified.identity.name) == ("", "user-1")


async def test_a_single_group_string_grants_its_role(world: World) -> None:
    user = await sign_in_with(world, leeds_token(world, groups="signpost-auditors"))
    assert user.identity.role is Role.AUDITOR


async def test_a_role_can_be_read_from_a_member_of_listed_objects(world: World) -> None:
    """NHS CIS2 lists a user's roles as objects: ``nhsid_nrbac_roles: [{"role_code": ...}, ...]``."""
    leeds = world.sign_in.config.authorities[0]
    cis2 = replace(leeds, role_claim="nhsid_nrbac_roles.role_code", roles={Role.PRACTITIONER: "S8000:G8000:R8001"})
    world.sign_in.config = replace(world.sign_in.config, authorities=(cis2, *world.sign_in.config.authorities[1:]))
    roles = [
        {"person_roleid": "1", "role_code": "S0080:G0450:R5080"},
        {"person_roleid": "2", "role_code": "S8000:G8000:R8001"},
    ]
    user = await sign_in_with(world, leeds_token(world, groups=None, nhsid_nrbac_roles=roles))
    assert user.identity.role is Role.PRACTITIONER

    with pytest.raises(SignInError, match="not allowed"):
        await sign_in_with(world, leeds_token(world, groups=None, nhsid_nrbac_roles=roles[:1]))


async def test_a_discovery_document_vouching_for_another_issuer_is_refused(world: World, tmp_path: Path) -> None:
    """The document at Leeds's address says its issuer is Leeds's URL; configured as another issuer, it is
    not believed (OpenID Connect Discovery 4.3), so no sign-in can start."""
    leeds = world.sign_in.config.authorities[0]
    other = replace(leeds, issuer="https://idp.leeds.example", discovery_url=leeds.discovery)
    sign_in = OidcSignIn(portal_config(other))
    try:
        with pytest.raises(SignInError, match="cannot use"):
            await begin(sign_in, "LEEDS")
    finally:
        await sign_in.close()


async def test_a_token_answer_without_an_id_token_is_refused(world: World) -> None:
    with pytest.raises(SignInError, match="malformed"):
        await sign_in_with(world, lambda nonce: "")


async def test_an_unknown_authority_cannot_be_begun(world: World) -> None:
    with pytest.raises(SignInError, match="does not know"):
        await begin(world.sign_in, "NOWHERE")


async def test_an_identity_provider_that_is_down_is_a_plain_refusal(world: World) -> None:
    await world.kent.stop()
    with pytest.raises(SignInError, match="could not reach Kent Council"):
        await begin(world.sign_in, "KENT")


async def test_a_remembered_failure_is_a_fresh_error_for_each_sign_in(tmp_path: Path) -> None:
    """Raising the one stored exception again and again would chain each sign-in's frames (its request
    among their locals) onto that exception's traceback, kept for as long as the provider is down."""

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", failing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    url = str(server.make_url("")).rstrip("/")
    sign_in = OidcSignIn(portal_config(authority("DOWN", url, secret)), monotonic=lambda: 1000.0)
    try:
        depths, errors = [], []
        for _ in range(4):
            with pytest.raises(SignInError, match="Down Council") as caught:
                await begin(sign_in, "DOWN")
            errors.append(caught.value)
            depths.append(len(traceback.extract_tb(caught.value.__traceback__)))
        assert len({id(e) for e in errors}) == len(errors)
        assert depths[1] == depths[2] == depths[3]
    finally:
        await sign_in.close()
        await server.close()


async def test_a_failing_identity_provider_is_asked_once_while_it_is_remembered_as_down(tmp_path: Path) -> None:
    """A crowd pressing "Sign in" while their provider is down makes one call to it, not one each, and the
    provider is asked again once DISCOVERY_RETRY_SECONDS have passed."""
    asked = []

    async def failing(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=503, text="down for maintenance")

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", failing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monotonic = [1000.0]
    url = str(server.make_url("")).rstrip("/")
    sign_in = OidcSignIn(portal_config(authority("DOWN", url, secret)), monotonic=lambda: monotonic[0])
    try:
        crowd = await asyncio.gather(*(begin(sign_in, "DOWN") for _ in range(5)), return_exceptions=True)
        assert all(isinstance(e, SignInError) and "Down Council" in str(e) for e in crowd)
        assert len(asked) == 1

        monotonic[0] += DISCOVERY_RETRY_SECONDS - 1
        with pytest.raises(SignInError):
            await begin(sign_in, "DOWN")
        assert len(asked) == 1

        monotonic[0] += 2
        with pytest.raises(SignInError):
            await begin(sign_in, "DOWN")
        assert len(asked) == 2
    finally:
        await sign_in.close()
        await server.close()
