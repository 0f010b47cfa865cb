"""Writing a data set: <CODE>.csv per authority, ground_truth.json and queries.json.

The bytes written are the contract with every benchmark and test that reads
them: same rows in, same bytes out, whether rows come from memory or stream.
It must never reorder, drop or reformat what it is given.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from operator import itemgetter
from pathlib import Path
from typing import Any, TextIO

from signpost.synth.config import SynthResult

COLUMNS: tuple[str, ...] = (
    "record_id",
    "given_name",
    "family_name",
    "middle_names",
    "other_names",
    "date_of_birth",
    "sex",
    "address",
    "postcode",
    "nhs_number",
    "service",
    "team",
    "practitioner_name",
    "practitioner_role",
    "practitioner_phone",
    "practitioner_email",
    "involvement_start",
    "involvement_end",
    "shielded",
    "sensitive",
)


def write(result: SynthResult, out_dir: Path) -> dict[str, int]:
    """Write <CODE>.csv per authority, ground_truth.json and queries.json; rows per code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {code: write_csv(out_dir / f"{code}.csv", rows) for code, rows in result.rows.items()}
    write_json(out_dir, result.truth.items(), result.queries)
    return counts


def write_csv(path: Path, rows: Iterable[dict[str, str]]) -> int:
    values = itemgetter(*COLUMNS)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        count = 0
        for row in rows:
            writer.writerow(values(row))
            count += 1
    return count


def write_json(out_dir: Path, truth: Iterable[tuple[str, list[dict[str, str]]]], queries: list[dict[str, Any]]) -> None:
    with (out_dir / "ground_truth.json").open("w", encoding="utf-8") as handle:
        _write_truth(handle, truth)
    with (out_dir / "queries.json").open("w", encoding="utf-8") as handle:
        json.dump(queries, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


def _write_truth(handle: TextIO, truth: Iterable[tuple[str, list[dict[str, str]]]]) -> None:
    # One person per line: valid JSON that stays streamable and diffable for millions of people.
    # Quoting by hand is several times faster than json.dumps per person and escapes the same way.
    quote = json.encoder.encode_basestring
    handle.write('{"persons": {')
    for n, (pid, records) in enumerate(truth):
        listed = ", ".join("{" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in r.items()) + "}" for r in records)
        handle.write(f"{',' if n else ''}\n{quote(pid)}: [{listed}]")
    handle.write("\n}}\n")
