"""Bad input gets the contract's JSON error naming what is wrong, and never echoes a child's details."""

from __future__ import annotations

import json

import pytest

from broker.audit.keys import load_or_create_hmac_key, subject_hashes
from certs.identity import Role
from core.subject import MINIMUM_QUERY, NO_HOME
from tests.conftest import row

GOOD = {"given_name": "Amelia", "family_name": "Smith", "date_of_birth": "2014-03-09"}
PURPOSE = {"code": "child-protection-enquiry", "justification": "Strategy discussion, case 2291"}


@pytest.fixture
async def fed(federation):
    return await federation({"LEEDS": [row()]})


async def post_raw(fed, data: bytes, content_type: str = "application/json"):
    async with fed.session().post(f"{fed.url}/v1/searches", data=data, headers={"Content-Type": content_type}) as r:
        return r.status, await r.json()


async def test_malformed_json_is_400(fed):
    status, body = await post_raw(fed, b'{"subject": {"given_name": "Amelia",')
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert "body" in body["error"]["fields"]


async def test_body_must_be_an_object(fed):
    status, body = await post_raw(fed, b"[1, 2]")
    assert status == 400 and body["error"]["fields"] == {"body": "must be an object"}


@pytest.mark.parametrize(
    ("subject", "field"),
    [
        ({**GOOD, "date_of_birth": "2014-02-30"}, "subject.date_of_birth"),
        ({**GOOD, "date_of_birth": "09/03/2014"}, "subject.date_of_birth"),
        ({**GOOD, "date_of_birth": "2150-01-01"}, "subject.date_of_birth"),  # future, no one-digit reading
        ({**GOOD, "sex": "X"}, "subject.sex"),
        ({**GOOD, "nhs_number": "9434765918"}, "subject.nhs_number"),
        ({**GOOD, "given_name": 7}, "subject.given_name"),
        ({**GOOD, "other_names": "Amelia Jones"}, "subject.other_names"),
        ({**GOOD, "surname": "Smith"}, "subject"),
        ({"given_name": "Amelia", "family_name": "Smith"}, "subject.date_of_birth"),
        ({"family_name": "Smith", "date_of_birth": "2014-03-09"}, "subject.given_name"),
        ({**GOOD, "given_name": "A" * 101}, "subject.given_name"),
    ],
)
async def test_bad_subject_field_is_named(fed, subject, field):
    status, body = await fed.search(subject)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert field in body["error"]["fields"], body["error"]["fields"]


async def test_every_bad_field_is_reported_at_once(fed):
    status, body = await fed.search(
        {**GOOD, "sex": "Q", "nhs_number": "123"}, purpose={"code": "curiosity", "justification": "x"}
    )
    assert status == 400
    assert set(body["error"]["fields"]) == {
        "subject.sex",
        "subject.nhs_number",
        "purpose.code",
        "purpose.justification",
    }


@pytest.mark.parametrize(
    "justification",
    [
        "Strategy meeting about Amelia Smith",
        "Case for amelia, see notes",
        "Born 09/03/2014 per GP",
        "DOB 2014-03-09 on the referral",
        "NHS 9434765919 flagged by school nurse",
    ],
)
async def test_justification_must_not_identify_the_child(fed, justification):
    subject = {**GOOD, "nhs_number": "9434765919"}
    status, body = await fed.search(subject, purpose={"code": "missing-child", "justification": justification})
    assert status == 400 and "purpose.justification" in body["error"]["fields"]
    assert "Amelia" not in json.dumps(body)


@pytest.mark.parametrize(
    "justification",
    [
        "Re AmeliaSmith, strategy meeting",
        "Re Am\u200belia, strategy meeting",
        "Re \u0410melia, strategy meeting",
        "Re Am3lia, strategy meeting",
        "Re Millie, strategy meeting",
        "DOB 09.03.14 on the referral",
        "Born 9th March 2014 per GP",
        "NHS nine four three four seven six five nine one nine",
    ],
)
async def test_disguised_justification_is_refused_without_echo(fed, justification):
    subject = {**GOOD, "nhs_number": "9434765919"}
    status, body = await fed.search(subject, purpose={"code": "missing-child", "justification": justification})
    assert status == 400 and "purpose.justification" in body["error"]["fields"]
    text = json.dumps(body, ensure_ascii=False)
    assert justification not in text and "Amelia" not in text and "2014" not in text and "9434765919" not in text


@pytest.mark.parametrize("justification", ["Strategy discussion, case 2291", "MASH referral 17/0345 from school"])
async def test_case_references_pass_the_justification_filter(fed, justification):
    subject = {**GOOD, "nhs_number": "9434765919"}
    status, body = await fed.search(subject, purpose={"code": "missing-child", "justification": justification})
    assert status == 200, body


