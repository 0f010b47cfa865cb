"""broker.policy's rules as pure functions, and the search audit's exactly-once promise when a write fails."""

from __future__ import annotations

import dataclasses

from broker.appkeys import AUDIT, METRICS
from broker.audit.errors import AuditWriteError
from broker.config import BrokerConfig, load_broker_config
from broker.policy import (
    ALERT_SEARCHES_PER_HOUR,
    RATE_LIMIT_PER_DAY,
    RATE_LIMIT_PER_MINUTE,
    ROUTE_ROLES,
    justification_names_the_child,
    minimum_query_refusals,
    roles_for,
)
from certs.identity import Role
from core.subject import MINIMUM_QUERY, Subject
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
