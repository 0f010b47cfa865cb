"""Loading an authority's CSV: bad rows reported by line and reason, good rows kept, idempotent."""

from __future__ import annotations

import pytest

from node.errors import ImportFileError
from node.importer import import_csv
from node.store import RecordStore
from tests.conftest import row, write_csv


@pytest.fixture
def store(tmp_path):
    s = RecordStore(tmp_path / "store.sqlite3")
    yield s
    s.close()


def test_bad_rows_are_reported_and_good_rows_kept(store, tmp_path):
    rows = [
        row(),  # line 2: good
        row(record_id="R2", date_of_birth="2014-02-30"),  # line 3: impossible date
        row(record_id="R3", given_name=""),  # line 4: missing required
        row(record_id="R4", nhs_number="1234567890"),  # line 5: bad check digit
        row(record_id="R5", sex="X"),  # line 6
        row(record_id="R6", shielded="maybe"),  # line 7
        row(record_id="R7", involvement_start="2022-05-01", involvement_end="2021-01-01"),  # line 8
        row(record_id="R1", service="Early help"),  # line 9: second involvement, good
        row(record_id="R1", given_name="Someone"),  # line 10: conflicting identity
        row(record_id="R8", nhs_number="943 476 5919", postcode="ls62ab"),  # line 11: good
    ]
    report = import_csv(store, write_csv(tmp_path / "in.csv", rows))
    assert [(e.line, e.reason.split(":")[0]) for e in report.errors] == [
        (3, "date_of_birth"),
        (4, "given_name"),
        (5, "nhs_number"),
        (6, "sex"),
        (7, "shielded"),
        (8, "involvement_end"),
        (10, "record_id"),
    ]
    assert (report.rows_loaded, report.records_loaded, report.rows_rejected) == (3, 2, 7)
    records = {r.record_id: r for r in store.records()}
    assert set(records) == {"R1", "R8"}
    assert [i.service for i in records["R1"].involvements] == ["Children's social care", "Early help"]
    assert records["R8"].nhs_number == "9434765919" and records["R8"].postcode == "LS6 2AB"


def test_reasons_never_repeat_values(store, tmp_path):
    report = import_csv(
        store, write_csv(tmp_path / "in.csv", [row(date_of_birth="2014-02-30", nhs_number="1234567890")])
    )
    assert report.errors and "2014-02-30" not in report.errors[0].reason


def test_reimporting_the_same_file_is_idempotent(store, tmp_path):
    path = write_csv(tmp_path / "in.csv", [row(), row(service="Early help"), row(record_id="R2", given_name="Ben")])
    import_csv(store, path)
    first = list(store.records())
    import_csv(store, path)
    assert list(store.records()) == first
    assert store.count() == 2


def test_replace_all_drops_records_missing_from_the_file(store, tmp_path):
    import_csv(store, write_csv(tmp_path / "a.csv", [row(), row(record_id="R2", given_name="Ben")]))
    import_csv(store, write_csv(tmp_path / "b.csv", [row(record_id="R3", given_name="Cara")]), replace_all=True)
    assert [r.record_id for r in store.records()] == ["R3"]


def test_missing_required_column_fails_the_whole_file(store, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("record_id,given_name,family_name\nR1,A,B\n")
    with pytest.raises(ImportFileError, match="date_of_birth"):
        import_csv(store, path)
    assert store.count() == 0


def test_not_utf8_fails_clearly(store, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes("record_id,given_name,family_name,date_of_birth\nR1,Zoë,B,2014-01-01\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="UTF-8"):
        import_csv(store, path)


def test_unknown_columns_are_ignored_and_extra_fields_rejected(store, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        "record_id,given_name,family_name,date_of_birth,favourite_colour\n"
        "R1,Amelia,Smith,2014-03-09,blue\nR2,Ben,Smith,2014-03-09,red,extra\n"
    )
    report = import_csv(store, path)
    assert report.rows_loaded == 1 and [e.line for e in report.errors] == [3]