async def test_nhs_number_with_family_name_is_a_sufficient_query(fed):
    status, body = await fed.search({"nhs_number": "943 476 5919", "family_name": "Smith"})
    assert status == 200, body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": GOOD}, "purpose"),
        ({"subject": GOOD, "purpose": {"code": "nosy", "justification": "Strategy discussion"}}, "purpose.code"),
        ({"subject": GOOD, "purpose": {"code": "missing-child"}}, "purpose.justification"),
        ({"subject": GOOD, "purpose": PURPOSE, "extra": 1}, "body"),
        ({"purpose": PURPOSE}, "subject"),
    ],
)
async def test_bad_purpose_or_shape_is_named(fed, body, field):
    status, answer = await post_raw(fed, json.dumps(body).encode())
    assert status == 400
    assert field in answer["error"]["fields"]


async def test_oversized_body_is_400(fed):
    big = {"subject": {**GOOD, "address": "x" * 70_000}, "purpose": PURPOSE}
    status, body = await post_raw(fed, json.dumps(big).encode())
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert "65536" in body["error"]["message"]


AMELIA = {"given_name": "Amelia", "family_name": "Smith"}


@pytest.mark.parametrize("address", ["Flat 1", "Flat", "Apartment 2", "c/o", "Flat 1 Road", "Apt 3, The Court"])
async def test_an_address_of_filler_alone_is_no_home_for_a_search_without_a_date(federation, tmp_path, address):
    # A node finds nobody by "Flat 1" (it partly agrees with every flat 1 on every road): the broker says so
    # at once, naming the address, rather than searching every authority for an empty answer.
    fed = await federation({"LEEDS": [row()]}, rate_limit=1)
    status, body = await fed.search({**AMELIA, "address": address})
    assert status == 400 and body["error"]["code"] == "invalid_request"
    assert body["error"]["fields"] == {
        "subject.date_of_birth": "required: " + MINIMUM_QUERY,
        "subject.address": NO_HOME,
    }
    text = json.dumps(body)
    assert not any(value in text for value in (address, "Amelia", "Smith"))
    # As every refusal after the subject was read: audited as invalid (findable by the child's hashes), no
    # search started, no node asked, and no quota spent (the limit here is one a minute).
    key = load_or_create_hmac_key(tmp_path / "subject.key")
    [names_only] = subject_hashes(key, **AMELIA, date_of_birth=None)
    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/entries?subject_hash={names_only}") as r:
        entries = [e["entry"] for e in (await r.json())["entries"]]
    assert [(e["outcome"], e["status"]) for e in entries] == [("invalid", 400)]
    status, body = await fed.search({**AMELIA, "address": "12 Oak Road"})
    assert status == 200 and [r["band"] for r in body["results"]] == ["possible"]


@pytest.mark.parametrize(
    "home",
    [
        {"address": "12 Oak Road"},
        {"address": "12, OAK ROAD."},
        {"address": "12 oak rd"},
        {"address": "Flat 1", "postcode": "LS6 2AB"},  # the full postcode is the home
    ],
)
async def test_a_real_home_without_a_date_is_still_a_search(fed, home):
    status, body = await fed.search({**AMELIA, **home})
    assert status == 200, body
    assert [r["band"] for r in body["results"]] == ["possible"]


async def test_a_filler_address_beside_a_date_of_birth_is_a_search(fed):
    # The date of birth carries the search: the address is only compared, never the search's footing.
    status, body = await fed.search({**GOOD, "address": "Flat 1"})
    assert status == 200 and [r["band"] for r in body["results"]] == ["match"]


async def test_errors_never_echo_submitted_values(fed):
    subject = {
        "given_name": "Xanthippe",
        "family_name": "Quartermaine",
        "date_of_birth": "2014-02-30",
        "nhs_number": "1234567890",
        "postcode": "ZZ9 9ZZ",
    }
    status, body = await fed.search(subject)
    assert status == 400
    text = json.dumps(body)
    for value in subject.values():
        assert value not in text


async def test_unknown_route_and_method_are_json(fed):
    async with fed.session().get(f"{fed.url}/v1/nope") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    async with fed.session().get(f"{fed.url}/v1/searches") as resp:
        assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_rate_limit_is_429_with_retry_after(federation):
    fed = await federation({"LEEDS": [row()]}, rate_limit=2)
    assert (await fed.search(GOOD))[0] == 200
    assert (await fed.search(GOOD))[0] == 200
    async with fed.session().post(f"{fed.url}/v1/searches", json={"subject": GOOD, "purpose": PURPOSE}) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "rate_limited"


