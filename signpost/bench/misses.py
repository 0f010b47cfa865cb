"""``signpost bench accuracy --dataset NAME --misses FILE``: every expected record a linker did not return.

One row per (query, expected record) that Signpost or Splink missed, over the queries the broker
accepts (the same queries side by side, as ``m|p R=`` counts them): the query's id, the record's
authority and id, and the band each linker gave it ('' for none). Ids and bands only, never a
name, a date or an address: the file is for looking the records up in the public data set, and
a bench keeps the habit the service keeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from signpost.bench.datasets import Dataset
from signpost.bench.datasets.base import Key

Outcomes = dict[str, dict[Key, str]]
"""Per query id, the band each expected record came back in ('' for none)."""


def missed(data: Dataset, signpost: Outcomes, splink: Outcomes | None) -> list[dict[str, Any]]:
    """The rows of the misses file, in query order."""
    rows = []
    for query in data.queries:
        if query.subject is None:
            continue  # refused by the broker: counted apart (queries_refused_by_field)
        ours, theirs = signpost.get(query.query_id, {}), (splink or {}).get(query.query_id, {})
        for key in sorted(ours):
            row = {"query": query.query_id, "authority": key[0], "record": key[1], "signpost": ours[key]}
            if splink is not None:
                row["splink"] = theirs.get(key, "")
            if not row["signpost"] or row.get("splink") == "":
                rows.append(row)
    return rows


def write(path: Path, data: Dataset, signpost: Outcomes, splink: Outcomes | None) -> int:
    """Write the misses file (JSON); the number of rows."""
    rows = missed(data, signpost, splink)
    path.parent.mkdir(parents=True, exist_ok=True)
    both = sum(1 for r in rows if not r["signpost"] and r.get("splink", "") == "")
    summary = {
        "dataset": data.name,
        "signpost_only_missed": sum(1 for r in rows if not r["signpost"] and r.get("splink")),
        "splink_only_missed": sum(1 for r in rows if r["signpost"] and r.get("splink") == ""),
        "both_missed": both if splink is not None else None,
        "rows": rows,
    }
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return len(rows)
