"""A listed number is never called or texted: refused when the request is accepted (a single
call or SMS answers 422, a batch's row is rejected), and, for a number listed after that, at the
fence right before the create request: the call or SMS ends `suppressed`, uncharged, and the
carrier never hears of it.

Which side of a race wins: an add that has committed when the fence looks wins, even when the
fence's transaction began before it; an add still uncommitted when the fence looks does not
(the call goes out), and binds every call after it.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from shared.calls import repository as calls_repository
from shared.db import get_sessionmaker, session_scope
from shared.dnc import service as dnc
from shared.dnc import sources
from shared.ratelimit import carrier as carrier_limits
from shared.telephony import client as twilio
from tests import factories
from tests.api.conftest import KeyedClient
from tests.api.test_claims_out_with_workers import (  # noqa: F401 - fixtures
    accept_call,
    accept_sms,
    call_tick,
    carrier_at_api,
    customer,
    dial_claimed,
    only_these_owed,
    send_claimed,
    sms_tick,
    texts_to,
    worker_meets,
)
from tests.stack import Carrier


def listing(account_id: str | None, number: str) -> Callable[[Session], Any]:
    return lambda session: dnc.add(session, account_id, number, "asked", sources.API)


def add_now(account_id: str | None, number: str) -> None:
    with session_scope() as session:
        listing(account_id, number)(session)


def detail(response) -> tuple[list[str | int], str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    return error["loc"], error["msg"]


class TestAtAcceptance:
    def test_a_single_call_to_a_listed_number_is_422_naming_phone_number(
        self, api: KeyedClient
    ) -> None:
        number = factories.phone_number()
        add_now(api.account_id, number)
        for path, body in (
            ("/api/make_toingg", {"campaign": "welcome", "name": "Ada", "phoneNumber": number}),
            ("/api/make/toingg", {"campaign": "welcome", "name": "Ada", "phoneNumber": number}),
            (
                "/api/make_toingg_details",
                {
                    "campaignName": "welcome",
                    "campaignScript": "Hi {name}",
                    "name": "Ada",
                    "phoneNumber": number,
                },
            ),
        ):
            loc, msg = detail(api.post(path, body))
            assert loc == ["body", "phoneNumber"], path
            assert (
                msg == f"{number} is on this account's do-not-contact list (GET /api/dnc/{number})"
            )
        assert api.get("/api/calls").json()["total"] == 0
        assert api.get("/api/credits").json()["balance"] == 100

    def test_an_sms_to_a_listed_number_is_422_and_costs_nothing(self, api: KeyedClient) -> None:
        number = factories.phone_number()
        add_now(api.account_id, number)
        loc, msg = detail(api.post("/api/send_sms", {"phoneNumber": number, "message": "Hi"}))
        assert loc == ["body", "phoneNumber"]
        assert "do-not-contact list" in msg
        assert api.get("/api/credits").json()["balance"] == 100

    def test_a_batchs_listed_rows_are_rejected_saying_so(self, api: KeyedClient) -> None:
        listed, free = factories.phone_number(), factories.phone_number()
        add_now(api.account_id, listed)
        answer = api.post(
            "/api/make_batch_toingg",
            {
                "campaign": "welcome",
                "numberList": [
                    {"clientName": "A", "clientNumber": free},
                    {"clientName": "B", "clientNumber": "12"},
                    {"clientName": "C", "clientNumber": listed},
                ],
            },
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["accepted"] == 1
        assert [(r["index"], r["clientNumber"]) for r in body["rejected"]] == [
            (1, "12"),
            (2, listed),
        ]
        assert body["rejected"][1]["reason"] == f"{listed} is on the do-not-contact list"
        calls = api.get("/api/calls", batch=body["batchId"]).json()["items"]
        assert [c["phoneNumber"] for c in calls] == [free]

    def test_a_batch_of_listed_numbers_only_is_422_naming_each_row(self, api: KeyedClient) -> None:
        listed = factories.phone_number()
        add_now(api.account_id, listed)
        answer = api.post(
            "/api/make_batch_toingg",
            {"campaign": "welcome", "numberList": [{"clientName": "A", "clientNumber": listed}]},
        )
        assert answer.status_code == 422
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", "numberList", 0, "clientNumber"]
        assert "do-not-contact" in error["msg"]

    def test_the_global_list_binds_every_account_and_a_removal_frees_the_number(
        self, api: KeyedClient
    ) -> None:
        number = factories.phone_number()
        add_now(None, number)
        call = {"campaign": "welcome", "name": "Ada", "phoneNumber": number}
        _, msg = detail(api.post("/api/make_toingg", call))
        assert msg == f"{number} is on the operators' do-not-contact list"
        with session_scope() as session:
            dnc.remove(session, None, number, "lifted", sources.OPERATOR)
        assert api.post("/api/make_toingg", call).status_code == 200

    def test_an_unknown_call_has_no_explanation(self, api: KeyedClient) -> None:
        assert api.get("/api/compliance/calls/nope").status_code == 404

    def test_another_accounts_list_does_not_bind_this_one(self, api: KeyedClient) -> None:
        number = factories.phone_number()
        other, _ = factories.account()
        add_now(other, number)
        call = {"campaign": "welcome", "name": "Ada", "phoneNumber": number}
        assert api.post("/api/make_toingg", call).status_code == 200


class TestAtTheFence:
    def test_a_call_whose_number_is_listed_while_its_worker_waits_ends_suppressed(
        self,
        customer: tuple[KeyedClient, str],  # noqa: F811
        carrier_at_api: Carrier,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, _ = customer
        call_id, to = accept_call(api)
        assert call_tick() == 1  # claimed, its reservation held
        worker_meets(
            monkeypatch, "dial_bucket", listing(api.account_id, to), lambda: dial_claimed(call_id)
        )
        assert carrier_at_api.calls(to=to) == [], "a listed number was rung"
        call = api.get(f"/api/calls/{call_id}").json()
        assert call["status"] == "suppressed"
        assert call["error"]["code"] == "do-not-contact"
        assert call["error"]["message"].startswith(
            f"{to} is on this account's do-not-contact list (GET /api/dnc/{to}): listed "
        )
        assert call["error"]["message"].endswith(" by api, 'asked'")
        assert call["dialedAt"] is None
        assert api.get("/api/credits").json()["balance"] == 100, "the reservation was kept"
        [event] = api.get("/api/events", type="call.suppressed", subject=call_id).json()["items"]
        assert event["data"]["status"] == "suppressed"
        explained = api.get(f"/api/compliance/calls/{call_id}").json()
        assert explained["placed"] is False
        assert explained["verdict"] == f"never placed: {call['error']['message']}"
        assert [s["event"] for s in explained["steps"]] == [
            "call.queued",
            "call.dialing",
            "call.suppressed",
        ]
        assert "do-not-contact list" in explained["steps"][-1]["why"]
        [change] = explained["doNotContact"]
        assert (change["list"], change["action"], change["reason"]) == ("account", "added", "asked")
        assert change["at"] < explained["steps"][-1]["at"]
        assert explained["listedNow"] is True

    def test_a_call_listed_before_its_worker_takes_it_takes_no_slot_in_the_dial_rate(
        self,
        customer: tuple[KeyedClient, str],  # noqa: F811
        carrier_at_api: Carrier,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, _ = customer
        call_id, to = accept_call(api)
        assert call_tick() == 1
        add_now(api.account_id, to)

        def no_slot() -> None:
            raise AssertionError("a suppressed call asked for a slot in the dial rate")

        monkeypatch.setattr(carrier_limits, "dial_bucket", no_slot)
        dial_claimed(call_id)
        assert carrier_at_api.calls(to=to) == []
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "suppressed"
        assert api.get("/api/credits").json()["balance"] == 100

    def test_a_globally_listed_number_is_suppressed_too(
        self,
        customer: tuple[KeyedClient, str],  # noqa: F811
        carrier_at_api: Carrier,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, _ = customer
        call_id, to = accept_call(api)
        assert call_tick() == 1
        worker_meets(monkeypatch, "dial_bucket", listing(None, to), lambda: dial_claimed(call_id))
        assert carrier_at_api.calls(to=to) == []
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "suppressed"

    def test_an_sms_whose_number_is_listed_while_its_worker_waits_ends_suppressed_refunded(
        self,
        customer: tuple[KeyedClient, str],  # noqa: F811
        carrier_at_api: Carrier,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, _ = customer
        sms_id, to = accept_sms(api)
        paid = api.get("/api/credits").json()["balance"]
        assert paid < 100
        assert sms_tick() == 1
        worker_meets(
            monkeypatch, "sms_bucket", listing(api.account_id, to), lambda: send_claimed(sms_id)
        )
        assert texts_to(carrier_at_api, to) == 0, "a listed number was texted"
        sms = api.get(f"/api/sms/{sms_id}").json()
        assert (sms["status"], sms["errorCode"]) == ("suppressed", "do-not-contact")
        assert sms["errorMessage"].endswith(" by api, 'asked'")
        assert api.get("/api/credits").json()["balance"] == 100
        assert api.get("/api/events", type="sms.suppressed", subject=sms_id).json()["items"]

    def test_an_add_committed_while_the_fence_is_under_way_wins(
        self,
        customer: tuple[KeyedClient, str],  # noqa: F811
        carrier_at_api: Carrier,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The fence's transaction has made its claim's UPDATE, and the add commits before its
        # look at the list: the look sees it.
        api, _ = customer
        call_id, to = accept_call(api)
        assert call_tick() == 1
        held = get_sessionmaker()()
        try:
            listing(api.account_id, to)(held)
            claim_fence = calls_repository.fence

            def fence_then_commit(*args: Any) -> str | None:
                fenced = claim_fence(*args)
                held.commit()
                return fenced

            monkeypatch.setattr(calls_repository, "fence", fence_then_commit)
            dial_claimed(call_id)
            assert not held.in_transaction(), "the fence never ran"
        finally:
            held.close()
        assert carrier_at_api.calls(to=to) == []
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "suppressed"

    def test_an_add_still_uncommitted_when_the_fence_looks_loses_and_binds_the_next_call(
        self,
        customer: tuple[KeyedClient, str],  # noqa: F811
        carrier_at_api: Carrier,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The add is written and held open through the fence; it commits as the create request
        # goes out. The fence did not wait for it: the call rings.
        api, _ = customer
        call_id, to = accept_call(api)
        assert call_tick() == 1
        held = get_sessionmaker()()
        try:
            listing(api.account_id, to)(held)
            create = twilio.create_call

            def commit_then_create(**kwargs: Any) -> twilio.RemoteCall:
                held.commit()
                return create(**kwargs)

            monkeypatch.setattr(twilio, "create_call", commit_then_create)
            dial_claimed(call_id)
            assert not held.in_transaction(), "the call never reached its create request"
        finally:
            held.close()
        assert len(carrier_at_api.calls(to=to)) == 1
        assert api.get(f"/api/calls/{call_id}").json()["status"] != "suppressed"
        explained = api.get(f"/api/compliance/calls/{call_id}").json()
        assert explained["placed"] is True
        assert explained["verdict"].startswith("placed at ")
        assert "call.initiated" in [s["event"] for s in explained["steps"]]
        # The list's add is there, committed once the call was on its way.
        [change] = explained["doNotContact"]
        assert change["action"] == "added"
        again = {"campaign": "welcome", "name": "Ada", "phoneNumber": to}
        assert api.post("/api/make_toingg", again).status_code == 422


class TestTheExplanationOfAWait:
    def test_a_call_waiting_for_its_start_names_the_rule_and_the_time(
        self, api: KeyedClient
    ) -> None:
        start = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        placed = api.post(
            "/api/make_toingg",
            {
                "campaign": "welcome",
                "name": "Ada",
                "phoneNumber": factories.phone_number(),
                "startAt": start.isoformat(),
            },
        )
        assert placed.status_code == 200, placed.text
        explained = api.get(f"/api/compliance/calls/{placed.json()['callId']}").json()
        assert explained["placed"] is False
        assert explained["verdict"].startswith("not placed yet: waits until ")
        waits = [s for s in explained["steps"] if s["event"] == "call.scheduled"]
        assert waits, explained["steps"]
        assert waits[0]["rule"] == "startAt"
        assert waits[0]["why"].startswith(f"waited until {start.isoformat()[:16]}"), waits[0]
