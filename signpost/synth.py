"""Synthetic children's-services records with known ground truth.

Builds an invented population of children in households across English local
authorities, decides which authorities hold a record of each child, renders
those records as records CSV rows (contract section 3) with the disagreements
real systems have (nicknames, typos, old surnames and addresses, swapped day
and month, missing fields), and builds a query set whose right answers are
known.

Everything is invented: names come from lists, NHS numbers start with 9 (never
issued to patients; 999 is the official test range, too small on its own for
millions of children), phones are Ofcom drama numbers. The generator
must never read real data, the clock or the global random state: one config
gives byte-identical files.

Generation runs in two phases so that huge outputs can be streamed: a plan
(people, who holds whom, record ids, truth and queries) and then the rendering
of rows, authority by authority, which is the last consumer of the random
stream. :func:`generate` renders everything into memory; :func:`generate_to`
renders straight into files and writes the same bytes as
``write(generate(config), out_dir)``.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import datetime as dt
import gc
import itertools
import json
import random
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, TextIO, TypeVar

from core.identifiers import nhs_check_digit
from signpost.synth_names import (
    ADULT_GIVEN,
    AUTHORITIES,
    CULTURES,
    DRAMA_ELSEWHERE,
    DRAMA_MOBILE,
    NICKNAMES,
    PURPOSES,
    SERVICES,
    SPELLINGS,
    STREET_ABBREVIATIONS,
    STREET_KINDS,
    STREETS,
    Culture,
    canonical_name,
    culture_weights,
    drama_prefix,
    fold,
    gendered_surname,
    squash,
    typo,
)

COLUMNS: tuple[str, ...] = (
    "record_id", "given_name", "family_name", "middle_names", "other_names", "date_of_birth",
    "sex", "address", "postcode", "nhs_number", "service", "team", "practitioner_name",
    "practitioner_role", "practitioner_phone", "practitioner_email", "involvement_start",
    "involvement_end", "shielded", "sensitive",
)

ENGLISH_AUTHORITIES: tuple[tuple[str, str, int], ...] = tuple((a.code, a.name, a.size) for a in AUTHORITIES)
POSTCODE_DISTRICTS: dict[str, tuple[str, ...]] = {a.code: a.districts for a in AUTHORITIES}

# Ages are relative to a fixed day, not today, so that output never depends on when it runs.
REFERENCE_DATE = dt.date(2026, 1, 1)
_REF = REFERENCE_DATE.toordinal()
_OLDEST_DOB = dt.date(2008, 1, 2).toordinal()  # 17 years old on the reference date
_CODE = re.compile(r"^[A-Z0-9-]{2,32}$")
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters Royal Mail uses in the inward code
_T = TypeVar("_T")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate."""

    authorities: tuple[tuple[str, str], ...]
    """(code, name) of each authority that gets a records CSV."""
    children: int = 2000
    """Distinct children in the whole population; not every one is held anywhere."""
    seed: int = 1
    queries: int = 200
    """Size of the query set."""
    sizes: tuple[int, ...] | None = None
    """Relative weight of each authority (same order); equal when None."""

    def __post_init__(self) -> None:
        codes = [code for code, _ in self.authorities]
        if not codes:
            raise ValueError("SynthConfig.authorities must name at least one authority")
        bad = [c for c in codes if not _CODE.match(c)]
        if bad:
            raise ValueError(f"authority codes must be 2-32 of A-Z, 0-9 and '-': {bad[0]!r}")
        if len(set(codes)) != len(codes):
            raise ValueError("authority codes must be unique")
        sizes = self.sizes
        if sizes is not None and (len(sizes) != len(codes) or min(sizes) < 0 or sum(sizes) <= 0):
            raise ValueError("sizes must give one non-negative weight per authority, not all zero")
        if self.children < 0 or self.queries < 0:
            raise ValueError("children and queries must not be negative")


@dataclass
class SynthResult:
    rows: dict[str, list[dict[str, str]]]
    """Authority code -> records CSV rows keyed by contract column."""
    truth: dict[str, list[dict[str, str]]]
    """Person id -> the records that describe that person: {"authority", "record_id"}."""
    queries: list[dict[str, Any]]
    """{"query_id", "kind", "detail", "person_id", "subject", "purpose", "expected"}. kind is exact,
    variant, moved, twin, sibling or absent; detail names the variation (nickname, new-surname,
    twin-not-held, ...); expected lists the codes holding that person, empty for absent people."""


