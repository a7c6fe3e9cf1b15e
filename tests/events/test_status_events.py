"""Every path that changes a status yields exactly its events, numbered 1, 2, 3 ... per
subject, each carrying the subject as its GET shows it right after the change."""

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.main import create_app
from shared.batches import lifecycle as batches_lifecycle
from shared.batches import service as batches_service
from shared.batches.schemas import NumberEntry
from shared.billing import ledger
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.models import Account, Batch, Call, Campaign, Event, SmsMessage, utcnow
from shared.sms import service as sms_service
from shared.telephony import client as twilio
from tests import factories
from tests.billing import direct
from tests.billing import stripe_events as se
from tests.concurrency import Racer
from tests.stack import Carrier


def events_of(subject_id: str) -> list[Event]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(Event).where(Event.subject_id == subject_id).order_by(Event.sequence)
            )
        )


def types_of(subject_id: str) -> list[str]:
    """The subject's event types in sequence order, which runs 1, 2, 3 ... without a gap."""
    found = events_of(subject_id)
    assert [event.sequence for event in found] == list(range(1, len(found) + 1))
    return [event.type for event in found]


@pytest.fixture(scope="module")
def client() -> Any:
    with TestClient(create_app()) as client:
        yield client


def shown(client: TestClient, key: str, path: str) -> dict[str, Any]:
    response = client.get(path, params={"apiKey": key})
    assert response.status_code == 200, response.text
    return dict(response.json())


class Customer:
    def __init__(self, credits: int = 100) -> None:
        self.account_id, self.key = factories.account(credits=credits)
        self.campaign_id = factories.campaign(self.account_id)  # 5 minutes: 5 credits held

    def place(self) -> str:
        with session_scope() as session:
            account = session.get(Account, self.account_id)
            campaign = session.get(Campaign, self.campaign_id)
            assert account is not None and campaign is not None
            return calls_service.place_call(
                session, account, campaign, "Ada", factories.phone_number()
            ).id

    def taken(self) -> calls_service.DialPlan:
        """A call claimed and taken by a worker, as a dial task does."""
        call_id = self.place()
        with session_scope() as session:
            plan = calls_service.take(session, call_id, None)
        assert plan is not None
        return plan

    def initiated(self) -> tuple[str, str]:
        """A call Twilio took: (id, SID)."""
        plan = self.taken()
        sid = "CA" + plan.call_id.replace("-", "")
        with session_scope() as session:
            calls_service.record_sid(session, plan, sid, utcnow())
        return plan.call_id, sid

    def batch(self, size: int) -> tuple[str, list[str]]:
        with session_scope() as session:
            account = session.get(Account, self.account_id)
            campaign = session.get(Campaign, self.campaign_id)
            assert account is not None and campaign is not None
            entries = [NumberEntry(clientNumber=factories.phone_number()) for _ in range(size)]
            batch = batches_service.create_batch(session, account, campaign, entries).batch
            calls = session.scalars(select(Call.id).where(Call.batch_id == batch.id))
            return batch.id, sorted(calls)

    def claim(self, call_ids: list[str]) -> list[calls_service.DialPlan]:
        """The dispatcher's claim of these calls (no task sent)."""
        with session_scope() as session:
            plans = calls_service.claim(session, self.account_id, call_ids)
            batches = sorted({plan.batch_id for plan in plans if plan.batch_id})
            batches_lifecycle.start_many(session, batches)
            return plans


def callback(call_id: str, sid: str, status: str, sequence: int, **extra: str) -> None:
    params = {"CallSid": sid, "CallStatus": status, "SequenceNumber": str(sequence), **extra}
    with session_scope() as session:
        calls_service.apply_status_callback(session, call_id, params)


def age_claim(call_id: str, seconds: float) -> None:
    with session_scope() as session:
        session.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(dial_started_at=utcnow() - timedelta(seconds=seconds))
        )


