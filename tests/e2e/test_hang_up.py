"""A hang-up is never lost: not when the worker stores the call's SID at the same moment, not
when its message is lost on the way to a worker. Two hang-ups at once are harmless, and
counted; one carried out is never sent again."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from shared import queue
from shared.calls import jobs
from shared.calls import repository as calls_repository
from shared.calls import service as calls_service
from shared.campaigns import repository as campaigns
from shared.db import session_scope
from shared.models import Call, utcnow
from shared.telephony import client as twilio
from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until

# A hang-up not carried out is sent again two seconds after it was last sent (in production,
# ten).
STACK_ENV = {"HANGUP_RESEND_SECONDS": "2"}

ENDED = ("completed", "canceled")


def customer(api_server: str) -> Api:
    account_id, key = factories.account(credits=100)
    factories.campaign(account_id, name="welcome")
    return Api(api_server, key, account_id)


def taken_call(api: Api, number: str) -> calls_service.DialPlan:
    """A call a worker has claimed and taken, as it stands right before Calls.create."""
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
        [claimed] = calls_service.claim(session, api.account_id, [call.id])
    with session_scope() as session:
        plan = calls_service.take(session, call.id, claimed.attempt)
    assert plan is not None
    return plan


def create_at_carrier(
    plan: calls_service.DialPlan, status_callback: str | None = None
) -> twilio.RemoteCall:
    return twilio.create_call(
        to=plan.to,
        from_=plan.from_,
        url=calls_service.voice_url(plan.call_id),
        status_callback=status_callback or calls_service.status_callback_url(plan.call_id),
        timeout=30,
        time_limit=plan.time_limit_seconds,
    )


def sent_tasks(monkeypatch: pytest.MonkeyPatch, drop: str | None = None) -> list[tuple[Any, ...]]:
    """Every task this process sends from now on, as (name, *args); those named `drop` never
    reach the broker, as if Redis had lost them."""
    sent: list[tuple[Any, ...]] = []
    send_now = queue.send_now

    def record(name: str, *args: Any) -> None:
        sent.append((name, *args))
        if name != drop:
            send_now(name, *args)

    monkeypatch.setattr(queue, "send_now", record)
    return sent


def status_of(api: Api, call_id: str) -> str:
    return api.get(f"/api/calls/{call_id}").json()["status"]


def at_carrier(carrier: Carrier, number: str) -> str:
    [call] = carrier.calls(to=number)
    return call["status"]


def waiting_for_a_lock(statement: str) -> bool:
    """Whether a statement starting with `statement` waits for a row lock. (Behind the lock's
    holder, or behind another waiter for the same row, such as a status callback.)"""
    with session_scope() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE :statement"
            ),
            {"statement": statement + "%"},
        )
    return bool(waiting)


def the_call(call_id: str) -> Call:
    with session_scope() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call


class TestAHangUpIsNeverLost:
    def test_a_hang_up_while_the_worker_stores_the_sid_reaches_the_carrier(
        self,
        api_server: str,
        carrier: Carrier,
        stack: StackProcesses,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        carrier.configure(outcomes={number: "answer-hold"})
        plan = taken_call(api, number)
        sent = sent_tasks(monkeypatch)
        with ThreadPoolExecutor(1) as requests:
            with session_scope() as worker:
                # The row is the worker's from here to its commit, so the carrier's callbacks
                # wait too: the SID arrives by the worker's own write.
                worker.execute(select(Call.id).where(Call.id == plan.call_id).with_for_update())
                remote = create_at_carrier(plan)
                calls_service.record_sid(worker, plan, remote.sid, utcnow())
                # The hang-up comes while the SID is written and not yet committed.
                answer = requests.submit(api.post, "/api/hang_up_call", callSid=plan.call_id)
                wait_until(
                    lambda: waiting_for_a_lock("UPDATE calls SET hangup_requested"),
                    30,
                    message="the hang-up waiting for the worker's write",
                )
            response = answer.result(timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["hangupRequested"] is True
        assert (jobs.HANG_UP, plan.call_id) in sent, "answered hangupRequested, sent no hang-up"
        wait_until(
            lambda: at_carrier(carrier, number) in ENDED, 30, message="hung up at the carrier"
        )
        wait_until(lambda: status_of(api, plan.call_id) in ENDED, 30, message="ended")

    def test_a_hang_up_whose_message_was_lost_is_carried_out_by_the_sweeper(
        self,
        api_server: str,
        carrier: Carrier,
        stack: StackProcesses,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        carrier.configure(outcomes={number: "answer-hold"})
        response = api.post(
            "/api/make_toingg/", json={"campaign": "welcome", "name": "Ada", "phoneNumber": number}
        )
        call_id = response.json()["callId"]
        wait_until(lambda: status_of(api, call_id) == "in-progress", 30, message="in progress")
        lost = sent_tasks(monkeypatch, drop=jobs.HANG_UP)
        response = api.post("/api/hang_up_call", callSid=call_id)
        assert response.json()["hangupRequested"] is True
        assert lost == [(jobs.HANG_UP, call_id)]
        monkeypatch.undo()
        wait_until(
            lambda: at_carrier(carrier, number) == "completed",
            60,
            interval=0.5,
            message="hung up at the carrier",
        )
        wait_until(lambda: status_of(api, call_id) == "completed", 30, message="completed")

    def test_a_hang_up_carried_out_is_not_sent_again_though_the_call_looks_live(
        self, api_server: str, carrier: Carrier, stack: StackProcesses
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        carrier.configure(outcomes={number: "answer-hold"})
        plan = taken_call(api, number)
        # Its status callbacks never arrive: here the call stays `initiated` whatever happens.
        remote = create_at_carrier(plan, status_callback="http://127.0.0.1:9/lost")
        with session_scope() as session:
            calls_service.record_sid(session, plan, remote.sid, utcnow())
        with session_scope() as session:
            calls_service.request_hang_up(session, api.account_id, plan.call_id)
        wait_until(
            lambda: the_call(plan.call_id).hangup_sent_at is not None, 30, message="carried out"
        )
        assert at_carrier(carrier, number) in ENDED
        with session_scope() as session:
            # Other tests' calls may owe hang-ups in this database: only this call's is asked.
            later = utcnow() + timedelta(days=1)
            assert plan.call_id not in calls_repository.hand_out_owed_hang_ups(session, later)
            assert calls_service.hang_up_at_carrier(session, plan.call_id) == "nothing to do"
        call = the_call(plan.call_id)
        assert (call.status, call.hangups_sent) == ("initiated", 1)

    def test_two_hang_ups_at_once_both_end_the_call_and_are_counted(
        self, api_server: str, carrier: Carrier, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        carrier.configure(outcomes={number: "answer-hold"})
        plan = taken_call(api, number)
        remote = create_at_carrier(plan, status_callback="http://127.0.0.1:9/lost")
        with session_scope() as session:
            calls_service.record_sid(session, plan, remote.sid, utcnow())
        wait_until(lambda: at_carrier(carrier, number) == "in-progress", 30, message="answered")
        # The task and the sweeper both see the call live at Twilio before either hangs up.
        both_fetched = threading.Barrier(2, timeout=10)
        fetch_call = twilio.fetch_call

        def fetch_together(sid: str) -> twilio.RemoteCall:
            found = fetch_call(sid)
            if found.status == "in-progress":
                both_fetched.wait()
            return found

        monkeypatch.setattr(twilio, "fetch_call", fetch_together)

        def hang_up() -> str:
            with session_scope() as session:
                return calls_service.hang_up_at_carrier(session, plan.call_id)

        with ThreadPoolExecutor(2) as pool:
            hang_ups = [pool.submit(hang_up) for _ in range(2)]
            assert [h.result(timeout=30) for h in hang_ups] == ["completed", "completed"]
        assert at_carrier(carrier, number) == "completed"
        call = the_call(plan.call_id)
        assert call.hangups_sent == 2
        assert call.hangup_sent_at is not None


def sid_of(call_id: str) -> str | None:
    return the_call(call_id).twilio_sid


class TestAHangUpBeforeTwilioHasTheCall:
    def test_asked_while_the_worker_waits_for_its_slot_the_call_never_rings(
        self, api_server: str, carrier: Carrier
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        # The worker took the claim (no hang-up yet) and now waits for its slot in the dial
        # rate, up to RATE_MAX_WAIT_SECONDS.
        plan = taken_call(api, number)
        answer = api.post("/api/hang_up_call", callSid=plan.call_id)
        assert answer.status_code == 200, answer.text
        assert answer.json()["hangupRequested"] is True
        # Its slot comes: the last look before the create request.
        with session_scope() as session:
            ends_by = calls_service.fence(session, plan)
            assert ends_by is None, (
                "the fence lets the create request go for a call whose hang-up the API "
                "accepted before it was sent: the callee's phone rings after the hang-up"
            )
            assert (
                calls_service.fenced_off(session, plan) is calls_service.Again.NO
            )  # not to be dialed again
        assert status_of(api, plan.call_id) == "canceled"
        assert carrier.calls(to=number) == []

    def test_asked_before_a_callback_brings_the_sid_it_is_sent_with_the_sid(
        self,
        api_server: str,
        carrier: Carrier,
        stack: StackProcesses,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api = customer(api_server)
        number = factories.phone_number()
        carrier.configure(outcomes={number: "hold"})  # the phone keeps ringing
        plan = taken_call(api, number)
        sent = sent_tasks(monkeypatch)
        answer = api.post("/api/hang_up_call", callSid=plan.call_id)
        assert answer.json()["hangupRequested"] is True
        # The worker's create request reached Twilio, and its answer was lost (a 500 after
        # creating, a dropped connection): the worker leaves the call to reconcile, and the
        # call's SID arrives by its first status callback.
        create_at_carrier(plan)
        wait_until(lambda: sid_of(plan.call_id) is not None, 15, message="the SID by a callback")
        # Sent once the callback's transaction commits; the sweeper's resend would come from
        # another process, HANGUP_RESEND_SECONDS after the request, and is not counted here.
        wait_until(
            lambda: (jobs.HANG_UP, plan.call_id) in sent,
            1,
            message="a hang-up sent once the SID was known; the call rings on until the "
            "sweeper's resend",
        )
        wait_until(lambda: at_carrier(carrier, number) in ENDED, 30, message="hung up")
