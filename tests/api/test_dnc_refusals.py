"""A call or SMS refused at acceptance for a listed number keeps its refusal as an event
(call.refused, sms.refused), committed though the request answers 422 and places nothing."""

from sqlalchemy import func, select

from shared.db import session_scope
from shared.dnc import refusals, sources
from shared.dnc import service as dnc
from shared.models import Call, SmsMessage
from tests import factories
from tests.api.conftest import KeyedClient


def add_now(account_id: str | None, number: str, reason: str = "asked") -> None:
    with session_scope() as session:
        dnc.add(session, account_id, number, reason, sources.CSV)


def count(model: type, account_id: str) -> int:
    with session_scope() as session:
        return session.scalar(
            select(func.count()).select_from(model).where(model.account_id == account_id)
        )


def test_a_refused_call_keeps_its_event_and_places_nothing(api: KeyedClient) -> None:
    number = factories.phone_number()
    add_now(api.account_id, number)
    answer = api.post(
        "/api/make_toingg", {"campaign": "welcome", "name": "Ada", "phoneNumber": number}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "phoneNumber"]
    assert count(Call, api.account_id) == 0
    [event] = api.get("/api/events", type="call.refused", subject=number).json()["items"]
    assert (event["subjectType"], event["subjectId"]) == ("number", number)
    data = event["data"]
    assert data["reason"] == answer.json()["detail"][0]["msg"]
    assert (data["rule"], data["list"], data["listedBy"], data["listedFor"]) == (
        "do-not-contact",
        "account",
        "csv",
        "asked",
    )
    assert data["source"] == "api" and data["refusedAt"] and data["listedAt"]
    [shown] = api.get(f"/api/dnc/{number}").json()["refused"]
    assert (shown["event"], shown["type"], shown["list"]) == (
        event["id"],
        "call.refused",
        "account",
    )
    assert shown["reason"] == data["reason"]


def test_a_refused_sms_keeps_its_event_under_the_global_rule(api: KeyedClient) -> None:
    number = factories.phone_number()
    add_now(None, number, "operators' ban")
    answer = api.post("/api/send_sms", {"phoneNumber": number, "message": "Hi"})
    assert answer.status_code == 422
    assert count(SmsMessage, api.account_id) == 0
    assert api.get("/api/credits").json()["balance"] == 100
    [event] = api.get("/api/events", type="sms.*", subject=number).json()["items"]
    assert event["type"] == "sms.refused"
    assert (event["data"]["list"], event["data"]["listedFor"]) == ("global", "operators' ban")


def test_a_batch_of_listed_numbers_only_is_422_and_keeps_one_event(api: KeyedClient) -> None:
    numbers = [factories.phone_number() for _ in range(refusals.MAX_NUMBERS + 5)]
    for number in numbers:
        add_now(api.account_id, number)
    answer = api.post(
        "/api/make_batch_toingg",
        {
            "campaign": "welcome",
            "numberList": [{"clientName": "A", "clientNumber": n} for n in numbers],
        },
    )
    assert answer.status_code == 422
    assert count(Call, api.account_id) == 0
    [event] = api.get("/api/events", type="call.refused").json()["items"]
    assert event["subjectType"] == "batch"
    data = event["data"]
    assert data["count"] == len(numbers) and data["truncated"] is True
    assert [row["number"] for row in data["rows"]] == numbers[: refusals.MAX_NUMBERS]
    assert data["rows"][0]["index"] == 0 and data["rows"][0]["list"] == "account"


def test_a_batchs_listed_rows_make_one_event_for_the_batch(api: KeyedClient) -> None:
    listed, free = factories.phone_number(), factories.phone_number()
    add_now(api.account_id, listed)
    answer = api.post(
        "/api/make_batch_toingg",
        {
            "campaign": "welcome",
            "numberList": [
                {"clientName": "A", "clientNumber": free},
                {"clientName": "C", "clientNumber": listed},
            ],
        },
    )
    assert answer.status_code == 200, answer.text
    batch_id = answer.json()["batchId"]
    [event] = api.get("/api/events", type="call.refused", subject=batch_id).json()["items"]
    assert event["data"]["count"] == 1 and event["data"]["truncated"] is False
    assert [(r["index"], r["number"]) for r in event["data"]["rows"]] == [(1, listed)]
    assert count(Call, api.account_id) == 1