class TestACallsLife:
    def test_answered_and_completed_each_step_once_and_the_last_event_shows_the_get(
        self, client: TestClient
    ) -> None:
        customer = Customer()
        call_id, sid = customer.initiated()
        callback(call_id, sid, "ringing", 1)
        callback(call_id, sid, "in-progress", 2)
        callback(call_id, sid, "completed", 3, CallDuration="61")
        callback(call_id, sid, "completed", 3, CallDuration="61")  # delivered twice
        callback(call_id, sid, "ringing", 1)  # late, and a repeat
        assert types_of(call_id) == [
            "call.queued",
            "call.dialing",
            "call.initiated",
            "call.ringing",
            "call.answered",
            "call.completed",
        ]
        *_, completed = events_of(call_id)
        assert completed.account_id == customer.account_id
        assert completed.subject_type == "call"
        assert completed.data == shown(client, customer.key, f"/api/calls/{call_id}")
        assert completed.data["durationSeconds"] == 61
        first = events_of(call_id)[0]
        assert first.data["status"] == "queued" and first.data["timeline"][0]["status"] == "queued"

    @pytest.mark.parametrize(
        ("status", "event"),
        [("busy", "call.busy"), ("no-answer", "call.no_answer"), ("failed", "call.failed")],
    )
    def test_a_call_ending_unanswered(self, status: str, event: str) -> None:
        call_id, sid = Customer().initiated()
        callback(call_id, sid, "ringing", 1)
        callback(call_id, sid, status, 2)
        assert types_of(call_id)[-3:] == ["call.initiated", "call.ringing", event]

    def test_a_callback_before_the_worker_stored_the_sid_moves_the_call_once(self) -> None:
        plan = Customer().taken()
        sid = "CA" + plan.call_id.replace("-", "")
        callback(plan.call_id, sid, "ringing", 1)  # the SID arrives with it
        with session_scope() as session:
            calls_service.record_sid(session, plan, sid, utcnow())  # the worker's, later
        assert types_of(plan.call_id) == ["call.queued", "call.dialing", "call.ringing"]

    def test_two_callbacks_at_once_append_only_the_move_that_happened(self) -> None:
        call_id, sid = Customer().initiated()
        callback(call_id, sid, "ringing", 1)

        def in_progress(session: Session) -> Call:
            params = {"CallSid": sid, "CallStatus": "in-progress", "SequenceNumber": "2"}
            return calls_service.apply_status_callback(session, call_id, params)

        with session_scope() as first:
            params = {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "3"}
            calls_service.apply_status_callback(first, call_id, params)
            # The in-progress read the call ringing, and waits for the completed's row lock.
            second = Racer(in_progress)
            second.wait_until_blocked()
        second.join()
        assert types_of(call_id)[-2:] == ["call.ringing", "call.completed"]


class TestHangUp:
    def test_a_queued_call_is_canceled(self) -> None:
        customer = Customer()
        call_id = customer.place()
        with session_scope() as session:
            calls_service.request_hang_up(session, customer.account_id, call_id)
        assert types_of(call_id) == ["call.queued", "call.canceled"]

    def test_a_claimed_call_is_canceled_unplaced_when_its_worker_takes_it(self) -> None:
        customer = Customer()
        [plan] = customer.claim([customer.place()])
        with session_scope() as session:
            calls_service.request_hang_up(session, customer.account_id, plan.call_id)
        with session_scope() as session:
            assert calls_service.take(session, plan.call_id, plan.attempt) is None
        assert types_of(plan.call_id) == ["call.queued", "call.dialing", "call.canceled"]

    def test_a_taken_call_is_canceled_at_the_fence(self) -> None:
        customer = Customer()
        plan = customer.taken()
        with session_scope() as session:
            calls_service.request_hang_up(session, customer.account_id, plan.call_id)
        with session_scope() as session:
            assert calls_service.fence(session, plan) is None
            assert calls_service.fenced_off(session, plan) is calls_service.Again.NO
        assert types_of(plan.call_id) == ["call.queued", "call.dialing", "call.canceled"]

    def test_a_live_call_changes_only_when_twilio_says_it_ended(self) -> None:
        customer = Customer()
        call_id, sid = customer.initiated()
        with session_scope() as session:
            calls_service.request_hang_up(session, customer.account_id, call_id)
        assert types_of(call_id)[-1] == "call.initiated"
        callback(call_id, sid, "canceled", 1)
        assert types_of(call_id)[-2:] == ["call.initiated", "call.canceled"]


class TestAClaimThatDoesNotDial:
    def test_a_failed_create_request_fails_the_call(self) -> None:
        plan = Customer().taken()
        with session_scope() as session:
            calls_service.fail(session, plan, "21211", "invalid number")
        assert types_of(plan.call_id) == ["call.queued", "call.dialing", "call.failed"]
        assert events_of(plan.call_id)[-1].data["error"] == {
            "code": "21211",
            "message": "invalid number",
        }

    def test_a_claim_handed_back_is_queued_again(self) -> None:
        plan = Customer().taken()
        with session_scope() as session:
            assert calls_service.release(session, plan)
        assert types_of(plan.call_id) == ["call.queued", "call.dialing", "call.queued"]

    def test_reconcile_that_finds_nothing_requeues(self, carrier: Carrier) -> None:
        plan = Customer().taken()
        age_claim(plan.call_id, 3 * get_settings().DIAL_AMBIGUOUS_SECONDS)
        with session_scope() as session:
            assert calls_service.reconcile(session, plan.call_id) == "requeued"
        assert types_of(plan.call_id) == ["call.queued", "call.dialing", "call.queued"]

    def test_reconcile_that_adopts_twilios_call_initiates_it(self, carrier: Carrier) -> None:
        plan = Customer().taken()
        with session_scope() as session:
            assert calls_service.fence(session, plan) is not None
        remote = twilio.create_call(
            to=plan.to,
            from_=plan.from_,
            url=calls_service.voice_url(plan.call_id),
            status_callback="http://127.0.0.1:9/slow",
            timeout=30,
            time_limit=plan.time_limit_seconds,
        )
        age_claim(plan.call_id, get_settings().DIAL_AMBIGUOUS_SECONDS + 1)
        with session_scope() as session:
            assert calls_service.reconcile(session, plan.call_id) == f"adopted {remote.sid}"
        assert types_of(plan.call_id) == ["call.queued", "call.dialing", "call.initiated"]
        assert events_of(plan.call_id)[-1].data["callSid"] == remote.sid


