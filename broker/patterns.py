"""Unusual search patterns: one name swept over many dates of birth, or many names tried on one date.

Each search is well-formed and within the limits, but together they are a fishing trip: one name
searched with 300 consecutive dates of birth returned the same children's contacts every time, and
pinned a birthday. Over a rolling window (a day by default) this counts, per practitioner and per
organisation (three certificates of one organisation sweep together):

- ``one_name_many_dates``: the distinct dates of birth searched with one name (given + family);
- ``many_names_one_date``: the distinct names searched with one date of birth.

A search without a date of birth (both names and the home) counts its home in the date's place for one
name tried at many homes; its names are counted together with every other search without a date (a
home is spelt many ways that all agree at a node), so many names tried at one home alert as many names
on one date do.

Reaching a threshold raises an alert, at most once per window for each practitioner or organisation,
kind and name or date: the caller logs ``unusual_search_pattern`` (who, which organisation, the kind,
the count) and counts it in ``signpost_unusual_pattern_alerts_total{kind}``. It alerts and never
refuses: refusing is for the rate limits (``broker.ratelimit``), and an honest practitioner trying a
few dates for a child whose birthday is uncertain must still be answered.

The child is never held here: names and dates arrive as keyed hashes (HMAC-SHA256 with the audit's
subject key, under a label of their own, so they cannot be matched against audit entries without it)
and are never logged. The counts live in the broker's ``broker.limits_store``: in Redis, shared by
replicas (a sweep spread over three replicas is one sweep, alerted once), each key a hash, expiring with
the window and holding at most its threshold of values; in memory (one broker), at most ``max_tracked``
names or dates are followed at once, the least recently seen forgotten first.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from broker.limits_store import LimitsStore, MemoryStore
from core.identifiers import postcode_parts, postcode_valid
from core.names import letters_key
from core.subject import Subject

ONE_NAME_MANY_DATES = "one_name_many_dates"
MANY_NAMES_ONE_DATE = "many_names_one_date"
KINDS = (ONE_NAME_MANY_DATES, MANY_NAMES_ONE_DATE)
SCOPES = ("practitioner", "organisation")


@dataclass(frozen=True)
class PatternSettings:
    """The ``[patterns]`` table of the broker's config."""

    dates_per_name: int = 6
    """Distinct dates of birth searched with one name in the window that raise an alert; 0 = never."""
    names_per_date: int = 8
    """Distinct names searched with one date of birth in the window that raise an alert; 0 = never."""
    window_seconds: float = 86400.0
    """The rolling window the counts are over."""
    max_tracked: int = 100_000
    """Most names and dates followed at once (per practitioner and per organisation together)."""

    @property
    def enabled(self) -> bool:
        return self.dates_per_name > 0 or self.names_per_date > 0


OFF = PatternSettings(dates_per_name=0, names_per_date=0)
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


def pattern_keys(key: bytes, subject: Subject) -> PatternKeys:
    """Hash the searched name (given + family, any script) and date of birth with the subject key."""

    def digest(label: str, text: str) -> str:
        return hmac.new(key, f"pattern|{label}|{text}".encode(), hashlib.sha256).hexdigest() if text else ""

    given, family = letters_key(subject.given_name), letters_key(subject.family_name)
    name = f"{given}|{family}" if given or family else ""
    if subject.date_of_birth:
        return PatternKeys(digest("name", name), digest("date", subject.date_of_birth))
    # A search without a date of birth rests on the home instead (core.subject.home_given): many names
    # tried at one home, or one name at many homes, is the same sweep. Under its own label, so a home
    # never counts as a date.
    home = postcode_parts(subject.postcode)[0] if postcode_valid(subject.postcode) else _words(subject.address)
    # Many names are counted under no home but the absence of a date: a home can be spelt many ways that
    # all agree at a node ("23 Mill Rd", "23 Millroad", any postcode beside them), each a new key, so a
    # sweep of names over one house would never alert. Searches without a date of birth are the exception,
    # so their names counted together alert only on a sweep (or an unusual day of them).
    return PatternKeys(digest("name", name), digest("home", home), digest("home", "without a date of birth"))


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
        if not self.settings.enabled or not (keys.name and keys.date):
            return []
        now = self._clock()
        alerts = []
        for kind, threshold, about, value in (
            (ONE_NAME_MANY_DATES, self.settings.dates_per_name, keys.name, keys.date),
            (MANY_NAMES_ONE_DATE, self.settings.names_per_date, keys.names_under or keys.date, keys.name),
        ):
            if threshold <= 0:
                continue
            # Both are noted, whoever alerts: one practitioner's sweep is their organisation's too, and is
            # reported once, as the narrower. A certificate without an organisation is followed as a practitioner.
            counts = [
                (scope, await self._note(f"pattern:{scope}:{who}:{kind}:{about}", value, threshold, now) if who else 0)
                for scope, who in (("practitioner", actor), ("organisation", organisation))
            ]
            alerts += [Alert(kind, scope, count) for scope, count in counts if count][:1]
        return alerts

    async def _note(self, key: str, value: str, threshold: int, now: float) -> int:
        """Record ``value``; the distinct count if it just reached ``threshold`` (0 otherwise)."""
        window = self.settings.window_seconds
        count = await self.store.distinct(key, value, now, window, threshold)
        if count < threshold or not await self.store.once(f"{key}:alerted", now, window):
            return 0
        return count
