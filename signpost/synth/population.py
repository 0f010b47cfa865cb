"""The invented population: households of children, their names, birthdays and homes.

Moves between authorities and surname changes happen here; which authorities
hold a record of whom is decided later, by :mod:`signpost.synth.plan`. It must
never read real data or the global random state: every draw comes from the
plan's seeded generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from core.identifiers import nhs_check_digit
from signpost.synth.config import OLDEST_DOB, POSTCODE_DISTRICTS, REF_DAY, SynthConfig
from signpost.synth.draw import Cumulative, between, pick
from signpost.synth.names import (
    AUTHORITIES,
    CULTURES,
    STREET_KINDS,
    STREETS,
    Culture,
    canonical_name,
    culture_weights,
    fold,
    gendered_surname,
)

_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters Royal Mail uses in the inward code


@dataclass(slots=True)
class Residence:
    authority: int
    address: str
    postcode: str
    start: int
    end: int
    """Ordinal day the family left (exclusive); the reference date for the current home."""


@dataclass(slots=True)
class Household:
    culture: Culture
    residences: list[Residence]
    accents: bool
    """Whether the family writes the accents of their names (Oisín, Wiśniewski)."""
    members: list[int] = field(default_factory=list)
    change_day: int = 0
    """Ordinal day the children's surname changed; 0 when it never did."""


@dataclass(slots=True)
class Child:
    pid: str
    household: Household
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


# Traditions in which many boys are registered Muhammad first and called by their second name.
_MUHAMMAD_FIRST = frozenset({"pakistani", "bangladeshi"})
_ENGLISH = CULTURES[0]


class Population:
    """Households of children, where they lived, and which authorities hold them."""

    def __init__(self, config: SynthConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.codes = [code for code, _ in config.authorities]
        self.authority_pick = Cumulative(config.sizes or [1] * len(self.codes))
        self.districts = [_districts_for(code) for code in self.codes]
        self.culture_picks = [Cumulative(culture_weights(code)) for code in self.codes]
        self.children: list[Child] = []
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
        household = Household(culture, [home], accents=rng.random() < 0.6)
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
        oldest = between(self.rng, OLDEST_DOB, max(OLDEST_DOB, REF_DAY - 1 - (size - 1) * 800))
        days = [oldest]
        while len(days) < size:
            # A sibling who would be born after the reference date is not born yet: clamping them to
            # the last day instead would pile hundreds of children onto one birthday.
            following = days[-1] + between(self.rng, 330, 2000)
            if following >= REF_DAY:
                break
            days.append(following)
        return days

    def surname(self, culture: Culture) -> str:
        family = pick(self.rng, culture.surnames)
        if self.rng.random() < 0.04:
            other = pick(self.rng, _ENGLISH.surnames if self.rng.random() < 0.6 else culture.surnames)
            family = family if other == family else f"{family}-{other}"
        return family

    def _child(self, household: Household, family: str, dob: int, used: set[str]) -> None:
        rng = self.rng
        sex = "M" if rng.random() < 0.51 else "F"
        given, middle = self._given_names(household.culture, sex, used)
        family = gendered_surname(family, sex, household.culture)
        if not household.accents:
            given, middle, family = fold(given), fold(middle), fold(family)
        child = Child(
            pid=f"p{len(self.children) + 1:0{self.pid_width}d}",
            household=household,
            given=given,
            middle=middle,
            family=family,
            former="",
            dob=dob,
            sex=sex,
            nhs=self.nhs_number(),
        )
        household.members.append(len(self.children))
        self.children.append(child)

    def _given_names(self, culture: Culture, sex: str, used: set[str]) -> tuple[str, str]:
        rng = self.rng
        source = _ENGLISH if rng.random() < culture.anglo_rate else culture
        names = source.boys if sex == "M" else source.girls
        given = pick(rng, names)
        for _ in range(8):  # siblings, and above all twins, need different names
            if canonical_name(given) not in used:
                break
            given = pick(rng, names)
        used.add(canonical_name(given))
        middle = ""
        if rng.random() < culture.middle_rate:
            pool = (culture.boys_middle if sex == "M" else culture.girls_middle) or names
            middle = pick(rng, pool)
            if middle == given:
                middle = ""
            elif rng.random() < 0.1:
                middle = f"{middle} {pick(rng, _ENGLISH.boys if sex == 'M' else _ENGLISH.girls)}"
        muhammad = canonical_name("Muhammad")
        if culture.key in _MUHAMMAD_FIRST and sex == "M" and muhammad not in used and rng.random() < 0.2:
            used.add(muhammad)
            given, middle = pick(rng, ("Muhammad", "Mohammed")), given  # known by the second name
        return given, middle

    def nhs_number(self) -> str:
        while True:
            first_nine = str(between(self.rng, 900_000_000, 999_999_999))
            check = nhs_check_digit(first_nine)
            if check is not None and (number := f"{first_nine}{check}") not in self.nhs_seen:
                self.nhs_seen.add(number)
                return number

    def residence(self, authority: int, start: int) -> Residence:
        rng = self.rng
        street = f"{pick(rng, STREETS)} {pick(rng, STREET_KINDS)}"
        address = f"{between(rng, 1, 180)} {street}"
        if rng.random() < 0.12:
            address = f"Flat {between(rng, 1, 24)}, {address}"
        postcode = (
            f"{pick(rng, self.districts[authority])} {between(rng, 1, 9)}"
            f"{pick(rng, _INWARD_LETTERS)}{pick(rng, _INWARD_LETTERS)}"
        )
        return Residence(authority, address, postcode, start, REF_DAY)

    def _life_events(self, household: Household, family: str) -> None:
        first_dob = min(self.children[i].dob for i in household.members)
        if first_dob + 400 < REF_DAY - 60:
            if self.rng.random() < 0.12:
                self._moves(household, first_dob)
            if self.rng.random() < 0.04:
                self._surname_change(household, family, first_dob)

    def _moves(self, household: Household, first_dob: int) -> None:
        rng = self.rng
        moves = 1 if rng.random() < 0.8 else 2
        days = sorted({between(rng, first_dob + 60, REF_DAY - 60) for _ in range(moves)})
        current = household.residences[0]
        homes = []
        for _day in days:
            other = self.authority_pick.pick(rng)
            if other == current.authority and len(self.codes) > 1 and rng.random() < 0.7:
                other = (other + 1 + rng.randrange(len(self.codes) - 1)) % len(self.codes)
            homes.append(self.residence(other, 0))
        homes.append(current)
        for home, start, end in zip(homes, [0, *days], [*days, REF_DAY], strict=False):
            home.start, home.end = start, end
        household.residences = homes

    def _surname_change(self, household: Household, family: str, first_dob: int) -> None:
        rng = self.rng
        household.change_day = between(rng, first_dob + 180, REF_DAY - 30)
        step = pick(self.rng, _ENGLISH.surnames if rng.random() < 0.6 else household.culture.surnames)
        new = f"{family}-{step}" if rng.random() < 0.5 and "-" not in family else step
        if new == family:
            return
        for i in household.members:
            child = self.children[i]
            if fold(child.family) == fold(gendered_surname(family, child.sex, household.culture)):
                child.former = child.family if child.dob < household.change_day else ""
                child.family = gendered_surname(new, child.sex, household.culture)


def _districts_for(code: str) -> tuple[str, ...]:
    # An authority outside the table still needs plausible postcodes: a stable pick from the table.
    if code in POSTCODE_DISTRICTS:
        return POSTCODE_DISTRICTS[code]
    return AUTHORITIES[sum(map(ord, code)) % len(AUTHORITIES)].districts
