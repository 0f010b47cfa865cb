"""Tests for the synthetic data generator: contract-valid rows, realistic variety, and truth that holds."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from core.identifiers import nhs_number_valid, parse_date, postcode_valid
from signpost.synth import (
    COLUMNS,
    ENGLISH_AUTHORITIES,
    POSTCODE_DISTRICTS,
    SynthConfig,
    SynthResult,
    add_arguments,
    config_for,
    generate,
    generate_to,
    run,
    write,
)
from signpost.synth.names import PURPOSES, canonical_name, squash

SUBJECT_FIELDS = {
    "given_name",
    "middle_names",
    "family_name",
    "other_names",
    "date_of_birth",
    "sex",
    "postcode",
    "address",
    "nhs_number",
}
IDENTITY = (
    "given_name",
    "family_name",
    "middle_names",
    "other_names",
    "date_of_birth",
    "sex",
    "address",
    "postcode",
    "nhs_number",
    "shielded",
)
DRAMA_PHONE = re.compile(
    r"^(0113|0114|0115|0116|0117|0118|0121|0151|0161) 496 0\d{3}$|^0191 498 0\d{3}$"
    r"|^020 7946 0\d{3}$|^01632 960\d{3}$|^07700 900\d{3}$"
)


@pytest.fixture(scope="module")
def result() -> SynthResult:
    return generate(config_for(5, children=4000, queries=300, seed=7))


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _record_owner(result: SynthResult) -> dict[tuple[str, str], str]:
    return {(r["authority"], r["record_id"]): pid for pid, records in result.truth.items() for r in records}


def _first_rows(result: SynthResult) -> dict[tuple[str, str], dict[str, str]]:
    records: dict[tuple[str, str], dict[str, str]] = {}
    for code, rows in result.rows.items():
        for row in rows:
            records.setdefault((code, row["record_id"]), row)
    return records


def share(items: list[dict[str, str]], test: Callable[[dict[str, str]], object]) -> float:
    return sum(1 for item in items if test(item)) / len(items)


# ---- authorities


def test_english_authorities_are_the_152_with_valid_unique_codes() -> None:
    codes = [code for code, _, _ in ENGLISH_AUTHORITIES]
    assert len(codes) == 152 and len(set(codes)) == 152
    assert all(re.fullmatch(r"[A-Z0-9-]{2,32}", code) for code in codes)
    assert codes[:5] == ["LEEDS", "MANCHESTER", "KENT", "CORNWALL", "TOWER-HAMLETS"]
    assert {"BRIGHTON-HOVE", "CITY-OF-LONDON", "ISLES-OF-SCILLY", "RUTLAND"} <= set(codes)


def test_authority_sizes_follow_child_population() -> None:
    size = {code: weight for code, _, weight in ENGLISH_AUTHORITIES}
    assert min(size.values()) > 0
    for big in ("KENT", "ESSEX", "HAMPSHIRE", "LANCASHIRE"):
        assert size[big] >= 10 * size["RUTLAND"]
    assert size["CITY-OF-LONDON"] <= 1 and size["ISLES-OF-SCILLY"] <= 1


def test_every_authority_has_plausible_postcode_districts() -> None:
    assert POSTCODE_DISTRICTS["LEEDS"][0].startswith("LS")
    for code, _, _ in ENGLISH_AUTHORITIES:
        districts = POSTCODE_DISTRICTS[code]
        assert districts and all(re.fullmatch(r"[A-Z]{1,2}[0-9][A-Z0-9]?", d) for d in districts), code


# ---- determinism


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    config = config_for(3, children=800, queries=60, seed=11)
    write(generate(config), tmp_path / "a")
    write(generate(config), tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_streaming_writes_the_same_bytes_as_generate_then_write(tmp_path: Path) -> None:
    config = config_for(4, children=800, queries=60, seed=3)
    counts = write(generate(config), tmp_path / "memory")
    assert generate_to(config, tmp_path / "stream") == counts
    assert _files(tmp_path / "memory") == _files(tmp_path / "stream")


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    write(generate(config_for(3, children=500, queries=40, seed=1)), tmp_path / "a")
    write(generate(config_for(3, children=500, queries=40, seed=2)), tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a)


# ---- the files


def test_write_produces_contract_csvs_and_json(tmp_path: Path, result: SynthResult) -> None:
    counts = write(result, tmp_path)
    assert counts == {code: len(rows) for code, rows in result.rows.items()}
    for code, expected_rows in result.rows.items():
        with (tmp_path / f"{code}.csv").open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            assert tuple(reader.fieldnames or ()) == COLUMNS
            assert list(reader) == expected_rows
    assert json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8")) == {"persons": result.truth}
    assert json.loads((tmp_path / "queries.json").read_text(encoding="utf-8")) == result.queries


def test_every_row_follows_the_contract(result: SynthResult) -> None:
    for code, rows in result.rows.items():
        for row in rows:
            assert set(row) == set(COLUMNS)
            for column in ("record_id", "given_name", "family_name", "date_of_birth"):
                assert row[column].strip(), (code, row["record_id"], column)
            assert dt.date(2008, 1, 2) <= parse_date(row["date_of_birth"]) < dt.date(2026, 1, 1)
            assert row["sex"] in ("M", "F", "U", "")
            assert not row["nhs_number"] or (nhs_number_valid(row["nhs_number"]) and len(row["nhs_number"]) == 10)
            assert not row["postcode"] or postcode_valid(row["postcode"])
            assert row["shielded"] in ("true", "false") and row["sensitive"] in ("true", "false")
            start = parse_date(row["involvement_start"])
            assert start < dt.date(2026, 1, 1)
            assert not row["involvement_end"] or parse_date(row["involvement_end"]) >= start
            assert DRAMA_PHONE.match(row["practitioner_phone"]), row["practitioner_phone"]
            assert re.fullmatch(r"[a-z.-]+@[a-z.]+", row["practitioner_email"]), row["practitioner_email"]


def test_rows_of_one_record_repeat_the_identity(result: SynthResult) -> None:
    for _code, rows in result.rows.items():
        seen: dict[str, tuple[str, ...]] = {}
        for row in rows:
            identity = tuple(row[c] for c in IDENTITY)
            assert seen.setdefault(row["record_id"], identity) == identity
        prefixes = {record_id.split("-")[0] for record_id in seen}
        assert len(prefixes) == 1 and all(re.fullmatch(r"[A-Z0-9]{2,3}-\d{6,}", r) for r in seen)
    assert next(iter(result.rows["LEEDS"]))["record_id"].startswith("LEE-")


def test_records_have_realistic_shares_of_missing_and_flagged_fields(result: SynthResult) -> None:
    records = list(_first_rows(result).values())
    rows = [row for rows in result.rows.values() for row in rows]
    assert 0.5 < share(records, lambda r: r["nhs_number"]) < 0.7
    assert 0.0 < share(records, lambda r: r["shielded"] == "true") < 0.03
    assert 0.0 < share(rows, lambda r: r["sensitive"] == "true") < 0.05
    assert 0.02 < share(records, lambda r: not r["sex"]) < 0.2
    assert 0.02 < share(records, lambda r: not r["postcode"]) < 0.15
    assert 0.2 < share(rows, lambda r: not r["involvement_end"]) < 0.7
    assert {r["service"] for r in rows} >= {
        "Children's social care",
        "Early help",
        "Youth justice",
        "Education welfare",
        "Health visiting",
    }


def test_names_are_diverse(result: SynthResult) -> None:
    records = list(_first_rows(result).values())
    given = {r["given_name"] for r in records}
    family = {r["family_name"] for r in records}
    assert len(given) > 300 and len(family) > 300
    assert any(not name.isascii() for name in given)  # Oisín, Róisín, Mikołaj ...
    assert any("-" in name for name in family)  # double-barrelled and hyphenated
    for expected in (
        {"Aoife", "Niamh", "Siobhán", "Siobhan"},
        {"Muhammad", "Mohammed", "Mohamed"},
        {"Priya", "Arjun", "Aarav"},
        {"Zofia", "Jakub", "Aleksander"},
    ):
        assert given & expected, expected
    assert any(r["middle_names"] for r in records)


# ---- ground truth


def test_truth_names_every_record_exactly_once(result: SynthResult) -> None:
    owner = _record_owner(result)
    assert sum(len(v) for v in result.truth.values()) == len(owner)
    assert set(owner) == set(_first_rows(result))


def test_twins_share_surname_birthday_and_address_but_not_given_name(result: SynthResult) -> None:
    owner = _record_owner(result)
    groups: dict[tuple[str, ...], dict[str, str]] = defaultdict(dict)
    for (code, record_id), row in _first_rows(result).items():
        if row["address"]:
            key = (code, row["family_name"], row["date_of_birth"], row["address"])
            groups[key][owner[(code, record_id)]] = row["given_name"]
    twins = [names for names in groups.values() if len(names) >= 2 and len(set(names.values())) >= 2]
    assert len(twins) >= 5


def test_moved_children_are_held_at_several_authorities_with_old_addresses(result: SynthResult) -> None:
    rows = _first_rows(result)
    moved = [records for records in result.truth.values() if len({r["authority"] for r in records}) >= 2]
    assert len(moved) > 20
    addresses = [{rows[(r["authority"], r["record_id"])]["address"] for r in records} for records in moved]
    assert sum(1 for a in addresses if len(a - {""}) >= 2) > len(moved) // 2


def test_some_records_of_one_child_disagree_like_real_systems() -> None:
    # Disagreements between one child's records are rare by design: a larger population than the
    # shared fixture's makes sure each kind shows up whatever the seed's draw.
    result = generate(config_for(5, children=15000, queries=10, seed=7))
    rows = _first_rows(result)
    given_differs = other_names = swapped = 0
    for records in result.truth.values():
        held = [rows[(r["authority"], r["record_id"])] for r in records]
        given_differs += len({h["given_name"] for h in held}) > 1
        swapped += len({h["date_of_birth"] for h in held}) > 1
        other_names += any(h["other_names"] for h in held)
    assert given_differs > 5 and other_names > 5 and swapped >= 1
    assert any(r["given_name"] == "Baby" for r in rows.values())


# ---- queries


def test_query_mix_covers_every_kind(result: SynthResult) -> None:
    kinds = [q["kind"] for q in result.queries]
    assert len(kinds) == 300
    share = {kind: kinds.count(kind) / len(kinds) for kind in set(kinds)}
    assert set(share) == {"exact", "variant", "moved", "twin", "sibling", "absent"}
    assert 0.3 <= share["exact"] <= 0.4 and 0.25 <= share["variant"] <= 0.35
    assert 0.08 <= share["moved"] <= 0.12 and 0.08 <= share["twin"] + share["sibling"] <= 0.12
    assert 0.12 <= share["absent"] <= 0.18


def test_queries_are_well_formed(result: SynthResult) -> None:
    assert len({q["query_id"] for q in result.queries}) == len(result.queries)
    for query in result.queries:
        subject = query["subject"]
        assert set(subject) <= SUBJECT_FIELDS
        assert subject["given_name"] and subject["family_name"]
        parse_date(subject["date_of_birth"])
        assert query["purpose"]["code"] in PURPOSES
        assert query["purpose"]["justification"] == f"Synthetic query {query['query_id']}"
        assert not subject.get("nhs_number") or nhs_number_valid(subject["nhs_number"])
        assert isinstance(subject.get("other_names", []), list)


def test_expected_authorities_agree_with_truth(result: SynthResult) -> None:
    for query in result.queries:
        if query["kind"] == "absent":
            continue
        truth = result.truth[query["person_id"]]
        assert query["expected"] and set(query["expected"]) == {r["authority"] for r in truth}
        if query["kind"] == "moved":
            assert len(query["expected"]) >= 2


def test_twin_queries_expect_only_that_twins_authorities(result: SynthResult) -> None:
    twin_queries = [q for q in result.queries if q["kind"] == "twin"]
    assert twin_queries
    owner = _record_owner(result)
    for query in twin_queries:
        expected = {(r["authority"], r["record_id"]) for r in result.truth[query["person_id"]]}
        assert all(owner[key] == query["person_id"] for key in expected)


def test_absent_queries_expect_nothing_and_match_no_record(result: SynthResult) -> None:
    absent = [q for q in result.queries if q["kind"] == "absent"]
    assert absent and all(q["person_id"] is None and q["expected"] == [] for q in absent)
    assert {q["detail"] for q in absent} & {"twin-not-held", "sibling-not-held", "same-name-other-dob"}
    held = {
        (canonical_name(r["given_name"]), squash(r["family_name"]), r["date_of_birth"])
        for r in _first_rows(result).values()
    }
    for query in absent:
        s = query["subject"]
        assert (canonical_name(s["given_name"]), squash(s["family_name"]), s["date_of_birth"]) not in held


def test_variant_queries_say_what_differs(result: SynthResult) -> None:
    details = {q["detail"] for q in result.queries if q["kind"] == "variant"}
    assert len(details) >= 5
    assert details <= {
        "nickname",
        "spelling",
        "accent-dropped",
        "typo-given",
        "typo-family",
        "dob-day-month-swap",
        "new-surname",
        "surname-part",
        "known-by-middle-name",
        "minimal",
    }


# ---- configuration and command line


def test_config_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="codes"):
        SynthConfig(authorities=(("leeds", "Leeds"),))
    with pytest.raises(ValueError, match="unique"):
        SynthConfig(authorities=(("LEEDS", "Leeds"), ("LEEDS", "Leeds")))
    with pytest.raises(ValueError, match="sizes"):
        SynthConfig(authorities=(("LEEDS", "Leeds"),), sizes=(1, 2))
    with pytest.raises(ValueError, match="unknown authority"):
        config_for(["NARNIA"])


def test_equal_sizes_and_unknown_codes_still_generate() -> None:
    config = SynthConfig(authorities=(("LEEDS", "Leeds"), ("TEST-1", "Test One")), children=300, queries=20)
    result = generate(config)
    assert set(result.rows) == {"LEEDS", "TEST-1"} and all(result.rows.values())
    assert len(result.queries) == 20


def test_cli_writes_files_and_reports_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path), "--authorities", "LEEDS,kent", "--children", "300", "--queries", "20", "--seed", "5"]
    )
    assert run(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["KENT.csv", "LEEDS.csv", "ground_truth.json", "queries.json"]
    assert len(capsys.readouterr().out.strip().splitlines()) == 4


def test_cli_defaults_to_the_first_five_authorities(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--children", "200", "--queries", "10"])
    assert run(args) == 0
    assert {p.stem for p in tmp_path.glob("*.csv")} == {"LEEDS", "MANCHESTER", "KENT", "CORNWALL", "TOWER-HAMLETS"}
