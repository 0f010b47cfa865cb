"""broker.policy's rules as pure functions, and the search audit's exactly-once promise when a write fails."""

from __future__ import annotations

import dataclasses

import pytest

from broker.appkeys import AUDIT, METRICS
from broker.audit.errors import AuditWriteError
from broker.config import BrokerConfig, load_broker_config
from broker.fanout import Outcome
from broker.policy import (
    ALERT_SEARCHES_PER_HOUR,
    RATE_LIMIT_PER_DAY,
    RATE_LIMIT_PER_MINUTE,
    ROUTE_ROLES,
    justification_names_the_child,
    minimum_query_refusals,
    oversharing_authorities,
    results_json,
    roles_for,
)
from broker.registry import Authority
from certs.identity import Role
from core.subject import MINIMUM_QUERY, Subject
from protos.signpost.v1 import node_pb2
from tests.conftest import row

CHILD = Subject(
    given_name="Amelia",
    family_name="Smith",
    date_of_birth="2014-03-09",
    nhs_number="9434765919",
    other_names=("Amy Jones",),
)


def test_config_defaults_are_the_policys(tmp_path):
    defaults = {f.name: f.default for f in dataclasses.fields(BrokerConfig)}
    assert defaults["rate_limit_per_minute"] == RATE_LIMIT_PER_MINUTE
    assert defaults["rate_limit_per_day"] == RATE_LIMIT_PER_DAY
    assert defaults["alert_searches_per_hour"] == ALERT_SEARCHES_PER_HOUR
    path = tmp_path / "broker.toml"
    path.write_text(
        'registry = "r.json"\nassertion_key = "a.key"\n[tls]\nca = "ca.pem"\ncert = "b.pem"\nkey = "b.key"\n'
    )
    config = load_broker_config(path, {})
    assert (config.rate_limit_per_minute, config.rate_limit_per_day, config.alert_searches_per_hour) == (
        RATE_LIMIT_PER_MINUTE,
        RATE_LIMIT_PER_DAY,
        ALERT_SEARCHES_PER_HOUR,
    )


def test_roles_for_a_route_head_is_get_and_unlisted_is_nobody():
    assert roles_for("POST", "/v1/searches") == (Role.PRACTITIONER,)
    assert roles_for("HEAD", "/v1/nodes") == roles_for("GET", "/v1/nodes") == (Role.OPERATOR,)
    assert roles_for("GET", "/v1/secret") == () and roles_for("GET", "/healthz") == ()
    assert all(Role.NODE_ADMIN not in roles for roles in ROUTE_ROLES.values())


def test_justification_naming_the_child_is_caught():
    for text in (
        "Visit to amelia at school",
        "SMITH family referral",
        "Born 09032014, ref 12",
        "dob 20140309",
        "NHS 943 476 5919",
        "known as Amy Jones at school",
    ):
        assert justification_names_the_child(text, CHILD), text
    for text in ("Case ref 2024-0117, strategy meeting", "Smithfield school referral", "Assessment visit Monday"):
        assert not justification_names_the_child(text, CHILD), text


CHARLES = Subject(given_name="Charles", family_name="Ball", date_of_birth="2023-08-18", nhs_number="9434765919")
ZWSP, ZWJ, SOFT_HYPHEN = "\u200b", "\u200d", "\u00ad"


@pytest.mark.parametrize(
    ("evasion", "text"),
    [
        ("run together", "Re CharlesBall"),
        ("run together, one case", "re charlesball at school"),
        ("run into a word", "Concerns for xcharlesx raised"),
        ("zero-width space", f"Re Char{ZWSP}les at school"),
        ("zero-width joiner", f"Visit to B{ZWJ}all family"),
        ("soft hyphen", f"Re Charl{SOFT_HYPHEN}es at school"),
        ("Cyrillic look-alikes", "Re \u0421h\u0430rl\u0435s at school"),
        ("Greek look-alikes", "Visit to \u0392\u03b1ll family"),
        ("fullwidth letters", "Re \uff23\uff48\uff41\uff52\uff4c\uff45\uff53 visit"),
        ("digits for letters", "Re Ch4rles at school"),
        ("digits for letters, 1 for l", "Re Char1es at school"),
        ("digits for letters, several", "Re CH4RL35 visit"),
        ("nickname", "Visit to Charlie at school"),
        ("nickname, run together", "Visit to ChasB at school"),
        ("date of birth, dots, two-digit year", "DOB 18.08.23 per GP"),
        ("date of birth, slashes, no leading zero", "Born 18/8/2023 per GP"),
        ("date of birth, month abbreviated", "Born 18 Aug 2023 per GP"),
        ("date of birth, month in words and ordinal", "Born August 18th 2023 per GP"),
        ("date of birth, ISO", "Born 2023-08-18 per GP"),
        ("date of birth, day of month", "Born on the 18th of August, 2023"),
        ("date of birth, US order", "dob 8/18/23 on file"),
        ("date of birth, six digits", "dob 180823 on file"),
        ("NHS number, spaced", "NHS 943 476 5919 on file"),
        ("NHS number, dashed", "NHS 943-476-5919 on file"),
        ("NHS number in words", "NHS nine four three four seven six five nine one nine"),
        ("NHS number in words and digits", "NHS 943 four seven six 59 one nine"),
        ("NHS number, fullwidth digits", "NHS \uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19"),
    ],
)
def test_justification_evasions_are_caught(evasion, text):
    assert justification_names_the_child(text, CHARLES), evasion


