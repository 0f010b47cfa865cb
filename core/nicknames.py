"""Given names that can be the same person's name: nicknames and spelling variants.

A child may be "William" in one authority's records and "Bill" in another's,
"Siobhán" in one and "Chivonne" in another, "Mohammed" here and "Muhammad"
there. The data file ``core/data/given_name_variants.txt`` lists groups of
given names that can denote the same person (diminutives, short forms,
anglicised forms, spelling and transliteration variants); the node's matcher
asks :meth:`NameVariants.are_variants` whether two given names share a group,
and the broker's justification rule refuses the child's nicknames as it refuses
the child's name. It lives in the kernel because both sides read it.

Groups are not merged transitively: "alex" is in both the Alexander and the
Alexandra group, which makes each a variant of "alex" but not of each other.
Names that merely sound alike are not grouped: phonetic agreement is judged
elsewhere.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files
from pathlib import Path

from core.names import fold

_DATA_PACKAGE = "core.data"
_DATA_FILE = "given_name_variants.txt"
_A_TO_Z = re.compile(r"[a-z]+")
_NO_GROUPS: frozenset[int] = frozenset()


def normalise_given(name: str) -> str:
    """'Siobhán' -> 'siobhan', 'Łukasz' -> 'lukasz', 'Mary-Jane' -> 'maryjane'.

    The shared folding (core.names.fold), without the spaces between parts.
    """
    return fold(name).replace(" ", "")


# The hot loop compares the same few query names with many candidates.
_normalise_cached = functools.lru_cache(maxsize=1 << 16)(normalise_given)


class NameVariants:
    """Groups of given names that can be the same person's name."""

    def __init__(self, groups: list[frozenset[str]]) -> None:
        self._groups = tuple(groups)
        index: dict[str, set[int]] = {}
        for group_id, group in enumerate(self._groups):
            for name in group:
                index.setdefault(name, set()).add(group_id)
        self._index: dict[str, frozenset[int]] = {name: frozenset(ids) for name, ids in index.items()}

    @classmethod
    def load(cls, path: Path | None = None) -> NameVariants:
        """Read a variants file (default: the packaged one); ValueError names the bad line."""
        if path is None:
            text = files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
            source = _DATA_FILE
        else:
            text = path.read_text(encoding="utf-8")
            source = str(path)
        return cls(_parse(text, source))

    def groups_of(self, name: str) -> frozenset[int]:
        """Ids of the groups the name belongs to; empty if the name is unknown."""
        return self._index.get(_normalise_cached(name), _NO_GROUPS)

    def variants_of(self, name: str) -> frozenset[str]:
        """Every other name sharing a group with this one (for widening a blocking key)."""
        own = _normalise_cached(name)
        found = {other for group_id in self.groups_of(own) for other in self._groups[group_id]}
        found.discard(own)
        return frozenset(found)

    def normalised(self, name: str) -> str:
        """``name`` as the groups hold it (what ``are_variants`` compares)."""
        return _normalise_cached(name)

    def variant_set(self, name: str) -> frozenset[str]:
        """The normalised names that are variants of ``name``: ``are_variants(name, b)`` exactly when
        ``normalised(b)`` is in it (a query's names asked of many candidates' names, a set lookup each)."""
        own = _normalise_cached(name)
        found = {other for group_id in self._index.get(own, _NO_GROUPS) for other in self._groups[group_id]}
        found.discard(own)
        return frozenset(found)

    def are_variants(self, a: str, b: str) -> bool:
        """True if the names differ (once normalised) and share a group."""
        na = _normalise_cached(a)
        nb = _normalise_cached(b)
        if na == nb:
            return False
        index = self._index
        ga = index.get(na)
        if ga is None:
            return False
        gb = index.get(nb)
        return gb is not None and not ga.isdisjoint(gb)

    def __len__(self) -> int:
        return len(self._groups)


def _parse(text: str, source: str) -> list[frozenset[str]]:
    groups: list[frozenset[str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names: set[str] = set()
        for entry in line.split(","):
            entry = entry.strip()
            name = fold(entry)
            # Letters only (a hyphen, apostrophe or digit is an error, not something to fold away),
            # and letters that fold to a-z.
            if not entry.isalpha() or not _A_TO_Z.fullmatch(name):
                raise ValueError(f"{source} line {number}: {entry.strip()!r} is not a name of letters a-z")
            names.add(name)
        if len(names) < 2:
            raise ValueError(f"{source} line {number}: a group needs at least two different names")
        groups.append(frozenset(names))
    return groups


@functools.cache
def default_variants() -> NameVariants:
    """The packaged variants, loaded once per process."""
    return NameVariants.load()
