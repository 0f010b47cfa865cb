"""Many names tried at one home without a date of birth alert, however the home is spelt (hostile review)."""

from __future__ import annotations

import pytest

from broker.patterns import MANY_NAMES_ONE_DATE, PatternDetector, PatternSettings, pattern_keys
from core.subject import Subject

# Each of these agrees with the home "23 Mill Road", LS6 2AB at a node (the address agrees, whatever the
# postcode), so each search of a new name there is one more guess at who lives in that house.
HOMES = [
    {"address": "23 Mill Road"},
    {"address": "23 mill road leeds"},
    {"address": "23 Mil Road"},
    {"address": "23 Millroad"},
    {"address": "23 Mill Road", "postcode": "LS1 1AA"},
    {"address": "23 Mill Road", "postcode": "LS1 1AB"},
    {"address": "23 Mill Road", "postcode": "LS6 2AB"},
    {"address": "23 Mill Roadd"},
]


@pytest.mark.asyncio
async def test_many_names_at_one_home_spelt_differently_each_time_still_alert():
    detector = PatternDetector(PatternSettings(names_per_date=8), clock=lambda: 0.0)
    alerts = []
    for i, home in enumerate(HOMES):
        given = "Ava Noah Isla Leo Ivy Finn Rosa Theo".split()[i]
        alerts += await detector.observe("pat", "Org", pattern_keys(b"k" * 32, Subject(given, "Price", **home)))
    assert [a.kind for a in alerts] == [MANY_NAMES_ONE_DATE]