async def test_daily_limit_is_429_naming_the_day(federation, pki, tmp_path):
    from broker.appkeys import LIMITER

    fed = await federation({"LEEDS": [row()]})
    limiter = fed.server.app[LIMITER]
    limiter.per_minute, limiter.per_day = 0, 2
    assert (await fed.search(GOOD))[0] == 200
    assert (await fed.search(GOOD))[0] == 200
    status, body = await fed.search(GOOD)
    assert status == 429 and "day" in body["error"]["message"]


async def test_unusual_volume_alerts_once_an_hour(limits_stores):
    from broker.ratelimit import RateLimiter

    now = [1000.0]
    limiter = RateLimiter(0, 0, alert_per_hour=3, clock=lambda: now[0], store=limits_stores())
    flags = []
    for _ in range(6):
        now[0] += 60
        flags.append((await limiter.check("pat")).unusual)
    assert flags == [False, False, False, True, False, False]
    now[0] += 3700
    for _ in range(4):
        now[0] += 1
        flags.append((await limiter.check("pat")).unusual)
    assert flags[-4:] == [False, False, False, True]
    assert not any([(await limiter.check("other")).unusual for _ in range(3)])


async def test_sliding_windows_refuse_naming_the_window_and_the_wait(limits_stores):
    """The same semantics in memory and in Redis: the oldest search in the window sets the wait."""
    from broker.ratelimit import RateLimiter

    now = [5000.0]
    limiter = RateLimiter(2, 3, clock=lambda: now[0], store=limits_stores())
    assert (await limiter.check("pat")).allowed
    now[0] += 10
    assert (await limiter.check("pat")).allowed
    now[0] += 5
    refused = await limiter.check("pat")
    assert (refused.allowed, refused.limit) == (False, "practitioner_per_minute")
    assert abs(refused.retry_after - 45.0) < 0.01  # the first search leaves the minute 60 s after it
    now[0] += 46
    assert (await limiter.check("pat")).allowed  # the minute has room again
    now[0] += 60
    refused = await limiter.check("pat")
    assert (refused.allowed, refused.window) == (False, "day")
    assert abs(refused.retry_after - (86400 - 121)) < 0.01
    await limiter.refund("pat")  # gives back the newest: the day has room for one more
    assert (await limiter.check("pat")).allowed
    assert not (await limiter.check("pat")).allowed
    assert (await limiter.check("sam")).allowed  # another practitioner's windows are their own


async def test_unusual_volume_is_logged_and_counted(federation):
    from structlog.testing import capture_logs

    from broker.appkeys import LIMITER
    from certs.identity import Role

    fed = await federation({"LEEDS": [row()]})
    fed.server.app[LIMITER].alert_per_hour = 2
    with capture_logs() as logs:
        for _ in range(3):
            assert (await fed.search(GOOD))[0] == 200
    assert [e["user"] for e in logs if e["event"] == "unusual_search_volume"] == ["practitioner"]
    async with fed.session(role=Role.OPERATOR).get(f"{fed.url}/metrics") as resp:
        text = await resp.text()
    assert "signpost_unusual_volume_alerts_total 1.0" in text
    assert 'signpost_searches_total{outcome="answered"} 3.0' in text
    async with fed.session(role=Role.PRACTITIONER).get(f"{fed.url}/metrics") as resp:
        assert resp.status == 403


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"subject": ' + b"9" * 5000 + b', "purpose": {}}',
        b'{"subject": {"given_name": ' + b"1" * 4301 + b"}}",
        b'{"subject": 1e999999, "purpose": NaN}',
    ],
    ids=["deep-array", "deep-object", "huge-int", "int-over-4300-digits", "non-finite"],
)
async def test_hostile_json_is_400_naming_the_body(fed, raw):
    # Each of these once reached 500: RecursionError, or int()'s 4,300-digit limit inside json.loads.
    status, body = await post_raw(fed, raw)
    assert status == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert "body" in body["error"]["fields"]


async def test_the_depth_check_reads_escaped_quotes_in_one_pass(fed):
    # A string scan that retried from every quote took about a minute over 32,768 escaped quotes.
    import asyncio

    status, body = await asyncio.wait_for(post_raw(fed, b'\\"' * 32_000), timeout=30)
    assert status == 400 and "body" in body["error"]["fields"]


async def test_lengths_are_measured_after_nfc(fed):
    # U+FB2C is one character that NFC writes as three: 100 of them are 300 characters.
    status, body = await fed.search({**GOOD, "middle_names": "\ufb2c" * 100})
    assert status == 400 and body["error"]["fields"] == {"subject.middle_names": "longer than 100 characters"}


SURROGATE = "X\ud800Y"


@pytest.mark.parametrize(
    "field", ["given_name", "middle_names", "family_name", "sex", "postcode", "address", "nhs_number", "date_of_birth"]
)
async def test_a_lone_surrogate_in_a_subject_string_is_400_naming_it(fed, field):
    body = {"subject": {**GOOD, field: SURROGATE}, "purpose": PURPOSE}
    status, answer = await post_raw(fed, json.dumps(body).encode())
    assert status == 400, answer
    assert f"subject.{field}" in answer["error"]["fields"]