class TestCredits:
    def test_short_of_credits_a_call_waits_and_is_queued_again_when_they_arrive(
        self, client: TestClient
    ) -> None:
        customer = Customer(credits=3)  # a call holds 5
        call_id = customer.place()
        assert customer.claim([call_id]) == []
        assert types_of(call_id) == ["call.queued", "call.insufficient_credits"]
        with session_scope() as session:
            ledger.apply(
                session,
                ledger.Change(
                    customer.account_id, 10, "manual_grant", "account", customer.account_id,
                    reference=f"test:{call_id}",
                ),
            )  # fmt: skip
            calls_service.resume_waiting(session, customer.account_id)
        assert types_of(call_id) == ["call.queued", "call.insufficient_credits", "call.queued"]
        credits = events_of(customer.account_id)
        assert [event.type for event in credits] == ["credits.changed"] * 2
        assert credits[-1].subject_type == "credits"
        balance = shown(client, customer.key, "/api/credits")["balance"]
        assert credits[-1].data["balance"] == balance == 13
        assert [row["delta"] for row in credits[-1].data["entries"]] == [10]

    def test_reservation_and_settlement_each_change_the_credits_once(self) -> None:
        customer = Customer(credits=10)
        call_id, sid = customer.initiated()
        callback(call_id, sid, "completed", 1, CallDuration="61")
        with session_scope() as session:
            assert calls_service.settle_ended(session, customer.account_id) == 1
        changes = [event.data for event in events_of(customer.account_id)]
        assert [change["balance"] for change in changes] == [10, 5, 8]
        assert [row["reason"] for change in changes for row in change["entries"]] == [
            "manual_grant",
            "call_reservation",
            "call_settlement",
        ]

    def test_a_payment_a_refund_and_a_dispute_each_change_the_credits(self) -> None:
        payment = direct.paid(credits=100)
        direct.deliver(se.charge_refunded(payment.payment_intent, 1000, 200, "ch_" + "1" * 8))
        direct.deliver(se.dispute_created(payment.payment_intent, 500))
        changes = events_of(payment.account_id)
        assert [event.type for event in changes] == ["credits.changed"] * 3
        assert [event.data["balance"] for event in changes] == [100, 80, 30]
        assert changes[-1].data["disputed"] is True


