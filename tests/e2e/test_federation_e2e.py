"""End to end through real nodes and the real broker: the core signposting answer."""

from __future__ import annotations

from tests.conftest import row

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09", "sex": "F"}


async def test_match_found_at_the_right_authority_among_several(federation):
    fed = await federation(
        {
            "LEEDS": [row()],
            "KENT": [
                row(record_id="K1", given_name="Oliver", family_name="Brown", date_of_birth="2012-07-01", sex="M")
            ],
            "CORNWALL": [row(record_id="C1", given_name="Amelia", family_name="Smith", date_of_birth="2009-01-01")],
        }
    )
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


TWINS = [
    row(
        record_id="T1",
        given_name="Olivia",
        family_name="Kowalski",
        date_of_birth="2016-05-04",
        sex="F",
        postcode="LS6 2AB",
        address="4 Elm Street",
        practitioner_name="Worker For Olivia",
    ),
    row(
        record_id="T2",
        given_name="Oliver",
        family_name="Kowalski",
        date_of_birth="2016-05-04",
        sex="M",
        postcode="LS6 2AB",
        address="4 Elm Street",
        practitioner_name="Worker For Oliver",
    ),
]


async def test_twins_are_never_a_match_for_each_other_end_to_end(federation):
    fed = await federation({"LEEDS": TWINS, "KENT": [TWINS[1] | {"record_id": "K2"}]})
    status, body = await fed.search(
        {
            "given_name": "Olivia",
            "family_name": "Kowalski",
            "date_of_birth": "2016-05-04",
            "sex": "F",
            "postcode": "LS6 2AB",
        }
    )
    assert status == 200
    # Leeds holds Olivia: one match, hers. Her twin Oliver (at Leeds, and the only child Kent holds) is
    # never a match: at most a possible, which names no practitioner, only the front door (issue 13:
    # a name keyed wrong must not make a child vanish, and a twin must never be named).
    matches = [r for r in body["results"] if r["band"] == "match"]
    assert [r["authority"]["code"] for r in matches] == ["LEEDS"]
    assert [c["practitioner_name"] for c in matches[0]["contacts"]] == ["Worker For Olivia"]
    others = [r for r in body["results"] if r["band"] != "match"]
    assert all(r["band"] == "possible" and r["contacts"] == [] for r in others), others
    assert "Worker For Oliver" not in str(body)
    assert body["coverage"]["answered"] == 2


async def test_a_moved_child_with_a_new_postcode_and_a_nickname_is_found_end_to_end(federation):
    fed = await federation(
        {
            "LEEDS": [
                row(
                    record_id="M1",
                    given_name="William",
                    family_name="Okonkwo",
                    date_of_birth="2011-07-21",
                    sex="M",
                    postcode="LS8 1QT",
                    address="77 Harehills Lane",
                )
            ],
            "KENT": TWINS,
        }
    )
    status, body = await fed.search(
        {
            "given_name": "Bill",
            "family_name": "Okonkwo",
            "date_of_birth": "2011-07-21",
            "sex": "M",
            "postcode": "M14 5RT",
            "address": "3 Wilmslow Road",
        }
    )
    assert status == 200
    [result] = body["results"]
    assert (result["authority"]["code"], result["band"]) == ("LEEDS", "match")
    assert "given name: nickname or variant" in result["reasons"] and "postcode differs" in result["reasons"]
