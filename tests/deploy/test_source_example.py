"""The worked example of a node over its authority's database works as written: source-view.sql on a real
PostgreSQL gives a login that reads only the view, node-source.toml's mapping fits that view (check-source),
and the systemd drop-in hands the node its password as a credential that the config then reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from node.config import load_node_config
from tests.deploy.test_deploy import CONFIG, SYSTEMD, read_systemd
from tests.node.sourcedb import SourceDB, create_database
from tests.node.test_source_check import check

DROP_IN = SYSTEMD / "signpost-node.service.d" / "source-password.conf"


@pytest.fixture(scope="module")
def cms() -> Iterator[SourceDB]:
    yield from create_database("postgresql")


def apply_example_view(db: SourceDB) -> str:
    """Run deploy/config/source-view.sql as the CMS team would (its login renamed so runs never collide)."""
    reader = f"sp_example_{uuid.uuid4().hex[:8]}"
    database = sa.engine.make_url(db.url).database
    sql = (CONFIG / "source-view.sql").read_text(encoding="utf-8")
    sql = sql.replace("signpost_reader", reader).replace("DATABASE cms", f"DATABASE {database}")
    db.execute("DROP VIEW signpost_children_v")  # the tests' own view: the example's replaces it
    with db.admin.begin() as conn:
        conn.exec_driver_sql(sql)
    db.cleanup.append(f"DROP ROLE IF EXISTS {reader}")
    return sa.engine.make_url(db.url).set(username=reader).render_as_string(hide_password=False)


def test_the_example_view_and_mapping_fit_and_the_login_reads_only_the_view(cms: SourceDB, tmp_path: Path) -> None:
    url = apply_example_view(cms)
    password = tmp_path / "source-password"
    password.write_text("unused-by-trust-auth", encoding="utf-8")
    done = check(
        CONFIG / "node-source.toml",
        SIGNPOST_NODE_SOURCE__URL=url,
        SIGNPOST_NODE_SOURCE__PASSWORD_FILE=str(password),
    )
    # sourcedb's two deliberately bad rows (an unmapped sex code, a bad NHS check digit), the rest accepted.
    assert done.returncode == 3, done.stdout + done.stderr
    assert "rows: 8 read, 6 accepted (4 records), 2 rejected" in done.stdout
    assert "every mapped column is among them" in done.stdout
    with psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
        assert conn.execute("SELECT count(*) FROM signpost_children_v").fetchone() == (8,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM people")
    with psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # its sessions are read-only too
            conn.execute("CREATE TEMPORARY TABLE t (x int)")


def test_the_systemd_drop_in_hands_the_config_its_password_as_a_credential(tmp_path: Path) -> None:
    service = read_systemd(DROP_IN)["Service"]
    (credential,) = service["LoadCredential"]
    name, _, stored = credential.partition(":")
    assert stored.startswith("/etc/signpost/credentials/") and name
    (environment,) = service["Environment"]
    key, _, value = environment.partition("=")
    assert (key, value) == ("SIGNPOST_NODE_SOURCE__PASSWORD_FILE", f"%d/{name}")
    # As systemd resolves %d (the service's credentials directory) when the node starts:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / name).write_text("s3cret-from-credential\n", encoding="utf-8")
    config = load_node_config(CONFIG / "node-source.toml", {key: value.replace("%d", str(credentials))})
    assert config.source is not None and config.source.password == "s3cret-from-credential"
    assert "s3cret" not in repr(config)
    assert config.disclose_ended_years == 6 and config.source.change_column == "updated_at"
