"""No number is rung twice for one call: reconcile finds a call Twilio holds queued (no
start_time yet) or a message it has not sent (no date_sent yet), a worker that stalled past the
ambiguity window does not dial a claim handed to another, and a dial task dials the number the
database holds for its claim, whatever its message says."""

import time
from dataclasses import asdict

from shared.calls import jobs
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.models import SmsMessage, utcnow
from shared.queue import send_now
from shared.sms import service as sms_service
from shared.telephony import client as twilio
from tests import factories
from tests.e2e.test_claims import claimed_call, customer, status_of
from tests.stack import Api, Carrier, StackProcesses, wait_until


def call_sid(api: Api, call_id: str) -> str | None:
    return api.get(f"/api/calls/{call_id}").json()["callSid"]  # type: ignore[no-any-return]


def hold_the_queue(carrier: Carrier, seconds: float, kind: str = "CALLS") -> None:
    """Twilio's queue over the account's rate, `seconds` deep: one creation takes the only
    turn of the next `seconds`, and the next waits queued for as long."""
    carrier.configure(**{f"{kind}_PER_SECOND": 1 / seconds})
    filler, sender = factories.phone_number(), get_settings().TWILIO_FROM_NUMBER
    if kind == "CALLS":
        twilio.get_client().calls.create(to=filler, from_=sender, twiml="<Response/>")
    else:
        twilio.get_client().messages.create(to=filler, from_=sender, body="first in line")


class TestReconcileFindsWhatTwilioHoldsQueued:
    def test_a_queued_call_with_no_start_time_is_adopted_not_dialed_again(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        hold_the_queue(carrier, seconds=60)
        plan = claimed_call(api, number)
        with session_scope() as session:
            taken = calls_service.take(session, plan.call_id, plan.attempt)
        assert taken is not None
        # The worker's create request reaches Twilio, which queues the call; the worker dies
        # before it stores the SID (or the answer is lost).
        remote = twilio.create_call(
            to=taken.to,
            from_=taken.from_,
            url=calls_service.voice_url(taken.call_id),
            status_callback=calls_service.status_callback_url(taken.call_id),
            timeout=30,
            time_limit=taken.time_limit_seconds,
        )
        assert twilio.get_client().calls(remote.sid).fetch().start_time is None
        # Beat's sweeper reconciles the call once it is DIAL_AMBIGUOUS_SECONDS old.
        wait_until(lambda: call_sid(api, plan.call_id) is not None, 40, message="a SID")
        time.sleep(2)
        assert call_sid(api, plan.call_id) == remote.sid
        assert [c["sid"] for c in carrier.calls(to=number)] == [remote.sid]
        assert carrier.calls(to=number)[0]["status"] == "queued"  # adopted while still queued

    def test_a_queued_message_with_no_date_sent_is_adopted_not_sent_again(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        hold_the_queue(carrier, seconds=60, kind="MESSAGES")
        with session_scope() as session:
            sms = SmsMessage(
                account_id=api.account_id,
                to_number=number,
                from_number=get_settings().TWILIO_FROM_NUMBER,
                body="Your code is 1234",
                status="queued",
                handed_at=utcnow(),
            )
            session.add(sms)
            session.flush()
            plan = sms_service.claim(session, sms.id)
        assert plan is not None
        remote = twilio.send_sms(
            to=plan.to,
            from_=plan.from_,
            body=plan.body,
            status_callback=sms_service.status_callback_url(plan.sms_id),
        )

        def sid() -> str | None:
            return api.get(f"/api/sms/{plan.sms_id}").json()["messageSid"]  # type: ignore[no-any-return]

        # The SMS sweeper reconciles it once it is DIAL_AMBIGUOUS_SECONDS old.
        wait_until(lambda: sid() is not None, 40, message="a SID")
        time.sleep(2)
        assert sid() == remote.sid
        assert [m["sid"] for m in carrier.messages() if m["to"] == number] == [remote.sid]


class TestADialTaskDialsOnlyItsOwnClaim:
    def test_a_forged_plan_dials_the_number_and_time_limit_of_the_claim(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number, forged_number = factories.phone_number(), factories.phone_number()
        plan = claimed_call(api, number)
        # Whoever can write to the broker (or use Flower's task API) sends the claim's id and
        # attempt with another number, caller ID and time limit.
        forged = {
            **asdict(plan),
            "to": forged_number,
            "from_": "+15005550007",
            "time_limit_seconds": 4 * 3600,
        }
        send_now(jobs.DIAL, plan.call_id, forged)
        wait_until(lambda: status_of(api, plan.call_id) == "completed", 30, message="completed")
        assert carrier.calls(to=forged_number) == []
        [placed] = carrier.calls(to=number)
        assert placed["from"] == get_settings().TWILIO_FROM_NUMBER
        assert placed["params"]["TimeLimit"] == "300"  # the campaign's 5 minutes, as reserved
