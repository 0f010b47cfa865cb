"""Signing in through a real OpenID provider: the certified `oidc-provider` (npm) under Node, two of them.

Leeds and Kent each run their own provider (their own issuer, keys and client registration). The tests
start a sign-in with OidcSignIn.begin, walk the provider's login and consent pages over HTTP as a browser
would, and hand its redirect back to OidcSignIn.complete: discovery, PKCE, the token endpoint (Basic at
Leeds, client_secret_post at Kent), the JWKS and every token check are the real ones on both sides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.portal.oidc import OidcSignIn
from broker.portal.signin import PortalUser, SignInError
from certs.identity import Role
from tests.portal.op.harness import (
    REDIRECT_URI,
    Providers,
    authority,
    begin,
    callback,
    drive_login,
    portal_config,
    providers_fixture,  # noqa: F401  (the `providers` fixture)
)


@pytest.fixture
async def sign_in(providers: Providers) -> AsyncIterator[OidcSignIn]:
    config = portal_config(
        authority("LEEDS", providers.leeds.issuer, providers.secret_file),
        authority("KENT", providers.kent.issuer, providers.secret_file, token_auth_method="client_secret_post"),
    )
    sign_in = OidcSignIn(config)
    yield sign_in
    await sign_in.close()


async def sign_in_as(sign_in: OidcSignIn, code: str, login: str) -> PortalUser:
    handle, location, _ = await begin(sign_in, code)
    back = await drive_login(location, login, REDIRECT_URI)
    return await sign_in.complete(callback(handle, query_of(back)))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_a_practitioner_signs_in_through_their_own_authority(sign_in: OidcSignIn, providers: Providers) -> None:
    user = await sign_in_as(sign_in, "LEEDS", "pat")

    assert user.authority == "LEEDS"
    assert user.identity.role is Role.PRACTITIONER
    assert user.identity.organisation == "Leeds Council"  # from the issuer: the token's "KENT" claim is ignored
    assert user.identity.id == f"{providers.leeds.issuer}#pat"
    assert (user.identity.name, user.identity.email) == ("Pat", "pat@leeds.example")


async def test_another_authority_signs_in_with_client_secret_post(sign_in: OidcSignIn, providers: Providers) -> None:
    user = await sign_in_as(sign_in, "KENT", "kim")
    assert (user.authority, user.identity.organisation, user.issuer) == ("KENT", "Kent Council", providers.kent.issuer)


async def test_an_auditor_group_grants_the_auditor_role(sign_in: OidcSignIn) -> None:
    assert (await sign_in_as(sign_in, "LEEDS", "ada")).identity.role is Role.AUDITOR


async def test_an_account_in_no_signpost_group_is_refused(sign_in: OidcSignIn) -> None:
    with pytest.raises(SignInError, match="not allowed to use Signpost"):
        await sign_in_as(sign_in, "LEEDS", "nobody")


async def test_a_code_redeemed_with_another_pkce_verifier_is_refused_by_the_provider(sign_in: OidcSignIn) -> None:
    """Someone who intercepted the code (but not the verifier) cannot redeem it."""
    handle, location, _ = await begin(sign_in, "LEEDS")
    back = await drive_login(location, "pat", REDIRECT_URI)
    pending = sign_in.pending._entries[handle]
    sign_in.pending._entries[handle] = replace(pending, verifier=pending.verifier[::-1])

    with pytest.raises(SignInError, match="did not accept"):
        await sign_in.complete(callback(handle, query_of(back)))


async def test_a_real_return_with_the_wrong_state_is_refused(sign_in: OidcSignIn) -> None:
    handle, location, _ = await begin(sign_in, "LEEDS")
    back = query_of(await drive_login(location, "pat", REDIRECT_URI))
    with pytest.raises(SignInError, match="did not match"):
        await sign_in.complete(callback(handle, back | {"state": "forged"}))


async def test_a_return_is_good_for_one_sign_in_only(sign_in: OidcSignIn) -> None:
    handle, location, _ = await begin(sign_in, "LEEDS")
    back = query_of(await drive_login(location, "pat", REDIRECT_URI))
    await sign_in.complete(callback(handle, back))
    with pytest.raises(SignInError, match="already used"):
        await sign_in.complete(callback(handle, back))


async def test_kent_s_answer_cannot_complete_a_sign_in_started_at_leeds(sign_in: OidcSignIn) -> None:
    """A user of Kent's provider, answered into a Leeds sign-in (mix-up): the issuer gives it away, and
    without it too, since Leeds's provider says it always sends one (RFC 9207), before the code is spent."""
    leeds_handle, _, leeds_query = await begin(sign_in, "LEEDS")
    _, kent_location, _ = await begin(sign_in, "KENT")
    kents = query_of(await drive_login(kent_location, "kim", REDIRECT_URI)) | {"state": leeds_query["state"]}
    with pytest.raises(SignInError, match="did not come from Leeds"):
        await sign_in.complete(callback(leeds_handle, kents))

    leeds_handle, _, leeds_query = await begin(sign_in, "LEEDS")
    _, kent_location, _ = await begin(sign_in, "KENT")
    kents = query_of(await drive_login(kent_location, "kim", REDIRECT_URI)) | {"state": leeds_query["state"]}
    del kents["iss"]
    with pytest.raises(SignInError, match="did not come from Leeds"):
        await sign_in.complete(callback(leeds_handle, kents))


async def test_the_provider_refuses_a_wrong_password(sign_in: OidcSignIn) -> None:
    """The development provider (also the demo's) checks each user's password: a wrong one never returns."""
    _, location, _ = await begin(sign_in, "LEEDS")
    with pytest.raises(AssertionError, match="did not finish"):
        await drive_login(location, "pat", REDIRECT_URI, password="not-pat-s-password", max_steps=3)