async def test_a_lone_surrogate_in_other_names_or_the_justification_is_400_naming_it(fed):
    body = {"subject": {**GOOD, "other_names": ["Amy Jones", SURROGATE]}, "purpose": PURPOSE}
    status, answer = await post_raw(fed, json.dumps(body).encode())
    assert status == 400 and "subject.other_names" in answer["error"]["fields"], answer
    # This one was 503 audit_unavailable with no audit entry, and an alarm any practitioner could raise.
    purpose = {**PURPOSE, "justification": "Strategy discussion " + SURROGATE}
    status, answer = await post_raw(fed, json.dumps({"subject": GOOD, "purpose": purpose}).encode())
    assert status == 400 and "purpose.justification" in answer["error"]["fields"], answer
    from certs.identity import Role

    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/entries") as resp:
        entries = (await resp.json())["entries"]
    assert [e["entry"]["outcome"] for e in entries] == ["invalid", "invalid"]  # both attempts audited


@pytest.mark.parametrize(
    ("subject", "field"),
    [
        ({**GOOD, "date_of_birth": "1800-01-01"}, "subject.date_of_birth"),
        ({**GOOD, "date_of_birth": "0001-01-01"}, "subject.date_of_birth"),
        ({**GOOD, "nhs_number": "0000000000"}, "subject.nhs_number"),
        ({**GOOD, "nhs_number": "\u00b2" * 10}, "subject.nhs_number"),
        ({**GOOD, "nhs_number": "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669"}, "subject.nhs_number"),
        ({**GOOD, "nhs_number": "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19"}, "subject.nhs_number"),
        ({**GOOD, "given_name": "Amy\x00"}, "subject.given_name"),
    ],
    ids=["dob-1800", "dob-0001", "nhs-zeros", "nhs-superscript", "nhs-arabic-indic", "nhs-fullwidth", "nul"],
)
async def test_implausible_input_is_refused(fed, subject, field):
    status, body = await fed.search(subject)
    assert status == 400, body
    assert field in body["error"]["fields"], body["error"]["fields"]


async def test_unknown_fields_are_named_by_position_never_echoed(fed):
    # A key is client text like any other: a child's name can be put in one.
    body = {
        "subject": {**GOOD, "Xanthippe Quartermaine": "1", "nhs": "x"},
        "purpose": {**PURPOSE, "Zebedee": 1},
        "Ptolemy Featherstonehaugh": 2,
    }
    status, answer = await post_raw(fed, json.dumps(body).encode())
    assert status == 400
    assert answer["error"]["fields"] == {
        "subject": "unknown fields #4, #5",
        "purpose": "unknown field #3",
        "body": "unknown field #3",
    }
    text = json.dumps(answer)
    for secret in ("Xanthippe", "Quartermaine", "Zebedee", "Ptolemy", "nhs"):
        assert secret not in text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"after": "\u00b2"}, "after"),
        ({"limit": "\u00b2"}, "limit"),
        ({"after": "9" * 5000}, "after"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-14:00"}, "until"),
        ({"actor": "jsmith\x00"}, "actor"),
        ({"actor": "x" * 500}, "actor"),
    ],
)
async def test_bad_auditor_parameters_are_400_naming_them(fed, query, field):
    from certs.identity import Role

    async with fed.session(role=Role.AUDITOR).get(f"{fed.url}/v1/audit/entries", params=query) as resp:
        body = await resp.json()
        assert resp.status == 400, body
    assert field in body["error"]["fields"]
    assert query[field] not in json.dumps(body)


async def test_an_undecodable_query_value_is_400(fed):
    from certs.identity import Role

    url = f"{fed.url}/v1/audit/entries?actor=%ED%A0%80&after=%FF"
    async with fed.session(role=Role.AUDITOR).get(url) as resp:
        body = await resp.json()
        assert resp.status == 400, body


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /v1/" + b"Xanthippe" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Note: " + b"Xanthippe" * 2000 + b"\r\n\r\n",
        b"GET /Xanthippe\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"XANTHIPPE\xff / HTTP/1.1\r\n\r\n",
    ],
    ids=["long-request-line", "long-header", "bad-url", "bad-method"],
)
async def test_protocol_errors_are_the_contracts_json_without_echo(request_head):
    # aiohttp answers these itself, before any middleware, in plain text quoting the request.
    import asyncio

    from aiohttp import web

    from broker.app import BrokerRunner

    runner = BrokerRunner(web.Application())
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(request_head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0]
    assert b"application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_request" and error["fields"], error
    assert b"Xanthippe".lower() not in answer.lower()
