"""Rendering rows: each holding as the records CSV rows an authority's system would hold.

Names, dates, addresses and postcodes get the disagreements real systems have;
practitioners are invented per authority and service. Rendering is the last
consumer of the random stream, authority by authority, so that rows can be
streamed; it must never change the plan it renders.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

from signpost.synth.config import REF_DAY
from signpost.synth.draw import Cumulative, between, pick, swap_day_month
from signpost.synth.names import (
    ADULT_GIVEN,
    AUTHORITIES,
    CALLED_BY_MIDDLE,
    CULTURES,
    DRAMA_ELSEWHERE,
    DRAMA_MOBILE,
    NICKNAMES,
    SERVICES,
    SPELLINGS,
    STREET_ABBREVIATIONS,
    callable_middle,
    drama_prefix,
    fold,
    squash,
    typo,
)
from signpost.synth.plan import Holding, Plan
from signpost.synth.population import Child


class Renderer:
    """Turns holdings into CSV rows the way each authority's system would hold the child."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = plan.rng
        self.service_pick = Cumulative([s[1] for s in SERVICES])
        self.staff: dict[tuple[int, int], list[tuple[str, str, str, str, str]]] = {}
        # The children searched for "exactly": their first record's identity, which those queries copy
        # (see queries.agree_with_records). Few, so kept even when rows stream.
        self._exact = {q["person_id"] for q in plan.queries if q["kind"] == "exact"}
        self.exact_identities: dict[str, dict[str, str]] = {}

    def rows(self, authority: int) -> Iterator[dict[str, str]]:
        for holding, record_id in zip(self.plan.holdings[authority], self.plan.record_ids[authority], strict=False):
            opened = between(self.rng, holding.start, min(holding.end, REF_DAY) - 1)
            identity = self._identity(holding, record_id, opened)
            for involvement in self._involvements(holding, authority, opened):
                yield {**identity, **involvement}

    def _identity(self, holding: Holding, record_id: str, opened: int) -> dict[str, str]:
        rng, child = self.rng, self.plan.children[holding.child]
        home = child.household.residences[holding.residence]
        given, middle, family, other = self._names(child, opened)
        iso = dt.date.fromordinal(child.dob).isoformat()
        sex = rng.random()
        identity = {
            "record_id": record_id,
            "given_name": given,
            "family_name": family,
            "middle_names": middle if rng.random() < 0.7 else "",
            "other_names": other,
            "date_of_birth": swap_day_month(iso) if rng.random() < 0.015 else iso,
            "sex": "" if sex < 0.1 else "U" if sex < 0.11 else child.sex,
            "address": self._address(home.address),
            "postcode": self._postcode(home.postcode),
            "nhs_number": child.nhs if rng.random() < 0.6 else "",
            "shielded": "true" if rng.random() < 0.01 else "false",
        }
        if child.pid in self._exact:
            self.exact_identities.setdefault(child.pid, identity)
        return identity

    def _names(self, child: Child, opened: int) -> tuple[str, str, str, str]:
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
            given = pick(rng, NICKNAMES[given]) if given in NICKNAMES else given
        elif r < 0.07:
            given = pick(rng, SPELLINGS[given]) if given in SPELLINGS else given
        elif r < 0.10:
            given = typo(rng, given)
        elif middle and (r < 0.12 or (given in CALLED_BY_MIDDLE and r < 0.4)) and callable_middle(middle):
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

    def _involvements(self, holding: Holding, authority: int, opened: int) -> Iterator[dict[str, str]]:
        rng, child = self.rng, self.plan.children[holding.child]
        last = min(holding.end, REF_DAY) - 1
        count = 1 if rng.random() < 0.6 else 2 if rng.random() < 0.7 else 3
        starts = sorted([opened] + [between(rng, opened, last) for _ in range(count - 1)])
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
        moved_away = last < REF_DAY - 1
        still_open = self.rng.random() < (0.1 if moved_away else 0.5 if latest else 0.2)
        if still_open or start + 14 > last:
            return ""
        return dt.date.fromordinal(between(self.rng, start + 14, last)).isoformat()

    def _involvement(self, authority: int, service: int, start: int, end: str) -> dict[str, str]:
        name, role, team, phone, email = pick(self.rng, self._staff(authority, service))
        return {
            "service": SERVICES[service][0],
            "team": team,
            "practitioner_name": name,
            "practitioner_role": role,
            "practitioner_phone": phone,
            "practitioner_email": email,
            "involvement_start": dt.date.fromordinal(start).isoformat(),
            "involvement_end": end,
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
        given = pick(rng, ADULT_GIVEN)
        family = pick(rng, CULTURES[self.plan.people.culture_picks[authority].pick(rng)].surnames)
        title, _, _, _, _, teams, roles = SERVICES[service]
        nhs = title in ("Health visiting", "Sexual health")  # usually run by an NHS trust
        domain = "nhs.net" if nhs else f"{code.lower().replace('-', '')}.gov.uk"
        email = f"{squash(given)}.{re.sub(r'[^a-z-]', '', fold(family).lower())}@{domain}"
        prefix = DRAMA_MOBILE if rng.random() < 0.2 else _phone_prefix(code)
        phone = f"{prefix}{rng.randrange(1000):03d}"
        return f"{given} {family}", pick(rng, roles), pick(rng, teams), phone, email


def _phone_prefix(code: str) -> str:
    authority = next((a for a in AUTHORITIES if a.code == code), None)
    return drama_prefix(authority) if authority else DRAMA_ELSEWHERE
