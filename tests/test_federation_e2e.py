"""End to end through real nodes and the real broker: the core signposting answer."""

from __future__ import annotations

from tests.conftest import row

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09", "sex": "F"}


async def test_match_found_at_the_right_authority_among_several(federation):
    fed = await federation({
        "LEEDS": [row()],
        "KENT": [row(record_id="K1", given_name="Oliver", family_name="Brown", date_of_birth="2012-07-01", sex="M")],
        "CORNWALL": [row(record_id="C1", given_name="Amelia", family_name="Smith", date_of_birth="2009-01-01")],
    })
    status, body = await fed.search(AMELIA)
    assert status == 200, body
    assert [r["authority"]["code"] for r in body["results"]] == ["LEEDS"]
    result = body["results"][0]
    assert result["band"] == "match" and 0.0 <= result["score"] <= 1.0
    assert "date of birth agrees" in result["reasons"]
    assert result["contacts"][0]["practitioner_name"] == "Jo Bloggs"
    assert result["contacts"][0]["involvement_end"] is None
    assert body["coverage"] == {"asked": 3, "answered": 3, "not_answered": []}


async def test_no_match_anywhere_is_an_empty_result_with_full_coverage(federation):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1", given_name="Oliver")]})
    status, body = await fed.search({"given_name": "Zainab", "family_name": "Okafor", "date_of_birth": "2016-05-05"})
    assert status == 200
    assert body["results"] == []
    assert body["coverage"]["answered"] == 2 and body["coverage"]["not_answered"] == []
