"""The demo's development identity provider: every demo authority signs its users in through a real
OpenID provider (``signpost/devidp/provider.mjs``, panva's certified ``oidc-provider`` under Node.js),
so the portal's sign-in is the one a council's would be, checks and all.

One Node process serves one issuer per authority (an issuer belongs to one authority only: the
organisation is read from which issuer signed). Its users are the demo users: a practitioner per
authority, and an auditor and an operator at the first, all with one password made fresh at each run.
Never for production: the provider's keys and users live only as long as the demo.

Without Node.js or the npm packages, :func:`unavailable` says in one sentence how to enable it, and the
demo runs without the portal's sign-in.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from broker.portal.config import AuthorityIdp, PortalConfig
from broker.portal.paths import SIGN_IN_CALLBACK
from certs.identity import Role

DEVIDP_DIR = Path(__file__).resolve().parent / "devidp"
START_TIMEOUT_SECONDS = 30.0
GROUPS = {
    Role.PRACTITIONER: "signpost-practitioners",
    Role.AUDITOR: "signpost-auditors",
    Role.OPERATOR: "signpost-operators",
}
"""The group each role's demo users are in, and the broker's mapping of it back to the role."""


@dataclass(frozen=True)
class DemoUser:
    """An account at the development identity provider."""

    username: str
    password: str
    authority: str
    """The registry code of the authority whose identity provider holds the account."""
    role: Role
    name: str

    def description(self) -> dict[str, str]:
        """As federation.json's ``demo_users`` lists it."""
        return {"username": self.username, "password": self.password, "authority": self.authority}


def unavailable(directory: Path = DEVIDP_DIR) -> str | None:
    """One sentence on how to enable the portal's demo sign-in, or None when Node.js and its packages are here."""
    if shutil.which("node") is None:
        return f"To sign in to the portal, install Node.js 20 or later and run `npm ci` in {directory}."
    if not (directory / "node_modules" / "oidc-provider").is_dir():
        return f"To sign in to the portal, run `npm ci` in {directory} (it installs the demo's identity provider)."
    return None


def demo_users(authorities: list[tuple[str, str]], password: str) -> list[DemoUser]:
    """A practitioner per authority; an auditor and an operator at the first authority."""
    first = authorities[0][0]
    users = [
        DemoUser(f"pat.{code.lower()}", password, code, Role.PRACTITIONER, f"Pat Practitioner ({name})")
        for code, name in authorities
    ]
    users.append(DemoUser("alex.auditor", password, first, Role.AUDITOR, "Alex Auditor"))
    users.append(DemoUser("olu.operator", password, first, Role.OPERATOR, "Olu Operator"))
    return users


def free_port() -> int:
    """A loopback port free just now: the broker's, which the identity provider must know before it starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class DevIdentityProvider:
    """The running provider process and what the broker needs to trust it."""

    process: asyncio.subprocess.Process
    portal: PortalConfig
    users: list[DemoUser]

    def user(self, role: Role) -> DemoUser:
        return next(u for u in self.users if u.role is role)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _provider_settings(code: str, users: list[DemoUser], secret: str, redirect_uri: str) -> dict[str, object]:
    client = {
        "client_id": f"signpost-{code.lower()}",
        "client_secret": secret,
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    accounts = {
        u.username: {"password": u.password, "name": u.name, "groups": [GROUPS[u.role]]}
        for u in users
        if u.authority == code
    }
    return {"clients": [client], "users": accounts}


async def start_dev_identity_provider(
    workdir: Path, authorities: list[tuple[str, str]], public_url: str
) -> DevIdentityProvider:
    """Start one provider per authority (one process) for a portal at ``public_url``; RuntimeError if it
    does not come up within START_TIMEOUT_SECONDS."""
    directory = workdir / "devidp"
    directory.mkdir(parents=True, exist_ok=True)
    users = demo_users(authorities, secrets.token_urlsafe(9))
    secret_file = directory / "client.secret"
    secret = secrets.token_urlsafe(32)
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    redirect = f"{public_url.rstrip('/')}{SIGN_IN_CALLBACK}"
    config_file = directory / "providers.json"
    settings = [_provider_settings(code, users, secret, redirect) for code, _ in authorities]
    config_file.write_text(json.dumps({"providers": settings}))
    config_file.chmod(0o600)  # it holds the demo users' password
    process = await asyncio.create_subprocess_exec(
        "node",
        str(DEVIDP_DIR / "provider.mjs"),
        str(config_file),
        cwd=DEVIDP_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        issuers = await _issuers(process)
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    idps = tuple(
        AuthorityIdp(
            code=code,
            name=name,
            organisation=name,
            issuer=issuer,
            client_id=f"signpost-{code.lower()}",
            client_secret_file=secret_file,
            roles=dict(GROUPS),
            scopes=("openid", "profile", "email", "groups"),
        )
        for (code, name), issuer in zip(authorities, issuers, strict=True)
    )
    return DevIdentityProvider(process, PortalConfig(public_url=public_url, authorities=idps), users)


async def _issuers(process: asyncio.subprocess.Process) -> list[str]:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_SECONDS)
    except TimeoutError:
        raise RuntimeError("the development identity provider did not start in time") from None
    if not line:
        raise RuntimeError(f"the development identity provider exited ({await process.wait()})")
    issuers = json.loads(line)["issuers"]
    return [str(i) for i in issuers]
