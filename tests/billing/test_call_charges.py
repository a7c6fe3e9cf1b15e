"""What calls and SMS cost: a reservation at hand-over, settled once on the final status."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from shared.billing import ledger, prices
from shared.calls import service as calls_service
from shared.db import session_scope
from shared.models import Account, Call
from tests import factories
from tests.e2e.test_twilio_webhooks import lifecycle, signed_post
from tests.stack import Api, Carrier, StackProcesses, wait_until


def claimed_call(api: Api, account_id: str) -> str:
    """A call accepted by the API and claimed as a worker claims it (reserving credits)."""
    response = api.post(
        "/api/make_toingg/",
        json={"campaign": "short", "name": "A", "phoneNumber": factories.phone_number()},
    )
    call_id = response.json()["callId"]
    with session_scope() as session:
        assert calls_service.take(session, call_id, None) is not None
    return call_id


def settle(account_id: str) -> int:
    """What the workers' settler does every second: give back what ended calls did not use."""
    with session_scope() as session:
        return calls_service.settle_ended(session, account_id)


def balance(account_id: str) -> int:
    with session_scope() as session:
        return ledger.balance_of(session, account_id)


@pytest.fixture
def customer(api_server: str) -> tuple[str, Api]:
    account_id, key = factories.account(credits=10)
    factories.campaign(account_id, name="short")  # at most 5 minutes: 5 credits reserved
    return account_id, Api(api_server, key)


class TestPrices:
    def test_started_minutes_of_answered_calls_only(self) -> None:
        assert prices.call_cost("completed", 61) == 2
        assert prices.call_cost("completed", 60) == 1
        assert prices.call_cost("completed", 0) == 0
        assert prices.call_cost("busy", None) == 0

    def test_sms_segments(self) -> None:
        assert prices.sms_segments("a" * 160) == 1
        assert prices.sms_segments("a" * 161) == 2
        assert prices.sms_segments("é" * 70) == 1  # é is GSM-7
        assert prices.sms_segments("ж" * 71) == 2  # Cyrillic needs UCS-2


class TestSettlement:
    def test_a_61_second_call_costs_2_credits(self, customer: tuple[str, Api]) -> None:
        account_id, api = customer
        call_id = claimed_call(api, account_id)
        assert balance(account_id) == 5  # the longest call is held
        for params in lifecycle("CA" + call_id.replace("-", ""), datetime.now(UTC)) * 2:
            signed_post(f"/api/twilio/call-status?callId={call_id}", params)
        assert balance(account_id) == 5  # still held until the settler runs
        assert settle(account_id) == 1
        assert balance(account_id) == 8
        with session_scope() as session:
            call = session.get(Call, call_id)
            assert call is not None and call.credits_charged == 2
            assert ledger.ledger_sum(session, account_id) == 8

    def test_each_call_is_settled_once_however_often_the_settler_runs(
        self, customer: tuple[str, Api]
    ) -> None:
        account_id, api = customer
        first, second = claimed_call(api, account_id), claimed_call(api, account_id)
        assert balance(account_id) == 0
        for call_id in (first, second):
            for params in lifecycle("CA" + call_id.replace("-", ""), datetime.now(UTC)):
                signed_post(f"/api/twilio/call-status?callId={call_id}", params)
        assert settle(account_id) == 2
        assert settle(account_id) == 0
        # A final callback replayed after the settlement changes nothing either.
        for params in lifecycle("CA" + first.replace("-", ""), datetime.now(UTC)):
            signed_post(f"/api/twilio/call-status?callId={first}", params)
        assert settle(account_id) == 0
        assert balance(account_id) == 6  # two 61-second calls, 2 credits each
        with session_scope() as session:
            assert ledger.ledger_sum(session, account_id) == 6
            for call_id in (first, second):
                given_back = ledger.total_for_subject(session, "call", call_id, "call_settlement")
                assert given_back == 3

    def test_two_settlers_at_once_settle_each_call_once(self, customer: tuple[str, Api]) -> None:
        account_id, api = customer
        first, second = claimed_call(api, account_id), claimed_call(api, account_id)
        for call_id in (first, second):
            for params in lifecycle("CA" + call_id.replace("-", ""), datetime.now(UTC)):
                signed_post(f"/api/twilio/call-status?callId={call_id}", params)
        with session_scope() as session:
            # One settler has taken both calls and not committed yet; another runs meanwhile:
            # it finds nothing left to settle, without waiting.
            assert calls_service.settle_ended(session, account_id) == 2
            with ThreadPoolExecutor(max_workers=1) as pool:
                assert pool.submit(settle, account_id).result(timeout=10) == 0
        assert settle(account_id) == 0
        assert balance(account_id) == 6  # two 61-second calls, 2 credits each
        with session_scope() as session:
            assert ledger.ledger_sum(session, account_id) == 6

    def test_a_settler_tick_while_another_runs_leaves_the_calls_to_it(
        self, customer: tuple[str, Api]
    ) -> None:
        from shared import dispatch
        from workers.tasks import calls as call_tasks

        account_id, api = customer
        call_id = claimed_call(api, account_id)
        for params in lifecycle("CA" + call_id.replace("-", ""), datetime.now(UTC)):
            signed_post(f"/api/twilio/call-status?callId={call_id}", params)
        with dispatch.one_at_a_time("settle") as alone:
            assert alone
            assert call_tasks.settle() == 0
            assert balance(account_id) == 5
        assert call_tasks.settle() >= 1  # other accounts' ended calls may be settled too
        assert balance(account_id) == 8

    def test_a_busy_call_costs_nothing(self, customer: tuple[str, Api]) -> None:
        account_id, api = customer
        call_id = claimed_call(api, account_id)
        busy = {
            "CallSid": "CA" + call_id.replace("-", ""),
            "CallStatus": "busy",
            "SequenceNumber": "2",
        }
        signed_post(f"/api/twilio/call-status?callId={call_id}", busy)
        settle(account_id)
        assert balance(account_id) == 10

    def test_a_call_the_balance_cannot_cover_waits_for_credits(
        self, customer: tuple[str, Api]
    ) -> None:
        account_id, api = customer
        claimed_call(api, account_id)  # holds 5 of 10
        second = claimed_call(api, account_id)  # holds the other 5
        third = api.post(
            "/api/make_toingg/",
            json={"campaign": "short", "name": "A", "phoneNumber": factories.phone_number()},
        )
        assert third.status_code == 402
        assert third.json()["detail"] == {
            "message": "insufficient credits",
            "balance": 0,
            "price": 5,
        }
        assert second


