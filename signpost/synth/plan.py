"""Who holds whom: every authority's holdings with record ids, the ground truth and the queries.

The plan builds the population, decides the holdings, numbers the records and
has the query set built; rendering rows (:mod:`signpost.synth.render`) comes
after and is the last consumer of the random stream, so the plan must never
draw anything once it is built.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from signpost.synth.config import SynthConfig
from signpost.synth.draw import pick
from signpost.synth.population import Child, Household, Population
from signpost.synth.queries import Queries


@dataclass(slots=True)
class Holding:
    child: int
    residence: int
    start: int
    end: int
    """The span during which this authority worked with the child (ordinal days)."""


def _record_prefix(code: str) -> str:
    """LEEDS -> LEE, TOWER-HAMLETS -> THA, NORTH-TYNESIDE -> NTY: short, and mostly distinct."""
    words = [w for w in code.split("-") if w]
    if len(words) == 1:
        return words[0][:3]
    initials = "".join(w[0] for w in words)[:3]
    return initials + words[-1][1 : 4 - len(initials)] if len(initials) < 3 else initials


class Plan:
    """The population, every authority's holdings with record ids, the truth and the queries."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.people = Population(config, self.rng)
        self.people.build()
        self.children = self.people.children
        self.holdings: list[list[Holding]] = [[] for _ in config.authorities]
        self.record_ids: list[list[str]] = []
        self._decide_holdings()
        self._assign_record_ids()
        self.queries = Queries(self).build()

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

    def _hold(self, index: int, household: Household) -> None:
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
            shown = homes[-1] if rng.random() < 0.6 else pick(rng, homes)
            start = max(child.dob, household.residences[homes[0]].start)
            holding = Holding(index, shown, start, household.residences[homes[-1]].end)
            self.holdings[authority].append(holding)
            if rng.random() < 0.005:  # a second record opened by another team of the same authority
                self.holdings[authority].append(Holding(index, shown, start, holding.end))

    def _assign_record_ids(self) -> None:
        for authority, holdings in enumerate(self.holdings):
            # Shuffled so that a file's order says nothing about households.
            self.rng.shuffle(holdings)
            prefix = _record_prefix(self.config.authorities[authority][0])
            width = max(6, len(str(len(holdings))))
            ids = [f"{prefix}-{n:0{width}d}" for n in range(1, len(holdings) + 1)]
            self.record_ids.append(ids)
            for holding, record_id in zip(holdings, ids, strict=False):
                self.children[holding.child].held.append((authority, record_id))

    def truth(self) -> Iterator[tuple[str, list[dict[str, str]]]]:
        """(person id, records) for everyone held, built on demand: a dict of millions is costly."""
        codes = [code for code, _ in self.config.authorities]
        for child in self.children:
            if child.held:
                # The household is named by its first child: the accuracy benchmark uses it to tell a
                # sibling or twin matched in error from any other wrong person.
                household = self.children[child.household.members[0]].pid
                yield (
                    child.pid,
                    [{"authority": codes[a], "record_id": r, "household": household} for a, r in sorted(child.held)],
                )

    def expected(self, child: Child) -> list[str]:
        held = {a for a, _ in child.held}
        return [code for n, (code, _) in enumerate(self.config.authorities) if n in held]
