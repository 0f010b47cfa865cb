"""Logs of a search carry ids and outcomes, never the child's details."""

from __future__ import annotations

import json

from structlog.testing import capture_logs

from tests.conftest import row

SUBJECT = {
    "given_name": "Peregrina",
    "family_name": "Featherstonehaugh",
    "date_of_birth": "2013-11-23",
    "sex": "F",
    "postcode": "LS6 2AB",
    "address": "12 Oak Road",
    "nhs_number": "9434765919",
    "other_names": ["Peregrina Whitlock"],
}


async def test_search_logs_have_search_id_authority_and_outcome_but_no_identity(federation):
    fed = await federation(
        {
            "LEEDS": [
                row(
                    given_name="Peregrina",
                    family_name="Featherstonehaugh",
                    date_of_birth="2013-11-23",
                    nhs_number="9434765919",
                )
            ],
            "KENT": [row(record_id="K1", given_name="Oliver")],
        }
    )
    with capture_logs() as logs:
        status, body = await fed.search(SUBJECT)
        bad_status, _ = await fed.search({**SUBJECT, "date_of_birth": "30/02/2013"})
    assert status == 200 and body["results"] and bad_status == 400
    events = {e["event"] for e in logs}
    assert {"node_outcome", "match_answered", "search_completed"} <= events
    outcomes = [e for e in logs if e["event"] == "node_outcome"]
    assert {e["authority"] for e in outcomes} == {"LEEDS", "KENT"}
    assert all(e["search_id"] == body["search_id"] for e in outcomes)
    text = json.dumps(logs, default=str)
    for value in (
        "Peregrina",
        "Featherstonehaugh",
        "2013-11-23",
        "2013-02-30",
        "9434765919",
        "LS6 2AB",
        "Oak Road",
        "Whitlock",
    ):
        assert value not in text, value
