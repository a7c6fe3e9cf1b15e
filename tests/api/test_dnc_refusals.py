"""A call or SMS refused at acceptance for a listed number keeps its refusal as an event
(call.refused, sms.refused), committed though the request answers 422 and places nothing."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.dnc import refusals, sources
from shared.dnc import service as dnc
from shared.idempotency import service as keys
from shared.models import Call, SmsMessage
from tests import factories
from tests.api.conftest import KeyedClient

TOINGG = {"campaign": "welcome", "name": "Ada"}


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
    [event] = api.get("/api/events", type="call.refused", number=number).json()["items"]
    assert (event["subjectType"], event["sequence"]) == ("refusal", 1)
    assert api.get(f"/api/events/{event['id']}").json()["subjectId"] == event["subjectId"]
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
    [event] = api.get("/api/events", type="sms.*", number=number).json()["items"]
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


def test_an_accounts_refusals_tell_nothing_of_another_accounts(api: KeyedClient) -> None:
    """Two accounts refused one globally listed number: each sees its own refusals only, and
    nothing in them (a sequence counting the number's refusals) grows with the other's."""
    number = factories.phone_number()
    add_now(None, number)
    account_id, key = factories.account(credits=100)
    factories.campaign(account_id, name="welcome", script="Hello {name}.")
    other = KeyedClient(api.client, account_id, key)
    for _ in range(3):
        answer = api.post("/api/make_toingg", {**TOINGG, "phoneNumber": number})
        assert answer.status_code == 422
    assert other.post("/api/make_toingg", {**TOINGG, "phoneNumber": number}).status_code == 422
    assert other.post("/api/send_sms", {"phoneNumber": number, "message": "Hi"}).status_code == 422

    mine = api.get("/api/events", number=number).json()["items"]
    theirs = other.get("/api/events", number=number).json()["items"]
    assert [e["type"] for e in mine] == ["call.refused"] * 3
    assert [e["type"] for e in theirs] == ["sms.refused", "call.refused"]
    for event in mine + theirs:
        assert (event["subjectType"], event["sequence"]) == ("refusal", 1)
    subjects = {e["subjectId"] for e in mine + theirs}
    assert len(subjects) == 5 and number not in subjects
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs}
    # No other filter finds them under a subject the accounts share.
    assert other.get("/api/events", subject=number).json()["items"] == []

    assert [r["event"] for r in api.get(f"/api/dnc/{number}").json()["refused"]] == [
        e["id"] for e in mine
    ]
    assert [r["event"] for r in other.get(f"/api/dnc/{number}").json()["refused"]] == [
        e["id"] for e in theirs
    ]
    # The number written otherwise finds the same ones; one that is no number is refused.
    national = f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    assert other.get("/api/events", number=national).json()["items"] == theirs
    answer = other.get("/api/events", number="not a number")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "number"]


def keyed(api: KeyedClient, path: str, body: object, key: str):  # type: ignore[no-untyped-def]
    return api.client.post(
        path, json=body, params={"apiKey": api.api_key}, headers={"Idempotency-Key": key}
    )


def test_a_refusal_retried_with_its_key_keeps_one_event(api: KeyedClient) -> None:
    """A client retrying a refused request (its answer lost on the way) is refused again, and
    the refusal is still one: the account's audit counts requests, not their retries."""
    number = factories.phone_number()
    add_now(api.account_id, number)
    body = {**TOINGG, "phoneNumber": number}
    answers = [keyed(api, "/api/make_toingg", body, "call-1") for _ in range(3)]
    assert [a.status_code for a in answers] == [422] * 3
    assert len({a.text for a in answers}) == 1
    sms = {"phoneNumber": number, "message": "Hi"}
    assert [keyed(api, "/api/send_sms", sms, "sms-1").status_code for _ in range(2)] == [422] * 2
    assert [e["type"] for e in api.get("/api/events", number=number).json()["items"]] == [
        "sms.refused",
        "call.refused",
    ]
    # Another key, or none, is another request, refused and kept again.
    assert keyed(api, "/api/make_toingg", body, "call-2").status_code == 422
    assert api.post("/api/make_toingg", body).status_code == 422
    assert len(api.get(f"/api/dnc/{number}").json()["refused"]) == 4


def test_a_refused_key_places_the_call_once_the_number_is_removed(api: KeyedClient) -> None:
    """The refusal does not keep the key: the number taken off the list, the same request with
    the same key is accepted."""
    number = factories.phone_number()
    add_now(api.account_id, number)
    body = {**TOINGG, "phoneNumber": number}
    assert keyed(api, "/api/make_toingg", body, "k").status_code == 422
    assert api.client.delete(
        f"/api/dnc/{number}", params={"apiKey": api.api_key, "reason": "consent given"}
    ).json() == {"number": number, "listed": False}
    answer = keyed(api, "/api/make_toingg", body, "k")
    assert answer.status_code == 200, answer.text
    assert count(Call, api.account_id) == 1


@contextmanager
def refusals_fail_at_commit(number: str, errcode: str = "disk_full") -> Iterator[None]:
    """The database refuses, as the transaction commits, any refusal event of `number` (a
    deferred constraint trigger: the error comes from COMMIT, as a full disk would make it;
    `errcode` another SQLSTATE, a failure no retry gets past)."""
    with session_scope() as session:
        session.execute(
            text(
                "CREATE FUNCTION fail_refusal() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF NEW.subject_type IN ('refusal', 'batch') AND NEW.data->>'number' = "
                f"'{number}' OR NEW.data->'rows'->0->>'number' = '{number}'"
                " THEN RAISE EXCEPTION 'could not write to file'"
                f" USING ERRCODE = '{errcode}'; END IF; RETURN NULL; END $$;"
                " CREATE CONSTRAINT TRIGGER fail_refusal AFTER INSERT ON events"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_refusal()"
            )
        )
    try:
        yield
    finally:
        with session_scope() as session:
            session.execute(
                text("DROP TRIGGER fail_refusal ON events; DROP FUNCTION fail_refusal()")
            )


def test_a_refusal_that_cannot_be_kept_is_503_to_retry(api: KeyedClient) -> None:
    """A 422 says the refusal is on record; one the database failed to record is 503 with
    Retry-After, placing nothing, and the retry gets the 422 and its one event."""
    number = factories.phone_number()
    add_now(api.account_id, number)
    body = {**TOINGG, "phoneNumber": number}
    batch = {"campaign": "welcome", "numberList": [{"clientName": "A", "clientNumber": number}]}
    with refusals_fail_at_commit(number):
        for path, request in (("/api/make_toingg", body), ("/api/make_batch_toingg", batch)):
            answer = keyed(api, path, request, path)
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "1"
            assert "could not be recorded" in answer.json()["detail"]
    assert count(Call, api.account_id) == 0
    assert api.get("/api/events", type="call.refused").json()["items"] == []
    assert keyed(api, "/api/make_toingg", body, "/api/make_toingg").status_code == 422
    assert [e["type"] for e in api.get("/api/events", number=number).json()["items"]] == [
        "call.refused"
    ]


def test_a_batch_refused_whole_retried_with_its_key_keeps_one_event(api: KeyedClient) -> None:
    number = factories.phone_number()
    add_now(api.account_id, number)
    batch = {"campaign": "welcome", "numberList": [{"clientName": "A", "clientNumber": number}]}
    answers = [keyed(api, "/api/make_batch_toingg", batch, "batch-1") for _ in range(3)]
    assert [a.status_code for a in answers] == [422] * 3
    [event] = api.get("/api/events", type="call.refused").json()["items"]
    assert event["subjectType"] == "batch" and event["data"]["batchId"] == event["subjectId"]
    assert [row["number"] for row in event["data"]["rows"]] == [number]
    assert keyed(api, "/api/make_batch_toingg", batch, "batch-2").status_code == 422
    assert len(api.get("/api/events", type="call.refused").json()["items"]) == 2


def test_a_refusal_failing_for_good_is_500_not_a_retry_forever(api: KeyedClient) -> None:
    """A 503 asks the client to retry in a second; a failure no retry gets past (here a check
    of the database's own raising its error) would have it retry for ever, each retry refused
    and failing again: it is 500, as any other such failure, and still places nothing."""
    number = factories.phone_number()
    add_now(api.account_id, number)
    body = {**TOINGG, "phoneNumber": number}
    with (
        refusals_fail_at_commit(number, errcode="P0001"),
        TestClient(api.client.app, raise_server_exceptions=False) as failing,
    ):
        answer = failing.post(
            "/api/make_toingg", json=body, params={"apiKey": api.api_key},
            headers={"Idempotency-Key": "k"},
        )  # fmt: skip
    assert answer.status_code == 500, answer.text
    assert "Retry-After" not in answer.headers
    assert count(Call, api.account_id) == 0
    assert keyed(api, "/api/make_toingg", body, "k").status_code == 422


def test_a_retry_refused_while_the_first_refusal_is_kept_adds_no_event(
    api: KeyedClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the key's row lock is for: the first request has let its key go (its work
    rolled back) and not yet kept its refusal when the retry comes, takes the key, is refused
    and keeps its refusal first. The first then finds it: both are 422, one event."""
    number = factories.phone_number()
    add_now(api.account_id, number)
    body = {**TOINGG, "phoneNumber": number}
    between, go_on = threading.Event(), threading.Event()
    hold = keys.hold

    def first_pauses(session: Session, row_id: str) -> None:
        if not between.is_set():  # the first request, between its rollback and its refusal
            between.set()
            assert go_on.wait(30)
        hold(session, row_id)

    monkeypatch.setattr(keys, "hold", first_pauses)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(keyed, api, "/api/make_toingg", body, "k")
        assert between.wait(30)
        retry = keyed(api, "/api/make_toingg", body, "k")
        go_on.set()
        assert (first.result().status_code, retry.status_code) == (422, 422)
    assert len(api.get("/api/events", number=number).json()["items"]) == 1
