"""Shielded means absent: a node answers exactly as if its shielded and sensitive-only records did not exist.

The answer the broker gets — candidates, their order, bands, scores, reasons and how many — must be
the same byte for byte with and without those records; only the holder's journal learns of them (an
alert for a shielded record that would have been a match or possible).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.subject import Subject
from node.matching import MatchEngine, MatchSettings
from node.policy import JournalEntry, disclose
from node.records import Involvement, Record

OPEN = (Involvement(service="Children's social care", team="Duty", practitioner_name="Sam Carer"),)
SENSITIVE = (Involvement(service="Sexual health", sensitive=True),)


def _rec(rid: str, given_name: str, family: str, dob: str, *, shielded=False, sensitive=False, **kw) -> Record:
    return Record(
        record_id=rid,
        given_name=given_name,
        family_name=family,
        date_of_birth=dob,
        shielded=shielded,
        involvements=SENSITIVE if sensitive else OPEN,
        **kw,
    )


def _hidden(record: Record) -> bool:
    return record.shielded or all(i.sensitive for i in record.involvements)


def _answer(records: list[Record], query: Subject, **match_settings) -> tuple[bytes, list[JournalEntry]]:
    """The serialised candidates one node sends the broker, and the journal rows it writes."""
    engine = MatchEngine.build(records, MatchSettings(**match_settings))
    by_id = {r.record_id: r.involvements for r in records}
    entries: list[JournalEntry] = []
    candidates = disclose(engine.match(query), by_id.__getitem__, entries)
    return b"|".join(c.SerializeToString(deterministic=True) for c in candidates), entries


FILLER = [_rec(f"X{i}", "Child", f"Other{i}", f"20{10 + i % 8}-0{1 + i % 9}-1{i % 9}") for i in range(40)]


def test_a_hidden_better_fitting_twin_does_not_suppress_the_visible_sibling():
    """The finding: the household guard ran before shielded records were removed."""
    home = {"postcode": "LS6 2AB", "address": "4 Elm Street"}
    shielded_twin = _rec("T1", "Olivia", "Kowalski", "2016-05-04", sex="F", shielded=True, **home)
    sibling = _rec("T2", "Oliver", "Kowalski", "2016-05-04", sex="M", **home)
    query = Subject(given_name="Olivia", family_name="Kowalski", date_of_birth="2016-05-04", **home)
    with_twin, entries = _answer([shielded_twin, sibling, *FILLER], query)
    without_twin, _ = _answer([sibling, *FILLER], query)
    assert without_twin, "the sibling alone is a possible: the case this test is about"
    assert with_twin == without_twin
    assert ("alert", "T1", "match") in entries  # the holder still learns of the search


def test_a_sensitive_only_twin_does_not_suppress_the_visible_sibling():
    home = {"postcode": "LS6 2AB", "address": "4 Elm Street"}
    hidden_twin = _rec("T1", "Olivia", "Kowalski", "2016-05-04", sex="F", sensitive=True, **home)
    sibling = _rec("T2", "Oliver", "Kowalski", "2016-05-04", sex="M", **home)
    query = Subject(given_name="Olivia", family_name="Kowalski", date_of_birth="2016-05-04", **home)
    assert _answer([hidden_twin, sibling, *FILLER], query)[0] == _answer([sibling, *FILLER], query)[0]


def test_hidden_records_do_not_use_up_the_result_limit():
    twins = [_rec(f"H{i}", "Amelia", "Smith", "2014-03-09", shielded=True) for i in range(3)]
    visible = [_rec(f"V{i}", "Amelia", "Smith", "2014-03-08") for i in range(3)]
    query = Subject(given_name="Amelia", family_name="Smith", date_of_birth="2014-03-09")
    with_hidden, entries = _answer([*twins, *visible, *FILLER], query, max_results=3)
    assert with_hidden == _answer([*visible, *FILLER], query, max_results=3)[0]
    assert {e[1] for e in entries if e[0] == "alert"} == {"H0", "H1", "H2"}


GIVEN = ["Olivia", "Oliver", "Olive", "Ella", "Amelia", "Emilia", "Jon", "John", "Baby"]
FAMILY = ["Kowalski", "Kowalsky", "Smith", "Smyth", "Ng"]
DOB = ["2016-05-04", "2016-04-05", "2016-05-05", "2015-05-04"]
SEX = ["", "M", "F"]
POSTCODE = ["", "LS6 2AB", "LS6 2AD", "LS7 1AA"]
NHS = ["", "9434765919", "9434765870"]


@st.composite
def people(draw, record_id: str | None = None):
    fields = {
        "given_name": draw(st.sampled_from(GIVEN)),
        "family_name": draw(st.sampled_from(FAMILY)),
        "date_of_birth": draw(st.sampled_from(DOB)),
        "sex": draw(st.sampled_from(SEX)),
        "postcode": draw(st.sampled_from(POSTCODE)),
        "nhs_number": draw(st.sampled_from(NHS)),
        "middle_names": draw(st.sampled_from(["", "Ella", "Rose"])),
    }
    if record_id is None:
        return Subject(**fields)
    kind = draw(st.sampled_from(["open", "open", "shielded", "sensitive"]))
    given_name, family, dob = fields.pop("given_name"), fields.pop("family_name"), fields.pop("date_of_birth")
    return _rec(
        record_id, given_name, family, dob, shielded=kind == "shielded", sensitive=kind == "sensitive", **fields
    )


households = st.integers(1, 9).flatmap(lambda n: st.tuples(*(people(f"R{i}") for i in range(n))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(household=households, query=people(), limit=st.sampled_from([1, 2, 10]))
def test_answer_with_hidden_records_is_the_answer_without_them_byte_for_byte(household, query, limit):
    records = [*household, *FILLER]
    with_hidden, entries = _answer(records, query, max_results=limit)
    without_hidden, _ = _answer([r for r in records if not _hidden(r)], query, max_results=limit)
    assert with_hidden == without_hidden
    shielded = {r.record_id for r in records if r.shielded}
    assert all(record_id in shielded for kind, record_id, _ in entries if kind == "alert")


def test_the_store_marks_records_known_only_to_sensitive_services(tmp_path):
    from node.store import RecordStore

    store = RecordStore(tmp_path / "records.sqlite3")
    mixed = (*SENSITIVE, *OPEN)
    store.replace_records(
        [
            _rec("OPEN", "Amy", "Ng", "2015-01-01"),
            _rec("SENS", "Bea", "Ng", "2015-01-01", sensitive=True),
            Record(record_id="MIX", given_name="Cy", family_name="Ng", date_of_birth="2015-01-01", involvements=mixed),
        ]
    )
    flags = {r.record_id: (r.sensitive_only, r.answered_as_absent) for r in store.identities()}
    assert flags == {"OPEN": (False, False), "SENS": (True, True), "MIX": (False, False)}
    store.close()
