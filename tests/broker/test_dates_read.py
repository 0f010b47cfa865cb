"""Dates of birth a practitioner typed that are no plausible date: searched as their one likely reading,
or without the date when both names and the home carry the search, or refused naming the field.

pseudopeople's CPS sample had three such queries refused, each for a child held (a month past 12, and
two with no date of birth at all): a practitioner would have expected a search.
"""

from __future__ import annotations

import json

import pytest

from broker.audit.keys import load_or_create_hmac_key, subject_hashes
from certs.identity import Role
from tests.broker.test_openapi import schema as openapi_schema
from tests.conftest import row

CHILDREN = [
    row(record_id="N", given_name="Noah", family_name="Price", date_of_birth="2019-11-30", postcode="LS6 2EW"),
    row(record_id="A", given_name="Amelia", family_name="Smith", date_of_birth="2014-03-09", postcode="LS6 2AB"),
]
NOAH = {"given_name": "Noah", "family_name": "Price"}


@pytest.fixture
async def fed(federation):
    return await federation({"LEEDS": CHILDREN})


async def test_day_and_month_the_other_way_round_is_searched_as_the_date(fed):
    status, body = await fed.search({**NOAH, "date_of_birth": "2019-30-11"})  # month 30: typed month first
    assert status == 200 and body["notices"] == ["date_of_birth_read"]
    openapi_schema("SearchResponse").validate(body)
    assert [r["band"] for r in body["results"]] == ["match"]


@pytest.mark.parametrize("typed", ["2019-02-29", "2019-11-31", "2019-11-00", "1899-11-30", "2150-01-01"])
async def test_a_date_with_no_likely_reading_is_left_out_when_names_and_home_carry_the_search(fed, typed):
    status, body = await fed.search({**NOAH, "date_of_birth": typed, "postcode": "LS6 2EW"})
    assert status == 200 and body["notices"] == ["date_of_birth_not_used"]
    openapi_schema("SearchResponse").validate(body)
    # Never a match without the date (a namesake parent at the home looks the same), and no named worker.
    assert [r["band"] for r in body["results"]] == ["possible"]
    assert not any(c.get("practitioner_name") for r in body["results"] for c in r["contacts"])


@pytest.mark.parametrize("home", [{}, {"postcode": "LS6 2"}, {"address": "Leeds"}])
async def test_a_date_with_no_likely_reading_and_no_home_is_refused_naming_the_field(fed, home):
    subject = {**NOAH, "date_of_birth": "2019-02-29", **home}
    status, body = await fed.search(subject)
    # An address that is no home (a town) is named too: it could not carry the search without the date.
    named = {"subject.date_of_birth"} | ({"subject.address"} if "address" in home else set())
    assert status == 400 and set(body["error"]["fields"]) == named
    assert "calendar date" in body["error"]["fields"]["subject.date_of_birth"]
    text = json.dumps(body)
    assert not any(v in text for v in ("Noah", "Price", "2019-02-29", "LS6"))


@pytest.mark.parametrize("typed", ["30/11/2019", "2019-11", "soon", "２０１９-11-30"])
async def test_what_is_not_written_as_a_date_is_still_refused(fed, typed):
    status, body = await fed.search({**NOAH, "date_of_birth": typed, "postcode": "LS6 2EW"})
    assert status == 400 and set(body["error"]["fields"]) == {"subject.date_of_birth"}


async def test_no_date_of_birth_with_both_names_and_the_home_is_a_search(fed):
    status, body = await fed.search({**NOAH, "address": "14 Oak Road Leeds", "postcode": "LS6 2EW"})
    assert status == 200 and body["notices"] == []
    assert [r["band"] for r in body["results"]] == ["possible"]
    # At another home the same names find nobody: a name alone never lists an authority's children.
    status, body = await fed.search({**NOAH, "postcode": "LS6 2AB"})
    assert status == 200 and body["results"] == []
    status, body = await fed.search({"given_name": "Noah", "postcode": "LS6 2EW"})
    assert status == 400


async def test_a_search_without_the_date_is_found_by_a_subject_access_request(fed, tmp_path):
    status, body = await fed.search({**NOAH, "date_of_birth": "2019-02-29", "postcode": "LS6 2EW"})
    assert status == 200
    key = load_or_create_hmac_key(tmp_path / "subject.key")
    [names_only] = subject_hashes(key, **NOAH, date_of_birth=None)
    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/entries?subject_hash={names_only}") as r:
        entries = [e["entry"] for e in (await r.json())["entries"] if e["entry"]["search_id"] == body["search_id"]]
    assert [e["outcome"] for e in entries] == ["started", "answered"]
    assert all(e["notices"] == ["date_of_birth_not_used"] for e in entries)


async def test_an_unused_date_may_not_be_written_into_the_justification(fed):
    purpose = {"code": "child-protection-enquiry", "justification": "Referral gave the birth date 2019-02-29"}
    status, body = await fed.search({**NOAH, "date_of_birth": "2019-02-29", "postcode": "LS6 2EW"}, purpose=purpose)
    assert status == 400 and "purpose.justification" in body["error"]["fields"]


def test_searches_without_a_date_are_followed_by_their_home_for_unusual_patterns():
    """Many names tried at one home is the date-less search's sweep: counted as many names on one date is."""
    from broker.patterns import pattern_keys
    from core.subject import Subject

    key = b"k" * 32
    at_home = [
        pattern_keys(key, Subject(given_name=g, family_name="Price", postcode=p))
        for g, p in (("Noah", "LS6 2EW"), ("Ava", "ls62ew"))
    ]
    assert at_home[0].date and at_home[0].date == at_home[1].date and at_home[0].name != at_home[1].name
    by_address = pattern_keys(key, Subject(given_name="Noah", family_name="Price", address="14 Oak Road, Leeds"))
    assert (
        by_address.date
        == pattern_keys(key, Subject(given_name="Ava", family_name="Price", address="14 oak road leeds")).date
    )
    assert (
        by_address.date
        != pattern_keys(key, Subject(given_name="Ava", family_name="Price", address="16 oak road leeds")).date
    )
    # A home never counts as a date of birth.
    dated = pattern_keys(key, Subject(given_name="Noah", family_name="Price", date_of_birth="2019-11-30"))
    assert dated.name == at_home[0].name and dated.date not in (at_home[0].date, by_address.date)
