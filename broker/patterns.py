"""Unusual search patterns: one name swept over many dates of birth, many names tried on one date, or
many given names tried at one home.

Each search is well-formed and within the limits, but together they are a fishing trip: one name
searched with 300 consecutive dates of birth returned the same children's contacts every time, and
pinned a birthday. Over a rolling window (a day by default) this counts, per practitioner and per
organisation (three certificates of one organisation sweep together):

- ``one_name_many_dates``: the distinct dates of birth searched with one name (given + family);
- ``many_names_one_date``: the distinct names searched with one date of birth;
- ``many_names_one_home``: the distinct given names searched at one home, whatever the date. A node
  makes every child at a home a candidate whatever the date, and a given name agreeing there is a
  ``possible`` (node.bands), so "Jordan Zedworth, any date, 23 Mill Road" finds every Jordan living
  there: each new given name is one more guess at who lives in that house. A search's given names are
  its given name (whole and its first word), first middle name and each other name, each with the family
  name it is tried with, as one pair whichever way round it is typed (a node tries the names the other way
  round too); its home is read as a node keys homes (core.addresses): the full postcode, the postcode
  district with the house number, and the house number with the street word, each counted apart. A home
  that only partly agrees is the same home to a node when the search gives no postcode ("Mill Road", with
  no house number, finds every child of the name at 23 Mill Road), so it can be spelt anew every time:
  for the practitioner, the pairs are also counted under the search's given and family name fields
  whenever it gives any address or postcode (a household swept keeps its family name). Not for the
  organisation: many households of one family name are searched across one in a day.

A search without a date of birth (both names and the home) counts its home in the date's place for one
name tried at many homes; its names are counted together with every other search without a date (a
home is spelt many ways that all agree at a node), so many names tried at one home alert as many names
on one date do.

Reaching a threshold raises an alert, at most once per window for each practitioner or organisation,
kind and name, date or home: the caller logs ``unusual_search_pattern`` (who, which organisation, the
kind, the count) and counts it in ``signpost_unusual_pattern_alerts_total{kind}``. It alerts and never
refuses: refusing is for the rate limits (``broker.ratelimit``), and an honest practitioner trying a
few dates for a child whose birthday is uncertain, or a household's children one by one, must still be
answered.

The child is never held here: names, dates and homes arrive as keyed hashes (HMAC-SHA256 with the
audit's subject key, under a label of their own, so they cannot be matched against audit entries
without it) and are never logged. The counts live in the broker's ``broker.limits_store``: in Redis,
shared by replicas (a sweep spread over three replicas is one sweep, alerted once), each key a hash,
expiring with the window and holding at most its threshold of values; in memory (one broker), at most
``max_tracked`` names, dates or homes are followed at once, the least recently seen forgotten first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from broker.limits_store import MEMORY, LimitsStore, MemoryStore
from core.addresses import house_number, street_word
from core.identifiers import postcode_parts, postcode_valid
from core.names import letters_key, tokens
from core.subject import Subject

ONE_NAME_MANY_DATES = "one_name_many_dates"
MANY_NAMES_ONE_DATE = "many_names_one_date"
MANY_NAMES_ONE_HOME = "many_names_one_home"
KINDS = (ONE_NAME_MANY_DATES, MANY_NAMES_ONE_DATE, MANY_NAMES_ONE_HOME)
SCOPES = ("practitioner", "organisation")


@dataclass(frozen=True)
class PatternSettings:
    """The ``[patterns]`` table of the broker's config."""

    dates_per_name: int = 6
    """Distinct dates of birth searched with one name in the window that raise an alert; 0 = never."""
    names_per_date: int = 8
    """Distinct names searched with one date of birth in the window that raise an alert; 0 = never."""
    names_per_home: int = 10
    """Distinct given names searched at one home (any date, or none), or by one practitioner with one name
    field at any address, in the window that raise an alert; 0 = never. Ten lets a practitioner search a
    household of six children by given name, or four with a middle name each and a respelling, without an
    alert."""
    window_seconds: float = 86400.0
    """The rolling window the counts are over."""
    # A dated search with a home opens about seven sets (names, dates, homes, each for user and organisation):
    # 350,000 follow about as many searches as 100,000 did before many_names_one_home (about 45 MB a 100,000).
    max_tracked: int = 350_000
    """Most names and dates followed at once (per practitioner and per organisation together)."""

    @property
    def enabled(self) -> bool:
        return self.dates_per_name > 0 or self.names_per_date > 0 or self.names_per_home > 0


