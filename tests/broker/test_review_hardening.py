"""Hostile review of many_names_one_home: a household swept by a practitioner who spells the home, or
writes the names, so that no home hash repeats, while a real node still finds each child."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from broker.limits_store import MemoryStore
from broker.patterns import MANY_NAMES_ONE_HOME, Alert, PatternDetector, PatternSettings, pattern_keys
from core.subject import Subject
from node.matching import MatchEngine, MatchSettings
from node.records import Record
from tests.conftest import row

KEY = b"k" * 32
CHILDREN = "Ava Noah Isla Leo Ivy Finn Rosa Theo Maya Omar".split()
HOME = {"postcode": "LS6 2AB", "address": "23 Mill Road"}
# Each agrees with 23 Mill Road at a node when no postcode is given (node.bands.same_home: an address
# that agrees, or partly agrees with no postcode to compare), and no two share a home key of
# broker.patterns (full postcode; district and house number; house number and street word).
RESPELT = [
    "Mill Road",  # no house number: no home key at all
    "23 Millroad",
    "23 Mi llroad",
    "23 Millr oad",
    "23 Millro ad",
    "23 Ab Mill Road",
    "23 Cd Mill Road",
    "23 Mlil Road",
    "23 Miill Road",
    "Mill Rd",
]


def _engine() -> MatchEngine:
    others = [
        Record(record_id=f"X{i}", given_name=g, family_name=f, date_of_birth=f"201{i % 9}-0{1 + i % 9}-1{i % 9}")
        for i, (g, f) in enumerate((g, f) for g in CHILDREN for f in ("Patel", "Jones", "Khan"))
    ]
    household = [
        Record(
            record_id=f"K{i}", given_name=g, family_name="Zedworth", date_of_birth=f"201{i}-0{1 + i % 9}-1{i}", **HOME
        )
        for i, g in enumerate(CHILDREN)
    ]
    return MatchEngine.build([*others, *household], MatchSettings())


def _found(engine: MatchEngine, subject: Subject) -> set[str]:
    return {r.record_id for r in engine.match(subject) if r.record_id.startswith("K")}


async def _alerts(detector: PatternDetector, subjects: list[Subject], actors=("pat",)) -> list[list[Alert]]:
    return [
        await detector.observe(actors[i % len(actors)], "Org", pattern_keys(KEY, s)) for i, s in enumerate(subjects)
    ]


def _sweep() -> list[Subject]:
    """Each child of the household guessed with a made-up date (a new one each time) and the home respelt."""
    return [
        Subject(given_name=g, family_name="Zedworth", date_of_birth=f"2001-01-{i + 1:02d}", address=RESPELT[i])
        for i, g in enumerate(CHILDREN)
    ]


def test_each_respelt_home_still_finds_its_child_at_a_node():
    # The premise of the tests below: the sweep locates every child, so it must alert.
    engine = _engine()
    for i, subject in enumerate(_sweep()):
        assert _found(engine, subject) == {f"K{i}"}, subject.address
    homes = [h for s in _sweep() for h in pattern_keys(KEY, s).homes]
    assert len(homes) == len(set(homes))  # no home key repeats
    assert pattern_keys(KEY, Subject(given_name="Ava", family_name="Zedworth", address="Mill Road")).homes == ()


async def test_a_household_swept_with_the_home_respelt_each_time_alerts(limits_stores):
    subjects = _sweep()
    detector = PatternDetector(PatternSettings(), clock=lambda: 0.0, store=limits_stores())
    alerts = await _alerts(detector, subjects)
    assert alerts == [[]] * 9 + [[Alert(MANY_NAMES_ONE_HOME, "practitioner", 10)]]


async def test_names_typed_the_other_way_round_are_each_a_guess():
    # "Zedworth, Ava": a node tries the names the other way round too, and finds Ava Zedworth.
    engine = _engine()
    subjects = [
        Subject(given_name="Zedworth", family_name=g, date_of_birth=f"2001-02-{i + 1:02d}", address="23 Mill Road")
        for i, g in enumerate(CHILDREN)
    ]
    assert all(_found(engine, s) for s in subjects)
    alerts = await _alerts(PatternDetector(PatternSettings(), clock=lambda: 0.0), subjects)
    assert alerts == [[]] * 9 + [[Alert(MANY_NAMES_ONE_HOME, "practitioner", 10)]]
    # Either way round, one child is one guess: "Ava Zedworth" after "Zedworth, Ava" counts nothing new.
    keys = pattern_keys(KEY, Subject(given_name="Ava", family_name="Zedworth", address="23 Mill Road"))
    assert keys.givens == pattern_keys(KEY, subjects[0]).givens


async def test_other_names_written_family_name_first_each_count():
    # Ten guesses in one search: "Zedworth Noah" is tried as Noah Zedworth (the names the other way round).
    subject = Subject(
        given_name="Ava",
        family_name="Zedworth",
        other_names=tuple(f"Zedworth {g}" for g in CHILDREN[1:]),
        date_of_birth="2001-01-01",
        address="23 Mill Road",
    )
    assert len(_found(_engine(), subject)) == 10
    alerts = await _alerts(PatternDetector(PatternSettings(), clock=lambda: 0.0), [subject])
    assert alerts == [[Alert(MANY_NAMES_ONE_HOME, "practitioner", 10)]]


async def test_a_household_and_namesakes_elsewhere_searched_honestly_raise_no_alert(limits_stores):
    # Six siblings searched at their home, two again with the home spelt another way, and three other
    # children of that family name at other homes; and an organisation whose colleagues search fifteen
    # children of one common family name at fifteen homes in a day: quiet.
    detector = PatternDetector(PatternSettings(), clock=lambda: 0.0, store=limits_stores())
    household = [
        Subject(given_name=g, family_name="Zedworth", date_of_birth=f"201{n}-03-09", **HOME)
        for n, g in enumerate(CHILDREN[:6])
    ]
    household += [
        Subject(given_name=g, family_name="Zedworth", date_of_birth=f"201{n}-03-09", address="23 Mill Rd")
        for n, g in enumerate(CHILDREN[:2])
    ]
    elsewhere = [
        Subject(given_name=g, family_name="Zedworth", date_of_birth=f"201{n}-05-01", address=f"{n} Oak Road")
        for n, g in enumerate(("Jade", "Kai", "Lily"), start=1)
    ]
    assert await _alerts(detector, household + elsewhere) == [[]] * 11
    khans = [
        Subject(given_name=g, family_name="Khan", date_of_birth=f"2012-06-{n:02d}", address=f"{n} Elm Road")
        for n, g in enumerate([*CHILDREN, "Jade", "Kai", "Lily", "Zara", "Yusuf"], start=1)
    ]
    assert await _alerts(detector, khans, actors=("ann", "ben", "cat", "dev", "eve")) == [[]] * 15


@pytest.mark.xfail(
    strict=True,
    reason="open: the family name is followed per practitioner only (across an organisation many households "
    "share one in a day), so colleagues who each guess a few names and respell the home evade the home keys",
)
async def test_colleagues_sweeping_one_household_with_the_home_respelt_alert_as_their_organisation():
    subjects = _sweep()
    alerts = await _alerts(PatternDetector(PatternSettings(), clock=lambda: 0.0), subjects, ("ann", "ben", "cat"))
    assert [a for found in alerts for a in found] == [Alert(MANY_NAMES_ONE_HOME, "organisation", 10)]


async def test_the_respelt_sweep_through_the_federation_finds_each_child_and_alerts(federation):
    from tests.broker.test_fishing import metrics_text

    held = [
        row(record_id=f"K{i}", given_name=g, family_name="Zedworth", date_of_birth=f"201{i}-0{1 + i % 9}-1{i}", **HOME)
        for i, g in enumerate(CHILDREN)
    ]
    fed = await federation({"LEEDS": held}, patterns=PatternSettings())
    with capture_logs() as logs:
        for subject in _sweep():
            status, body = await fed.search(
                {
                    "given_name": subject.given_name,
                    "family_name": "Zedworth",
                    "date_of_birth": subject.date_of_birth,
                    "address": subject.address,
                }
            )
            assert status == 200 and [r["band"] for r in body["results"]] == ["possible"], subject.address
    [alert] = [e for e in logs if e["event"] == "unusual_search_pattern"]
    assert (alert["kind"], alert["scope"], alert["count"]) == (MANY_NAMES_ONE_HOME, "practitioner", 10)
    assert f'signpost_unusual_pattern_alerts_total{{kind="{MANY_NAMES_ONE_HOME}"}} 1.0' in await metrics_text(fed)
    assert not any(v in repr(logs) for v in ("Zedworth", "Mill", *CHILDREN))


async def test_redis_holds_no_child_in_its_pattern_keys_or_values(redis_space):
    import redis

    from broker.limits_store import RedisStore

    store = RedisStore(redis_space.url, prefix=redis_space.prefix, timeout=2.0)
    try:
        detector = PatternDetector(PatternSettings(), clock=lambda: 0.0, store=store)
        subject = Subject(
            given_name="Ava",
            family_name="Zedworth",
            middle_names="Noah",
            other_names=("Zedworth Isla",),
            date_of_birth="2014-03-09",
            **HOME,
        )
        await _alerts(detector, [subject])
    finally:
        await store.close()
    client = redis.Redis.from_url(redis_space.url, decode_responses=True)
    try:
        keys = list(client.scan_iter(match=redis_space.prefix + "*"))
        held = [*keys, *(v for k in keys if client.type(k) == "zset" for v in client.zrange(k, 0, -1))]
    finally:
        client.close()
    assert any(MANY_NAMES_ONE_HOME in k for k in keys)  # the home and the name fields were noted
    text = " ".join(held).casefold()
    # (nothing a hex digest could spell by chance: "ls6" and "2014-03-09", not "2ab" or "2014")
    assert not any(v in text for v in ("ava", "zedworth", "noah", "isla", "mill", "ls6", "2014-03-09"))


async def test_family_names_guessed_at_one_home_are_each_a_guess():
    # Which family does the Jordan at 23 Mill Road belong to (a step-family's name)? A node needs the family
    # name to agree as well (node.bands.strong_partial), so each new family name is a guess at that house.
    subjects = [
        Subject(given_name="Jordan", family_name=f, date_of_birth=f"2001-03-{i + 1:02d}", **HOME)
        for i, f in enumerate("Zedworth Quill Marsh Pike Lowe Frost Hale Reed Stone Vale".split())
    ]
    alerts = await _alerts(PatternDetector(PatternSettings(), clock=lambda: 0.0), subjects)
    assert alerts == [[]] * 9 + [[Alert(MANY_NAMES_ONE_HOME, "practitioner", 10)]]


@pytest.mark.xfail(
    strict=True,
    reason="open: in memory (limits_store = 'memory') a dated search with a home now opens about seven sets where "
    "it opened two before many_names_one_home (6.2 with it, 7.2 with the name fields), so max_tracked forgets a "
    "slow sweep among other traffic about three times sooner than the same max_tracked did, while Redis keeps "
    "each set for the window; the default is raised to 350,000 to make up for it, but any bound can be outrun",
)
async def test_a_slow_sweep_among_other_searches_alerts_in_memory_as_in_redis():
    detector = PatternDetector(PatternSettings(), clock=lambda: 0.0, store=MemoryStore(max_tracked=600))
    found = []
    for i, given in enumerate(CHILDREN):
        day = f"2001-01-{i + 1:02d}"
        keys = pattern_keys(KEY, Subject(given_name=given, family_name="Zedworth", date_of_birth=day, **HOME))
        found += await detector.observe("pat", "Org", keys)
        for n in range(100):  # a hundred other practitioners' searches between two guesses
            other = Subject(
                given_name="Amelia",
                family_name=f"Smith{n}x{i}",
                date_of_birth=f"2014-03-{1 + n % 28:02d}",
                address=f"{n} Oak Road",
            )
            await detector.observe(f"user{n}", f"org{n % 7}", pattern_keys(KEY, other))
    assert [a.kind for a in found] == [MANY_NAMES_ONE_HOME]


ODD_ADDRESSES = [
    "٢٣ Mill Road",  # Arabic-Indic digits: a house number to \d, another to the node's words
    "𝟐𝟑 Mill Road",  # mathematical digits, NFKD-folded to 23 in the words but not in the house number
    "23 Улица Ленина",  # no Latin street word
    "23 中山路",
    "\u200b",  # a zero-width space: not stripped
    "23 Mill Road \U0001f3e0",
    "0 00 000",
    "Flat 1 " * 28,  # filler only, just under MAX_ADDRESS (200)
]


@pytest.mark.parametrize("dated", [True, False])
async def test_odd_addresses_are_answered_or_refused_never_a_server_error(federation, dated):
    fed = await federation({"LEEDS": [row(address="23 Mill Road")]}, patterns=PatternSettings())
    for address in ODD_ADDRESSES:
        subject = {"given_name": "Amelia", "family_name": "Smith", "address": address}
        if dated:
            subject["date_of_birth"] = "2014-03-09"
        status, body = await fed.search(subject)
        assert status == (200 if dated else status) and status in (200, 400), address
        if status == 400:
            assert set(body["error"]["fields"]) <= {"subject.date_of_birth", "subject.address"}, address
            assert address.strip() not in json.dumps(body, ensure_ascii=False), address
