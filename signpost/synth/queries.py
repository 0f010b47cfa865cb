"""The query set: searches as a practitioner would type them, with known right answers.

Held children searched for exactly or with realistic variations (nicknames,
new surnames, swapped day and month...), and people held nowhere, some
deliberately close to someone who is. It must never describe a child in a way
that makes a query's expected answer wrong.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from signpost.synth.config import OLDEST_DOB, REF_DAY
from signpost.synth.draw import pick, swap_day_month
from signpost.synth.names import NICKNAMES, PURPOSES, SPELLINGS, callable_middle, canonical_name, fold, squash, typo
from signpost.synth.population import Child

if TYPE_CHECKING:
    from signpost.synth.plan import Plan

# The rest, about 15%, are people held nowhere.
_SHARES = {"moved": 0.10, "twin": 0.05, "sibling": 0.05, "variant": 0.30, "exact": 0.35}

# How often each applicable variation is chosen: the hard, realistic ones more than plain typos.
_VARIATION_WEIGHTS = {
    "nickname": 3.0,
    "spelling": 3.0,
    "new-surname": 4.0,
    "surname-part": 2.0,
    "accent-dropped": 2.0,
    "dob-day-month-swap": 2.0,
    "known-by-middle-name": 1.0,
    "typo-given": 1.5,
    "typo-family": 1.5,
    "minimal": 1.0,
}


class Queries:
    """Searches as a practitioner would type them, describing each child as known now."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = plan.rng
        self.children = plan.children

    def build(self) -> list[dict[str, Any]]:
        total = self.plan.config.queries
        made: list[tuple[str, str, Child | None, dict[str, Any]]] = []
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

    def _pools(self) -> dict[str, list[Child]]:
        held = [c for c in self.children if c.held]
        return {
            "moved": [c for c in held if len({a for a, _ in c.held}) > 1],
            "twin": [c for c in held if c.twin >= 0],
            "sibling": [c for c in held if c.twin < 0 and self._held_sibling(c)],
            "variant": held,
            "exact": held,
        }

    def _held_sibling(self, child: Child) -> bool:
        return any(self.children[i].held and self.children[i] is not child for i in child.household.members)

    def _sample(self, pool: list[Child], count: int) -> list[Child]:
        return self.rng.sample(pool, min(count, len(pool)))

    def _finish(
        self, qid: str, n: int, kind: str, detail: str, child: Child | None, subject: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "query_id": qid,
            "kind": kind,
            "detail": detail,
            "person_id": child.pid if child else None,
            "subject": subject,
            "purpose": {"code": PURPOSES[n % len(PURPOSES)], "justification": f"Synthetic query {qid}"},
            "expected": self.plan.expected(child) if child else [],
        }

    def _held_query(self, kind: str, child: Child) -> tuple[str, str, Child | None, dict[str, Any]]:
        subject = self.subject(child)
        detail = ""
        if kind == "variant":
            detail = self._vary(child, subject)
        elif kind == "twin":
            detail = "co-twin-held" if self.children[child.twin].held else "co-twin-not-held"
        return kind, detail, child, subject

    def subject(self, child: Child) -> dict[str, Any]:
        rng = self.rng
        home = child.household.residences[-1]
        subject: dict[str, Any] = {
            "given_name": child.given,
            "family_name": child.family,
            "date_of_birth": dt.date.fromordinal(child.dob).isoformat(),
        }
        optional = (
            ("middle_names", child.middle, 0.4),
            ("sex", child.sex, 0.9),
            ("postcode", home.postcode, 0.85),
            ("address", home.address, 0.5),
            ("nhs_number", child.nhs, 0.3),
        )
        for key, value, rate in optional:
            if value and rng.random() < rate:
                subject[key] = value
        if child.former and rng.random() < 0.3:
            subject["other_names"] = [f"{child.given} {child.former}"]
        return subject

    def _vary(self, child: Child, subject: dict[str, Any]) -> str:
        """Change the query the way a searcher's knowledge differs from the records."""
        options = [name for name, applies in self._variations(child, subject).items() if applies]
        detail = self.rng.choices(options, [_VARIATION_WEIGHTS[name] for name in options])[0]
        given, family = subject["given_name"], subject["family_name"]
        if detail == "nickname":
            subject["given_name"] = pick(self.rng, NICKNAMES[given])
        elif detail == "spelling":
            subject["given_name"] = pick(self.rng, SPELLINGS[given])
        elif detail == "accent-dropped":
            subject["given_name"], subject["family_name"] = fold(given), fold(family)
        elif detail in ("typo-given", "typo-family"):
            key = "given_name" if detail == "typo-given" else "family_name"
            subject[key] = typo(self.rng, subject[key])
        elif detail == "dob-day-month-swap":
            subject["date_of_birth"] = swap_day_month(subject["date_of_birth"])
        elif detail == "new-surname":
            subject.pop("other_names", None)
        elif detail == "surname-part":
            subject["family_name"] = pick(self.rng, family.split("-"))
        elif detail == "known-by-middle-name":
            subject["given_name"] = child.middle.split()[0]
            subject.pop("middle_names", None)
        else:
            for key in [k for k in subject if k not in ("given_name", "family_name", "date_of_birth")]:
                del subject[key]
        return detail

    @staticmethod
    def _variations(child: Child, subject: dict[str, Any]) -> dict[str, bool]:
        given, iso = subject["given_name"], subject["date_of_birth"]
        return {
            "nickname": given in NICKNAMES,
            "spelling": given in SPELLINGS,
            "accent-dropped": not (given + subject["family_name"]).isascii(),
            "typo-given": len(given) >= 4,
            "typo-family": len(subject["family_name"]) >= 4,
            "dob-day-month-swap": swap_day_month(iso) != iso,
            "new-surname": bool(child.former),
            "surname-part": "-" in subject["family_name"],
            "known-by-middle-name": callable_middle(child.middle),
            "minimal": True,
        }

    # ---- absent people: not held anywhere, some deliberately close to someone who is

    def _absent(self, count: int) -> list[tuple[str, str, Child | None, dict[str, Any]]]:
        candidates = self._near_misses(count // 2 + 1) + self._fresh(count * 2 + 4)
        clash = self._held_keys({self._key(s) for _, s in candidates})
        kept = [(d, s) for d, s in candidates if self._key(s) not in clash]
        near = [c for c in kept if c[0] != "fresh"][: count // 2]
        chosen = near + [c for c in kept if c[0] == "fresh"][: count - len(near)]
        return [("absent", detail, None, subject) for detail, subject in chosen]

    def _near_misses(self, count: int) -> list[tuple[str, dict[str, Any]]]:
        unheld = [c for c in self.children if not c.held and self._held_sibling(c)]
        misses = [
            ("twin-not-held" if c.twin >= 0 else "sibling-not-held", self.subject(c))
            for c in self._sample(unheld, count - count // 3)
        ]
        for child in self._sample([c for c in self.children if c.held], count - len(misses)):
            subject = self.subject(child)
            # Another child of the same name, elsewhere: nothing but the name is shared.
            for key in ("nhs_number", "other_names", "middle_names", "postcode", "address"):
                subject.pop(key, None)
            years = pick(self.rng, (-6, -5, -4, -3, -2, 2, 3, 4, 5, 6))
            dob = dt.date.fromordinal(child.dob)
            moved = dob.replace(year=dob.year + years, day=min(dob.day, 28))
            if OLDEST_DOB <= moved.toordinal() < REF_DAY:
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
        return (canonical_name(subject["given_name"]), squash(subject["family_name"]), subject["date_of_birth"])

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


_COPIED = ("given_name", "family_name", "middle_names", "date_of_birth", "sex", "postcode", "address", "nhs_number")


def agree_with_records(queries: list[dict[str, Any]], identities: dict[str, dict[str, str]]) -> None:
    """Make each "exact" query say what its child's first record says, on every field the query carries.

    The queries are drawn from the truth before rendering, and rendering gives records the
    disagreements real systems have (a typo, a nickname, "Baby", a middle name used as the first, an
    old address): an "exact" query built from the truth then differed from its own record — 1 in 15
    by first name — and its misses were counted as failures on exact searches. A field the record
    leaves empty (or sex "U") is dropped from the query: it cannot agree with nothing. Uses no
    random numbers, so rows and every other query are unchanged.
    """
    for query in queries:
        record = identities.get(query["person_id"] or "") if query["kind"] == "exact" else None
        if record is None:
            continue
        subject = query["subject"]
        for key in [k for k in _COPIED if k in subject]:
            value = record.get(key, "")
            if value and not (key == "sex" and value == "U"):
                subject[key] = value
            else:
                del subject[key]
        if "other_names" in subject:
            if record.get("other_names"):
                subject["other_names"] = [record["other_names"]]
            else:
                del subject["other_names"]
