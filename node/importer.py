"""Load an authority's records CSV into its node store.

Bad rows are reported with their line number and a reason and are skipped;
good rows are kept (:class:`RecordCollector`, shared with the database source,
:mod:`node.source`). Loading the same file twice leaves the same store: a
record's rows in the file replace that record's rows in the store. The reasons
name columns, never the values in them, so an import report can be shared with
an IT helpdesk without disclosing a child's details.

Expiry (``[retention] disclose_ended_years``, :mod:`node.policy` rule 6) is applied by the store in the
load's own transaction; :func:`count_expired` only says in the report how much of the input it took.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from node.errors import ImportFileError
from node.policy import still_disclosed
from node.records import REQUIRED, Record, RowError, parse_row, same_child
from node.store import RecordStore


@dataclass
class ImportReport:
    """What an import did: counts, and each rejected row with its reason."""

    rows_loaded: int = 0
    records_loaded: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows_expired: int = 0
    """Good rows (counted in ``rows_loaded``) whose involvement ended before the disclosure cutoff: not stored."""
    records_expired: int = 0
    """Records (counted in ``records_loaded``) with nothing left to disclose: not stored at all."""

    @property
    def rows_rejected(self) -> int:
        return len(self.errors)


def count_expired(report: ImportReport, records: list[Record], ended_before: str) -> None:
    """Fill the report's expiry counts: what the store will drop of ``records`` (nothing if no cutoff)."""
    if not ended_before:
        return
    for record in records:
        ended = sum(not still_disclosed(i, ended_before) for i in record.involvements)
        report.rows_expired += ended
        report.records_expired += ended == len(record.involvements)


class RecordCollector:
    """Rows in, whole records out: the one place a row is validated and joined to its record.

    The CSV importer and the database source (:mod:`node.source`) both feed it rows shaped like the
    records CSV (contract section 3), so a row means the same thing whichever way it arrives.
    """

    def __init__(self) -> None:
        self.report = ImportReport()
        self._by_id: dict[str, Record] = {}

    def reject(self, line: int, reason: str, key: str = "") -> None:
        self.report.errors.append(RowError(line, reason, key))

    def take(self, line: int, row: Mapping[str, str], key: str = "") -> None:
        """Validate one row and add it to its record, or record why not (naming the column, never the value)."""
        try:
            record, involvement = parse_row(row)
        except ValueError as exc:
            self.reject(line, str(exc), key)
            return
        existing = self._by_id.get(record.record_id)
        if existing is None:
            self._by_id[record.record_id] = replace(record, involvements=(involvement,))
        elif not same_child(existing, record):
            self.reject(line, "record_id: names or date of birth differ from an earlier row", key)
            return
        else:
            self._by_id[record.record_id] = replace(existing, involvements=(*existing.involvements, involvement))
        self.report.rows_loaded += 1

    def records(self) -> list[Record]:
        self.report.records_loaded = len(self._by_id)
        return list(self._by_id.values())


def read_records(path: Path) -> tuple[list[Record], ImportReport]:
    """Parse a records CSV into whole records, collecting bad rows instead of failing."""
    collector = RecordCollector()
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ImportFileError(f"{path}: header is missing required column(s): {', '.join(missing)}")
            for row in reader:
                if None in row:
                    collector.reject(reader.line_num, "row has more fields than the header")
                    continue
                collector.take(reader.line_num, {k: v or "" for k, v in row.items() if k is not None})
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except FileNotFoundError:
        raise ImportFileError(f"{path}: file not found") from None
    except csv.Error as exc:
        raise ImportFileError(f"{path}: unreadable CSV ({exc})") from None
    return collector.records(), collector.report


def import_csv(store: RecordStore, path: Path, *, replace_all: bool = False, ended_before: str = "") -> ImportReport:
    """Read ``path`` and store its good records; ``replace_all`` drops records absent from the file.

    ``ended_before`` (:func:`node.policy.disclosure_cutoff`; empty keeps everything) leaves out involvements
    that ended before it, and records with nothing left, in the same transaction.
    """
    records, report = read_records(path)
    count_expired(report, records, ended_before)
    store.replace_records(records, replace_all=replace_all, ended_before=ended_before)
    return report
