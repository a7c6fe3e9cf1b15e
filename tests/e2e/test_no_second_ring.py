"""No number is rung twice for one call: reconcile finds a call Twilio holds queued (no
start_time yet) or a message it has not sent (no date_sent yet), never gives one call's SID to
another of ours to the same number, waits out a create request Twilio carries out late, and
reads a number's long history only as far back as the claim; a worker that stalled past the
ambiguity window does not dial a claim handed to another (nor send a message's), and a dial task
dials the number the database holds for its claim, whatever its message says."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from sqlalchemy import update

from shared.calls import jobs
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.models import Call, SmsMessage, utcnow
from shared.queue import get_celery, send_now
from shared.redis_client import get_redis
from shared.sms import jobs as sms_jobs
from shared.sms import service as sms_service
from shared.telephony import client as twilio
from tests import factories
from tests.concurrency import Racer
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


def age_claim(call_id: str, seconds: float) -> None:
    """The claim was taken `seconds` ago: reconcile may look at it now."""
    with session_scope() as session:
        session.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(dial_started_at=utcnow() - timedelta(seconds=seconds))
        )


def sid_of(call_id: str) -> str | None:
    with session_scope() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call.twilio_sid


def taken_claim(api: Api, number: str) -> calls_service.DialPlan:
    plan = claimed_call(api, number)
    with session_scope() as session:
        taken = calls_service.take(session, plan.call_id, plan.attempt)
    assert taken is not None
    return taken


def create_at_twilio(plan: calls_service.DialPlan, status_callback: str) -> twilio.RemoteCall:
    """The worker's create request as `dial` sends it (its answer lost afterwards)."""
    return twilio.create_call(
        to=plan.to,
        from_=plan.from_,
        url=calls_service.voice_url(plan.call_id),
        status_callback=status_callback,
        timeout=30,
        time_limit=plan.time_limit_seconds,
    )


def sending_sms(
    api: Api, number: str, body: str, taken_ago: float, *, requested: bool = True
) -> sms_service.SendPlan:
    """A message a worker took for sending `taken_ago` seconds ago, with no SID: through its
    fence, its create request sent, unless not `requested`."""
    with session_scope() as session:
        sms = SmsMessage(
            account_id=api.account_id,
            to_number=number,
            from_number=get_settings().TWILIO_FROM_NUMBER,
            body=body,
            status="queued",
            handed_at=utcnow(),
        )
        session.add(sms)
        session.flush()
        plan = sms_service.take(session, sms.id, None)
    assert plan is not None
    if requested:
        # As its fence marks it: whatever fence window the test has set, the request went out.
        with session_scope() as session:
            session.execute(
                update(SmsMessage).where(SmsMessage.id == plan.sms_id).values(requested_at=utcnow())
            )
    age_sms(plan.sms_id, taken_ago)
    return plan


def age_sms(sms_id: str, seconds: float) -> None:
    """The message's claim was taken `seconds` ago: reconcile may look at it now."""
    with session_scope() as session:
        session.execute(
            update(SmsMessage)
            .where(SmsMessage.id == sms_id)
            .values(send_started_at=utcnow() - timedelta(seconds=seconds))
        )


def callback_path(url: str) -> str:
    return url.removeprefix(get_settings().PUBLIC_BASE_URL)


def sms_sid_of(sms_id: str) -> str | None:
    with session_scope() as session:
        sms = session.get(SmsMessage, sms_id)
        assert sms is not None
        return sms.twilio_sid


