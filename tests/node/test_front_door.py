"""What each band discloses at the node: a match names the practitioner, a possible only the front door.

A possible may be a sibling, a twin or a stranger who looks alike, so the node must not even put the
named worker's contact in its message (issue 13, must have 6). The front door comes from ``[front_door]``
in the node's TOML, checked at start-up with the key named.
"""

from __future__ import annotations

import pytest

from core.config import ConfigError
from core.subject import Subject
from node.config import load_node_config
from node.matching import MatchEngine, MatchResult, MatchSettings
from node.policy import FrontDoor, JournalEntry, candidate_of, disclose
from node.records import Involvement, Record

WORKER = Involvement(
    service="Children's social care",
    team="Duty team",
    practitioner_name="Jo Bloggs",
    practitioner_role="Social worker",
    practitioner_phone="0113 496 0000",
    practitioner_email="jo.bloggs@leeds.example",
)
SENSITIVE = Involvement(service="Sexual health", practitioner_name="Kept Private", sensitive=True)
DOOR = FrontDoor("Children's Services Front Door", "Duty and Advice Team", "0306 999 0113", "frontdoor@leeds.example")


def _result(band: str) -> MatchResult:
    return MatchResult("R1", False, band, 0.9, ("family name agrees",))


def test_a_match_names_the_practitioner_and_carries_no_front_door():
    candidate = candidate_of(_result("match"), [WORKER], DOOR.to_proto())
    assert candidate is not None
    assert [c.practitioner_name for c in candidate.contacts] == ["Jo Bloggs"]
    assert not candidate.HasField("front_door")


def test_a_possible_carries_the_front_door_and_no_named_contact_at_all():
    candidate = candidate_of(_result("possible"), [WORKER], DOOR.to_proto())
    assert candidate is not None and candidate.band == "possible"
    assert len(candidate.contacts) == 0
    assert candidate.front_door == DOOR.to_proto()
    # Not in the message at all, in any field: the broker never has it to leak.
    wire = candidate.SerializeToString()
    for secret in (b"Jo Bloggs", b"0113 496 0000", b"jo.bloggs@leeds.example", b"Social worker"):
        assert secret not in wire


def test_a_possible_at_a_node_without_a_front_door_carries_no_contact():
    candidate = candidate_of(_result("possible"), [WORKER], None)
    assert candidate is not None and candidate.band == "possible"
    assert len(candidate.contacts) == 0 and not candidate.HasField("front_door")


@pytest.mark.parametrize("band", ["match", "possible"])
def test_a_child_known_only_to_sensitive_services_is_still_no_answer(band):
    assert candidate_of(_result(band), [SENSITIVE], DOOR.to_proto()) is None


def _record(record_id: str, given_name: str, date_of_birth: str, **fields) -> Record:
    return Record(record_id=record_id, given_name=given_name, date_of_birth=date_of_birth, **fields)


def test_disclose_gives_each_band_its_own_kind_of_contact():
    """Through the real engine: the exact record is a match, a look-alike with a typo'd name and birthday a possible."""
    records = [
        _record("R1", "Amelia", "2014-03-09", family_name="Smith", sex="F", involvements=(WORKER,)),
        _record("R2", "Amelai", "2014-03-08", family_name="Smith", sex="F", involvements=(WORKER,)),
        *[
            _record(f"X{i}", "Child", f"20{10 + i % 8}-0{1 + i % 9}-1{i % 9}", family_name=f"Other{i}")
            for i in range(40)
        ],
    ]
    engine = MatchEngine.build(records, MatchSettings())
    entries: list[JournalEntry] = []
    query = Subject(given_name="Amelia", family_name="Smith", date_of_birth="2014-03-09", sex="F")
    candidates = disclose(
        engine.match(query), {r.record_id: r.involvements for r in records}.__getitem__, entries, DOOR.to_proto()
    )
    bands = {c.band for c in candidates}
    assert "match" in bands and "possible" in bands, "one of each band: the case this test is about"
    for candidate in candidates:
        if candidate.band == "match":
            assert [c.practitioner_name for c in candidate.contacts] == ["Jo Bloggs"]
        else:
            assert len(candidate.contacts) == 0 and candidate.front_door.phone == "0306 999 0113"


NODE = """
listen = "127.0.0.1:50051"
store = "leeds.sqlite3"
broker_public_keys = ["assertion.pub"]
[authority]
code = "LEEDS"
name = "Leeds"
[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"
"""
FRONT_DOOR = """
[front_door]
service = "Children's Services Front Door"
team = "Duty and Advice Team"
phone = "0306 999 0113"
email = "frontdoor@leeds.example"
"""


def _load(tmp_path, text, env=None):
    path = tmp_path / "node.toml"
    path.write_text(text)
    return load_node_config(path, env or {})


def test_front_door_is_read_from_the_node_toml_and_overridable_per_authority(tmp_path):
    assert _load(tmp_path, NODE + FRONT_DOOR).front_door == DOOR
    kent = _load(tmp_path, NODE + FRONT_DOOR, {"SIGNPOST_NODE_FRONT_DOOR__EMAIL": "frontdoor@kent.example"})
    assert kent.front_door is not None and kent.front_door.email == "frontdoor@kent.example"


def test_front_door_is_optional(tmp_path):
    assert _load(tmp_path, NODE).front_door is None


def test_phone_or_email_alone_is_enough_and_team_is_optional(tmp_path):
    text = NODE + '[front_door]\nservice = "MASH"\nemail = "mash@kent.example"\n'
    assert _load(tmp_path, text).front_door == FrontDoor("MASH", email="mash@kent.example")


@pytest.mark.parametrize(
    ("replace", "key", "expected"),
    [
        ('phone = "0306 999 0113"', "front_door.phone", "a telephone number"),
        ('email = "frontdoor@leeds.example"', "front_door.email", "an email address"),
        ('service = "Children\'s Services Front Door"', "front_door.service", "a non-empty string"),
    ],
)
def test_a_bad_front_door_names_the_key_in_one_sentence(tmp_path, replace, key, expected):
    bad = {"phone": 'phone = "ring Jo"', "email": 'email = "frontdoor at leeds"', "service": 'service = ""'}
    text = NODE + FRONT_DOOR.replace(replace, bad[key.split(".")[1]])
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert f"key '{key}' must be {expected}" in message and str(tmp_path / "node.toml") in message
    assert "\n" not in message


def test_a_front_door_with_no_way_in_is_refused(tmp_path):
    text = NODE + '[front_door]\nservice = "MASH"\n'
    with pytest.raises(ConfigError, match=r"key 'front_door\.phone' must be set, or 'front_door\.email' set"):
        _load(tmp_path, text)


@pytest.mark.parametrize("phone", ["0306 999 0113", "(0113) 496 0000", "+44 306 999 0113", "0300-123-4567"])
def test_phone_numbers_as_people_write_them_are_accepted(tmp_path, phone):
    text = NODE + f'[front_door]\nservice = "MASH"\nphone = "{phone}"\n'
    assert _load(tmp_path, text).front_door == FrontDoor("MASH", phone=phone)


@pytest.mark.parametrize("phone", ["0      ", "123", "0306 999 0113 ext 4", "+44 (0) 306 999 0113 999 999 9"])
def test_a_phone_without_a_number_in_it_is_refused(tmp_path, phone):
    text = NODE + f'[front_door]\nservice = "MASH"\nphone = "{phone}"\n'
    with pytest.raises(ConfigError, match=r"key 'front_door\.phone' must be a telephone number"):
        _load(tmp_path, text)
