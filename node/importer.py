"""Load an authority's records CSV into its node store.

Bad rows are reported with their line number and a reason and are skipped;
good rows are kept. Loading the same file twice leaves the same store: a
record's rows in the file replace that record's rows in the store. The reasons
name columns, never the values in them, so an import report can be shared with
an IT helpdesk without disclosing a child's details.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path

from node.errors import ImportFileError
from node.records import REQUIRED, Record, RowError, parse_row, same_child
from node.store import RecordStore


@dataclass
class ImportReport:
    """What an import did: counts, and each rejected row with its reason."""

    rows_loaded: int = 0
    records_loaded: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return len(self.errors)


def read_records(path: Path) -> tuple[list[Record], ImportReport]:
    """Parse a records CSV into whole records, collecting bad rows instead of failing."""
    report = ImportReport()
    by_id: dict[str, Record] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ImportFileError(f"{path}: header is missing required column(s): {', '.join(missing)}")
            for row in reader:
                _take_row(reader.line_num, row, by_id, report)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except FileNotFoundError:
        raise ImportFileError(f"{path}: file not found") from None
    except csv.Error as exc:
        raise ImportFileError(f"{path}: unreadable CSV ({exc})") from None
    report.records_loaded = len(by_id)
    return list(by_id.values()), report


def _take_row(line: int, row: dict[str, str | None], by_id: dict[str, Record], report: ImportReport) -> None:
    if None in row:
        report.errors.append(RowError(line, "row has more fields than the header"))
        return
    clean = {k: v or "" for k, v in row.items() if k is not None}
    try:
        record, involvement = parse_row(clean)
    except ValueError as exc:
        report.errors.append(RowError(line, str(exc)))
        return
    existing = by_id.get(record.record_id)
    if existing is None:
        by_id[record.record_id] = replace(record, involvements=(involvement,))
    elif not same_child(existing, record):
        report.errors.append(RowError(line, "record_id: names or date of birth differ from an earlier row"))
        return
    else:
        by_id[record.record_id] = replace(existing, involvements=(*existing.involvements, involvement))
    report.rows_loaded += 1


def import_csv(store: RecordStore, path: Path, *, replace_all: bool = False) -> ImportReport:
    """Read ``path`` and store its good records; ``replace_all`` drops records absent from the file."""
    records, report = read_records(path)
    store.replace_records(records, replace_all=replace_all)
    return report