class TestApiRefusesWhatCannotBePaid:
    def test_sms_without_credits_is_402_and_not_sent(self, api_server: str) -> None:
        _, key = factories.account(credits=0)
        api = Api(api_server, key)
        response = api.post(
            "/api/send_sms", json={"name": "A", "phoneNumber": "+14155552671", "message": "hi"}
        )
        assert response.status_code == 402
        assert response.json()["detail"]["price"] == 1

    def test_sms_is_charged_per_segment_when_accepted(self, api_server: str) -> None:
        account_id, key = factories.account(credits=5)
        api = Api(api_server, key)
        response = api.post(
            "/api/send_sms", json={"name": "A", "phoneNumber": "+14155552671", "message": "x" * 200}
        )
        assert response.status_code == 200
        assert balance(account_id) == 3


class TestConcurrentCallsEndToEnd:
    def test_30_credits_and_40_concurrent_calls_never_go_below_zero(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        account_id, key = factories.account(credits=30)
        factories.campaign(account_id, name="short")
        with session_scope() as session:
            from shared.campaigns import repository

            campaign = repository.get_by_name(session, account_id, "short")
            assert campaign is not None
            campaign.max_call_minutes = 1
        api = Api(api_server, key)
        numbers = [factories.phone_number() for _ in range(40)]

        def place(number: str) -> int:
            body = {"campaign": "short", "name": "A", "phoneNumber": number}
            return api.post("/api/make_toingg/", json=body).status_code

        with ThreadPoolExecutor(max_workers=40) as pool:
            codes = list(pool.map(place, numbers))
        assert set(codes) <= {200, 402}

        def settled() -> bool:
            page = api.get("/api/calls", limit=100).json()["items"]
            return all(c["status"] in ("completed", "insufficient-credits") for c in page)

        wait_until(settled, 60, interval=0.5, message="every call completed or waiting")
        statuses = [c["status"] for c in api.get("/api/calls", limit=100).json()["items"]]
        with session_scope() as session:
            account = session.get(Account, account_id)
            assert account is not None
            assert account.credits >= 0
            assert ledger.ledger_sum(session, account_id) == account.credits
        assert statuses.count("completed") == 30
        assert statuses.count("insufficient-credits") == codes.count(200) - 30
        at_carrier = [c for c in carrier.calls() if c["to"] in set(numbers)]
        assert len(at_carrier) == 30
