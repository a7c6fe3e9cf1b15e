"""No number is rung twice for one call: reconcile finds a call Twilio holds queued (no
start_time yet) or a message it has not sent (no date_sent yet), a worker that stalled past the
ambiguity window does not dial a claim handed to another (nor send a message's), and a dial task
dials the number the database holds for its claim, whatever its message says."""

import os
import signal
import threading
import time
from dataclasses import asdict

from shared.calls import jobs
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.models import SmsMessage, utcnow
from shared.queue import get_celery, send_now
from shared.redis_client import get_redis
from shared.sms import jobs as sms_jobs
from shared.sms import service as sms_service
from shared.telephony import client as twilio
from tests import factories
from tests.e2e.test_claims import claimed_call, customer, status_of
from tests.stack import Api, Carrier, StackProcesses, wait_until

# A worker may wait up to four seconds for its dial slot (the test of a stalled worker holds it
# that long); reconcile looks at a claim ten seconds after it was taken.
STACK_ENV = {"RATE_MAX_WAIT_SECONDS": "4", "DIAL_AMBIGUOUS_SECONDS": "10"}


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


def hold_the_slot(seconds: float, until: threading.Event, rate: str = "dial") -> None:
    """Keep the next free slot in the dial (or sms) rate `seconds` away, until told to stop."""
    redis = get_redis()
    bucket = f"toingg:rate:{rate}:{get_settings().TWILIO_ACCOUNT_SID}"
    while not until.is_set():
        now_seconds, now_micros = redis.time()
        slot = now_seconds * 1_000_000 + now_micros + int(seconds * 1_000_000)
        redis.set(bucket, str(slot), px=int(seconds * 1000) + 10_000)
        until.wait(0.02)


def taken(call_id: str) -> bool:
    with session_scope() as session:
        call = calls_service.repository.get(session, call_id)
        return call is not None and call.dial_started_at is not None


def running(worker: str, task: str, ref: str) -> bool | None:
    """Whether the worker runs the task for the call or message `ref`; None while it does not
    answer."""
    active = get_celery().control.inspect(destination=[worker], timeout=2).active() or {}
    if worker not in active:
        return None
    return any(t["name"] == task and ref in str(t["args"]) for t in active[worker])


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
            plan = sms_service.take(session, sms.id, None)
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


def queued_sms(api: Api, number: str) -> str:
    """A message accepted and not yet handed out (nor owed for the next minute)."""
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
        return sms.id


def sms_sid(api: Api, sms_id: str) -> str | None:
    return api.get(f"/api/sms/{sms_id}").json()["messageSid"]  # type: ignore[no-any-return]


def sms_taken(sms_id: str) -> bool:
    with session_scope() as session:
        sms = session.get(SmsMessage, sms_id)
        return sms is not None and sms.send_started_at is not None


class TestASendTaskSendsOnlyItsOwnClaim:
    def test_a_worker_stalled_until_its_claim_was_reconciled_does_not_send(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        [stalled] = [w for w in stack.workers if w.poll() is None]
        [[stalled_name]] = get_celery().control.ping(timeout=2)
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        sms_id = queued_sms(api, number)
        # The worker takes the message's claim, then waits three seconds and a half for its slot
        # in the messages' rate, and is stopped (SIGSTOP) while it waits.
        holding = threading.Event()
        threading.Thread(target=hold_the_slot, args=(3.5, holding, "sms"), daemon=True).start()
        other = None
        try:
            send_now(sms_jobs.SEND, sms_id)
            wait_until(lambda: sms_taken(sms_id), 30, interval=0.02, message="claim taken")
            os.kill(stalled.pid, signal.SIGSTOP)
            holding.set()
            other = stack._spawn("worker", "--concurrency", "4", log_name="worker-other.log")
            # Reconcile finds no message at Twilio and hands the claim to the other worker.
            wait_until(lambda: sms_sid(api, sms_id) is not None, 60, message="sent")
            sent = sms_sid(api, sms_id)
            os.kill(stalled.pid, signal.SIGCONT)
            # Its slot has long come: it goes on with its task, to the end.
            wait_until(
                lambda: running(stalled_name, sms_jobs.SEND, sms_id) is False,
                60,
                message="its task done",
            )
            assert [m["sid"] for m in carrier.messages() if m["to"] == number] == [sent]
        finally:
            holding.set()
            os.kill(stalled.pid, signal.SIGCONT)
            if other is not None:
                other.terminate()
                other.wait(timeout=30)


class TestADialTaskDialsOnlyItsOwnClaim:
    def test_a_worker_stalled_until_its_claim_was_reconciled_does_not_dial(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        [stalled] = [w for w in stack.workers if w.poll() is None]
        [[stalled_name]] = get_celery().control.ping(timeout=2)
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        plan = claimed_call(api, number)
        # The worker's slot in the dial rate is three seconds and a half away when it takes
        # the claim: it waits for it, and is stopped (SIGSTOP) while it waits.
        holding = threading.Event()
        threading.Thread(target=hold_the_slot, args=(3.5, holding), daemon=True).start()
        other = None
        try:
            send_now(jobs.DIAL, plan.call_id, asdict(plan))
            wait_until(lambda: taken(plan.call_id), 30, interval=0.02, message="claim taken")
            os.kill(stalled.pid, signal.SIGSTOP)
            holding.set()
            other = stack._spawn("worker", "--concurrency", "4", log_name="worker-other.log")
            # Reconcile finds no call at Twilio and hands the claim to the other worker.
            wait_until(lambda: status_of(api, plan.call_id) == "completed", 60, message="completed")
            placed = call_sid(api, plan.call_id)
            os.kill(stalled.pid, signal.SIGCONT)
            # Its slot has long come: it goes on with its task, to the end.
            wait_until(
                lambda: running(stalled_name, jobs.DIAL, plan.call_id) is False,
                60,
                message="its task done",
            )
            assert [c["sid"] for c in carrier.calls(to=number)] == [placed]
        finally:
            holding.set()
            os.kill(stalled.pid, signal.SIGCONT)
            if other is not None:
                other.terminate()
                other.wait(timeout=30)

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
        assert placed["params"]["TimeLimit"] == "300"  # the 5 minutes it was accepted with
