"""docs/openapi.yaml is a valid OpenAPI document and describes what the broker really does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from broker.app import create_app
from broker.policy import PORTAL_OPEN_ROUTES, PORTAL_ROUTE_ROLES, PURPOSES
from certs.identity import Role
from tests.conftest import row

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())


def schema(name: str) -> OAS31Validator:
    return OAS31Validator({**SPEC["components"]["schemas"][name], "components": SPEC["components"]})


def test_spec_is_valid_openapi():
    validate(SPEC)


def test_spec_routes_are_the_apps_routes(pki, tmp_path):
    from broker.config import BrokerConfig

    app = create_app(
        BrokerConfig(
            ("127.0.0.1", 0),
            tmp_path / "r.json",
            pki.tls(pki.broker),
            pki.assertion_key,
            audit_log=str(tmp_path / "a.sqlite3"),
        )
    )
    # The practitioner portal's HTML pages are not the API: the README describes them, not the OpenAPI file.
    portal = {(m.lower(), p) for m, p in (*PORTAL_ROUTE_ROLES, *PORTAL_OPEN_ROUTES)}
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"} - portal
    documented = {(m, p) for p, ops in SPEC["paths"].items() for m in ops}
    assert documented == routes


def test_purpose_codes_agree():
    assert SPEC["components"]["schemas"]["PurposeCode"]["enum"] == list(PURPOSES)


@pytest.mark.parametrize("down", [False, True])
async def test_real_responses_match_the_schemas(federation, down):
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1", involvement_end="2023-01-01")]})
    if down:
        await fed.nodes["KENT"].stop(grace=0)
    status, body = await fed.search({"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"})
    assert status == 200 and body["results"]
    schema("SearchResponse").validate(body)
    status, body = await fed.search({"given_name": "Amelia", "date_of_birth": "2014-02-30"})
    assert status == 400
    schema("Error").validate(body)
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/v1/nodes") as resp:
        for node in (await resp.json())["nodes"]:
            schema("NodeStatus").validate(node)


async def test_a_possible_with_and_without_a_front_door_matches_the_schema(federation):
    """A possible's contact is the front door, or null where none is configured: both shapes are documented."""
    fed = await federation({"LEEDS": [row()], "KENT": [row(record_id="K1")]}, without_front_door=["KENT"])
    look_alike = {"given_name": "Amelai", "family_name": "Smith", "date_of_birth": "2014-03-08", "sex": "F"}
    status, body = await fed.search(look_alike)
    assert status == 200 and [r["band"] for r in body["results"]] == ["possible", "possible"]
    assert sorted(r["front_door"] is None for r in body["results"]) == [False, True]
    schema("SearchResponse").validate(body)
