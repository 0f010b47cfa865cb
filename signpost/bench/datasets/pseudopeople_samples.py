"""pseudopeople's bundled sample data sets (ACS, CPS, WIC): children under 18, two independently noised draws.

Design: draw seed 1 is held (each household at one of five authorities, split by a hash of
``household_id``, so siblings and twins sit together as they would in one council's records); draw
seed 2 is searched. ``simulant_id`` is the truth; ``household_id`` names the household. About 10% of
simulants (chosen by hash, not by household, so a sibling may still be held) are held nowhere, and a
simulant that the held draw omitted (pseudopeople's "do not respond" noise) is held nowhere too:
their searches must find nobody. ACS and CPS survey a different sample of households in each draw, so
many of their searches are for children held nowhere. Every survey year is taken (``year=None``):
the samples are small.

Dates of birth are moved 20 years back. The samples simulate 2019 to 2041, and a child born after
the day records and searches are judged on (``base.TODAY``) would be refused as born in the
future, which says nothing about matching. 20 keeps every digit but the year's tens digit for the
years 2020-2041 (so a one-digit typo stays one digit), and is a multiple of 4 (29 February stays
a real date). A year that is not four digits is left as typed.

Who is a child: age under 18 in either draw (``age`` where the data set has it, else the year of
birth against the row's survey year), so noise in one draw's age cannot drop a child.

Field mapping (pseudopeople -> records CSV / search subject):

- ``first_name`` -> given_name, ``middle_initial`` -> middle_names, ``last_name`` -> family_name;
- ``date_of_birth`` (MM/DD/YYYY, or MMDDYYYY in WIC) -> YYYY-MM-DD; anything that is not eight digits
  once the slashes are gone is passed as typed (the importer or the broker refuses it, counted);
- ``street_number`` + ``street_name`` + ``unit_number`` + ``city`` -> address;
- ``sex`` Male/Female -> M/F;
- ``zipcode`` is **not used**: the bundled samples give "00000" for over 95% of rows (one anonymised
  town) and noised copies of it for the rest, so mapped (:func:`postcodes.uk_postcode`) it would put
  every child at one postcode — evidence that means nothing, and a "home" every child shares;
- ``state``, ``race_ethnicity``, ``survey_date``, relationship and housing type are not used.

The decennial census sample is reserved for independent evaluation and never loaded here (see
:mod:`signpost.bench.datasets`); this module calls only the three generators named in ``SOURCES``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from signpost.bench.datasets.base import Dataset, Key, authority_of, held_out

SOURCES = {
    "pseudopeople-acs": "generate_american_community_survey",
    "pseudopeople-cps": "generate_current_population_survey",
    "pseudopeople-wic": "generate_women_infants_and_children",
}
HELD_SEED, QUERY_SEED = 1, 2
ABSENT_SHARE = 0.1


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


YEARS_BACK = 20


def iso_date(value: str, years_back: int = 0) -> str:
    digits = value.replace("/", "")
    if len(digits) == 8 and digits.isascii() and digits.isdigit():
        return f"{int(digits[4:]) - years_back:04d}-{digits[:2]}-{digits[2:4]}"
    return value


def subject(row: dict[str, Any]) -> dict[str, Any]:
    address = " ".join(_text(row.get(k)) for k in ("street_number", "street_name", "unit_number", "city"))
    return {
        "given_name": _text(row.get("first_name")),
        "middle_names": _text(row.get("middle_initial")),
        "family_name": _text(row.get("last_name")),
        "date_of_birth": iso_date(_text(row.get("date_of_birth")), YEARS_BACK),
        "sex": {"Male": "M", "Female": "F"}.get(_text(row.get("sex")), ""),
        "address": " ".join(address.split()),
    }


def _survey_year(row: dict[str, Any]) -> int:
    year = _text(row.get("year")) or _text(row.get("survey_date"))[:4]
    return int(year) if year.isdigit() else 0


def _is_child(row: dict[str, Any]) -> bool:
    age = _text(row.get("age"))
    if age.isdigit():
        return int(age) < 18
    born = iso_date(_text(row.get("date_of_birth")))[:4]
    return born.isdigit() and _survey_year(row) - int(born) < 18


def draw(name: str, seed: int) -> list[dict[str, Any]]:
    """One noised draw of a bundled sample, as plain dicts (pandas stays inside this function)."""
    import pseudopeople

    generate = getattr(pseudopeople, SOURCES[name])
    frame = generate(seed=seed, year=None, verbose=False)
    return list(frame.astype(object).to_dict(orient="records"))


def _rows(rows: list[dict[str, Any]], children: set[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, row in enumerate(rows):
        if _text(row["simulant_id"]) in children:
            yield n, row


def load(name: str, limit: int | None = None) -> Dataset:
    held_rows, query_rows = draw(name, HELD_SEED), draw(name, QUERY_SEED)
    children = {_text(r["simulant_id"]) for r in held_rows + query_rows if _is_child(r)}
    if limit is not None:
        children = set(sorted(children)[:limit])
    source = name.split("-")[1].upper()
    data = Dataset(name, f"pseudopeople {source} sample: draw {HELD_SEED} held, {QUERY_SEED} searched")
    held: dict[str, list[Key]] = {}
    for n, row in _rows(held_rows, children):
        simulant, household = _text(row["simulant_id"]), _text(row["household_id"])
        if held_out(simulant, ABSENT_SHARE):
            continue
        authority, record_id = authority_of(household), f"{name}-{HELD_SEED}-{n}"
        if data.add_record(authority, {"record_id": record_id, **subject(row)}, {household}):
            held.setdefault(simulant, []).append((authority, record_id))
    for n, row in _rows(query_rows, children):
        simulant = _text(row["simulant_id"])
        data.add_query(f"{name}-{QUERY_SEED}-{n}", subject(row), held.get(simulant, []), {_text(row["household_id"])})
    return data
