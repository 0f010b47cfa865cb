"""The ``signpost`` command as a user runs it: real subprocesses, real files, real ports."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

from certs.identity import Role, identity_from_pem
from certs.tls import client_ssl_context
from signpost.dev_identity import unavailable
from tests.conftest import row, write_csv
from tests.portal.op.harness import drive_login

SIGNPOST = [sys.executable, "-m", "signpost.cli"]


def run(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIGNPOST, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_console_script_is_declared():
    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    assert scripts.get("signpost") == "signpost.cli:main"


def test_certs_commands_issue_identities_with_private_keys_0600(tmp_path):
    assert run("certs", "init", "--dir", str(tmp_path)).returncode == 0
    assert run("certs", "init", "--dir", str(tmp_path)).returncode == 1  # never silently replace a CA
    assert run("certs", "node", "--dir", str(tmp_path), "--code", "LEEDS", "--name", "Leeds").returncode == 0
    result = run(
        "certs",
        "user",
        "--dir",
        str(tmp_path),
        "--role",
        "practitioner",
        "--id",
        "jsmith",
        "--name",
        "Jo Smith",
        "--organisation",
        "Leeds City Council",
        "--email",
        "jo@leeds.example",
    )
    assert result.returncode == 0, result.stderr
    for key in ("ca.key", "node-LEEDS.key", "jsmith.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    who = identity_from_pem((tmp_path / "jsmith.pem").read_bytes())
    assert (who.role, who.id, who.organisation, who.email) == (
        Role.PRACTITIONER,
        "jsmith",
        "Leeds City Council",
        "jo@leeds.example",
    )
    assert identity_from_pem((tmp_path / "node-LEEDS.pem").read_bytes()).id == "LEEDS"
    bad = run("certs", "node", "--dir", str(tmp_path), "--code", "leeds!", "--name", "x")
    assert bad.returncode != 0 and "authority code" in bad.stderr


def test_node_import_reports_lines_and_counts(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text(
        'store = "s.sqlite3"\nbroker_public_keys = ["a.pub"]\n[authority]\ncode = "LEEDS"\nname = "Leeds"\n'
        '[tls]\nca = "ca.pem"\ncert = "n.pem"\nkey = "n.key"\n'
    )
    csv_path = write_csv(tmp_path / "in.csv", [row(), row(record_id="R2", date_of_birth="2014-02-31")])
    result = run("node", "import", "--config", str(config), "--csv", str(csv_path))
    assert result.returncode == 3
    assert "line 3: date_of_birth: is not a real calendar date" in result.stdout
    assert "LEEDS: 1 rows loaded (1 records), 1 rows rejected" in result.stdout
    again = run("node", "import", "--config", str(config), "--csv", str(write_csv(tmp_path / "ok.csv", [row()])))
    assert again.returncode == 0
    missing = run("node", "import", "--config", str(config), "--csv", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_bad_config_is_one_clear_sentence(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text('[authority]\ncode = "LEEDS"\n')
    result = run("node", "serve", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {config}: key 'authority.name' must be a non-empty string"


def test_demo_check_with_given_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "LEEDS.csv", [row(), row(record_id="R2", given_name="Ben")])
    write_csv(
        data / "KENT.csv",
        [
            row(record_id="K1", given_name="Oliver", family_name="Brown", date_of_birth="2012-07-01"),
            row(record_id="K2", date_of_birth="bad"),
        ],
    )
    result = run("demo", "--check", "--data", str(data), "--workdir", str(tmp_path / "work"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KENT: 1 records loaded, 1 rows rejected" in result.stdout
    assert result.stdout.count("[PASS]") == 3 and "demo check passed" in result.stdout


def test_demo_check_with_synthetic_data_leaves_a_running_demo_alone(tmp_path):
    """Without --workdir the check works in a temporary directory: a demo running from the default
    workdir keeps its certificates, registry and federation.json."""
    running = tmp_path / "signpost-demo"
    running.mkdir()
    (running / "federation.json").write_text('{"running": true}')
    result = run("demo", "--check", "--children", "400", timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("[PASS]") == 6 and "[FAIL]" not in result.stdout
    assert sorted(p.name for p in running.iterdir()) == ["federation.json"]
    assert (running / "federation.json").read_text() == '{"running": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signpost-demo"]


def test_demo_check_fails_when_an_answer_is_wrong(tmp_path):
    """The check must be able to fail: a record only a sensitive service knows is never disclosed."""
    data = tmp_path / "data"
    data.mkdir()
    write_csv(
        data / "LEEDS.csv",
        [row(given_name="Quillon", family_name="Zyxwvut-Nobody", date_of_birth="2011-02-03", sex="M")],
    )
    result = run("demo", "--check", "--data", str(data), "--workdir", str(tmp_path / "work"))
    assert result.returncode == 1, result.stdout
    assert "[FAIL]" in result.stdout


async def test_demo_serves_until_sigterm_and_writes_federation_json(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "LEEDS.csv", [row()])
    write_csv(data / "KENT.csv", [row(record_id="K1", given_name="Oliver")])
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [*SIGNPOST, "demo", "--data", str(data), "--workdir", str(work), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        description = work / "federation.json"
        deadline = time.monotonic() + 60
        while not description.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert description.exists(), proc.stderr.read() if proc.poll() is not None else "timed out"
        fed = json.loads(description.read_text())
        assert [a["code"] for a in fed["authorities"]] == ["KENT", "LEEDS"]
        assert fed["authorities"][1]["records"] == 1 and set(fed["users"]) >= {"practitioner", "auditor", "operator"}
        user = fed["users"]["practitioner"]
        context = client_ssl_context(Path(fed["ca"]), type("F", (), {"cert": user["cert"], "key": user["key"]})())
        body = {
            "subject": {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"},
            "purpose": {"code": "missing-child", "justification": "Missing from home since Friday"},
        }
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            async with session.post(f"{fed['broker_url']}/v1/searches", json=body) as resp:
                answer = await resp.json()
        assert [r["authority"]["code"] for r in answer["results"]] == ["LEEDS"]
        assert answer["coverage"]["answered"] == 2
        if unavailable() is None:  # Node.js and the provider's packages are here: the portal signs people in
            await sign_in_and_search(fed)
        else:
            assert "portal_url" not in fed
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "curl --cacert" in out and "stopping" in out
    if unavailable() is None:
        practitioner = fed["demo_users"]["practitioner"]
        assert f"username {practitioner['username']}, password {practitioner['password']}" in out
    else:
        assert unavailable() in out


async def sign_in_and_search(fed: dict[str, Any]) -> None:
    """A newcomer with federation.json: open portal_url, sign in as the demo practitioner at the demo's
    identity provider, search, and see who to call."""
    user = fed["demo_users"]["practitioner"]
    assert set(fed["demo_users"]) == {"practitioner", "auditor", "operator"} and user["authority"] == "KENT"
    portal = fed["portal_url"]
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(Path(fed["ca"]), None))
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar, timeout=aiohttp.ClientTimeout(30)) as web:
        async with web.get(f"{portal}/sign-in/start?authority={user['authority']}", allow_redirects=False) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
        back = await drive_login(location, user["username"], f"{portal}/sign-in/callback", password=user["password"])
        async with web.get(back) as resp:  # the callback, then the search form
            assert resp.status == 200 and resp.url.path == "/portal/search"
            token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert token is not None
        form = {
            "given_name": "Amelia",
            "family_name": "Smith",
            "dob_day": "9",
            "dob_month": "3",
            "dob_year": "2014",
            "purpose": "missing-child",
            "justification": "Missing from home since Friday",
            "csrf_token": token.group(1),
        }
        async with web.post(f"{portal}/search", data=form) as resp:
            assert resp.status == 200 and "Jo Bloggs" in await resp.text()


def test_demo_without_node_runs_everything_else_and_says_how_to_enable_the_portal(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "LEEDS.csv", [row()])
    work = tmp_path / "work"
    env = {**os.environ, "PATH": str(tmp_path / "no-node-here")}  # node is nowhere on this PATH
    proc = subprocess.Popen(
        [*SIGNPOST, "demo", "--data", str(data), "--workdir", str(work), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        description = work / "federation.json"
        deadline = time.monotonic() + 60
        while not description.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert description.exists(), proc.stderr.read() if proc.poll() is not None else "timed out"
        fed = json.loads(description.read_text())
        assert "portal_url" not in fed and "demo_users" not in fed and fed["broker_url"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "install Node.js 20 or later and run `npm ci` in" in out and "curl --cacert" in out
