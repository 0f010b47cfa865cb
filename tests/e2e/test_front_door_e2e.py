"""What each band discloses, end to end through real nodes, real mTLS and the real broker.

A ``match`` names the child's practitioner; a ``possible`` (maybe a sibling or a look-alike stranger)
gives only the authority's front door, and a node that sends more is overruled by the broker.
"""

from __future__ import annotations

import json

from structlog.testing import capture_logs

import node.policy
from protos.signpost.v1 import node_pb2
from signpost.federation import local_front_door
from tests.conftest import row

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09", "sex": "F"}
# A close-but-not-exact given name and a birthday one digit off, and no home to corroborate: enough
# evidence for a possible, never for a match, whatever the engine's fine tuning.
LOOK_ALIKE = {"given_name": "Amelai", "family_name": "Smith", "date_of_birth": "2014-03-08", "sex": "F"}
NAMED = ("Jo Bloggs", "0113 496 0000", "jo.bloggs@leeds.example")


def _only_result(body: dict) -> dict:
    [result] = body["results"]
    return result


def _front_door_json(code: str) -> dict[str, str]:
    door = local_front_door(code)
    return {"service": door.service, "team": door.team, "phone": door.phone, "email": door.email}


async def test_a_match_names_the_practitioner(federation):
    fed = await federation({"LEEDS": [row()]})
    status, body = await fed.search(AMELIA)
    assert status == 200, body
    result = _only_result(body)
    assert (result["band"], result["contact_kind"]) == ("match", "practitioner")
    assert [c["practitioner_name"] for c in result["contacts"]] == ["Jo Bloggs"]
    assert result["front_door"] is None


async def test_a_possible_gives_the_front_door_and_never_the_practitioner(federation):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1", given_name="Oliver", sex="M")]})
    status, body = await fed.search(LOOK_ALIKE)
    assert status == 200, body
    result = _only_result(body)
    assert result["band"] == "possible", "a possible: the case this test is about"
    assert result["authority"] == {"code": "LEEDS", "name": "Leeds"}
    assert result["contact_kind"] == "front_door" and result["contacts"] == []
    assert result["front_door"] == _front_door_json("LEEDS")
    text = json.dumps(body)
    assert not any(secret in text for secret in NAMED)


async def test_a_possible_at_an_authority_without_a_front_door_names_the_authority_only(federation):
    with capture_logs() as logs:
        fed = await federation({"LEEDS": [row()]}, without_front_door=["LEEDS"])
    warnings = [e for e in logs if e["event"] == "front_door_not_configured"]
    assert [(e["log_level"], e["authority"]) for e in warnings] == [("warning", "LEEDS")]
    status, body = await fed.search(LOOK_ALIKE)
    assert status == 200, body
    result = _only_result(body)
    assert result["band"] == "possible" and result["authority"]["code"] == "LEEDS"
    assert result["contact_kind"] == "front_door" and result["contacts"] == [] and result["front_door"] is None
    assert not any(secret in json.dumps(body) for secret in NAMED)
    # A match there still names the practitioner: the front door is what a possible lacks, nothing else.
    status, body = await fed.search(AMELIA)
    assert [c["practitioner_name"] for c in _only_result(body)["contacts"]] == ["Jo Bloggs"]


def _oversharing_candidate_of(result, involvements, front_door=None):
    """A node of an older or broken build: named contacts on every band, possible included."""
    candidate = node_pb2.Candidate(band=result.band, score=result.score, reasons=list(result.reasons))
    for i in involvements:
        candidate.contacts.add(
            service=i.service, practitioner_name=i.practitioner_name, practitioner_phone=i.practitioner_phone
        )
    if front_door is not None:
        candidate.front_door.CopyFrom(front_door)
    return candidate


async def test_the_broker_drops_named_contacts_a_node_sends_with_a_possible(federation, monkeypatch):
    fed = await federation({"LEEDS": [row()]})
    # The nodes run in this process: swap the node's disclosure rule for one that overshares.
    monkeypatch.setattr(node.policy, "candidate_of", _oversharing_candidate_of)
    with capture_logs() as logs:
        status, body = await fed.search(LOOK_ALIKE)
    assert status == 200, body
    result = _only_result(body)
    assert result["band"] == "possible" and result["contacts"] == []
    assert result["front_door"] == _front_door_json("LEEDS")
    assert not any(secret in json.dumps(body) for secret in NAMED)
    [dropped] = [e for e in logs if e["event"] == "possible_with_named_contact_dropped"]
    assert dropped["log_level"] == "warning" and dropped["authority"] == "LEEDS"
    assert not any(secret in json.dumps(dropped) for secret in (*NAMED, "Amelai", "Smith", "2014-03-08"))
    # The same node's match still reaches the practitioner with its named contact.
    status, body = await fed.search(AMELIA)
    assert [c["practitioner_name"] for c in _only_result(body)["contacts"]] == ["Jo Bloggs"]