OFF = PatternSettings(dates_per_name=0, names_per_date=0, names_per_home=0)
"""No pattern alerts (bulk evaluation on one's own machine, like ``rate_limit_per_minute = 0``)."""


@dataclass(frozen=True)
class Alert:
    """One pattern that reached its threshold: safe to log (no child, only who and how many)."""

    kind: str
    scope: str
    """``practitioner`` or ``organisation``: whose searches made the pattern."""
    count: int


@dataclass(frozen=True)
class PatternKeys:
    """A search's name and date of birth (or, without one, its home) as keyed hashes; '' where it has none."""

    name: str
    date: str
    names_under: str = ""
    """What many names are counted under, when not ``date``: every search without a date of birth."""
    homes: tuple[str, ...] = ()
    """The home, each way a node keys it (full postcode; district and house number; house number and
    street word): many given names are counted under each."""
    givens: tuple[str, ...] = ()
    """Each given name the search tries with its family name (given, first middle, other names), in one
    order: counted at ``homes`` and, for the practitioner, at ``names``."""
    names: tuple[str, ...] = ()
    """The search's given and family name fields, when it gives any address or postcode: what a sweep over
    one household keeps however it spells the home (counted for the practitioner only)."""


def pattern_keys(key: bytes, subject: Subject) -> PatternKeys:
    """Hash the searched name (given + family, any script), date of birth, home and given names with the
    subject key."""

    keyed = _keyed(key)

    def digest(label: str, text: str) -> str:
        if not text:
            return ""
        mac = keyed.copy()  # the same HMAC as hmac.new(key, b"pattern|label|text"), without re-keying each time
        mac.update(f"{label}|{text}".encode())
        return mac.hexdigest()

    given, family = letters_key(subject.given_name), letters_key(subject.family_name)
    name = f"{given}|{family}" if given or family else ""
    homes = tuple(digest("home-key", h) for h in _home_keys(subject))
    # Any address or postcode may be a home a node agrees with ("Mill Road" with no house number and no
    # postcode partly agrees with 23 Mill Road, and a search without a postcode counts that as the home):
    # the search's own name fields are counted in too, so holding the family name while spelling the home
    # anew each time still alerts. A name field is counted whichever box it is typed in (a node tries the
    # names the other way round), and each given name tried with the family name it is tried with.
    at_home = bool(homes or subject.address.strip() or subject.postcode.strip())
    names = tuple(dict.fromkeys(digest("name-field", n) for n in (given, family) if n)) if at_home else ()
    givens = tuple(digest("given", "|".join(p)) for p in _name_pairs(subject, given, family)) if at_home else ()
    if subject.date_of_birth:
        return PatternKeys(
            digest("name", name), digest("date", subject.date_of_birth), homes=homes, givens=givens, names=names
        )
    # A search without a date of birth rests on the home instead (core.subject.home_given): many names
    # tried at one home, or one name at many homes, is the same sweep. Under its own label, so a home
    # never counts as a date.
    home = postcode_parts(subject.postcode)[0] if postcode_valid(subject.postcode) else _words(subject.address)
    # Many names are counted under no home but the absence of a date: a home can be spelt many ways that
    # all agree at a node ("23 Mill Rd", "23 Millroad", any postcode beside them), each a new key, so a
    # sweep of names over one house would never alert. Searches without a date of birth are the exception,
    # so their names counted together alert only on a sweep (or an unusual day of them).
    return PatternKeys(
        digest("name", name),
        digest("home", home),
        digest("home", "without a date of birth"),
        homes=homes,
        givens=givens,
        names=names,
    )


@lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC already keyed and fed the common prefix: a search hashes eight or more values with one key."""
    return hmac.new(key, b"pattern|", hashlib.sha256)


def _home_keys(subject: Subject) -> list[str]:
    """The home as a node's keys that hold no date find it (node.matching: the given name at the full
    postcode, or in the district at the house number; the home alone, by postcode or by street, with the
    house number). A home spelt another way that still meets one of these is counted there."""
    parts = postcode_parts(subject.postcode) if postcode_valid(subject.postcode) else ("", "", "", "")
    house, street = house_number(subject.address), street_word(subject.address)
    keys = [f"postcode|{parts[0]}"] if parts[0] else []
    if house and parts[2]:
        keys.append(f"district|{parts[2]}|{house}")
    if house and street:
        keys.append(f"street|{house}|{street}")
    return keys


def _name_pairs(subject: Subject, given: str, family: str) -> list[tuple[str, str]]:
    """Every given name the search tries at a node with the family name it is tried with, each pair in one
    order whichever box it came in ("Zedworth, Ava" is "Ava Zedworth" read the other way round, as a node
    reads it too): the given name whole (``given``) and its first word, the first middle name, and each
    other name as its first word and the rest (one word alone with the family name)."""
    firsts = [given, *tokens(subject.given_name)[:1], *tokens(subject.middle_names)[:1]]
    pairs = [(g, family) for g in firsts]
    for other in subject.other_names:
        words = tokens(other) or (letters_key(other),)
        pairs.append((words[0], "".join(words[1:]) or family))
    return list(dict.fromkeys((min(a, b), max(a, b)) for a, b in pairs if a and b))


def _words(address: str) -> str:
    """An address's words, case-folded, house number kept ("12 Oak Road," and "12 oak road" are one home)."""
    return " ".join(re.findall(r"\w+", address.casefold()))


class PatternDetector:
    """Counts distinct dates per name and names per date over a rolling window; see the module docstring."""

    def __init__(
        self, settings: PatternSettings, *, clock: Callable[[], float], store: LimitsStore | None = None
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.store: LimitsStore = store if store is not None else MemoryStore(max_tracked=settings.max_tracked)

    async def observe(self, actor: str, organisation: str, keys: PatternKeys) -> list[Alert]:
        """Note one search; the alerts it raises (none when nothing new reached a threshold)."""
        if not self.settings.enabled:
            return []
        now = self._clock()
        alerts = []
        if keys.name and keys.date:
            for kind, threshold, about, value in (
                (ONE_NAME_MANY_DATES, self.settings.dates_per_name, keys.name, keys.date),
                (MANY_NAMES_ONE_DATE, self.settings.names_per_date, keys.names_under or keys.date, keys.name),
            ):
                if threshold > 0:
                    alerts += await self._scopes(actor, organisation, kind, threshold, [(about, value)], now)
        if self.settings.names_per_home > 0 and keys.givens:
            noted = [(home, given) for home in keys.homes for given in keys.givens]
            # The name fields only for the practitioner: across an organisation many households share a
            # family name (or a given one) in a day, and one practitioner's sweep is what they follow.
            named = [(name, given) for name in keys.names for given in keys.givens]
            alerts += await self._scopes(
                actor, organisation, MANY_NAMES_ONE_HOME, self.settings.names_per_home, noted, now, own=named
            )
        return alerts

    async def _scopes(
        self,
        actor: str,
        organisation: str,
        kind: str,
        threshold: int,
        noted: list[tuple[str, str]],
        now: float,
        own: list[tuple[str, str]] | None = None,
    ) -> list[Alert]:
        """Note each (about, value) for the practitioner and for the organisation, and each of ``own`` for
        the practitioner alone; at most one alert."""
        # Both are noted, whoever alerts: one practitioner's sweep is their organisation's too, and is
        # reported once, as the narrower. A certificate without an organisation is followed as a practitioner.
        counts = []
        for scope, who in (("practitioner", actor), ("organisation", organisation)):
            if not who:
                continue
            # One search may note several values (a home keyed three ways, a given name and a middle one).
            # Every reach is marked (a key alerts once a window), and the search raises one alert whichever
            # key reached it.
            mine = noted + own if own and scope == "practitioner" else noted
            notes = [
                self._note(f"pattern:{scope}:{who}:{kind}:{about}", value, threshold, now) for about, value in mine
            ]
            if not notes:
                continue
            if self.store.kind == MEMORY or len(notes) == 1:
                # In memory each note is a few dict operations: a task apiece cost six times as much.
                reached = [await note for note in notes]
            else:
                reached = list(await asyncio.gather(*notes))  # in Redis each is a round trip: all at once
            counts.append((scope, max(reached, default=0)))
        return [Alert(kind, scope, count) for scope, count in counts if count][:1]

    async def _note(self, key: str, value: str, threshold: int, now: float) -> int:
        """Record ``value``; the distinct count if it just reached ``threshold`` (0 otherwise)."""
        window = self.settings.window_seconds
        count = await self.store.distinct(key, value, now, window, threshold)
        if count < threshold or not await self.store.once(f"{key}:alerted", now, window):
            return 0
        return count
