"""Many names tried at one home alert, with a date of birth or without, however the home is spelt (hostile review)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from broker.patterns import (
    MANY_NAMES_ONE_DATE,
    MANY_NAMES_ONE_HOME,
    Alert,
    PatternDetector,
    PatternSettings,
    pattern_keys,
)
from core.subject import Subject
from tests.conftest import row

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
        alerts += await detector.observe(
            "pat", "Org", pattern_keys(b"k" * 32, Subject(given_name=given, family_name="Price", **home))
        )
    assert [a.kind for a in alerts] == [MANY_NAMES_ONE_DATE]


async def test_a_date_less_search_through_the_federation_locates_nobody_by_a_meaningless_home(federation):
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


MADE_UP = "Ava Noah Isla Leo Ivy Finn Rosa Theo Maya Omar Ezra Nia".split()


async def _observe_all(detector, subjects, actors=("pat",), organisation="Org"):
    alerts = []
    for i, subject in enumerate(subjects):
        found = await detector.observe(actors[i % len(actors)], organisation, pattern_keys(b"k" * 32, subject))
        alerts.append(found)
    return alerts


async def test_many_names_at_one_home_each_with_a_made_up_date_alert():
    # The home keys make every child at a home a candidate whatever the date, and a given name agreeing
    # at the home is a possible (node.bands): "Jordan Zedworth", any date, 23 Mill Road finds every
    # Jordan living there. Each guess with a new name and a new date is one more guess at that house.
    detector = PatternDetector(PatternSettings(), clock=lambda: 0.0)
    subjects = [
        Subject(given_name=given, family_name="Zedworth", date_of_birth=f"2012-01-{i + 1:02d}", address="23 Mill Road")
        for i, given in enumerate(MADE_UP[:10])
    ]
    alerts = await _observe_all(detector, subjects)
    assert PatternSettings().names_per_home == 10
    assert alerts[:9] == [[]] * 9  # no other pattern either: every name and date is new
    assert alerts[9] == [Alert(MANY_NAMES_ONE_HOME, "practitioner", 10)]


async def test_a_households_siblings_searched_once_each_raise_no_alert():
    # Four siblings at one home, each searched by name, date of birth and the home (a middle name for
    # two of them), then one searched again with the date corrected: the default settings stay quiet.
    home = {"postcode": "LS6 2AB", "address": "Flat 1, 23 Mill Road"}
    siblings = [
        Subject(given_name="Jordan", family_name="Mensah", middle_names="Kofi", date_of_birth="2011-08-17", **home),
        Subject(given_name="Abena", family_name="Mensah", middle_names="Grace", date_of_birth="2013-02-01", **home),
        Subject(given_name="Kwame", family_name="Mensah", date_of_birth="2015-06-30", **home),
        Subject(given_name="Efua", family_name="Mensah", date_of_birth="2019-12-24", **home),
        Subject(given_name="Efua", family_name="Mensah", date_of_birth="2019-12-23", **home),
    ]
    detector = PatternDetector(PatternSettings(), clock=lambda: 0.0)
    assert await _observe_all(detector, siblings) == [[]] * len(siblings)


async def test_the_home_is_followed_however_the_postcode_or_street_is_keyed():
    # A node finds the house by the full postcode, by the district with the house number, or by the house
    # number with the street word: a sweep that changes the others each time still keeps one of them.
    same_district_and_house = [
        {"postcode": "LS6 2AB", "address": "23 Mill Road"},
        {"postcode": "LS6 9ZA", "address": "23 Mill Rd"},
        {"postcode": "LS6 2AB", "address": "23 Mil Road"},
        {"postcode": "LS6 7ZZ", "address": "23 Millroad"},
    ]
    same_house_and_street = [
        {"address": "23 Mill Road"},
        {"postcode": "BD1 1AA", "address": "23 Mill Rd"},
        {"postcode": "M1 1AE", "address": "23, mill road, leeds"},
    ]
    for homes in (same_district_and_house, same_house_and_street):
        subjects = [
            Subject(given_name=given, family_name="Zedworth", date_of_birth="2012-01-01", **homes[i % len(homes)])
            for i, given in enumerate(MADE_UP[:10])
        ]
        detector = PatternDetector(PatternSettings(names_per_date=0), clock=lambda: 0.0)
        alerts = await _observe_all(detector, subjects)
        assert [a.kind for found in alerts for a in found] == [MANY_NAMES_ONE_HOME], homes
    # Another house on the same street, or the same number on another street, is another home (each
    # another family: one family name held over many given names is followed wherever the home is).
    streets = "Mill Oak Elm Ash Birch Cedar Hazel Rowan Willow Alder Maple Poplar".split()
    elsewhere = [{"address": f"{n} Mill Road", "postcode": f"LS6 {n}AB"} for n in range(1, 13)]
    elsewhere += [{"address": f"23 {street} Road"} for street in streets]
    subjects = [
        Subject(given_name=MADE_UP[i % 12], family_name=f"Zed{streets[i % 12]}", date_of_birth="2012-01-01", **home)
        for i, home in enumerate(elsewhere)
    ]
    quiet = PatternDetector(PatternSettings(names_per_date=0, dates_per_name=0), clock=lambda: 0.0)
    assert await _observe_all(quiet, subjects) == [[]] * len(subjects)


async def test_given_names_packed_into_one_search_each_count():
    # A node tries the given name, the first middle name and each other name's first at the home: ten
    # names in one search are ten guesses, not one.
    subject = Subject(
        given_name="Ava",
        family_name="Zedworth",
        middle_names="Noah",
        other_names=tuple(f"{g} Zedworth" for g in MADE_UP[2:10]),
        date_of_birth="2012-01-01",
        address="23 Mill Road",
    )
    alerts = await _observe_all(PatternDetector(PatternSettings(), clock=lambda: 0.0), [subject])
    assert alerts == [[Alert(MANY_NAMES_ONE_HOME, "practitioner", 10)]]


async def test_colleagues_of_one_organisation_guessing_at_one_home_alert_as_their_organisation(limits_stores):
    # In memory and in the Redis replicas share: a search's home and names are noted at once, alerted once.
    subjects = [
        Subject(given_name=given, family_name="Zedworth", date_of_birth=f"2012-01-{i + 1:02d}", postcode="LS6 2AB")
        for i, given in enumerate(MADE_UP[:10])
    ]
    detector = PatternDetector(PatternSettings(), clock=lambda: 0.0, store=limits_stores())
    alerts = await _observe_all(detector, subjects, actors=("ann", "ben", "cat"))
    assert [a for found in alerts for a in found] == [Alert(MANY_NAMES_ONE_HOME, "organisation", 10)]
    assert alerts[9]  # the tenth name, whoever searched it
    # Alerted once a window: more names at that home raise nothing more.
    more = [
        Subject(given_name=g, family_name="Zedworth", date_of_birth="2012-02-01", postcode="LS6 2AB")
        for g in ("Zara", "Yusuf")
    ]
    assert await _observe_all(detector, more, actors=("ann",)) == [[], []]
    # A practitioner without an organisation is followed alone; names_per_home = 0 turns the pattern off.
    alone = await _observe_all(PatternDetector(PatternSettings(), clock=lambda: 0.0), subjects, organisation="")
    assert [a for found in alone for a in found] == [Alert(MANY_NAMES_ONE_HOME, "practitioner", 10)]
    off = PatternDetector(PatternSettings(names_per_home=0), clock=lambda: 0.0)
    assert await _observe_all(off, subjects) == [[]] * 10


def test_the_home_and_given_names_are_held_only_as_keyed_hashes():
    subject = Subject(
        given_name="Jordan",
        family_name="Mensah",
        middle_names="Kofi",
        date_of_birth="2011-08-17",
        postcode="LS6 2AB",
        address="23 Mill Road",
    )
    keys = pattern_keys(b"k" * 32, subject)
    assert len(keys.homes) == 3 and len(keys.givens) == 2  # postcode, district + house, house + street
    text = repr(keys).casefold()
    assert not any(v in text for v in ("jordan", "kofi", "mensah", "ls6", "2ab", "mill", "23 "))
    assert pattern_keys(b"j" * 32, subject).homes != keys.homes  # keyed: another key, other hashes
    # No home a node keys by (a town, a sector), or no given name: nothing counted at a home.
    assert (
        pattern_keys(
            b"k" * 32, Subject(given_name="Jordan", family_name="Mensah", date_of_birth="2011-08-17", address="Leeds")
        ).homes
        == ()
    )
    assert (
        pattern_keys(b"k" * 32, Subject(family_name="Mensah", nhs_number="9434765919", postcode="LS6 2AB")).givens == ()
    )


async def test_many_names_at_one_home_are_logged_and_counted_through_the_federation(federation):
    from tests.broker.test_fishing import metrics_text

    fed = await federation({"LEEDS": [row()]}, patterns=PatternSettings())
    with capture_logs() as logs:
        for i, given in enumerate(MADE_UP[:10]):
            subject = {"given_name": given, "family_name": "Zedworth", "date_of_birth": f"2012-01-{i + 1:02d}"}
            status, _ = await fed.search({**subject, "address": "12 Oak Road"})
            assert status == 200  # answered: the limits refuse, the patterns alert
    [alert] = [e for e in logs if e["event"] == "unusual_search_pattern"]
    assert alert["kind"] == MANY_NAMES_ONE_HOME and alert["scope"] == "practitioner" and alert["count"] == 10
    assert set(alert) == {"event", "log_level", "user", "organisation", "kind", "scope", "count"}  # no child
    assert f'signpost_unusual_pattern_alerts_total{{kind="{MANY_NAMES_ONE_HOME}"}} 1.0' in await metrics_text(fed)
    assert not any(v in repr(logs) for v in ("Zedworth", "Oak Road", *MADE_UP[:10]))
