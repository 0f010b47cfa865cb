"""The broker addresses each signed search to the authorities it fans out to, signing it once for all.

Real nodes over mTLS behind the real broker app; what each node was sent is read from its own verifier.
"""

from __future__ import annotations

from broker.appkeys import FANOUT
from tests.conftest import row

AMELIA = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}


def received_by(node) -> list:
    """Record the assertions ``node`` accepts (the verifier's answer), leaving its checks as they are."""
    accepted: list = []
    verify = node.service.verifier.verify

    def recording(request, raw=None):
        assertion = verify(request, raw)
        accepted.append(assertion)
        return assertion

    node.service.verifier.verify = recording
    return accepted


async def test_a_federation_search_is_addressed_to_every_authority_and_answered_by_all(federation):
    fed = await federation({"LEEDS": [row()], "KENT": [row()], "CORNWALL": []})
    accepted = {code: received_by(node) for code, node in fed.nodes.items()}
    status, body = await fed.search(AMELIA)
    assert status == 200
    assert body["coverage"]["answered"] == body["coverage"]["asked"] == 3
    assert sorted(r["authority"]["code"] for r in body["results"]) == ["KENT", "LEEDS"]
    # One assertion, signed once, naming all three: each node received the same one.
    assertions = [a for code in accepted for a in accepted[code]]
    assert len(assertions) == 3 and len({a.SerializeToString() for a in assertions}) == 1
    assert list(assertions[0].audience) == ["CORNWALL", "KENT", "LEEDS"]


async def test_the_audience_follows_the_fan_out_when_the_registry_changes(federation):
    fed = await federation({"LEEDS": [row()], "KENT": [row()]})
    fanout = fed.server.app[FANOUT]
    kent = next(c for c in fanout.clients if c.authority.code == "KENT")
    leeds_only = [c for c in fanout.clients if c.authority.code == "LEEDS"]
    accepted = received_by(fed.nodes["LEEDS"])
    for closed in fanout.replace(leeds_only):  # as a registry reload that removes KENT would
        await closed.close()
    assert kent not in fanout.clients
    status, body = await fed.search(AMELIA)
    assert status == 200 and body["coverage"]["asked"] == 1
    assert list(accepted[-1].audience) == ["LEEDS"]
