"""A disputed account places no new calls or SMS, and its queued calls and SMS wait, until its
dispute is closed or an operator lifts the block with `toingg accounts unblock`."""

import os
import secrets
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.billing import disputes
from shared.calls import repository as calls_repository
from shared.calls import service as calls_service
from shared.db import get_sessionmaker, session_scope
from shared.models import Account, SmsMessage, utcnow
from shared.sms import repository as sms_repository
from shared.sms import service as sms_service
from tests.api.conftest import KeyedClient
from tests.billing import direct
from tests.billing import stripe_events as se
from tests.concurrency import Racer

CALL = {"campaign": "welcome", "name": "Ada", "phoneNumber": "+14155552671"}


def open_dispute(api: KeyedClient) -> tuple[direct.Payment, str]:
    """The account buys 100 credits and the payment is disputed: 100 taken back, 100 left."""
    payment = direct.paid(api.account_id, credits=100)
    dispute_id = "dp_" + secrets.token_hex(8)
    direct.deliver(
        se.dispute(
            "charge.dispute.created", payment.payment_intent, 1000, "needs_response", dispute_id
        )
    )
    return payment, dispute_id


def refusals(api: KeyedClient) -> list[tuple[int, dict]]:  # type: ignore[type-arg]
    number = {"clientName": "B", "clientNumber": "+12025550123"}
    details = {"campaignName": "welcome", "campaignScript": "Changed {name}", **CALL}
    del details["campaign"]
    sms = {"name": "Ada", "phoneNumber": "+14155552671", "message": "hi"}
    responses = [
        api.post("/api/make_toingg/", json=CALL),
        api.post("/api/make/toingg", json=CALL),
        api.post("/api/make_toingg_details", json=details),
        api.post("/api/make_batch_toingg", json={"campaign": "welcome", "numberList": [number]}),
        api.post("/api/send_sms", json=sms),
    ]
    return [(r.status_code, r.json()) for r in responses]


def toingg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestBlocked:
    def test_new_calls_and_sms_are_refused_403_naming_the_dispute(self, api: KeyedClient) -> None:
        _, dispute_id = open_dispute(api)
        assert api.get("/api/credits").json()["disputed"] is True
        for status, body in refusals(api):
            assert status == 403, body
            assert dispute_id in body["detail"]["message"]
            assert body["detail"]["dispute"] == dispute_id
        # Nothing was accepted, and the script was not changed.
        assert api.get("/api/calls").json()["total"] == 0
        [campaign] = api.get("/api/campaigns").json()["items"]
        assert campaign["script"] == "Hello {name}, this is Toingg."

    def test_the_unblock_command_lifts_the_block(self, api: KeyedClient) -> None:
        _, dispute_id = open_dispute(api)
        done = toingg("accounts", "unblock", api.account_id)
        assert done.returncode == 0, done.stderr
        assert "unblocked" in done.stdout and dispute_id in done.stdout
        assert api.get("/api/credits").json()["disputed"] is False
        assert [status for status, _ in refusals(api)] == [200] * 5

    def test_unblocking_an_unknown_account_says_so(self) -> None:
        done = toingg("accounts", "unblock", "no-such-account")
        assert done.returncode == 1
        assert "no account" in done.stdout

    def test_closing_the_dispute_lifts_the_block(self, api: KeyedClient) -> None:
        payment, dispute_id = open_dispute(api)
        direct.deliver(
            se.dispute("charge.dispute.closed", payment.payment_intent, 1000, "won", dispute_id)
        )
        assert api.get("/api/credits").json()["disputed"] is False
        assert [status for status, _ in refusals(api)] == [200] * 5


class TestQueuedCalls:
    def test_are_not_claimed_while_blocked_and_go_on_once_unblocked(self, api: KeyedClient) -> None:
        accepted = api.post("/api/make_toingg/", json=CALL)
        assert accepted.status_code == 200
        call_id = accepted.json()["callId"]
        open_dispute(api)
        with session_scope() as session:
            assert calls_service.claim(session, api.account_id, [call_id]) == []
            assert (api.account_id, None) not in calls_repository.owed_groups(session, utcnow())
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "queued"

        assert toingg("accounts", "unblock", api.account_id).returncode == 0
        with session_scope() as session:
            assert (api.account_id, None) in calls_repository.owed_groups(session, utcnow())
            [plan] = calls_service.claim(session, api.account_id, [call_id])
        assert plan.call_id == call_id


def sms_owed(sms_id: str) -> bool:
    with session_scope() as session:
        sms = session.get(SmsMessage, sms_id)
        assert sms is not None
        owed = sms_repository.owed_ids(
            session, utcnow() + timedelta(minutes=5), sms.account_id, 10_000
        )
        return sms_id in owed


class TestQueuedSms:
    def test_are_not_sent_while_blocked_and_go_on_once_unblocked(self, api: KeyedClient) -> None:
        sms = {"name": "Ada", "phoneNumber": "+14155552671", "message": "hi"}
        accepted = api.post("/api/send_sms", json=sms)
        assert accepted.status_code == 200, accepted.text
        sms_id = accepted.json()["smsId"]
        open_dispute(api)
        assert not sms_owed(sms_id)
        with session_scope() as session:
            assert sms_service.take(session, sms_id, None) is None

        assert toingg("accounts", "unblock", api.account_id).returncode == 0
        assert sms_owed(sms_id)
        with session_scope() as session:
            plan = sms_service.take(session, sms_id, None)
        assert plan is not None and plan.sms_id == sms_id

    def test_an_sms_accepted_while_the_block_commits_is_not_sent(self, api: KeyedClient) -> None:
        # The request reads the account unblocked; the dispute's block commits while the request
        # waits for the account's row to charge the message; then the request commits too.
        blocking = get_sessionmaker()()
        try:
            blocking.execute(
                update(Account).where(Account.id == api.account_id).values(disputed=True)
            )

            def send(session: Session) -> str:
                account = session.get(Account, api.account_id)
                assert account is not None
                disputes.ensure_not_blocked(session, account)  # as the route checks it
                return sms_service.accept(session, account, "Ada", "+14155552671", "hi").id

            racer = Racer(send)
            racer.wait_until_blocked()
            blocking.commit()
        finally:
            blocking.close()
        sms_id = racer.join()
        with session_scope() as session:
            assert session.get(SmsMessage, sms_id) is not None
            assert sms_service.take(session, sms_id, None) is None
        assert not sms_owed(sms_id)
