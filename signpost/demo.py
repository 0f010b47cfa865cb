"""``signpost demo``: a whole federation on this machine, for trying Signpost out.

Without ``--data`` it generates synthetic authorities; with ``--data DIR`` each
``DIR/<CODE>.csv`` becomes authority ``<CODE>``. It writes ``federation.json``
only once every node and the broker answer, prints a ready ``curl`` line, and
serves until SIGINT/SIGTERM. ``--check`` instead runs sample searches through
the real HTTPS API and exits 0 only if each gave the expected answer.

The practitioner portal comes up with it, signing people in through the development identity provider
(signpost.dev_identity) when Node.js and its npm packages are here; otherwise the rest still runs and one
sentence says how to enable it. ``--check`` leaves the portal out, so it stays quick.
"""

from __future__ import annotations

import asyncio
import csv
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from certs.identity import AUTHORITY_CODE, Role
from certs.tls import client_ssl_context
from core.lifecycle import stop_on_signals
from core.logs import capture_native_stderr, configure
from signpost.dev_identity import DevIdentityProvider, free_port, start_dev_identity_provider, unavailable
from signpost.federation import LocalFederation, start_local_federation, write_description

DEMO_AUTHORITIES = (
    ("LEEDS", "Leeds"),
    ("MANCHESTER", "Manchester"),
    ("KENT", "Kent"),
    ("CORNWALL", "Cornwall"),
    ("TOWER-HAMLETS", "Tower Hamlets"),
)
CHECK_PURPOSE = {"code": "child-protection-enquiry", "justification": "signpost demo --check sample search"}
# Nobody is called this: the check expects no authority to hold them.
ABSENT = {"given_name": "Quillon", "family_name": "Zyxwvut-Nobody", "date_of_birth": "2011-02-03", "sex": "M"}


@dataclass(frozen=True)
class DemoOptions:
    data: Path | None
    workdir: Path
    port: int | None
    rate_limit: int
    check: bool
    children: int = 3000
    seed: int = 1


def _authorities_from(data: Path) -> list[tuple[str, str, Path]]:
    files = sorted(data.glob("*.csv"))
    if not files:
        raise SystemExit(f"error: {data} holds no <CODE>.csv files")
    bad = [f.name for f in files if not AUTHORITY_CODE.match(f.stem)]
    if bad:
        raise SystemExit(f"error: file names must be authority codes (2-32 of A-Z, 0-9, '-'): {', '.join(bad)}")
    return [(f.stem, f.stem.replace("-", " ").title(), f) for f in files]


def _synthesise(workdir: Path, children: int, seed: int) -> list[tuple[str, str, Path]]:
    from signpost.synth import SynthConfig, generate, write

    out = workdir / "data"
    write(generate(SynthConfig(authorities=DEMO_AUTHORITIES, children=children, seed=seed)), out)
    return [(code, name, out / f"{code}.csv") for code, name in DEMO_AUTHORITIES]


def sample_subjects(authorities: list[tuple[str, str, Path]]) -> list[tuple[dict[str, str], str]]:
    """One record per authority that a searcher should find there: exact details, a disclosable contact."""
    samples = []
    for code, _, path in authorities:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                if row.get("shielded", "").lower() == "true" or row.get("sensitive", "").lower() == "true":
                    continue
                if row.get("given_name", "").lower() in ("baby", "unknown"):
                    continue
                subject = {k: row[k] for k in ("given_name", "family_name", "date_of_birth") if row.get(k)}
                if len(subject) == 3:
                    samples.append((subject, code))
                    break
    return samples