class TestABatch:
    def test_pause_resume_and_cancel_each_append_the_batchs_event(self, client: TestClient) -> None:
        customer = Customer()
        batch_id, call_ids = customer.batch(3)
        assert [types_of(call_id) for call_id in call_ids] == [["call.queued"]] * 3
        [plan] = customer.claim(call_ids[:1])
        with session_scope() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            batches_service.pause(session, batch)
            batches_service.pause(session, batch)  # paused already: nothing changes
        with session_scope() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            batches_service.resume(session, batch)
        with session_scope() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            assert batches_service.cancel(session, batch, hang_up=False) == 2
            batches_service.cancel(session, batch, hang_up=False)  # canceled already
        assert types_of(batch_id) == [
            "batch.started",
            "batch.paused",
            "batch.resumed",
            "batch.canceled",
        ]
        last = events_of(batch_id)[-1]
        assert last.data == shown(client, customer.key, f"/api/batches/{batch_id}")
        assert last.data["counts"] == {"dialing": 1, "canceled": 2}
        assert types_of(plan.call_id) == ["call.queued", "call.dialing"]
        assert [types_of(c) for c in call_ids[1:]] == [["call.queued", "call.canceled"]] * 2

    def test_a_batchs_call_is_shown_queued_as_its_get_shows_it(self, client: TestClient) -> None:
        customer = Customer()
        _, [call_id] = customer.batch(1)
        [queued] = events_of(call_id)
        assert queued.data == shown(client, customer.key, f"/api/calls/{call_id}")

    def test_its_calls_ending_at_once_complete_it_once(self, client: TestClient) -> None:
        customer = Customer()
        batch_id, call_ids = customer.batch(2)
        plans = customer.claim(call_ids)
        sids = {}
        for plan in plans:
            with session_scope() as session:
                taken = calls_service.take(session, plan.call_id, plan.attempt)
                assert taken is not None
                sids[plan.call_id] = "CA" + plan.call_id.replace("-", "")
                calls_service.record_sid(session, taken, sids[plan.call_id], utcnow())
        first, second = call_ids

        def end_second(session: Session) -> None:
            params = {"CallSid": sids[second], "CallStatus": "completed", "SequenceNumber": "1"}
            calls_service.apply_status_callback(session, second, params)

        with session_scope() as ending_first:
            params = {"CallSid": sids[first], "CallStatus": "busy", "SequenceNumber": "1"}
            calls_service.apply_status_callback(ending_first, first, params)
            # The second call ends and commits meanwhile: its look at the batch finds the
            # first call not ended yet.
            Racer(end_second).join()
            assert types_of(batch_id) == ["batch.started"]
        assert types_of(batch_id) == ["batch.started", "batch.completed"]
        completed = events_of(batch_id)[-1]
        assert completed.data["status"] == "completed"
        assert completed.data == shown(client, customer.key, f"/api/batches/{batch_id}")

    def test_a_batch_waits_for_credits_and_goes_on_once_they_arrive(self) -> None:
        customer = Customer(credits=0)
        batch_id, call_ids = customer.batch(2)
        assert customer.claim(call_ids) == []
        assert types_of(batch_id) == ["batch.insufficient_credits"]
        assert events_of(batch_id)[-1].data["status"] == "insufficient credits"
        with session_scope() as session:
            ledger.apply(
                session,
                ledger.Change(
                    customer.account_id, 100, "manual_grant", "account", customer.account_id,
                    reference=f"test:{batch_id}",
                ),
            )  # fmt: skip
            assert calls_service.resume_waiting(session, customer.account_id) == 2
        assert types_of(batch_id) == ["batch.insufficient_credits", "batch.resumed"]
        assert events_of(batch_id)[-1].data["status"] == "running"

    def test_the_sweep_follows_a_batch_nobody_followed(self) -> None:
        customer = Customer()
        batch_id, [call_id] = customer.batch(1)
        with session_scope() as session:
            # As a process that died between the commit and its look at the batch leaves it.
            session.execute(update(Call).where(Call.id == call_id).values(status="canceled"))
        with session_scope() as session:
            assert batches_lifecycle.sweep(session) >= 1
        assert types_of(batch_id) == ["batch.completed"]


class TestAnSms:
    def sms(self, customer: Customer) -> str:
        with session_scope() as session:
            account = session.get(Account, customer.account_id)
            assert account is not None
            return sms_service.accept(session, account, "Ada", factories.phone_number(), "Hello").id

    def test_sent_and_delivered_each_once_and_the_last_event_shows_the_get(
        self, client: TestClient
    ) -> None:
        customer = Customer()
        sms_id = self.sms(customer)
        with session_scope() as session:
            plan = sms_service.take(session, sms_id, None)
            assert plan is not None
            sms_service.record_sent(session, plan, "SM" + sms_id.replace("-", ""), 1)
        sid = "SM" + sms_id.replace("-", "")
        for status in ("sent", "delivered", "delivered", "sent"):
            with session_scope() as session:
                params = {"MessageSid": sid, "MessageStatus": status}
                sms_service.apply_status_callback(session, sms_id, params)
        assert types_of(sms_id) == ["sms.queued", "sms.sending", "sms.sent", "sms.delivered"]
        assert events_of(sms_id)[-1].data == shown(client, customer.key, f"/api/sms/{sms_id}")
        assert [e.data["balance"] for e in events_of(customer.account_id)] == [100, 99]

    def test_refused_by_twilio_it_fails_and_its_charge_comes_back(self) -> None:
        customer = Customer()
        sms_id = self.sms(customer)
        with session_scope() as session:
            plan = sms_service.take(session, sms_id, None)
            assert plan is not None
            sms_service.fail(session, plan, "21610", "unsubscribed")
        assert types_of(sms_id) == ["sms.queued", "sms.sending", "sms.failed"]
        assert [e.data["balance"] for e in events_of(customer.account_id)] == [100, 99, 100]

    def test_a_claim_twilio_did_not_take_is_queued_again(self) -> None:
        sms_id = self.sms(Customer())
        with session_scope() as session:
            plan = sms_service.take(session, sms_id, None)
            assert plan is not None
            assert sms_service.release(session, plan)
        assert types_of(sms_id) == ["sms.queued", "sms.sending", "sms.queued"]
        with session_scope() as session:
            sms = session.get(SmsMessage, sms_id)
            assert sms is not None and sms.status == "queued"