class TestReconcileOfTwoAmbiguousHandOversToOneNumber:
    """Two of our calls (or messages) to one number at once, both ambiguous: the first's create
    request failed with a 500 before Twilio created anything, the second's created its call and
    its answer was lost. Every campaign dials from the same caller ID by default, so two
    requests, or two campaigns, do this. Its status callbacks, which name their call, are slow
    here (they come when the test sends them)."""

    def test_the_second_is_not_sent_while_the_first_is_unresolved(
        self, api_server: str, carrier: Carrier
    ) -> None:
        # Twilio tells calls apart from ours only by To and From, so with both requests out it
        # would have one call and two of ours waiting for a SID, either of which may be it.
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        first, second = taken_claim(api, number), taken_claim(api, number)
        # The two fences at once: the first's transaction is held open until the second's
        # waits for it.
        with session_scope() as session:
            assert calls_service.fence(session, first) is not None
            racer = Racer(
                lambda s: (calls_service.fence(s, second), calls_service.fenced_off(s, second))
            )
            racer.wait_until_blocked()
        assert racer.join() == (None, calls_service.Again.LATER), (
            "both create requests to the number were sent at once"
        )
        assert taken(second.call_id) is False  # its claim kept, for its task to take again
        # The first's request failed before Twilio created anything; reconcile looks twice,
        # finds nothing, and queues it again.
        age_claim(first.call_id, 2 * get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert calls_service.reconcile(session, first.call_id) == "requeued"
        # The second's task takes its claim again and sends its request; Twilio creates the
        # call and the answer is lost.
        with session_scope() as session:
            again = calls_service.take(session, second.call_id, second.attempt)
        assert again is not None
        with session_scope() as session:
            assert calls_service.fence(session, again) is not None
        remote = create_at_twilio(again, status_callback="http://127.0.0.1:9/slow")
        age_claim(again.call_id, get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert calls_service.reconcile(session, again.call_id) == f"adopted {remote.sid}"
        assert sid_of(first.call_id) is None
        assert status_of(api, first.call_id) in ("queued", "dialing")
        assert [c["sid"] for c in carrier.calls(to=number)] == [remote.sid]

    def test_a_claim_whose_request_never_went_out_adopts_no_call(
        self, api_server: str, carrier: Carrier
    ) -> None:
        # The first's worker died after taking its claim, before its fence: Twilio cannot have
        # its call, and the call Twilio has to the number is the second's.
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        first, second = taken_claim(api, number), taken_claim(api, number)
        with session_scope() as session:
            assert calls_service.fence(session, second) is not None
        remote = create_at_twilio(second, status_callback="http://127.0.0.1:9/slow")
        age_claim(first.call_id, 2 * get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert calls_service.reconcile(session, first.call_id) == "requeued"
        assert sid_of(first.call_id) is None
        age_claim(second.call_id, get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert calls_service.reconcile(session, second.call_id) == f"adopted {remote.sid}"

    def test_the_second_message_is_not_sent_while_the_first_is_unresolved(
        self, api_server: str, carrier: Carrier
    ) -> None:
        # Twilio tells messages apart from ours only by To, From and the body, so with both
        # requests of one text out it would have one message and two of ours waiting for a SID,
        # either of which may be it.
        api = customer(api_server, credits=100)
        number, body = factories.phone_number(), "Your appointment is tomorrow at 10"
        first = sending_sms(api, number, body, taken_ago=0, requested=False)
        second = sending_sms(api, number, body, taken_ago=0, requested=False)
        # The two fences at once: the first's transaction is held open until the second's
        # waits for it.
        with session_scope() as session:
            assert sms_service.fence(session, first)
            racer = Racer(
                lambda s: (sms_service.fence(s, second), sms_service.fenced_off(s, second))
            )
            racer.wait_until_blocked()
        assert racer.join() == (False, sms_service.Again.LATER), (
            "both create requests of the text to the number were sent at once"
        )
        assert not sms_taken(second.sms_id)  # back in the queue, for its task to claim again
        # The first's request failed before Twilio created anything; reconcile looks twice,
        # finds nothing, and queues it again.
        age_sms(first.sms_id, 2 * get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert sms_service.reconcile(session, first.sms_id) == "requeued"
        # The second's task claims it again and sends its request; Twilio creates the message
        # and the answer is lost.
        with session_scope() as session:
            again = sms_service.take(session, second.sms_id, None)
        assert again is not None
        with session_scope() as session:
            assert sms_service.fence(session, again)
        remote = twilio.send_sms(
            to=again.to, from_=again.from_, body=body, status_callback="http://127.0.0.1:9/slow"
        )
        age_sms(again.sms_id, get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert sms_service.reconcile(session, again.sms_id) == f"adopted {remote.sid}"
        assert sms_sid_of(first.sms_id) is None
        assert [m["sid"] for m in carrier.messages() if m["to"] == number] == [remote.sid]

    def test_a_message_whose_request_never_went_out_adopts_none(
        self, api_server: str, carrier: Carrier
    ) -> None:
        # The first's worker died after taking its claim, before its fence: Twilio cannot have
        # its message, and the one Twilio has with that text to the number is the second's.
        api = customer(api_server, credits=100)
        number, body = factories.phone_number(), "Your appointment is tomorrow at 10"
        first = sending_sms(api, number, body, taken_ago=0, requested=False)
        second = sending_sms(api, number, body, taken_ago=0)
        remote = twilio.send_sms(
            to=second.to, from_=second.from_, body=body, status_callback="http://127.0.0.1:9/slow"
        )
        age_sms(first.sms_id, 2 * get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert sms_service.reconcile(session, first.sms_id) == "requeued"
        assert sms_sid_of(first.sms_id) is None
        age_sms(second.sms_id, get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert sms_service.reconcile(session, second.sms_id) == f"adopted {remote.sid}"


class TestReconcileOfAnSmsToANumberTextedOften:
    def test_a_message_twilio_never_created_is_sent_again_not_left_sending(
        self, api_server: str, carrier: Carrier, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The lookup reads at most 10 pages of 1000; one page here, so that 1,100 messages
        # stand for 11,000 (the platform's one sender, every account's texts, a number texted
        # daily for a few years).
        monkeypatch.setattr(twilio, "_MOST_PAGES", 1)
        monkeypatch.setattr(get_settings(), "DIAL_AMBIGUOUS_SECONDS", 3)
        api = customer(api_server, credits=100)
        number, sender = factories.phone_number(), get_settings().TWILIO_FROM_NUMBER
        client = twilio.get_client()
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda n: client.messages.create(to=number, from_=sender, body=f"old {n}"),
                    range(1100),
                )
            )
        time.sleep(6)  # the old messages are well before the claim
        # Its create request failed with a 500 before Twilio created anything: ambiguous, and
        # handed back by the look DIAL_AMBIGUOUS_SECONDS after the first.
        plan = sending_sms(api, number, "Your code is 1234", taken_ago=0)
        time.sleep(2 * get_settings().DIAL_AMBIGUOUS_SECONDS + 0.5)
        with session_scope() as session:
            outcome = sms_service.reconcile(session, plan.sms_id)
        assert outcome == "requeued", (
            f"reconcile: {outcome!r}; the list is newest first and every record past the first "
            "page was created before the claim, yet the message stays `sending` for good and "
            "each sweep reads the number's whole history again"
        )


class TestAnSmsTwilioTakesAfterTheFirstLook:
    def test_is_adopted_by_the_second_look_not_sent_again(
        self, api_server: str, carrier: Carrier
    ) -> None:
        api = customer(api_server, credits=100)
        number, body = factories.phone_number(), "Your code is 1234"
        grace = get_settings().DIAL_AMBIGUOUS_SECONDS
        plan = sending_sms(api, number, body, taken_ago=grace + 1)
        with session_scope() as session:
            first_look = sms_service.reconcile(session, plan.sms_id)
        assert first_look == "not found yet"
        # The create request, cut at its deadline, reaches Twilio's back end only now.
        remote = twilio.send_sms(
            to=plan.to, from_=plan.from_, body=body, status_callback="http://127.0.0.1:9/slow"
        )
        with session_scope() as session:
            session.execute(
                update(SmsMessage)
                .where(SmsMessage.id == plan.sms_id)
                .values(send_started_at=utcnow() - timedelta(seconds=2 * grace + 1))
            )
            second_look = sms_service.reconcile(session, plan.sms_id)
        assert second_look == f"adopted {remote.sid}", (
            f"first look {first_look!r}, second {second_look!r}: the message is queued to be "
            "sent again while Twilio sends the first"
        )
        assert [m["sid"] for m in carrier.messages() if m["to"] == number] == [remote.sid]


class _SlowCarrierFrontEnd(BaseHTTPRequestHandler):
    """Twilio's edge on a slow day: it has the whole request, and the call is created when the
    back end gets to it, whether or not the client is still waiting for the answer."""

    delay_seconds = 0.0
    upstream = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_seconds)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        answer = requests.post(self.upstream + self.path, data=body, headers=headers, timeout=10)
        try:
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)
        except OSError:
            pass  # the client gave up long ago

    def log_message(self, format: str, *args: object) -> None:
        pass


class TestACreateRequestCutAtItsDeadline:
    def test_a_call_twilio_creates_after_the_cut_is_not_dialed_a_second_time(
        self, api_server: str, carrier: Carrier
    ) -> None:
        settings = get_settings()
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        plan = taken_claim(api, number)
        # Twilio gets to the request a second after reconcile may look (DIAL_AMBIGUOUS_SECONDS
        # after the claim was taken).
        _SlowCarrierFrontEnd.delay_seconds = settings.DIAL_AMBIGUOUS_SECONDS + 1
        _SlowCarrierFrontEnd.upstream = settings.TWILIO_API_BASE.rstrip("/")
        front = ThreadingHTTPServer(("127.0.0.1", 0), _SlowCarrierFrontEnd)
        threading.Thread(target=front.serve_forever, daemon=True).start()
        outcome: dict[str, object] = {}

        def worker() -> None:  # the dial task's fence and create request
            with session_scope() as session:
                ends_by = calls_service.fence(session, plan)
            assert ends_by is not None
            client = twilio.get_client()
            client.api.base_url = f"http://127.0.0.1:{front.server_address[1]}"
            try:
                twilio.create_call(
                    to=plan.to,
                    from_=plan.from_,
                    url=calls_service.voice_url(plan.call_id),
                    status_callback=calls_service.status_callback_url(plan.call_id),
                    timeout=30,
                    time_limit=plan.time_limit_seconds,
                    ends_by=ends_by,
                )
            except twilio.TwilioUnavailable as exc:
                outcome["create"] = f"ambiguous (maybe_sent={exc.maybe_sent})"

        started = time.monotonic()
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(settings.TWILIO_TIMEOUT_SECONDS + 5)
        assert outcome.get("create") == "ambiguous (maybe_sent=True)", outcome
        # Reconcile, as the sweeper runs it once the claim is DIAL_AMBIGUOUS_SECONDS old.
        time.sleep(max(0.0, settings.DIAL_AMBIGUOUS_SECONDS + 0.2 - (time.monotonic() - started)))
        with session_scope() as session:
            outcome["reconcile"] = calls_service.reconcile(session, plan.call_id)
        time.sleep(3)
        created = carrier.calls(to=number)
        front.shutdown()
        assert not (outcome["reconcile"] == "requeued" and created), (
            f"{outcome}; then Twilio created the first request's call ({created[0]['sid']}): "
            "the call is queued to be dialed again, and the number rings twice"
        )
        assert [c["sid"] for c in created] == [sid_of(plan.call_id)]


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
        # The worker's create request, through its fence, reaches Twilio, which queues the
        # call; the worker dies before it stores the SID (or the answer is lost).
        with session_scope() as session:
            assert calls_service.fence(session, taken) is not None
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
        with session_scope() as session:
            assert sms_service.fence(session, plan)
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


class TestTwoAmbiguousCallsToOneNumberWithNoCallbacks:
    """Two calls of ours to one number from one caller ID (every campaign shares the default
    caller ID) whose create requests Twilio carries out and then answers 500, and whose status
    callbacks never come (Twilio holds the calls queued). Reconcile, finding two calls at Twilio
    and two of ours waiting for a SID, could not tell which is which, and left both `dialing`
    for good: two calls Twilio placed, neither tracked, billable or hang-up-able."""

    def test_each_is_placed_once_and_keeps_its_own_sid(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        carrier.configure(PLAY_CALLS=False, faults={"create_500_after": 1.0})
        body = {"campaign": "welcome", "name": "Ada", "phoneNumber": number}
        ids = []
        for _ in range(2):
            answer = api.post("/api/make_toingg", json=body)
            assert answer.status_code in (200, 201), answer.text
            ids.append(answer.json()["callId"])

        def settled() -> bool:
            return all(call_sid(api, call_id) is not None for call_id in ids)

        wait_until(settled, 60, message="a SID for each call")
        sids = [call_sid(api, call_id) for call_id in ids]
        at_twilio = [c["sid"] for c in carrier.calls(to=number)]
        assert sorted(at_twilio) == sorted(sids), (sids, at_twilio)
        assert len(set(sids)) == 2
        for call_id, sid in zip(ids, sids, strict=True):
            # Each Twilio call is the one created for this call: its voice URL names it.
            [created] = [c for c in carrier.calls(to=number) if c["sid"] == sid]
            assert created["params"]["Url"] == calls_service.voice_url(call_id)
            assert status_of(api, call_id) == "initiated"


class TestTwoAmbiguousTextsToOneNumberWithNoCallbacks:
    """Two identical texts of ours to one number from one sender whose create requests Twilio
    carries out and then answers 500, and whose status callbacks do not come (Twilio holds the
    messages queued). Reconcile, finding two messages at Twilio with that text and two of ours
    waiting for a SID, could not tell which is which, and left both `sending` for good."""

    def test_each_is_sent_once_and_keeps_its_own_sid(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server, credits=100)
        number = factories.phone_number()
        hold_the_queue(carrier, seconds=300, kind="MESSAGES")
        carrier.configure(faults={"create_500_after": 1.0, "messages": True})
        body = {"phoneNumber": number, "message": "Your code is 1234"}
        ids = []
        for _ in range(2):
            answer = api.post("/api/send_sms", json=body)
            assert answer.status_code in (200, 201), answer.text
            ids.append(answer.json()["smsId"])

        def settled() -> bool:
            return all(sms_sid(api, sms_id) is not None for sms_id in ids)

        wait_until(settled, 90, message="a SID for each message")
        sids = [sms_sid(api, sms_id) for sms_id in ids]
        at_twilio = [m["sid"] for m in carrier.messages() if m["to"] == number]
        assert sorted(at_twilio) == sorted(sids), (sids, at_twilio)
        assert len(set(sids)) == 2
        for sms_id, sid in zip(ids, sids, strict=True):
            # Each Twilio message is the one created for this message: its callback names it.
            [created] = [m for m in carrier.messages() if m["sid"] == sid]
            assert created["params"]["StatusCallback"] == sms_service.status_callback_url(sms_id)