def config_for(authorities: int | Sequence[str], *, children: int = 2000, seed: int = 1,
               queries: int = 200) -> SynthConfig:
    """A config for the first N of ENGLISH_AUTHORITIES, or for named codes, sized realistically."""
    by_code = {a.code: a for a in AUTHORITIES}
    if isinstance(authorities, int):
        if not 1 <= authorities <= len(AUTHORITIES):
            raise ValueError(f"the number of authorities must be 1-{len(AUTHORITIES)}")
        chosen = list(AUTHORITIES[:authorities])
    else:
        unknown = [c for c in authorities if c not in by_code]
        if unknown:
            raise ValueError(f"unknown authority code {unknown[0]!r}")
        chosen = [by_code[c] for c in authorities]
    return SynthConfig(tuple((a.code, a.name) for a in chosen), children, seed, queries,
                       tuple(a.size for a in chosen))


# random.choice and randint cost three times as much; this runs millions of times per file.
def _pick(rng: random.Random, options: Sequence[_T]) -> _T:
    return options[int(rng.random() * len(options))]


def _between(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high], both ends included."""
    return low + int(rng.random() * (high - low + 1))


def _swap_day_month(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{year}-{day}-{month}" if int(day) <= 12 and day != month else iso


# --------------------------------------------------------------------------- population


@dataclass(slots=True)
class _Residence:
    authority: int
    address: str
    postcode: str
    start: int
    end: int
    """Ordinal day the family left (exclusive); the reference date for the current home."""


@dataclass(slots=True)
class _Household:
    culture: Culture
    residences: list[_Residence]
    accents: bool
    """Whether the family writes the accents of their names (Oisín, Wiśniewski)."""
    members: list[int] = field(default_factory=list)
    change_day: int = 0
    """Ordinal day the children's surname changed; 0 when it never did."""


@dataclass(slots=True)
class _Child:
    pid: str
    household: _Household
    given: str
    middle: str
    family: str
    former: str
    """Surname before a change (step-parent's name or hyphenation); empty when unchanged."""
    dob: int
    sex: str
    nhs: str
    twin: int = -1
    held: list[tuple[int, str]] = field(default_factory=list)
    """(authority index, record id) of every record describing this child."""


@dataclass(slots=True)
class _Holding:
    child: int
    residence: int
    start: int
    end: int
    """The span during which this authority worked with the child (ordinal days)."""


class _Cumulative:
    """Weighted choice by bisection: random.choices re-sums the weights on every call."""

    def __init__(self, weights: Sequence[float]) -> None:
        self.totals = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> int:
        return bisect.bisect_right(self.totals, rng.random() * self.totals[-1])


# Traditions in which many boys are registered Muhammad first and called by their second name.
_MUHAMMAD_FIRST = frozenset({"pakistani", "bangladeshi"})
_ENGLISH = CULTURES[0]


