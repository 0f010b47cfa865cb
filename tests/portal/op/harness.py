"""Identity providers for the sign-in tests.

- :func:`start_provider`: the real, certified ``oidc-provider`` (npm) under Node, on loopback, one process
  per issuer, configured from a JSON file: ``signpost/devidp/provider.mjs``, the same development identity
  provider ``signpost demo`` runs; :func:`drive_login` walks its sign-in form with plain HTTP, as a browser
  would, and returns the redirect back to the broker.
- :class:`MintingIdp`: a tiny aiohttp identity provider whose token endpoint answers with whatever ID
  token the test minted (signed with a key the test holds, published in a key set the test controls), for
  the tokens no honest provider would issue: expired, wrong audience, ``alg: none``, tampered, rotated keys.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from broker.portal.config import AuthorityIdp, PortalConfig
from broker.portal.oidc import OidcSignIn
from broker.portal.paths import SIGN_IN_CALLBACK
from broker.portal.signin import FLOW_COOKIE
from certs.identity import Role

OP_DIR = Path(__file__).resolve().parents[3] / "signpost" / "devidp"
PASSWORD = "a-demo-password"
"""Every test user's password at the real providers (a wrong one is refused there)."""
START_TIMEOUT = 30.0
PUBLIC_URL = "https://portal.signpost.test"
REDIRECT_URI = f"{PUBLIC_URL}{SIGN_IN_CALLBACK}"
REQUIRE = os.environ.get("SIGNPOST_REQUIRE_NODE") == "1"


def ensure_node_modules() -> None:
    """``npm ci`` once, when node_modules is missing (scripts/test does the same); skip if there is no Node."""
    if (OP_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        if REQUIRE:
            pytest.fail("Node.js and npm are needed for the OpenID provider tests")
        pytest.skip("Node.js and npm are not installed: the real OpenID provider cannot run")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OP_DIR, check=True, timeout=300, capture_output=True)


@dataclass
class RunningProvider:
    issuer: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_provider(config_file: Path, config: Mapping[str, Any]) -> RunningProvider:
    """Start ``provider.mjs`` with ``config`` and wait (bounded) for the issuer line it prints when ready."""
    ensure_node_modules()
    config_file.write_text(json.dumps(config))
    process = subprocess.Popen(
        ["node", str(OP_DIR / "provider.mjs"), str(config_file)],
        cwd=OP_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=START_TIMEOUT):
            process.kill()
            process.wait(timeout=10)
            raise RuntimeError("the OpenID provider did not start in time")
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        raise RuntimeError(f"the OpenID provider exited with {process.returncode}")
    return RunningProvider(json.loads(line)["issuer"], process)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_PROMPT = re.compile(r'name="prompt" value="([a-z]+)"')


async def drive_login(
    authorize_url: str,
    login: str,
    redirect_uri: str,
    *,
    password: str = PASSWORD,
    max_steps: int = 12,
    jar: aiohttp.CookieJar | None = None,
    asked: list[str] | None = None,
) -> str:
    """Follow the identity provider's pages as a browser would, signing in as ``login`` (and consenting,
    should a provider ask); return the URL it finally redirects to (``redirect_uri`` with code, state, iss)."""
    url = authorize_url
    # ``jar``: a browser's cookies at the provider kept from an earlier sign-in; ``asked`` collects the
    # prompts the provider put to the user ("login", "consent").
    if jar is None:  # not `jar or ...`: an empty jar is falsy
        jar = aiohttp.CookieJar(unsafe=True)  # the provider is on 127.0.0.1, whose cookies aiohttp drops by default
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as http:
        response = await http.get(url, allow_redirects=False)
        for _ in range(max_steps):
            location = response.headers.get("Location")
            if response.status in (302, 303) and location:
                target = urljoin(url, location)
                if target.startswith(redirect_uri):
                    return target
                url = target
                response = await http.get(url, allow_redirects=False)
                continue
            page = await response.text()
            form = _FORM.search(page)
            prompt = _PROMPT.search(form.group(2)) if form else None
            if response.status != 200 or form is None or prompt is None:
                raise AssertionError(f"unexpected page from the provider: {response.status} {page[:300]}")
            data = {"prompt": prompt.group(1)}
            if asked is not None:
                asked.append(prompt.group(1))
            if prompt.group(1) == "login":
                data |= {"login": login, "password": password}
            url = urljoin(url, unescape(form.group(1)))
            response = await http.post(url, data=data, allow_redirects=False)
    raise AssertionError("the provider's sign-in did not finish")


