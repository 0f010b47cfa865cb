"""How a home is read, end to end through the broker and real nodes over mTLS (issue 13: nobody vanishes).

A flat number is not the house number, and a town given on one side only does not stop a home
agreeing; a search without a date of birth still finds a child only at that one home.
"""

from __future__ import annotations

from tests.conftest import row

NAMES = {"given_name": "Noah", "family_name": "Price"}


async def _bands(fed, **subject: str) -> list[str]:
    status, body = await fed.search(subject)
    assert status == 200, body
    return [r["band"] for r in body["results"]]


async def test_a_flat_or_a_town_on_one_side_only_still_finds_the_child_at_that_home(federation):
    fed = await federation(
        {
            "LEEDS": [row(record_id="F", **NAMES, date_of_birth="2019-11-30", address="Flat 2, 12 Oak Road, Leeds")],
            "KENT": [row(record_id="T", **NAMES, date_of_birth="2018-04-02", address="7 Mill Lane, Acomb, York")],
        }
    )
    # With the date: the flat number left out is still the child's home, so a match.
    assert await _bands(fed, **NAMES, date_of_birth="2019-11-30", address="12 Oak Road") == ["match"]
    # Without it: a possible at that home only, the flat or the town given on one side only.
    assert await _bands(fed, **NAMES, address="12 Oak Road") == ["possible"]
    assert await _bands(fed, **NAMES, address="2/12 Oak Road, Leeds") == ["possible"]
    assert await _bands(fed, **NAMES, address="7 Mill Lane") == ["possible"]
    # Another flat, town, house or street finds nobody without the date of birth.
    for other in ("Flat 3, 12 Oak Road", "12 Oak Road, York", "14 Oak Road", "12 Elm Road", "7 Mill Lane, Leeds"):
        assert await _bands(fed, **NAMES, address=other) == [], other
    # A flat in a named house gives no house number: no home to search by without a date of birth.
    status, body = await fed.search({**NAMES, "address": "Apartment 2, Mill House, Oak Road"})
    assert status == 400 and "subject.address" in body["error"]["fields"]
