"""Retention: involvements that ended more than ``disclose_ended_years`` ago are not disclosed, and a record
with nothing left answers exactly as a record never loaded (node.policy rule 6).

The CSV import path and a serving node here; the database ([source]) path in test_source_retention.py.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from broker.registry import Authority
from certs.identity import node_dns_name
from node.config import NodeConfig, load_node_config
from node.importer import import_csv
from node.policy import DISCLOSE_ENDED_YEARS, disclosure_cutoff, still_disclosed
from node.records import Involvement
from node.retention import RecordRetention
from node.server import start_node
from node.store import RecordStore
from signpost.federation import import_authority
from tests.conftest import row, write_csv

TODAY = dt.datetime.now(dt.UTC).date()


def years_ago(years: int, days: int = 0) -> str:
    return (dt.date.fromisoformat(disclosure_cutoff(TODAY, years)) - dt.timedelta(days=days)).isoformat()


def kent_rows() -> list[dict[str, str]]:
    """K1 ongoing; K2 only an involvement that ended 7 years ago; K3 one of each."""
    return [
        row(record_id="K1", given_name="Oliver", family_name="Khan", date_of_birth="2016-07-21"),
        row(
            record_id="K2",
            given_name="Freya",
            family_name="Hughes",
            date_of_birth="2010-08-30",
            involvement_start="2012-01-01",
            involvement_end=years_ago(7),
        ),
        row(
            record_id="K3",
            given_name="Isla",
            family_name="Brown",
            date_of_birth="2011-01-30",
            practitioner_name="Old Worker",
            involvement_start="2013-01-01",
            involvement_end=years_ago(7),
        ),
        row(record_id="K3", given_name="Isla", family_name="Brown", date_of_birth="2011-01-30"),
    ]


def test_the_cutoff_is_today_less_the_years_and_an_ongoing_involvement_never_ends() -> None:
    assert disclosure_cutoff(dt.date(2026, 12, 3), 6) == "2020-12-03"
    assert disclosure_cutoff(dt.date(2028, 2, 29), 6) == "2022-02-28"  # no 29 February in 2022
    cutoff = "2020-12-03"
    assert still_disclosed(Involvement(involvement_end=""), cutoff)
    assert still_disclosed(Involvement(involvement_end="2020-12-03"), cutoff)  # ended exactly six years ago
    assert not still_disclosed(Involvement(involvement_end="2020-12-02"), cutoff)
    assert DISCLOSE_ENDED_YEARS == 6


def test_a_csv_import_leaves_out_what_ended_long_ago(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "kent.sqlite3")
    try:
        csv = write_csv(tmp_path / "kent.csv", kent_rows())
        report = import_csv(store, csv, ended_before=disclosure_cutoff(TODAY, 6))
        assert (report.rows_loaded, report.rows_expired, report.records_expired) == (4, 2, 1)
        held = {r.record_id: r for r in store.records()}
        assert set(held) == {"K1", "K3"}
        assert [i.practitioner_name for i in held["K3"].involvements] == ["Jo Bloggs"]
        # Without a cutoff (the demo's synthetic data) everything is kept, as before.
        import_csv(store, csv, replace_all=True)
        assert {r.record_id for r in store.records()} == {"K1", "K2", "K3"}
    finally:
        store.close()


def test_the_sweep_expires_records_as_time_passes(tmp_path: Path) -> None:
    """A CSV imported once is not reloaded: the hourly sweep expires what time has carried past the cutoff."""
    import asyncio

    path = tmp_path / "kent.sqlite3"
    store = RecordStore(path)
    ended = years_ago(5)  # within six years today; past them in two years' time
    rows = [row(record_id="K9", involvement_start="2015-01-01", involvement_end=ended)]
    import_csv(store, write_csv(tmp_path / "k.csv", rows))
    version = store.data_version()
    now = dt.datetime.now(dt.UTC).timestamp()
    poked: list[bool] = []
    today = RecordRetention(RecordStore(path), years=6, on_expired=lambda: poked.append(True), clock=lambda: now)
    assert asyncio.run(today.sweep()) == (0, 0)
    assert store.data_version() == version and poked == []  # nothing expired: no new index to build
    two_years_on = now + 2 * 366 * 86400
    later = RecordRetention(
        RecordStore(path), years=6, on_expired=lambda: poked.append(True), clock=lambda: two_years_on
    )
    assert asyncio.run(later.sweep()) == (1, 1)
    assert store.count() == 0 and store.data_version() == version + 1 and poked == [True]
    for sweeper in (today, later):
        sweeper.store.close()
    store.close()


def test_the_import_command_reports_expired_rows_and_applies_the_configured_years(tmp_path: Path, pki) -> None:
    csv = write_csv(tmp_path / "kent.csv", kent_rows())
    config = tmp_path / "node.toml"
    tls = pki.nodes["KENT"]
    config.write_text(
        f'store = "{tmp_path / "kent.sqlite3"}"\nbroker_public_keys = ["{pki.assertion_pub}"]\n'
        '[authority]\ncode = "KENT"\nname = "Kent"\n'
        f'[tls]\nca = "{pki.ca.cert}"\ncert = "{tls.cert}"\nkey = "{tls.key}"\n'
        "[retention]\ndisclose_ended_years = 8\n",
        encoding="utf-8",
    )
    assert load_node_config(config, {}).disclose_ended_years == 8
    command = [sys.executable, "-m", "signpost.cli", "node", "import", "--config", str(config), "--csv", str(csv)]
    eight = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert eight.returncode == 0, eight.stderr
    assert "ended more than" not in eight.stdout  # seven years ago is within eight
    config.write_text(config.read_text(encoding="utf-8").replace("= 8", "= 6"), encoding="utf-8")
    six = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert six.returncode == 0, six.stderr
    assert "2 of the accepted rows ended more than 6 years ago" in six.stdout
    assert "1 records had nothing left" in six.stdout
    assert "Freya" not in six.stdout + six.stderr and "Hughes" not in six.stdout + six.stderr
    store = RecordStore(tmp_path / "kent.sqlite3")
    try:
        assert {r.record_id for r in store.records()} == {"K1", "K3"}
    finally:
        store.close()


def test_the_default_is_six_years_in_a_toml_and_nothing_in_code(tmp_path: Path, pki) -> None:
    config = tmp_path / "node.toml"
    tls = pki.nodes["KENT"]
    config.write_text(
        f'store = "s.sqlite3"\nbroker_public_keys = ["{pki.assertion_pub}"]\n[authority]\ncode = "KENT"\n'
        f'name = "Kent"\n[tls]\nca = "{pki.ca.cert}"\ncert = "{tls.cert}"\nkey = "{tls.key}"\n',
        encoding="utf-8",
    )
    assert load_node_config(config, {}).disclose_ended_years == 6
    bad = config.read_text(encoding="utf-8") + "[retention]\ndisclose_ended_years = 0\n"
    config.write_text(bad, encoding="utf-8")
    from core.config import ConfigError

    with pytest.raises(ConfigError, match=r"retention\.disclose_ended_years"):
        load_node_config(config, {})
    assert NodeConfig.disclose_ended_years is None


def comparable(result: dict) -> tuple:
    return (result["band"], result["score"], tuple(result["reasons"]), len(result["contacts"]))


async def test_an_expired_record_answers_exactly_as_one_never_loaded(federation, pki, tmp_path: Path) -> None:
    """KENT holds K2 and K3's ended involvement and sweeps them out at start-up; CORNWALL never had them."""
    rows = kent_rows()
    current = [r for r in rows if not r.get("involvement_end")]
    nodes = []
    for code, data, years in (("KENT", rows, 6), ("CORNWALL", current, None)):
        store = tmp_path / f"{code}.sqlite3"
        import_authority(store, write_csv(tmp_path / f"{code}.csv", data))  # no cutoff: the node's sweep does it
        config = NodeConfig(
            code,
            code.title(),
            ("127.0.0.1", 0),
            store,
            pki.tls(pki.nodes[code]),
            broker_public_keys=(pki.assertion_pub,),
            disclose_ended_years=years,
        )
        nodes.append(await start_node(config))
    try:
        extra = [Authority(n.config.code, n.config.name, n.address, node_dns_name(n.config.code)) for n in nodes]
        fed = await federation({"LEEDS": [row(record_id="L1", given_name="Zara")]}, extra=extra)
        assert nodes[0].service.generation.matcher.size == nodes[1].service.generation.matcher.size == 2

        status, body = await fed.search({"given_name": "Freya", "family_name": "Hughes", "date_of_birth": "2010-08-30"})
        assert status == 200 and body["results"] == []
        assert {c["code"] for c in body["coverage"].get("not_answered", [])} == set()

        for subject in (
            {"given_name": "Isla", "family_name": "Brown", "date_of_birth": "2011-01-30"},
            {"given_name": "Oliver", "family_name": "Khan", "date_of_birth": "2016-07-21"},
            # A near miss of the expired child: its frequencies must not sway the score of anyone else.
            {"given_name": "Freya", "family_name": "Khan", "date_of_birth": "2016-07-21"},
        ):
            status, body = await fed.search(subject)
            assert status == 200, body
            by_code = {r["authority"]["code"]: r for r in body["results"]}
            if subject["given_name"] == "Isla":
                contacts = by_code["KENT"]["contacts"]
                assert [c["practitioner_name"] for c in contacts] == ["Jo Bloggs"]  # not the ended one
            assert ("KENT" in by_code) == ("CORNWALL" in by_code)
            if "KENT" in by_code:
                assert comparable(by_code["KENT"]) == comparable(by_code["CORNWALL"])
    finally:
        for node in nodes:
            await node.stop(grace=0)