class _Population:
    """Households of children, where they lived, and which authorities hold them."""

    def __init__(self, config: SynthConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.codes = [code for code, _ in config.authorities]
        self.authority_pick = _Cumulative(config.sizes or [1] * len(self.codes))
        self.districts = [_districts_for(code) for code in self.codes]
        self.culture_picks = [_Cumulative(culture_weights(code)) for code in self.codes]
        self.children: list[_Child] = []
        self.nhs_seen: set[str] = set()
        self.pid_width = max(6, len(str(config.children)))

    def build(self) -> None:
        while len(self.children) < self.config.children:
            self.add_household(min(self._household_size(), self.config.children - len(self.children)))

    def _household_size(self) -> int:
        r = self.rng.random()
        return 1 if r < 0.45 else 2 if r < 0.78 else 3 if r < 0.92 else 4 if r < 0.97 else 5

    def add_household(self, size: int) -> None:
        rng = self.rng
        home = self.residence(self.authority_pick.pick(rng), 0)
        culture = CULTURES[self.culture_picks[home.authority].pick(rng)]
        family = self.surname(culture)
        household = _Household(culture, [home], accents=rng.random() < 0.6)
        used: set[str] = set()
        for dob in self._birthdays(size):
            twins = 2 if rng.random() < 0.015 and len(household.members) < size - 1 else 1
            first = len(self.children)
            # Now and then a half-sibling carries the other parent's surname.
            own = family if not household.members or rng.random() > 0.06 else self.surname(culture)
            for _ in range(twins):
                self._child(household, own, dob, used)
            if twins == 2:
                self.children[first].twin, self.children[first + 1].twin = first + 1, first
            if len(household.members) >= size:
                break
        self._life_events(household, family)

    def _birthdays(self, size: int) -> list[int]:
        oldest = _between(self.rng, _OLDEST_DOB, max(_OLDEST_DOB, _REF - 1 - (size - 1) * 800))
        days = [oldest]
        while len(days) < size:
            # A sibling who would be born after the reference date is not born yet: clamping them to
            # the last day instead would pile hundreds of children onto one birthday.
            following = days[-1] + _between(self.rng, 330, 2000)
            if following >= _REF:
                break
            days.append(following)
        return days

    def surname(self, culture: Culture) -> str:
        family = _pick(self.rng, culture.surnames)
        if self.rng.random() < 0.04:
            other = _pick(self.rng, _ENGLISH.surnames if self.rng.random() < 0.6 else culture.surnames)
            family = family if other == family else f"{family}-{other}"
        return family

    def _child(self, household: _Household, family: str, dob: int, used: set[str]) -> None:
        rng = self.rng
        sex = "M" if rng.random() < 0.51 else "F"
        given, middle = self._given_names(household.culture, sex, used)
        family = gendered_surname(family, sex, household.culture)
        if not household.accents:
            given, middle, family = fold(given), fold(middle), fold(family)
        child = _Child(
            pid=f"p{len(self.children) + 1:0{self.pid_width}d}", household=household,
            given=given, middle=middle, family=family, former="", dob=dob, sex=sex, nhs=self.nhs_number(),
        )
        household.members.append(len(self.children))
        self.children.append(child)

    def _given_names(self, culture: Culture, sex: str, used: set[str]) -> tuple[str, str]:
        rng = self.rng
        source = _ENGLISH if rng.random() < culture.anglo_rate else culture
        names = source.boys if sex == "M" else source.girls
        given = _pick(rng, names)
        for _ in range(8):  # siblings, and above all twins, need different names
            if canonical_name(given) not in used:
                break
            given = _pick(rng, names)
        used.add(canonical_name(given))
        middle = ""
        if rng.random() < culture.middle_rate:
            pool = (culture.boys_middle if sex == "M" else culture.girls_middle) or names
            middle = _pick(rng, pool)
            if middle == given:
                middle = ""
            elif rng.random() < 0.1:
                middle = f"{middle} {_pick(rng, _ENGLISH.boys if sex == 'M' else _ENGLISH.girls)}"
        muhammad = canonical_name("Muhammad")
        if culture.key in _MUHAMMAD_FIRST and sex == "M" and muhammad not in used and rng.random() < 0.2:
            used.add(muhammad)
            given, middle = _pick(rng, ("Muhammad", "Mohammed")), given  # known by the second name
        return given, middle

    def nhs_number(self) -> str:
        while True:
            first_nine = str(_between(self.rng, 900_000_000, 999_999_999))
            check = nhs_check_digit(first_nine)
            if check is not None and (number := f"{first_nine}{check}") not in self.nhs_seen:
                self.nhs_seen.add(number)
                return number

    def residence(self, authority: int, start: int) -> _Residence:
        rng = self.rng
        street = f"{_pick(rng, STREETS)} {_pick(rng, STREET_KINDS)}"
        address = f"{_between(rng, 1, 180)} {street}"
        if rng.random() < 0.12:
            address = f"Flat {_between(rng, 1, 24)}, {address}"
        postcode = f"{_pick(rng, self.districts[authority])} {_between(rng, 1, 9)}" \
                   f"{_pick(rng, _INWARD_LETTERS)}{_pick(rng, _INWARD_LETTERS)}"
        return _Residence(authority, address, postcode, start, _REF)

    def _life_events(self, household: _Household, family: str) -> None:
        first_dob = min(self.children[i].dob for i in household.members)
        if first_dob + 400 < _REF - 60:
            if self.rng.random() < 0.12:
                self._moves(household, first_dob)
            if self.rng.random() < 0.04:
                self._surname_change(household, family, first_dob)

    def _moves(self, household: _Household, first_dob: int) -> None:
        rng = self.rng
        moves = 1 if rng.random() < 0.8 else 2
        days = sorted({_between(rng, first_dob + 60, _REF - 60) for _ in range(moves)})
        current = household.residences[0]
        homes = []
        for day in days:
            other = self.authority_pick.pick(rng)
            if other == current.authority and len(self.codes) > 1 and rng.random() < 0.7:
                other = (other + 1 + rng.randrange(len(self.codes) - 1)) % len(self.codes)
            homes.append(self.residence(other, 0))
        homes.append(current)
        for home, start, end in zip(homes, [0, *days], [*days, _REF]):
            home.start, home.end = start, end
        household.residences = homes

    def _surname_change(self, household: _Household, family: str, first_dob: int) -> None:
        rng = self.rng
        household.change_day = _between(rng, first_dob + 180, _REF - 30)
        step = _pick(self.rng, _ENGLISH.surnames if rng.random() < 0.6 else household.culture.surnames)
        new = f"{family}-{step}" if rng.random() < 0.5 and "-" not in family else step
        if new == family:
            return
        for i in household.members:
            child = self.children[i]
            if fold(child.family) == fold(gendered_surname(family, child.sex, household.culture)):
                child.former = child.family if child.dob < household.change_day else ""
                child.family = gendered_surname(new, child.sex, household.culture)


def _record_prefix(code: str) -> str:
    """LEEDS -> LEE, TOWER-HAMLETS -> THA, NORTH-TYNESIDE -> NTY: short, and mostly distinct."""
    words = [w for w in code.split("-") if w]
    if len(words) == 1:
        return words[0][:3]
    initials = "".join(w[0] for w in words)[:3]
    return initials + words[-1][1:4 - len(initials)] if len(initials) < 3 else initials


def _districts_for(code: str) -> tuple[str, ...]:
    # An authority outside the table still needs plausible postcodes: a stable pick from the table.
    if code in POSTCODE_DISTRICTS:
        return POSTCODE_DISTRICTS[code]
    return AUTHORITIES[sum(map(ord, code)) % len(AUTHORITIES)].districts


# --------------------------------------------------------------------------- who holds whom


class _Plan:
    """The population, every authority's holdings with record ids, the truth and the queries."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.people = _Population(config, self.rng)
        self.people.build()
        self.children = self.people.children
        self.holdings: list[list[_Holding]] = [[] for _ in config.authorities]
        self.record_ids: list[list[str]] = []
        self._decide_holdings()
        self._assign_record_ids()
        self.queries = _Queries(self).build()

    def _decide_holdings(self) -> None:
        rng = self.rng
        for index, child in enumerate(self.children):
            household = child.household
            if household.members[0] != index or rng.random() >= 0.8:
                continue  # each family once; some no service has ever worked with
            decided: dict[int, bool] = {}
            for i in household.members:
                partner, r = decided.get(self.children[i].twin), rng.random()
                if partner is None:
                    known = r < 0.85
                else:  # services usually know both twins, but not always
                    known = partner if r < 0.85 else not partner
                decided[i] = known
                if known:
                    self._hold(i, household)

    def _hold(self, index: int, household: _Household) -> None:
        """One record per authority the child lived in; moved children often at several."""
        child, rng = self.children[index], self.rng
        lived = [(n, r) for n, r in enumerate(household.residences) if r.end > max(child.dob, r.start)]
        by_authority: dict[int, list[int]] = {}
        for n, home in lived:
            by_authority.setdefault(home.authority, []).append(n)
        chosen = [a for a in by_authority if rng.random() < (0.9 if a == lived[-1][1].authority else 0.75)]
        for authority in chosen or [lived[-1][1].authority]:
            homes = by_authority[authority]
            # An authority that missed a local move keeps the old address.
            shown = homes[-1] if rng.random() < 0.6 else _pick(rng, homes)
            start = max(child.dob, household.residences[homes[0]].start)
            holding = _Holding(index, shown, start, household.residences[homes[-1]].end)
            self.holdings[authority].append(holding)
            if rng.random() < 0.005:  # a second record opened by another team of the same authority
                self.holdings[authority].append(_Holding(index, shown, start, holding.end))

    def _assign_record_ids(self) -> None:
        for authority, holdings in enumerate(self.holdings):
            # Shuffled so that a file's order says nothing about households.
            self.rng.shuffle(holdings)
            prefix = _record_prefix(self.config.authorities[authority][0])
            width = max(6, len(str(len(holdings))))
            ids = [f"{prefix}-{n:0{width}d}" for n in range(1, len(holdings) + 1)]
            self.record_ids.append(ids)
            for holding, record_id in zip(holdings, ids):
                self.children[holding.child].held.append((authority, record_id))

    def truth(self) -> Iterator[tuple[str, list[dict[str, str]]]]:
        """(person id, records) for everyone held, built on demand: a dict of millions is costly."""
        codes = [code for code, _ in self.config.authorities]
        for child in self.children:
            if child.held:
                # The household is named by its first child: the accuracy benchmark uses it to tell a
                # sibling or twin matched in error from any other wrong person.
                household = self.children[child.household.members[0]].pid
                yield child.pid, [{"authority": codes[a], "record_id": r, "household": household}
                                  for a, r in sorted(child.held)]

    def expected(self, child: _Child) -> list[str]:
        held = {a for a, _ in child.held}
        return [code for n, (code, _) in enumerate(self.config.authorities) if n in held]


# --------------------------------------------------------------------------- queries

# The rest, about 15%, are people held nowhere.
_SHARES = {"moved": 0.10, "twin": 0.05, "sibling": 0.05, "variant": 0.30, "exact": 0.35}
# Boys named Muhammad first are usually called by their second name; nobody is called Singh or Kaur.
_CALLED_BY_MIDDLE = frozenset({"Muhammad", "Mohammed"})
_NOT_CALLED = frozenset({"Singh", "Kaur"})


def _callable(middle: str) -> bool:
    """Whether a child could plausibly be known by the first of these middle names."""
    return bool(middle) and middle.split(" ")[0] not in _NOT_CALLED


# How often each applicable variation is chosen: the hard, realistic ones more than plain typos.
_VARIATION_WEIGHTS = {
    "nickname": 3.0, "spelling": 3.0, "new-surname": 4.0, "surname-part": 2.0, "accent-dropped": 2.0,
    "dob-day-month-swap": 2.0, "known-by-middle-name": 1.0, "typo-given": 1.5, "typo-family": 1.5,
    "minimal": 1.0,
}


class _Queries:
    """Searches as a practitioner would type them, describing each child as known now."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.rng = plan.rng
        self.children = plan.children

    def build(self) -> list[dict[str, Any]]:
        total = self.plan.config.queries
        made: list[tuple[str, str, _Child | None, dict[str, Any]]] = []
        used: set[str] = set()
        shortfall = 0
        # Scarce kinds first; what they cannot fill becomes exact queries.
        for kind, pool in self._pools().items():
            want = round(total * _SHARES[kind]) + (shortfall if kind == "exact" else 0)
            chosen = self._sample([c for c in pool if c.pid not in used], want)
            used.update(c.pid for c in chosen)
            made.extend(self._held_query(kind, child) for child in chosen)
            shortfall += want - len(chosen)
        made.extend(self._absent(total - len(made)))
        self.rng.shuffle(made)
        width = max(4, len(str(total)))
        return [self._finish(f"q{n:0{width}d}", n, *item) for n, item in enumerate(made, 1)]

    def _pools(self) -> dict[str, list[_Child]]:
        held = [c for c in self.children if c.held]
        return {
            "moved": [c for c in held if len({a for a, _ in c.held}) > 1],
            "twin": [c for c in held if c.twin >= 0],
            "sibling": [c for c in held if c.twin < 0 and self._held_sibling(c)],
            "variant": held,
            "exact": held,
        }

    def _held_sibling(self, child: _Child) -> bool:
        return any(self.children[i].held and self.children[i] is not child for i in child.household.members)

    def _sample(self, pool: list[_Child], count: int) -> list[_Child]:
        return self.rng.sample(pool, min(count, len(pool)))

    def _finish(self, qid: str, n: int, kind: str, detail: str, child: _Child | None,
                subject: dict[str, Any]) -> dict[str, Any]:
        return {
            "query_id": qid, "kind": kind, "detail": detail,
            "person_id": child.pid if child else None,
            "subject": subject,
            "purpose": {"code": PURPOSES[n % len(PURPOSES)], "justification": f"Synthetic query {qid}"},
            "expected": self.plan.expected(child) if child else [],
        }

    def _held_query(self, kind: str, child: _Child) -> tuple[str, str, _Child | None, dict[str, Any]]:
        subject = self.subject(child)
        detail = ""
        if kind == "variant":
            detail = self._vary(child, subject)
        elif kind == "twin":
            detail = "co-twin-held" if self.children[child.twin].held else "co-twin-not-held"
        return kind, detail, child, subject

    def subject(self, child: _Child) -> dict[str, Any]:
        rng = self.rng
        home = child.household.residences[-1]
        subject: dict[str, Any] = {"given_name": child.given, "family_name": child.family,
                                   "date_of_birth": dt.date.fromordinal(child.dob).isoformat()}
        optional = (("middle_names", child.middle, 0.4), ("sex", child.sex, 0.9),
                    ("postcode", home.postcode, 0.85), ("address", home.address, 0.5),
                    ("nhs_number", child.nhs, 0.3))
        for key, value, rate in optional:
            if value and rng.random() < rate:
                subject[key] = value
        if child.former and rng.random() < 0.3:
            subject["other_names"] = [f"{child.given} {child.former}"]
        return subject

    def _vary(self, child: _Child, subject: dict[str, Any]) -> str:
        """Change the query the way a searcher's knowledge differs from the records."""
        options = [name for name, applies in self._variations(child, subject).items() if applies]
        detail = self.rng.choices(options, [_VARIATION_WEIGHTS[name] for name in options])[0]
        given, family = subject["given_name"], subject["family_name"]
        if detail == "nickname":
            subject["given_name"] = _pick(self.rng, NICKNAMES[given])
        elif detail == "spelling":
            subject["given_name"] = _pick(self.rng, SPELLINGS[given])
        elif detail == "accent-dropped":
            subject["given_name"], subject["family_name"] = fold(given), fold(family)
        elif detail in ("typo-given", "typo-family"):
            key = "given_name" if detail == "typo-given" else "family_name"
            subject[key] = typo(self.rng, subject[key])
        elif detail == "dob-day-month-swap":
            subject["date_of_birth"] = _swap_day_month(subject["date_of_birth"])
        elif detail == "new-surname":
            subject.pop("other_names", None)
        elif detail == "surname-part":
            subject["family_name"] = _pick(self.rng, family.split("-"))
        elif detail == "known-by-middle-name":
            subject["given_name"] = child.middle.split()[0]
            subject.pop("middle_names", None)
        else:
            for key in [k for k in subject if k not in ("given_name", "family_name", "date_of_birth")]:
                del subject[key]
        return detail

    @staticmethod
    def _variations(child: _Child, subject: dict[str, Any]) -> dict[str, bool]:
        given, iso = subject["given_name"], subject["date_of_birth"]
        return {
            "nickname": given in NICKNAMES,
            "spelling": given in SPELLINGS,
            "accent-dropped": not (given + subject["family_name"]).isascii(),
            "typo-given": len(given) >= 4,
            "typo-family": len(subject["family_name"]) >= 4,
            "dob-day-month-swap": _swap_day_month(iso) != iso,
            "new-surname": bool(child.former),
            "surname-part": "-" in subject["family_name"],
            "known-by-middle-name": _callable(child.middle),
            "minimal": True,
        }

    # ---- absent people: not held anywhere, some deliberately close to someone who is

    def _absent(self, count: int) -> list[tuple[str, str, _Child | None, dict[str, Any]]]:
        candidates = self._near_misses(count // 2 + 1) + self._fresh(count * 2 + 4)
        clash = self._held_keys({self._key(s) for _, s in candidates})
        kept = [(d, s) for d, s in candidates if self._key(s) not in clash]
        near = [c for c in kept if c[0] != "fresh"][: count // 2]
        chosen = near + [c for c in kept if c[0] == "fresh"][: count - len(near)]
        return [("absent", detail, None, subject) for detail, subject in chosen]

    def _near_misses(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        unheld = [c for c in self.children if not c.held and self._held_sibling(c)]
        misses = [("twin-not-held" if c.twin >= 0 else "sibling-not-held", self.subject(c))
                  for c in self._sample(unheld, count - count // 3)]
        for child in self._sample([c for c in self.children if c.held], count - len(misses)):
            subject = self.subject(child)
            # Another child of the same name, elsewhere: nothing but the name is shared.
            for key in ("nhs_number", "other_names", "middle_names", "postcode", "address"):
                subject.pop(key, None)
            years = _pick(self.rng, (-6, -5, -4, -3, -2, 2, 3, 4, 5, 6))
            dob = dt.date.fromordinal(child.dob)
            moved = dob.replace(year=dob.year + years, day=min(dob.day, 28))
            if _OLDEST_DOB <= moved.toordinal() < _REF:
                subject["date_of_birth"] = moved.isoformat()
                misses.append(("same-name-other-dob", subject))
        return misses

    def _fresh(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        """New people built like the population but never added to it."""
        people = self.plan.people
        before = len(people.children)
        for _ in range(count):
            people.add_household(1)
        fresh = people.children[before:]
        del people.children[before:]
        return [("fresh", self.subject(c)) for c in fresh]

    @staticmethod
    def _key(subject: dict[str, Any]) -> tuple[str, str, str]:
        return (canonical_name(subject["given_name"]), squash(subject["family_name"]),
                subject["date_of_birth"])

    def _held_keys(self, keys: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Which of these keys also describe someone who is held (one pass, no pairwise compare)."""
        dates = {dt.date.fromisoformat(k[2]).toordinal() for k in keys}
        clash = set()
        for child in self.children:
            if not child.held or child.dob not in dates:
                continue
            iso = dt.date.fromordinal(child.dob).isoformat()
            for family in filter(None, (child.family, child.former, *child.family.split("-"))):
                for given in filter(None, (child.given, child.middle.split(" ")[0])):
                    key = (canonical_name(given), squash(family), iso)
                    if key in keys:
                        clash.add(key)
        return clash


# --------------------------------------------------------------------------- rendering rows


class _Renderer:
    """Turns holdings into CSV rows the way each authority's system would hold the child."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.rng = plan.rng
        self.service_pick = _Cumulative([s[1] for s in SERVICES])
        self.staff: dict[tuple[int, int], list[tuple[str, str, str, str, str]]] = {}

    def rows(self, authority: int) -> Iterator[dict[str, str]]:
        for holding, record_id in zip(self.plan.holdings[authority], self.plan.record_ids[authority]):
            opened = _between(self.rng, holding.start, min(holding.end, _REF) - 1)
            identity = self._identity(holding, record_id, opened)
            for involvement in self._involvements(holding, authority, opened):
                yield {**identity, **involvement}

    def _identity(self, holding: _Holding, record_id: str, opened: int) -> dict[str, str]:
        rng, child = self.rng, self.plan.children[holding.child]
        home = child.household.residences[holding.residence]
        given, middle, family, other = self._names(child, opened)
        iso = dt.date.fromordinal(child.dob).isoformat()
        sex = rng.random()
        return {
            "record_id": record_id, "given_name": given, "family_name": family,
            "middle_names": middle if rng.random() < 0.7 else "", "other_names": other,
            "date_of_birth": _swap_day_month(iso) if rng.random() < 0.015 else iso,
            "sex": "" if sex < 0.1 else "U" if sex < 0.11 else child.sex,
            "address": self._address(home.address), "postcode": self._postcode(home.postcode),
            "nhs_number": child.nhs if rng.random() < 0.6 else "",
            "shielded": "true" if rng.random() < 0.01 else "false",
        }

    def _names(self, child: _Child, opened: int) -> tuple[str, str, str, str]:
        rng = self.rng
        given, middle, family, other = child.given, child.middle, child.family, ""
        if child.former:
            if opened < child.household.change_day and rng.random() < 0.7:
                family = child.former  # opened before the change and never updated
            elif rng.random() < 0.5:
                other = f"{child.given} {child.former}"
        r = rng.random()
        if opened - child.dob < 28 and r < 0.12:
            given, middle = "Baby", ""  # registered before the baby was named
        elif r < 0.04:
            given = _pick(rng, NICKNAMES[given]) if given in NICKNAMES else given
        elif r < 0.07:
            given = _pick(rng, SPELLINGS[given]) if given in SPELLINGS else given
        elif r < 0.10:
            given = typo(rng, given)
        elif middle and (r < 0.12 or given in _CALLED_BY_MIDDLE and r < 0.4) and _callable(middle):
            given, middle = middle.split(" ")[0], given
        r = rng.random()
        family = typo(rng, family) if r < 0.03 else family.upper() if r < 0.05 else family
        if not (given + middle + family).isascii() and rng.random() < 0.35:
            given, middle, family = fold(given), fold(middle), fold(family)
        return given, middle, family, other

    def _address(self, address: str) -> str:
        r = self.rng.random()
        if r < 0.06:
            return ""
        if r < 0.16:
            return " ".join(STREET_ABBREVIATIONS.get(word, word) for word in address.split(" "))
        return address.upper() if r < 0.18 else address

    def _postcode(self, postcode: str) -> str:
        r = self.rng.random()
        if r < 0.07:
            return ""
        if r < 0.10:
            return postcode.replace(" ", "")
        return postcode.lower() if r < 0.12 else postcode

    def _involvements(self, holding: _Holding, authority: int, opened: int) -> Iterator[dict[str, str]]:
        rng, child = self.rng, self.plan.children[holding.child]
        last = min(holding.end, _REF) - 1
        count = 1 if rng.random() < 0.6 else 2 if rng.random() < 0.7 else 3
        starts = sorted([opened] + [_between(rng, opened, last) for _ in range(count - 1)])
        for n, start in enumerate(starts):
            service = self._service((start - child.dob) // 365)
            yield self._involvement(authority, service, start, self._end(start, last, n == count - 1))

    def _service(self, age: int) -> int:
        for _ in range(3):
            n = self.service_pick.pick(self.rng)
            if SERVICES[n][3] <= age <= SERVICES[n][4]:
                return n
        return 0

    def _end(self, start: int, last: int, latest: bool) -> str:
        """Closed involvements end before the child left; the newest one is often still open."""
        moved_away = last < _REF - 1
        still_open = self.rng.random() < (0.1 if moved_away else 0.5 if latest else 0.2)
        if still_open or start + 14 > last:
            return ""
        return dt.date.fromordinal(_between(self.rng, start + 14, last)).isoformat()

    def _involvement(self, authority: int, service: int, start: int, end: str) -> dict[str, str]:
        name, role, team, phone, email = _pick(self.rng, self._staff(authority, service))
        return {
            "service": SERVICES[service][0], "team": team, "practitioner_name": name,
            "practitioner_role": role, "practitioner_phone": phone, "practitioner_email": email,
            "involvement_start": dt.date.fromordinal(start).isoformat(), "involvement_end": end,
            "sensitive": "true" if SERVICES[service][2] else "false",
        }

    def _staff(self, authority: int, service: int) -> list[tuple[str, str, str, str, str]]:
        """A team of practitioners per authority and service, each holding many children."""
        key = (authority, service)
        if key not in self.staff:
            share = SERVICES[service][1] / sum(s[1] for s in SERVICES)
            size = 2 + min(2000, int(len(self.plan.holdings[authority]) * share / 25))
            self.staff[key] = [self._practitioner(authority, service) for _ in range(size)]
        return self.staff[key]

    def _practitioner(self, authority: int, service: int) -> tuple[str, str, str, str, str]:
        rng = self.rng
        code = self.plan.config.authorities[authority][0]
        given = _pick(rng, ADULT_GIVEN)
        family = _pick(rng, CULTURES[self.plan.people.culture_picks[authority].pick(rng)].surnames)
        title, _, _, _, _, teams, roles = SERVICES[service]
        nhs = title in ("Health visiting", "Sexual health")  # usually run by an NHS trust
        domain = "nhs.net" if nhs else f"{code.lower().replace('-', '')}.gov.uk"
        email = f"{squash(given)}.{re.sub(r'[^a-z-]', '', fold(family).lower())}@{domain}"
        prefix = DRAMA_MOBILE if rng.random() < 0.2 else _phone_prefix(code)
        phone = f"{prefix}{rng.randrange(1000):03d}"
        return f"{given} {family}", _pick(rng, roles), _pick(rng, teams), phone, email


def _phone_prefix(code: str) -> str:
    authority = next((a for a in AUTHORITIES if a.code == code), None)
    return drama_prefix(authority) if authority else DRAMA_ELSEWHERE


# --------------------------------------------------------------------------- public API


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Millions of small acyclic objects make the cyclic collector rescan the heap for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate(config: SynthConfig) -> SynthResult:
    """Build the whole synthetic data set in memory (about 1 KB per row)."""
    with _without_cyclic_gc():
        plan = _Plan(config)
        renderer = _Renderer(plan)
        rows = {code: list(renderer.rows(n)) for n, (code, _) in enumerate(config.authorities)}
        return SynthResult(rows=rows, truth=dict(plan.truth()), queries=plan.queries)


def write(result: SynthResult, out_dir: Path) -> dict[str, int]:
    """Write <CODE>.csv per authority, ground_truth.json and queries.json; rows per code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {code: _write_csv(out_dir / f"{code}.csv", rows) for code, rows in result.rows.items()}
    _write_json(out_dir, result.truth.items(), result.queries)
    return counts


def generate_to(config: SynthConfig, out_dir: Path) -> dict[str, int]:
    """Like write(generate(config), out_dir), byte for byte, without holding rows in memory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with _without_cyclic_gc():
        plan = _Plan(config)
        renderer = _Renderer(plan)
        _write_json(out_dir, plan.truth(), plan.queries)
        return {code: _write_csv(out_dir / f"{code}.csv", renderer.rows(n))
                for n, (code, _) in enumerate(config.authorities)}


def _write_csv(path: Path, rows: Iterable[dict[str, str]]) -> int:
    values = itemgetter(*COLUMNS)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        count = 0
        for count, row in enumerate(rows, 1):
            writer.writerow(values(row))
    return count


def _write_json(out_dir: Path, truth: Iterable[tuple[str, list[dict[str, str]]]],
                queries: list[dict[str, Any]]) -> None:
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
        handle.write(f'{"," if n else ""}\n{quote(pid)}: [{listed}]')
    handle.write("\n}}\n")


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory for the CSVs and ground truth")
    parser.add_argument("--authorities", default="5",
                        help="how many authorities (the first N, starting LEEDS, MANCHESTER, KENT, CORNWALL, "
                             "TOWER-HAMLETS) or a comma-separated list of codes (default 5)")
    parser.add_argument("--children", type=int, default=2000,
                        help="children in the population; about 70%% are held somewhere (default 2000)")
    parser.add_argument("--queries", type=int, default=200, help="queries with known answers (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same files (default 1)")


def run(args: argparse.Namespace) -> int:
    spec: str = args.authorities.strip()
    chosen: int | list[str] = int(spec) if spec.isdigit() else [c.strip().upper() for c in spec.split(",")]
    try:
        config = config_for(chosen, children=args.children, seed=args.seed, queries=args.queries)
    except ValueError as exc:
        print(f"signpost synth: {exc}", file=sys.stderr)
        return 2
    counts = generate_to(config, args.out)
    for code, rows in counts.items():
        print(f"{args.out / (code + '.csv')}: {rows} rows")
    print(f"{args.out / 'ground_truth.json'}: which records describe which child")
    print(f"{args.out / 'queries.json'}: {args.queries} queries")
    return 0
