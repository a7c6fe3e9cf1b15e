"""The dispatcher claims calls for workers; a worker dials a claim once, however often its task
arrives, and a claim whose task was lost is dialed all the same. A balance that cannot pay for
a batch shows at once, not at the pace of dialing."""

import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict

from shared.calls import jobs
from shared.calls import service as calls_service
from shared.campaigns import repository as campaigns
from shared.db import session_scope
from shared.models import Call, utcnow
from shared.queue import send_now
from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until

# Slow dialing, so a batch parked one call at a time would take a minute; a lost task is sent
# again after three seconds.
STACK_ENV = {"DIAL_RATE_PER_SECOND": "5", "DIAL_BURST": "1", "DISPATCH_STALE_SECONDS": "3"}


def customer(api_server: str, credits: int) -> Api:
    account_id, key = factories.account(credits=credits)
    factories.campaign(account_id, name="welcome")  # at most 5 minutes: 5 credits held
    return Api(api_server, key, account_id)


def claimed_call(api: Api, number: str) -> calls_service.DialPlan:
    """A call accepted and claimed, as the dispatcher claims it, with no task sent yet."""
    with session_scope() as session:
        campaign = campaigns.get_by_name(session, api.account_id, "welcome")
        assert campaign is not None
        call = Call(
            account_id=api.account_id,
            to_number=number,
            status="queued",
            handed_at=utcnow(),
            **calls_service.accepted_terms(session, campaign),
        )
        session.add(call)
        session.flush()
        [plan] = calls_service.claim(session, api.account_id, [call.id])
        return plan


def status_of(api: Api, call_id: str) -> str:
    return api.get(f"/api/calls/{call_id}").json()["status"]


class TestAClaimIsDialedOnce:
    def test_a_dial_task_delivered_twice_rings_the_number_once(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        plan = claimed_call(api, number)
        # As a broker may deliver one message twice, at once.
        send_now(jobs.DIAL, plan.call_id, asdict(plan))
        send_now(jobs.DIAL, plan.call_id, asdict(plan))
        wait_until(lambda: status_of(api, plan.call_id) == "completed", 30, message="completed")
        time.sleep(1)
        assert len(carrier.calls(to=number)) == 1
        # Five held once, one started minute charged, the rest given back within a second or so.
        balance = lambda: api.get("/api/credits").json()["balance"]  # noqa: E731
        wait_until(lambda: balance() == 99, 5, message="balance 99")

    def test_a_claim_whose_task_was_lost_is_dialed_once(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        plan = claimed_call(api, number)  # and its task never sent
        wait_until(lambda: status_of(api, plan.call_id) == "completed", 30, message="completed")
        assert len(carrier.calls(to=number)) == 1

    def test_a_hang_up_before_the_call_is_dialed_means_it_never_rings(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        plan = claimed_call(api, number)
        hung_up = api.post("/api/hang_up_call", callSid=plan.call_id)
        assert hung_up.json()["hangupRequested"] is True
        send_now(jobs.DIAL, plan.call_id, asdict(plan))
        wait_until(lambda: status_of(api, plan.call_id) == "canceled", 30, message="canceled")
        time.sleep(1)
        assert carrier.calls(to=number) == []
        assert api.get("/api/credits").json()["balance"] == 100


class TestABalanceThatCannotPay:
    def test_shows_at_once_and_goes_on_when_credits_arrive(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=10)  # two calls' reservations
        numbers = [factories.phone_number() for _ in range(200)]
        rows = [{"clientName": f"c{i}", "clientNumber": n} for i, n in enumerate(numbers)]
        response = api.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
        )
        assert response.status_code == 200, response.text
        batch_id = response.json()["batchId"]
        wanted = set(numbers)

        def batch() -> dict:  # type: ignore[type-arg]
            return api.get(f"/api/batches/{batch_id}").json()  # type: ignore[no-any-return]

        def dialled() -> list[str]:
            return [c["to"] for c in carrier.calls() if c["to"] in wanted]

        def at_rest(paid: int) -> bool:
            """Every call completed or waiting, every completed call settled (one started
            minute of what was paid), and too little left for one more call's 5 credits:
            nothing moves any more until credits arrive."""
            counts = batch()["counts"]
            completed = counts.get("completed", 0)
            balance = api.get("/api/credits").json()["balance"]
            return (
                set(counts) <= {"completed", "insufficient-credits"}
                and counts.get("insufficient-credits", 0) + completed == 200
                and balance == paid - completed < 5
            )

        # Parked one call at a time, at 5 a second, the rest would take 40 seconds.
        waiting = lambda: batch()["counts"].get("insufficient-credits", 0)  # noqa: E731
        wait_until(lambda: waiting() >= 190, 5, message="the rest waiting for credits")
        wait_until(lambda: at_rest(10), 60, interval=0.5, message="the paid calls done")
        assert batch()["status"] == "insufficient credits"
        before_grant = batch()["counts"]["completed"]

        grant = ["credits", "grant", api.account_id, "25", "--reason", "goodwill"]
        granted = subprocess.run(
            [sys.executable, "-m", "shared.cli", *grant],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "granted 25" in granted.stdout
        wait_until(
            lambda: len(dialled()) >= before_grant + 5, 10, message="five calls after the grant"
        )
        wait_until(lambda: at_rest(35), 60, interval=0.5, message="back to waiting for credits")
        final = batch()
        assert final["status"] == "insufficient credits"
        assert Counter(dialled()).most_common(1)[0][1] == 1
        # Each completed call cost one started minute of the 35 credits, and was dialed once.
        completed = final["counts"]["completed"]
        assert completed == len(dialled())
        assert api.get("/api/credits").json()["balance"] == 35 - completed