async def _post(session: aiohttp.ClientSession, url: str, subject: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{url}/v1/searches", json={"subject": subject, "purpose": CHECK_PURPOSE}) as resp:
        return resp.status, await resp.json()


async def wait_until_ready(fed: LocalFederation, *, attempts: int = 50, interval: float = 0.2) -> None:
    """Return once the broker answers and reports every node up, through the real HTTPS API."""
    context = client_ssl_context(fed.pki.ca.cert, fed.pki.users[Role.OPERATOR])
    down: list[str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for _ in range(attempts):
            try:
                async with session.get(f"{fed.broker_url}/v1/nodes") as resp:
                    nodes = (await resp.json())["nodes"]
                down = [n["code"] for n in nodes if n["status"] != "up"]
                if resp.status == 200 and not down:
                    return
            except aiohttp.ClientError:
                down = ["broker"]
            await asyncio.sleep(interval)
    raise RuntimeError(f"federation not ready: no answer from {', '.join(down)}")


async def run_checks(fed: LocalFederation, authorities: list[tuple[str, str, Path]]) -> bool:
    """Sample searches through the real API; print each and whether it gave the expected answer."""
    context = client_ssl_context(fed.pki.ca.cert, fed.pki.users[Role.PRACTITIONER])
    cases = [(s, {code}) for s, code in sample_subjects(authorities)] + [(ABSENT, set())]
    ok = True
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        for subject, expected in cases:
            status, body = await _post(session, fed.broker_url, subject)
            found = {r["authority"]["code"] for r in body.get("results", []) if r["band"] == "match"}
            full = status == 200 and body["coverage"]["answered"] == body["coverage"]["asked"]
            passed = full and (expected <= found if expected else not body["results"])
            ok &= passed
            want = ", ".join(sorted(expected)) or "no match anywhere"
            print(
                f"[{'PASS' if passed else 'FAIL'}] expected {want}: HTTP {status}, "
                f"match at {', '.join(sorted(found)) or 'none'}, "
                f"coverage {body.get('coverage', {}).get('answered')}/{body.get('coverage', {}).get('asked')}"
            )
    return ok


def curl_line(fed: LocalFederation, subject: dict[str, str]) -> str:
    users = fed.pki.users[Role.PRACTITIONER]
    body = json.dumps(
        {
            "subject": subject,
            "purpose": {"code": "child-protection-enquiry", "justification": "Strategy discussion, case 2291"},
        }
    )
    return (
        f"curl --cacert {shlex.quote(str(fed.pki.ca.cert))} --cert {shlex.quote(str(users.cert))} "
        f"--key {shlex.quote(str(users.key))} -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)} {fed.broker_url}/v1/searches"
    )


async def _wait_for_signal() -> None:
    stop = stop_on_signals()
    await stop.wait()


async def run_demo(options: DemoOptions) -> int:
    workdir = options.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "federation.json").unlink(missing_ok=True)  # never leave a stale one claiming we are up
    # Open for the life of the process, not a `with`: the native-stderr reader writes to it until exit.
    log_file = (workdir / "signpost.log").open("a", encoding="utf-8", buffering=1)
    configure("info", log_file)
    capture_native_stderr(log_file)  # gRPC's C core writes to descriptor 2: into the log, not the console
    authorities = (
        _authorities_from(options.data) if options.data else _synthesise(workdir, options.children, options.seed)
    )
    port = options.port if options.port is not None else (0 if options.check else 8443)
    idp, port, note = (None, port, "") if options.check else await _dev_identity(workdir, authorities, port)
    try:
        fed = await start_local_federation(
            workdir,
            authorities,
            broker_port=port,
            rate_limit_per_minute=options.rate_limit,
            portal=idp.portal if idp else None,
        )
        try:
            return await _serve(fed, authorities, workdir, options, idp, note)
        finally:
            await fed.stop()
    finally:
        if idp is not None:
            await idp.stop()


async def _dev_identity(
    workdir: Path, authorities: list[tuple[str, str, Path]], port: int
) -> tuple[DevIdentityProvider | None, int, str]:
    """The development identity provider for a broker on ``port`` (a free one chosen now for 0: the provider
    must know where to send browsers back), or None and the sentence saying why not."""
    reason = unavailable()
    if reason is not None:
        return None, port, reason
    port = port or free_port()
    names = [(code, name) for code, name, _ in authorities]
    try:
        return await start_dev_identity_provider(workdir, names, f"https://127.0.0.1:{port}"), port, ""
    except (RuntimeError, OSError, ValueError) as exc:
        return None, port, f"The portal's demo sign-in could not start ({exc}); the API works without it."


def _demo_users(idp: DevIdentityProvider) -> dict[str, dict[str, str]]:
    """federation.json's ``demo_users``: one per role (the contract's), at the first authority."""
    return {role.value: idp.user(role).description() for role in (Role.PRACTITIONER, Role.AUDITOR, Role.OPERATOR)}


def portal_lines(fed: LocalFederation, idp: DevIdentityProvider, names: dict[str, str]) -> list[str]:
    """How to open the portal and sign in, for the terminal."""
    first = idp.user(Role.PRACTITIONER)
    others = ", ".join(
        u.username if u.role is Role.PRACTITIONER else f"{u.username} ({u.role.value})" for u in idp.users[1:]
    )
    return [
        f"Practitioner portal: {fed.portal_url}",
        "  Your browser will not know the demo's own certificate authority "
        f"({fed.pki.ca.cert}): continue to the site, or trust that file.",
        f'  Demo sign-in: "Sign in with {names[first.authority]}", username {first.username}, '
        f"password {first.password}",
        f"  Other demo users, same password: {others}.",
    ]


async def _serve(
    fed: LocalFederation,
    authorities: list[tuple[str, str, Path]],
    workdir: Path,
    options: DemoOptions,
    idp: DevIdentityProvider | None,
    note: str,
) -> int:
    for code, report in fed.imports.items():
        print(f"{code}: {report.records_loaded} records loaded, {report.rows_rejected} rows rejected")
        for error in report.errors[:5]:
            print(f"  line {error.line}: {error.reason}")
    await wait_until_ready(fed)
    if options.check:
        ok = await run_checks(fed, authorities)
        print("demo check passed" if ok else "demo check FAILED")
        return 0 if ok else 1
    names = {code: name for code, name, _ in authorities}
    write_description(workdir / "federation.json", fed, names, _demo_users(idp) if idp else None)
    samples = sample_subjects(authorities)
    print(f"\nSignpost federation up: broker {fed.broker_url}, {len(fed.nodes)} authorities.")
    print(f"Federation description: {workdir / 'federation.json'}; logs: {workdir / 'signpost.log'}")
    print("\n" + "\n".join(portal_lines(fed, idp, names)) if idp else f"\n{note}")
    if samples:
        child = ", ".join(samples[0][0].values())
        print(f"\nSearch for a child held by {samples[0][1]} ({child}) in the portal, or with the API:")
        print(f"\n{curl_line(fed, samples[0][0])}\n")
    print("Press Ctrl-C to stop.")
    sys.stdout.flush()
    await _wait_for_signal()
    print("stopping")
    return 0