@pytest.mark.parametrize(
    "text",
    [
        "Strategy discussion, case 2291",
        "MASH referral 17/0345 from school",
        "Section 47 enquiry following police referral 23/0818",
        "Referral received 18 September 2024, strategy meeting",
        "Football club safeguarding lead raised concerns",
        "We will visit the family on Monday with the school nurse",
        "Lives with nan; GP practice ref 4471",
        "Private fostering arrangement notified by school",
        "Case ref 2024-0117, strategy meeting",
        "Smithfield school referral",
    ],
)
def test_realistic_case_references_pass(text):
    child = dataclasses.replace(CHARLES, given_name="William", middle_names="Ash", family_name="Smith")
    assert not justification_names_the_child(text, child), text
    assert not justification_names_the_child(text, CHARLES), text


def test_short_names_are_whole_words_only():
    child = Subject(given_name="Al", family_name="Ng", date_of_birth="2023-08-18")
    assert not justification_names_the_child("Alarm raised by nursery staff at change", child)
    tom = Subject(given_name="Tom", family_name="Day", date_of_birth="2023-08-18")
    assert not justification_names_the_child("Seen today at the atom club", tom)
    assert justification_names_the_child("Seen with Tom today", tom)
    assert justification_names_the_child("Seen with TomDay today", tom)


def test_middle_names_are_the_childs_too():
    child = dataclasses.replace(CHARLES, middle_names="Archibald")
    assert justification_names_the_child("Known as Archibald at school", child)


def test_minimum_query_refusals_name_each_missing_field():
    assert minimum_query_refusals(CHILD) == {}
    assert minimum_query_refusals(Subject(given_name="Amelia")) == {
        "subject.family_name": "required: " + MINIMUM_QUERY,
        "subject.date_of_birth": "required: " + MINIMUM_QUERY,
    }
    assert minimum_query_refusals(Subject(nhs_number="9434765919", family_name="Smith")) == {}


async def test_a_failed_answered_write_is_still_one_entry_and_no_results(federation):
    fed = await federation({"LEEDS": [row()]})
    log = fed.server.app[AUDIT]
    append, calls = log.append, []

    async def fails_once(entry):
        calls.append(entry["outcome"])
        if len(calls) == 2:  # the answered outcome: the search itself was committed before the nodes were asked
            raise AuditWriteError("disk full")
        return await append(entry)

    log.append = fails_once  # type: ignore[method-assign]
    status, body = await fed.search({"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"})
    assert status == 503 and body["error"]["code"] == "audit_unavailable" and "results" not in body
    # The answer's write failed; the attempt's outcome is recorded as refused.
    assert calls == ["started", "answered", "unavailable"]
    entries = await log.entries()
    assert [(e.entry.get("status"), e.entry["outcome"]) for e in entries] == [(None, "started"), (503, "unavailable")]
    assert entries[1].entry["answered"] == ["LEEDS"]
    counted = fed.server.app[METRICS].searches.labels("unavailable")._value.get()
    assert counted == 1


# --- What a result discloses (issue 13, must have 6) ------------------------------------------------


def _outcome(code: str, *candidates: node_pb2.Candidate) -> Outcome:
    authority = Authority(code, code.title(), "127.0.0.1:1", f"node-{code}")
    return Outcome(authority, node_pb2.MatchResponse(authority_code=code, candidates=candidates), None, 1.0)


NAMED = node_pb2.Contact(service="CSC", practitioner_name="Jo Bloggs", practitioner_phone="0113 496 0000")
DOOR = node_pb2.FrontDoor(service="Children's Services Front Door", phone="0306 999 0113")


def test_a_possible_never_carries_a_named_contact_whatever_the_node_sends():
    """Defence in depth: node.policy already withholds them, but a broken or old node must not leak them."""
    overshared = node_pb2.Candidate(band="possible", score=0.9, contacts=[NAMED], front_door=DOOR)
    [result] = results_json([_outcome("LEEDS", overshared)])
    assert result["contact_kind"] == "front_door" and result["contacts"] == []
    door = {"service": "Children's Services Front Door", "team": "", "phone": "0306 999 0113", "email": ""}
    assert result["front_door"] == door
    assert "Jo Bloggs" not in repr(result)
    assert oversharing_authorities([_outcome("LEEDS", overshared), _outcome("KENT")]) == ["LEEDS"]


def test_a_match_names_the_practitioner_and_never_carries_a_front_door():
    matched = node_pb2.Candidate(band="match", score=0.99, contacts=[NAMED], front_door=DOOR)
    [result] = results_json([_outcome("LEEDS", matched)])
    assert result["contact_kind"] == "practitioner" and result["front_door"] is None
    assert [c["practitioner_name"] for c in result["contacts"]] == ["Jo Bloggs"]
    assert oversharing_authorities([_outcome("LEEDS", matched)]) == []


def test_a_possible_without_a_front_door_has_no_contact():
    [result] = results_json([_outcome("LEEDS", node_pb2.Candidate(band="possible", score=0.5))])
    assert (result["contact_kind"], result["contacts"], result["front_door"]) == ("front_door", [], None)
