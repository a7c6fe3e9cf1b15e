"""Hostile and malformed input: each request gets a 4xx naming the problem, never a 500, and
nothing is stored. Text that would reach a phone (TwiML, SMS) or the database holds no control
character, NUL or lone surrogate; a script stays within what Twilio will speak."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from shared.campaigns import service as campaigns_service
from shared.campaigns.schemas import CampaignCreate
from shared.config import get_settings
from shared.db import session_scope
from shared.models import Call, Campaign, SmsMessage
from shared.telephony import twiml
from tests import factories
from tests.api.conftest import KeyedClient
from tests.billing import stripe_events

NUMBER = "+14155552671"
CALL = {"campaign": "welcome", "name": "Ada", "phoneNumber": NUMBER}
# Written as JSON escapes, so the body holds exactly these characters.
BAD_TEXT = {
    "bell": ("\\u0007", "a control character (U+0007"),
    "NUL": ("\\u0000", "a control character (U+0000"),
    "escape": ("\\u001b[2J", "a control character (U+001B"),
    "C1 control": ("\\u0085", "a control character (U+0085"),
    "lone surrogate": ("\\ud800", "a lone surrogate (U+D800"),
    "low surrogate": ("\\udfff", "a lone surrogate (U+DFFF"),
    "non-character": ("\\uffff", "a non-character (U+FFFF"),
}

# (path, body with {} where the bad text goes, the field named)
FIELDS = [
    ("/api/make_toingg/", {**CALL, "name": "A{}"}, ["name"]),
    ("/api/make_toingg/", {**CALL, "campaign": "w{}"}, ["campaign"]),
    ("/api/make_toingg/", {**CALL, "phoneNumber": "+1415{}5552671"}, ["phoneNumber"]),
    ("/api/make/toingg", {**CALL, "name": "{}"}, ["name"]),
    (
        "/api/make_toingg_details",
        {"campaignName": "details", "campaignScript": "Hi {}", "name": "A", "phoneNumber": NUMBER},
        ["campaignScript"],
    ),
    (
        "/api/make_toingg_details",
        {"campaignName": "d{}", "campaignScript": "Hi", "name": "A", "phoneNumber": NUMBER},
        ["campaignName"],
    ),
    (
        "/api/make_batch_toingg",
        {
            "campaign": "welcome",
            "numberList": [
                {"clientName": "fine", "clientNumber": NUMBER},
                {"clientName": "B{}", "clientNumber": "+12025550123"},
            ],
        },
        ["numberList", 1, "clientName"],
    ),
    (
        "/api/make/toingg",
        {"campaign": "welcome", "numberList": [{"clientName": "x", "clientNumber": "{}"}]},
        ["numberList", 0, "clientNumber"],
    ),
    ("/api/send_sms", {"name": "A", "phoneNumber": NUMBER, "message": "Hi{}"}, ["message"]),
    ("/api/send_sms", {"name": "A{}", "phoneNumber": NUMBER, "message": "Hi"}, ["name"]),
    ("/api/campaigns", {"name": "c{}", "script": "Hello"}, ["name"]),
    ("/api/campaigns", {"name": "c", "script": "Hello {}"}, ["script"]),
    ("/api/campaigns", {"name": "c", "script": "Hello", "callerId": "{}"}, ["callerId"]),
    ("/api/create-checkout-session", {"apikey": "KEY", "pack": "small{}"}, ["pack"]),
]


def _raw(body: object, bad: str, key: str) -> bytes:
    return json.dumps(body).replace("KEY", key).replace("{}", bad).encode()


def _stored(account_id: str) -> int:
    with session_scope() as session:
        return sum(
            session.scalar(select(func.count()).where(model.account_id == account_id)) or 0
            for model in (Call, SmsMessage)
        )


class TestTextThatReachesAPhone:
    @pytest.mark.parametrize("bad", BAD_TEXT.values(), ids=BAD_TEXT.keys())
    @pytest.mark.parametrize(("path", "body", "field"), FIELDS)
    def test_is_refused_422_naming_the_field(
        self, api: KeyedClient, path: str, body: dict, field: list, bad: tuple[str, str]
    ) -> None:
        escaped, named = bad
        response = api.client.post(
            path,
            content=_raw(body, escaped, api.api_key),
            params={"apiKey": api.api_key},
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        errors = response.json()["detail"]
        assert errors[0]["loc"] == ["body", *field]
        assert f"must not contain {named}" in errors[0]["msg"]
        assert _stored(api.account_id) == 0

    def test_line_breaks_are_text_in_a_script_or_a_message_but_not_in_a_name(
        self, api: KeyedClient
    ) -> None:
        script = api.post(
            "/api/campaigns", json={"name": "lines", "script": "Hello {name},\n\tbye\r\n"}
        )
        assert script.status_code == 201, script.text
        sms = api.post("/api/send_sms", json={"phoneNumber": NUMBER, "message": "Line 1\nLine 2"})
        assert sms.status_code == 200, sms.text
        name = api.post("/api/make_toingg/", json={**CALL, "name": "Ada\nLovelace"})
        assert name.status_code == 422
        assert "U+000A" in name.json()["detail"][0]["msg"]

    @pytest.mark.parametrize(
        ("path", "params", "loc"),
        [
            ("/api/calls/%00", {}, ["path", "call_ref"]),
            ("/api/calls", {"campaign": "\x07"}, ["query", "campaign"]),
            ("/api/calls", {"batch": "\x00"}, ["query", "batch"]),
            ("/api/batches/%00", {}, ["path", "batch_id"]),
            ("/api/sms/%07", {}, ["path", "sms_ref"]),
            ("/api/campaigns/%00", {}, ["path", "campaign_id"]),
        ],
    )
    def test_in_a_path_or_a_query_is_refused_before_the_database(
        self, api: KeyedClient, path: str, params: dict, loc: list
    ) -> None:
        response = api.get(path, **params)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == loc

    def test_in_a_hang_up_sid_is_refused(self, api: KeyedClient) -> None:
        response = api.post("/api/hang_up_call", callSid="CA\x00")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "callSid"]

    @pytest.mark.parametrize("key", ["tg_\x00", "tg_\x07", "tg_\x1b"])
    def test_in_an_api_key_is_refused_naming_it(self, client: TestClient, key: str) -> None:
        response = client.get("/api/calls", params={"apiKey": key})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "apiKey"]
        checkout = client.post("/api/create-checkout-session", json={"apikey": key})
        assert checkout.status_code == 422
        assert checkout.json()["detail"][0]["loc"] == ["body", "apikey"]


class TestScriptsWithinTwiliosLimits:
    def test_a_script_that_could_exceed_the_say_limit_is_refused_when_saved(
        self, api: KeyedClient
    ) -> None:
        fits = "x" * (twiml.SAY_MAX_CHARACTERS - 200) + "{name}"  # 4,096 with a 200-long name
        assert api.post("/api/campaigns", json={"name": "fits", "script": fits}).status_code == 201
        for body in (
            {"name": "names", "script": "Hi {name}! " * 30},  # 30 names of 200 characters
            {"name": "long", "script": "x" * (twiml.SAY_MAX_CHARACTERS + 1)},
            {"name": "fits-not", "script": "x" + fits},
        ):
            response = api.post("/api/campaigns", json=body)
            assert response.status_code == 422, response.text
            [error] = response.json()["detail"]
            assert error["loc"] == ["body", "script"]
            assert "4,096" in error["msg"] or "4096" in error["msg"]
        campaign_id = api.get("/api/campaigns").json()["items"][0]["id"]
        patched = api.patch(f"/api/campaigns/{campaign_id}", json={"script": "Hi {name}! " * 30})
        assert patched.status_code == 422
        details = api.post(
            "/api/make_toingg_details",
            json={
                "campaignName": "details",
                "campaignScript": "{name}" * 21,
                "name": "A",
                "phoneNumber": NUMBER,
            },
        )
        assert details.status_code == 422
        assert details.json()["detail"][0]["loc"] == ["body", "campaignScript"]
        assert _stored(api.account_id) == 0

    def test_the_longest_script_makes_a_twiml_answer_within_64_kb(self) -> None:
        # The <Say> limit is the one checked: it keeps the answer within Twilio's 64 kB.
        for char in ("&", "<", "\U0001f600", "\u00e9"):
            document = twiml.say(char * twiml.SAY_MAX_CHARACTERS)
            assert len(document.encode()) < twiml.TWIML_MAX_BYTES

    def test_a_call_is_refused_when_accepted_if_its_script_is_too_long(
        self, api: KeyedClient
    ) -> None:
        # A campaign saved before the limit was checked.
        with session_scope() as session:
            campaigns_service.create(
                session,
                api.account_id,
                CampaignCreate.model_construct(
                    name="old", script="Hello {name}. " + "x" * 4000, callerId=None,
                    maxCallMinutes=5, maxConcurrentCalls=None,
                ),
            )  # fmt: skip
        short = api.post("/api/make_toingg/", json={**CALL, "campaign": "old", "name": "Al"})
        assert short.status_code == 200, short.text
        long_name = {**CALL, "campaign": "old", "name": "A" * 100}
        refused = api.post("/api/make_toingg/", json=long_name)
        assert refused.status_code == 422
        [error] = refused.json()["detail"]
        assert error["loc"] == ["body", "name"]
        assert "4,096" in error["msg"]
        batch = api.post(
            "/api/make_batch_toingg",
            json={
                "campaign": "old",
                "numberList": [
                    {"clientName": "Bo", "clientNumber": factories.phone_number()},
                    {"clientName": "B" * 100, "clientNumber": factories.phone_number()},
                ],
            },
        )
        assert batch.status_code == 200, batch.text
        assert batch.json()["accepted"] == 1
        [rejected] = batch.json()["rejected"]
        assert rejected["index"] == 1
        assert "4,096" in rejected["reason"]
        only_long = api.post(
            "/api/make_batch_toingg",
            json={
                "campaign": "old",
                "numberList": [{"clientName": "C" * 100, "clientNumber": NUMBER}],
            },
        )
        assert only_long.status_code == 422
        assert only_long.json()["detail"][0]["loc"] == ["body", "numberList", 0, "clientName"]
        with session_scope() as session:
            old = session.scalar(select(Campaign).where(Campaign.name == "old"))
            assert old is not None


NESTED = b"[" * 30_000 + b"]" * 30_000  # within the small limit


class TestMalformedBattery:
    """Wrong types, huge strings, deep nesting, odd numbers and bodies, wrong content types."""

    @pytest.mark.parametrize(
        ("path", "content", "status", "names"),
        [
            ("/api/make_toingg/", {**CALL, "phoneNumber": ["+14155552671"]}, 422, "phoneNumber"),
            ("/api/make_toingg/", {**CALL, "campaign": {"a": 1}}, 422, "campaign"),
            ("/api/make_toingg/", {**CALL, "name": True}, 422, "name"),
            ("/api/make_toingg/", [CALL], 422, "body"),
            ("/api/make_toingg/", "a string", 422, "body"),
            ("/api/make_toingg/", None, 422, "body"),
            (
                "/api/make_batch_toingg",
                {"campaign": "welcome", "numberList": "+14155552671"},
                422,
                "numberList",
            ),
            (
                "/api/make_batch_toingg",
                {"campaign": "welcome", "numberList": []},
                422,
                "numberList",
            ),
            (
                "/api/make_batch_toingg",
                {"campaign": "welcome", "numberList": [None]},
                422,
                "numberList",
            ),
            ("/api/make/toingg", {"campaign": "welcome", "numberList": [[1]]}, 422, "numberList"),
            (
                "/api/campaigns",
                {"name": "x", "script": "y", "maxCallMinutes": "five"},
                422,
                "maxCallMinutes",
            ),
            (
                "/api/campaigns",
                {"name": "x", "script": "y", "maxCallMinutes": 10**30},
                422,
                "maxCallMinutes",
            ),
            (
                "/api/campaigns",
                {"name": "x", "script": "y", "maxConcurrentCalls": -1},
                422,
                "maxConcurrentCalls",
            ),
            ("/api/send_sms", {"phoneNumber": NUMBER, "message": "m" * 1601}, 422, "message"),
            ("/api/make_toingg/", {**CALL, "name": "n" * 201}, 422, "name"),
            ("/api/make_toingg/", {**CALL, "campaign": "c" * 201}, 422, "campaign"),
            ("/api/make_toingg/", {**CALL, "phoneNumber": "1" * 65}, 422, "phoneNumber"),
            ("/api/make_toingg/", {**CALL, "name": "n" * 70_000}, 413, "64 KiB"),
            ("/api/create-checkout-session", {"apikey": "KEY", "credits": "lots"}, 422, "credits"),
            ("/api/create-checkout-session", {"apikey": "KEY", "credits": 1.5}, 422, "credits"),
            ("/api/create-checkout-session", {"apikey": "KEY", "credits": True}, 422, "credits"),
            (
                "/api/campaigns",
                {"name": "x", "script": "y", "maxCallMinutes": True},
                422,
                "maxCallMinutes",
            ),
            (
                "/api/campaigns",
                {"name": "x", "script": "y", "maxConcurrentCalls": False},
                422,
                "maxConcurrentCalls",
            ),
            ("/api/create-checkout-session", {"apikey": ["KEY"]}, 422, "apikey"),
        ],
    )
    def test_wrong_types_and_sizes(
        self, api: KeyedClient, path: str, content: object, status: int, names: str
    ) -> None:
        raw = json.dumps(content).replace("KEY", api.api_key).encode()
        response = api.client.post(
            path,
            content=raw,
            params={"apiKey": api.api_key},
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == status, response.text
        assert names in response.text
        assert _stored(api.account_id) == 0

    @pytest.mark.parametrize(
        ("content", "content_type", "status", "names"),
        [
            (NESTED, "application/json", 400, "nested too deeply"),
            (
                b'{"campaign": ' + b"[" * 800 + b"]" * 800 + b"}",
                "application/json",
                422,
                "campaign",
            ),
            (
                b'{"campaign": "welcome", "phoneNumber": ' + b"9" * 5000 + b"}",
                "application/json",
                400,
                "too many digits",
            ),
            (b'{"campaign": "welcome", "phoneNumber": NaN}', "application/json", 4, ""),
            (b"\xff\xfe\x00\x00 not UTF-8", "application/json", 4, ""),
            (b"\xc3\x28", "application/json", 4, ""),
            (b"{not json", "application/json", 422, "JSON decode error"),
            (b"", "application/json", 422, "Field required"),
            (json.dumps(CALL).encode(), "text/plain", 415, "application/json"),
            (
                b"campaign=welcome&phoneNumber=1",
                "application/x-www-form-urlencoded",
                415,
                "application/json",
            ),
            (b"--b\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b", 415, "application/json"),
            (json.dumps(CALL).encode(), "application/xml", 415, "application/json"),
            (json.dumps(CALL).encode(), None, 422, "valid dictionary"),
        ],
    )
    @pytest.mark.parametrize(
        "path", ["/api/make_toingg/", "/api/make/toingg", "/api/send_sms", "/api/make_batch_toingg"]
    )
    def test_odd_bodies(
        self,
        api: KeyedClient,
        path: str,
        content: bytes,
        content_type: str | None,
        status: int,
        names: str,
    ) -> None:
        headers = {} if content_type is None else {"Content-Type": content_type}
        response = api.client.post(
            path, content=content, params={"apiKey": api.api_key}, headers=headers
        )
        if status == 4:  # any 4xx
            assert 400 <= response.status_code < 500, response.text
        else:
            assert response.status_code == status, response.text
        assert response.json()["detail"]
        assert names in response.text
        assert _stored(api.account_id) == 0

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1.5e400"])
    @pytest.mark.parametrize(
        ("path", "template"),
        [
            (
                "/api/make_toingg/",
                '{"campaign": "welcome", "name": #, "phoneNumber": "+14155552671"}',
            ),
            ("/api/send_sms", '{"name": "Ada", "phoneNumber": "+14155552671", "message": #}'),
            (
                "/api/make_batch_toingg",
                '{"campaign": "welcome", "numberList":'
                ' [{"clientName": #, "clientNumber": "+14155552671"}]}',
            ),
        ],
    )
    def test_a_number_json_cannot_hold_is_refused_naming_it(
        self, api: KeyedClient, path: str, template: str, literal: str
    ) -> None:
        # Python reads NaN and Infinity (not JSON at all) and 1e999 (beyond a double) as
        # floats: a name of 1e999 was accepted as the text "inf", and spoken to the callee.
        response = api.client.post(
            path,
            content=template.replace("#", literal).encode(),
            params={"apiKey": api.api_key},
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert literal in response.json()["detail"]
        assert _stored(api.account_id) == 0

    @pytest.mark.parametrize(
        ("path", "content", "key"),
        [
            (
                "/api/make_toingg/",
                '{"campaign": "welcome", "name": "Ada", "name": "Eve",'
                ' "phoneNumber": "+14155552671"}',
                "name",
            ),
            (
                "/api/make_batch_toingg",
                '{"campaign": "welcome", "numberList": [{"clientName": "Ada",'
                ' "clientNumber": "+14155552671", "clientNumber": "+12025550123"}]}',
                "clientNumber",
            ),
            (
                "/api/send_sms",
                '{"phoneNumber": "+14155552671", "message": "Hi", "fromNumber": "+15005550006",'
                ' "fromNumber": "+14155550100"}',
                "fromNumber",
            ),
        ],
    )
    def test_a_key_given_twice_is_refused_naming_it(
        self, api: KeyedClient, path: str, content: str, key: str
    ) -> None:
        # Which of the two counts is the parser's choice: one reader of the body may take the
        # first and another the last. Neither is taken.
        response = api.client.post(
            path,
            content=content.encode(),
            params={"apiKey": api.api_key},
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json() == {
            "detail": f"the JSON body gives the key '{key}' twice in one object"
        }
        assert _stored(api.account_id) == 0

    def test_the_alias_documents_both_of_its_shapes(self, client: TestClient) -> None:
        schema = client.get("/api/openapi.json").json()
        body = schema["paths"]["/api/make/toingg"]["post"]["requestBody"]
        shapes = body["content"]["application/json"]["schema"]["oneOf"]
        assert [shape["title"] for shape in shapes] == ["MakeCallRequest", "BatchRequest"]
        assert shapes[0]["required"] == ["campaign", "phoneNumber"]
        assert shapes[1]["required"] == ["campaign", "numberList"]


class TestSignedStripeBodies:
    """What Stripe's webhook does with a correctly signed body that is no event it could store:
    400 saying why, never a 500 (a signature proves who sent a body, not what it holds)."""

    @pytest.mark.parametrize(
        ("body", "why"),
        [
            ("[]", "a JSON object"),
            ("null", "a JSON object"),
            ('"evt"', "a JSON object"),
            ("{}", "id"),
            ('{"id": "evt_1", "data": {"object": {}}}', "type"),
            ('{"id": 1, "type": "charge.refunded", "data": {"object": {}}}', "id"),
            ('{"id": "evt_\\u0000", "type": "x", "data": {"object": {}}}', "id"),
            ('{"id": "evt_2", "type": "\\ud800", "data": {"object": {}}}', "type"),
            ('{"id": "evt_' + "e" * 300 + '", "type": "x", "data": {"object": {}}}', "id"),
            ('{"id": "evt_3", "type": "charge.refunded"}', "data.object"),
            ('{"id": "evt_4", "type": "charge.refunded", "data": {"object": []}}', "data.object"),
            ('{"id": "evt_5", "type": "x", "data": {"object": {"amount": NaN}}}', "NaN"),
            ('{"id": "evt_6", "type": "x", "data": {"object": {"a": 1e999}}}', "1e999"),
            ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ],
    )
    def test_a_signed_body_that_is_no_event_is_400_saying_why(
        self, client: TestClient, body: str, why: str
    ) -> None:
        signature = stripe_events.sign(body, get_settings().STRIPE_WEBHOOK_SECRET)
        response = client.post(
            "/api/webhook",
            content=body.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        )
        assert response.status_code == 400, response.text
        assert "the body is not a Stripe event" in response.json()["detail"]
        assert why in response.json()["detail"]


def test_no_route_reads_a_body_before_its_checks() -> None:
    """Every API route is an ApiRoute, so a route keyed by the query or a header checks the key
    before its body is read."""
    from fastapi.routing import APIRoute

    from api.routes import api_router
    from api.routing import ApiRoute

    def routes(router):  # type: ignore[no-untyped-def]
        for route in router.routes:
            if hasattr(route, "original_router"):
                yield from routes(route.original_router)
            else:
                yield route

    api_routes = [r for r in routes(api_router) if isinstance(r, APIRoute)]
    assert len(api_routes) > 20
    assert [r.path for r in api_routes if not isinstance(r, ApiRoute)] == []
    assert create_app()  # the app builds with them
