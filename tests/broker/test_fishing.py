"""Each fishing trip of issue 13, tried against the real harness federation, returns nothing.

A hostile practitioner with a certificate tried: meaningless names (".", zero-width spaces, an
initial) with a date of birth and a postcode sector; an NHS number with family name "x"; one name
swept over many dates of birth; three certificates of one organisation, each with a full quota.
And an honest slip (a date of birth typed into the future) was refused where it should be searched.
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from broker.audit.keys import load_or_create_hmac_key, subject_hashes
from broker.limits_store import MemoryStore
from broker.patterns import (
    MANY_NAMES_ONE_DATE,
    ONE_NAME_MANY_DATES,
    PatternDetector,
    PatternKeys,
    PatternSettings,
)
from certs.identity import Role
from certs.pki import CertificateAuthority, user_subject
from core.subject import Subject
from node.errors import MatchRequestError
from node.policy import query_from
from tests.broker.test_openapi import schema as openapi_schema
from tests.conftest import row

PURPOSE = {"code": "child-protection-enquiry", "justification": "Strategy discussion, case 2291"}
ORGANISATION = "Leeds City Council"  # the harness practitioner's organisation

# Children a fisher would like to locate: each one found by name, date of birth and home.
CHILDREN = [
    row(record_id="R1", given_name="Amelia", family_name="Smith", date_of_birth="2014-03-09", postcode="LS6 2AB"),
    row(record_id="R2", given_name="Oliver", family_name="Hughes", date_of_birth="2016-07-21", postcode="LS6 2BD"),
    row(record_id="R3", given_name="Maya", family_name="Okafor", date_of_birth="2012-05-03", postcode="LS6 2QT"),
    row(record_id="R4", given_name="Noah", family_name="Price", date_of_birth="2019-11-30", postcode="LS6 2EW"),
]
AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}


@pytest.fixture
async def fed(federation):
    return await federation({"LEEDS": CHILDREN})


def practitioner(pki, tmp_path, user_id: str, organisation: str = ORGANISATION):
    ca = CertificateAuthority.load(pki.directory)
    return ca.issue_to(tmp_path, user_id, user_subject(Role.PRACTITIONER, user_id, user_id.title(), organisation))


async def search_as(fed, user, subject):
    body = {"subject": subject, "purpose": PURPOSE}
    async with fed.session(user).post(f"{fed.url}/v1/searches", json=body) as resp:
        return resp.status, await resp.json()


async def test_every_child_is_found_by_an_honest_search(fed):
    """The control: the same federation answers a real search for each child, so the refusals below mean something."""
    for child in CHILDREN:
        subject = {k: child[k] for k in ("given_name", "family_name", "date_of_birth")}
        status, body = await fed.search(subject)
        assert status == 200 and [r["band"] for r in body["results"]] == ["match"]


@pytest.mark.parametrize(
    "names",
    [
        {"given_name": ".", "family_name": "."},
        {"given_name": ".", "family_name": "Okafor"},
        {"given_name": "\u200b\u200b", "family_name": "Okafor"},
        {"given_name": "\u200b", "family_name": "\u200c\u200d"},
        {"given_name": "M", "family_name": "Okafor"},
        {"given_name": "M.", "family_name": "O."},
        {"given_name": "Maya", "family_name": "x"},
        {"given_name": "Baby", "family_name": "Okafor"},
        {"given_name": "Ms", "family_name": "Okafor"},
    ],
    ids=[
        "dots",
        "dot-given",
        "zero-width-given",
        "zero-width-both",
        "initial",
        "initials",
        "x",
        "placeholder",
        "title",
    ],
)
async def test_meaningless_names_with_a_date_of_birth_and_a_postcode_sector_return_nothing(fed, names):
    subject = {**names, "date_of_birth": "2012-05-03", "postcode": "LS6 2"}
    status, body = await fed.search(subject)
    assert status == 400 and "results" not in body
    error = body["error"]
    assert error["code"] == "invalid_request"
    bad = {f"subject.{k}" for k, v in names.items() if v not in ("Maya", "Okafor")}
    assert set(error["fields"]) == bad
    for reason in error["fields"].values():
        assert "not a name" in reason
        assert not any(v and v in reason for v in ("Maya", "Okafor", "\u200b"))


async def test_an_nhs_number_with_family_name_x_returns_nothing(federation):
    fed = await federation({"LEEDS": [row(nhs_number="9434765919")]})
    status, body = await fed.search({"nhs_number": "9434765919", "family_name": "x"})
    assert status == 400 and "results" not in body
    assert "not a name" in body["error"]["fields"]["subject.family_name"]
    # With a real family name the same number finds the child: the refusal is about the name alone.
    status, body = await fed.search({"nhs_number": "9434765919", "family_name": "Smith"})
    assert status == 200 and len(body["results"]) == 1


def test_a_node_refuses_what_the_broker_should_not_have_sent():
    """Node and broker judge the minimum query by one function (core.subject): a node refuses a junk name too."""
    for subject in (
        Subject(given_name=".", family_name="Okafor", date_of_birth="2012-05-03", postcode="LS6 2"),
        Subject(given_name="\u200b\u200b", family_name="Okafor", date_of_birth="2012-05-03"),
        Subject(nhs_number="9434765919", family_name="x"),
    ):
        with pytest.raises(MatchRequestError):
            query_from(subject.to_proto())
    assert query_from(Subject(given_name="Maya", family_name="Okafor", date_of_birth="2012-05-03").to_proto())


async def test_three_certificates_of_one_organisation_share_one_quota(federation, pki, tmp_path):
    fed = await federation({"LEEDS": CHILDREN}, rate_limit=100, org_rate_limit=3)
    colleagues = [practitioner(pki, tmp_path, name) for name in ("ann", "ben", "cat")]
    for user in colleagues:
        assert (await search_as(fed, user, AMELIA))[0] == 200
    status, body = await search_as(fed, colleagues[0], AMELIA)
    assert status == 429 and body["error"]["limit"] == "organisation_per_minute"
    openapi_schema("Error").validate(body)
    assert "organisation" in body["error"]["message"]
    for user in colleagues[1:]:
        assert (await search_as(fed, user, AMELIA))[0] == 429
    # Another organisation's practitioner is not held back by Leeds's searches.
    kent = practitioner(pki, tmp_path, "kim", "Kent County Council")
    assert (await search_as(fed, kent, AMELIA))[0] == 200


async def test_a_practitioners_own_limit_is_named_too(federation):
    fed = await federation({"LEEDS": CHILDREN}, rate_limit=1)
    assert (await fed.search(AMELIA))[0] == 200
    status, body = await fed.search(AMELIA)
    assert status == 429 and body["error"]["limit"] == "practitioner_per_minute"


async def metrics_text(fed) -> str:
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/metrics") as resp:
        return await resp.text()


async def test_one_name_swept_over_many_dates_of_birth_raises_an_alert(federation):
    fed = await federation({"LEEDS": CHILDREN}, patterns=PatternSettings(dates_per_name=6, names_per_date=8))
    with capture_logs() as logs:
        for day in range(1, 10):
            status, _ = await fed.search({**AMELIA, "date_of_birth": f"2014-03-{day:02}"})
            assert status == 200  # the searches are answered: limits refuse, patterns alert
    alerts = [e for e in logs if e["event"] == "unusual_search_pattern"]
    assert len(alerts) == 1
    [alert] = alerts
    assert alert["kind"] == ONE_NAME_MANY_DATES and alert["scope"] == "practitioner" and alert["count"] == 6
    assert alert["user"] == "practitioner" and alert["organisation"] == ORGANISATION
    assert set(alert) == {"event", "log_level", "user", "organisation", "kind", "scope", "count"}  # no child
    assert f'signpost_unusual_pattern_alerts_total{{kind="{ONE_NAME_MANY_DATES}"}} 1.0' in await metrics_text(fed)


async def test_many_names_tried_on_one_date_by_three_colleagues_alert_as_their_organisation(federation, pki, tmp_path):
    fed = await federation({"LEEDS": CHILDREN}, patterns=PatternSettings(dates_per_name=6, names_per_date=4))
    colleagues = [practitioner(pki, tmp_path, name) for name in ("ann", "ben", "cat")]
    names = ["Amelia", "Olivia", "Isla", "Ava", "Mia"]
    with capture_logs() as logs:
        for i, given in enumerate(names):
            subject = {"given_name": given, "family_name": "Smith", "date_of_birth": "2014-03-09"}
            assert (await search_as(fed, colleagues[i % 3], subject))[0] == 200
    [alert] = [e for e in logs if e["event"] == "unusual_search_pattern"]
    assert alert["kind"] == MANY_NAMES_ONE_DATE and alert["scope"] == "organisation" and alert["count"] == 4
    assert alert["user"] == "ann"  # the search that reached the threshold: the 4th, ann's second
    assert f'signpost_unusual_pattern_alerts_total{{kind="{MANY_NAMES_ONE_DATE}"}} 1.0' in await metrics_text(fed)


async def test_pattern_memory_is_bounded_and_the_window_rolls(limits_stores):
    now = [0.0]
    store = limits_stores(max_tracked=100)
    settings = PatternSettings(dates_per_name=3, names_per_date=0, window_seconds=100.0, max_tracked=100)
    detector = PatternDetector(settings, clock=lambda: now[0], store=store)
    for i in range(1000 if isinstance(store, MemoryStore) else 20):
        await detector.observe("pat", "Org", PatternKeys(name=f"n{i}", date="d"))
    if isinstance(store, MemoryStore):
        assert len(store) <= 100  # in Redis every key expires with the window instead
    # Three dates inside the window alert; the same three spread wider than it do not.
    found = [await detector.observe("pat", "", PatternKeys("one", f"d{i}")) for i in range(3)]
    assert [len(a) for a in found] == [0, 0, 1]
    for i in range(3):
        now[0] += 60.0
        assert await detector.observe("sam", "", PatternKeys("two", f"d{i}")) == []


async def test_a_date_of_birth_typed_into_the_future_is_searched_as_its_reading(fed, tmp_path):
    maya = {"given_name": "Maya", "family_name": "Okafor"}
    status, body = await fed.search({**maya, "date_of_birth": "2112-05-03"})  # typed for 2012-05-03
    assert status == 200 and body["notices"] == ["date_of_birth_read"]
    openapi_schema("SearchResponse").validate(body)
    assert [r["band"] for r in body["results"]] == ["match"]
    status, honest = await fed.search({**maya, "date_of_birth": "2012-05-03"})
    assert honest["notices"] == []
    # The audit entry records the notice, and the child's hashes are of the date searched.
    key = load_or_create_hmac_key(tmp_path / "subject.key")
    [digest, *_] = subject_hashes(key, **maya, date_of_birth="2012-05-03")
    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/entries?subject_hash={digest}") as resp:
        entries = [e["entry"] for e in (await resp.json())["entries"] if e["entry"]["search_id"] == body["search_id"]]
    assert [e["outcome"] for e in entries] == ["started", "answered"]
    assert all(e["notices"] == ["date_of_birth_read"] for e in entries)


@pytest.mark.parametrize("typed", ["2150-01-01", "9999-12-31"])
async def test_an_implausible_date_with_no_one_keystroke_reading_is_still_refused(fed, typed):
    status, body = await fed.search({"given_name": "Maya", "family_name": "Okafor", "date_of_birth": typed})
    assert status == 400 and set(body["error"]["fields"]) == {"subject.date_of_birth"}
    assert typed not in body["error"]["fields"]["subject.date_of_birth"]


async def test_a_search_in_another_script_has_subject_hashes(federation, tmp_path):
    """A subject access request must find a search whatever script the name was written in."""
    fed = await federation({"LEEDS": [row(given_name="\u5c0f\u660e", family_name="\u738b")]})
    subject = {"given_name": "\u5c0f\u660e", "family_name": "\u738b", "date_of_birth": "2014-03-09"}
    status, body = await fed.search(subject)
    assert status == 200
    key = load_or_create_hmac_key(tmp_path / "subject.key")
    digests = subject_hashes(key, **subject)
    assert len(digests) == 2
    assert digests != subject_hashes(key, given_name="\u5c0f\u4eae", family_name="\u738b", date_of_birth="2014-03-09")
    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/entries?subject_hash={digests[0]}") as resp:
        entries = (await resp.json())["entries"]
    assert {e["entry"]["search_id"] for e in entries} == {body["search_id"]}


def test_organisation_limits_and_patterns_are_configured_like_the_other_settings(tmp_path):
    from broker.config import BrokerConfig, load_broker_config
    from broker.policy import ORG_RATE_LIMIT_PER_DAY, ORG_RATE_LIMIT_PER_MINUTE

    base = 'registry = "r.json"\nassertion_key = "a.key"\n[tls]\nca = "ca.pem"\ncert = "b.pem"\nkey = "b.key"\n'
    path = tmp_path / "broker.toml"
    path.write_text(base)
    config = load_broker_config(path, {})
    assert (
        (config.org_rate_limit_per_minute, config.org_rate_limit_per_day)
        == (
            ORG_RATE_LIMIT_PER_MINUTE,
            ORG_RATE_LIMIT_PER_DAY,
        )
        == (BrokerConfig.org_rate_limit_per_minute, BrokerConfig.org_rate_limit_per_day)
        == (120, 3000)
    )
    assert config.patterns == PatternSettings() and (
        config.patterns.dates_per_name,
        config.patterns.names_per_date,
        config.patterns.names_per_home,
    ) == (6, 8, 10)
    path.write_text("org_rate_limit_per_minute = 50\n" + base + "[patterns]\ndates_per_name = 4\nnames_per_home = 7\n")
    env = {"SIGNPOST_BROKER_ORG_RATE_LIMIT_PER_DAY": "900", "SIGNPOST_BROKER_PATTERNS__NAMES_PER_DATE": "0"}
    config = load_broker_config(path, env)
    assert (config.org_rate_limit_per_minute, config.org_rate_limit_per_day) == (50, 900)
    assert (config.patterns.dates_per_name, config.patterns.names_per_date, config.patterns.names_per_home) == (4, 0, 7)
    env = {"SIGNPOST_BROKER_PATTERNS__NAMES_PER_HOME": "0"}
    assert load_broker_config(path, env).patterns.names_per_home == 0


async def test_a_refused_fishing_attempt_is_still_findable_by_a_subject_access_request(fed, tmp_path):
    """The name-less search once had no subject hashes; refused now, its entry still carries the child's."""
    status, _ = await fed.search({"given_name": ".", "family_name": "Okafor", "date_of_birth": "2012-05-03"})
    assert status == 400
    key = load_or_create_hmac_key(tmp_path / "subject.key")
    family_and_date = subject_hashes(key, given_name="", family_name="Okafor", date_of_birth="2012-05-03")[0]
    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/entries?subject_hash={family_and_date}") as r:
        entries = [e["entry"] for e in (await r.json())["entries"]]
    assert [(e["outcome"], e["status"]) for e in entries] == [("invalid", 400)]
    assert entries[0]["actor"]["user_id"] == "practitioner"


def test_a_node_reads_an_nhs_number_as_its_digits_however_it_was_spaced():
    spaced = Subject(nhs_number="943 476 5919", family_name="Okafor")
    assert query_from(spaced.to_proto()).nhs_number == "9434765919"
    plain = Subject(nhs_number="9434765919", family_name="Okafor")
    assert query_from(plain.to_proto()) == plain