@dataclass
class MintingIdp:
    """An identity provider whose keys and tokens the test chooses. ``url`` is its issuer."""

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "key-1"}))
    published: list[RSAKey] = field(default_factory=list)
    """The keys its JWKS endpoint serves (the public halves); by default just ``key``."""
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)
    """Raw entries added to the JWKS as they are (keys no honest provider publishes)."""
    next_token: str = ""
    """What the token endpoint answers as ``id_token``."""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_fetches: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> MintingIdp:
        if not self.published:
            self.published = [self.key]
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def mint(self, claims: Mapping[str, Any], *, key: RSAKey | None = None, alg: str = "RS256") -> str:
        signing = key or self.key
        return jwt.encode({"alg": alg, "kid": signing.kid}, dict(claims), signing, algorithms=[alg])

    def claims(self, *, client_id: str, nonce: str | None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": "user-1",
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            "name": "Pat Practitioner",
            "groups": ["signpost-practitioners"],
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        jwks = KeySet(list(self.published)).as_dict(private=False)
        return web.json_response({"keys": [*jwks["keys"], *self.extra_jwks]})

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        sent = {k: str(v) for k, v in form.items()}
        self.token_requests.append(sent | {"authorization": request.headers.get("Authorization", "")})
        return web.json_response({"access_token": "at", "token_type": "Bearer", "id_token": self.next_token})


def authority(code: str, issuer: str, secret_file: Path, **overrides: Any) -> AuthorityIdp:
    """One authority's sign-in settings as a test wants them (practitioner and auditor groups mapped)."""
    settings: dict[str, Any] = {
        "code": code,
        "name": f"{code.title()} Council",
        "organisation": f"{code.title()} Council",
        "issuer": issuer,
        "client_id": f"signpost-{code.lower()}",
        "client_secret_file": secret_file,
        "roles": {Role.PRACTITIONER: "signpost-practitioners", Role.AUDITOR: "signpost-auditors"},
        "scopes": ("openid", "profile", "email", "groups", "organisation"),
    }
    settings.update(overrides)
    return AuthorityIdp(**settings)


def portal_config(*authorities: AuthorityIdp, **overrides: Any) -> PortalConfig:
    settings: dict[str, Any] = {"public_url": PUBLIC_URL, "http_timeout_seconds": 5.0, **overrides}
    return PortalConfig(authorities=authorities, **settings)


async def begin(sign_in: OidcSignIn, code: str) -> tuple[str, str, dict[str, str]]:
    """Start signing in through ``code``: the browser's cookie handle, the redirect, and its query."""
    response = await sign_in.begin(make_mocked_request("GET", f"/portal/sign-in/start?authority={code}"), code)
    assert response.status == 302
    location = response.headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return response.cookies[FLOW_COOKIE].value, location, query


def callback(handle: str | None, query: Mapping[str, str]) -> web.Request:
    """The browser's return to the callback, carrying its sign-in cookie (or none)."""
    headers = {"Cookie": f"{FLOW_COOKIE}={handle}"} if handle else {}
    return make_mocked_request("GET", f"{SIGN_IN_CALLBACK}?{urlencode(query)}", headers=headers)


SECRET = "a-client-secret-of-some-length-0123456789"
GROUPS = {"pat": ["signpost-practitioners", "all-staff"], "ada": ["signpost-auditors"], "nobody": ["all-staff"]}


def free_port() -> int:
    """A loopback port free just now: the broker's, chosen before its identity providers start, since
    each must know the broker's redirect URI before the broker knows their issuers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Providers:
    leeds: RunningProvider
    kent: RunningProvider
    secret_file: Path
    portal_port: int
    """The port a harness broker must listen on for these providers to send browsers back to it."""

    @property
    def portal_url(self) -> str:
        return f"https://127.0.0.1:{self.portal_port}"


def _op_config(client_id: str, method: str, users: dict[str, dict[str, object]], port: int) -> dict[str, object]:
    client = {
        "client_id": client_id,
        "client_secret": SECRET,
        "redirect_uris": [REDIRECT_URI, f"https://127.0.0.1:{port}{SIGN_IN_CALLBACK}"],
        "token_endpoint_auth_method": method,
    }
    return {"clients": [client], "users": users}


@pytest.fixture(scope="module", name="providers")
def providers_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Providers]:
    """Leeds's and Kent's OpenID providers, each its own process, issuer, key and client registration."""
    directory = tmp_path_factory.mktemp("op")
    leeds_users: dict[str, dict[str, object]] = {
        # Pat's identity provider also says "KENT" in an organisation claim: it must make no difference.
        login: {
            "password": PASSWORD,
            "name": login.title(),
            "email": f"{login}@leeds.example",
            "groups": groups,
            "organisation": "KENT",
        }
        for login, groups in GROUPS.items()
    }
    kent_users: dict[str, dict[str, object]] = {
        "kim": {"password": PASSWORD, "name": "Kim", "groups": ["signpost-practitioners"]}
    }
    port = free_port()
    leeds = start_provider(
        directory / "leeds.json", _op_config("signpost-leeds", "client_secret_basic", leeds_users, port)
    )
    try:
        kent = start_provider(
            directory / "kent.json", _op_config("signpost-kent", "client_secret_post", kent_users, port)
        )
    except BaseException:
        leeds.stop()
        raise
    secret_file = directory / "client-secret"
    secret_file.write_text(SECRET)
    yield Providers(leeds, kent, secret_file, port)
    leeds.stop()
    kent.stop()
