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


async def test_a_date_less_search_through_the_federation_locates_nobody_by_a_meaningless_home(federation):
    from structlog.testing import capture_logs

    from tests.conftest import row

    held = row(
        record_id="N",
        given_name="Noah",
        family_name="Price",
        date_of_birth="2019-11-30",
        postcode="LS6 2EW",
        address="Flat 1, 14 Oak Road",
    )
    fed = await federation({"LEEDS": [held]})
    with capture_logs() as logs:
        # Refused at the broker (core.subject.home_given), naming the address: no node is asked.
        for home in ({"address": "Flat 1 Road"}, {"address": "Flat 1"}, {"postcode": "LS6 2", "address": "1 Road"}):
            status, body = await fed.search({"given_name": "Noah", "family_name": "Price", **home})
            assert status == 400 and "subject.address" in body["error"]["fields"], home
        # A home that only partly agrees ("Flat 1" and a street the child does not live on) finds nobody.
        status, body = await fed.search(
            {"given_name": "Noah", "family_name": "Price", "address": "Flat 1, 14 Elm Road"}
        )
        assert status == 200 and body["results"] == []
        # An impossible date left out, at the real home: a possible with the front door only.
        status, body = await fed.search(
            {"given_name": "Noah", "family_name": "Price", "date_of_birth": "2019-02-30", "postcode": "LS6 2EW"}
        )
        assert status == 200 and [r["band"] for r in body["results"]] == ["possible"]
        assert not any(c.get("practitioner_name") for r in body["results"] for c in r["contacts"])
    text = repr(logs)
    assert not any(v in text for v in ("Noah", "Price", "2019-02-30", "2019-11-30", "Oak Road", "LS6 2EW"))


@pytest.mark.xfail(strict=True, reason="open: dated searches are not followed by their home (see the review report)")
async def test_many_names_at_one_home_each_with_a_made_up_date_alert():
    # The home keys make every child at a home a candidate whatever the date, and a given name agreeing
    # at the home is a possible (node.bands): "Jordan Zedworth", any date, 23 Mill Road finds every
    # Jordan living there. Eight such guesses, each with a new name and a new date, raise no alert.
    detector = PatternDetector(PatternSettings(names_per_date=8, dates_per_name=6), clock=lambda: 0.0)
    alerts = []
    for i, given in enumerate("Ava Noah Isla Leo Ivy Finn Rosa Theo".split()):
        subject = Subject(given, "Zedworth", date_of_birth=f"2012-01-{i + 1:02d}", address="23 Mill Road")
        alerts += await detector.observe("pat", "Org", pattern_keys(b"k" * 32, subject))
    assert alerts
