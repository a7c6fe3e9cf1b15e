"""Status callbacks delivered at the same moment: one callback's transaction is held open while
the other runs into it. The status still only moves forward."""

import pytest
from sqlalchemy.orm import Session

from shared.billing import ledger
from shared.calls import repository as calls_repository
from shared.calls import service as calls_service
from shared.db import session_scope
from shared.models import Account, Call, Campaign, SmsMessage, utcnow
from shared.sms import service as sms_service
from tests import factories
from tests.concurrency import Racer


def call_callback(sid: str, status: str, sequence: int, **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "CallStatus": status, "SequenceNumber": str(sequence), **extra}


def ringing_call(account_id: str, campaign_id: str) -> tuple[str, str]:
    """A call a worker placed, ringing: it holds a line and its reservation. (id, SID)"""
    with session_scope() as session:
        account, campaign = session.get(Account, account_id), session.get(Campaign, campaign_id)
        assert account is not None and campaign is not None
        call_id = calls_service.place_call(
            session, account, campaign, "Ada", factories.phone_number()
        ).id
    with session_scope() as session:
        plan = calls_service.take(session, call_id, None)
        assert plan is not None
    sid = "CA" + call_id.replace("-", "")
    with session_scope() as session:
        calls_service.record_sid(session, plan, sid, utcnow())
    with session_scope() as session:
        calls_service.apply_status_callback(session, call_id, call_callback(sid, "ringing", 1))
    return call_id, sid


class TestCallCallbacksAtOnce:
    @pytest.mark.parametrize("held", ["completed", "in-progress"])
    def test_completed_and_in_progress_leave_the_call_completed_its_line_and_credits_freed(
        self, held: str
    ) -> None:
        account_id, _ = factories.account(credits=10)
        campaign_id = factories.campaign(account_id)  # 5 minutes: 5 credits held
        call_id, sid = ringing_call(account_id, campaign_id)
        callbacks = {
            "completed": call_callback(sid, "completed", 3, CallDuration="61"),
            "in-progress": call_callback(sid, "in-progress", 2),
        }
        other = callbacks.pop(held)
        [held_params] = callbacks.values()

        def apply_other(session: Session) -> Call:
            return calls_service.apply_status_callback(session, call_id, other)

        with session_scope() as first:
            calls_service.apply_status_callback(first, call_id, held_params)
            # The other one read the call ringing, and waits for this one's row lock.
            second = Racer(apply_other)
            second.wait_until_blocked()
        second.join()

        with session_scope() as session:
            call = session.get(Call, call_id)
            assert call is not None
            assert call.status == "completed"
            assert call.answered_at is not None and call.ended_at is not None
            assert call.duration_seconds == 61 and call.credits_charged == 2
            assert call.last_sequence == 3
            assert calls_repository.count_live(session, account_id=account_id) == 0
        with session_scope() as session:
            assert calls_service.settle_ended(session, account_id) == 1
        with session_scope() as session:
            assert ledger.balance_of(session, account_id) == 8  # 10, less 2 started minutes
            call = session.get(Call, call_id)
            assert call is not None and call.credits_reserved == 0

    def test_callbacks_naming_two_sids_for_a_call_without_one_keep_the_first(self) -> None:
        # Two calls at Twilio for one of ours (a create request sent twice): the first callback
        # to be applied names the call's SID, and the other call's callbacks change nothing.
        account_id, _ = factories.account(credits=10)
        campaign_id = factories.campaign(account_id)
        with session_scope() as session:
            account, campaign = session.get(Account, account_id), session.get(Campaign, campaign_id)
            assert account is not None and campaign is not None
            call_id = calls_service.place_call(
                session, account, campaign, "Ada", factories.phone_number()
            ).id
        with session_scope() as session:
            assert calls_service.take(session, call_id, None) is not None  # no SID stored yet
        first_sid, other_sid = "CA" + "1" * 32, "CA" + "2" * 32

        def apply_other(session: Session) -> Call:
            params = call_callback(other_sid, "in-progress", 2)
            return calls_service.apply_status_callback(session, call_id, params)

        with session_scope() as first:
            calls_service.apply_status_callback(
                first, call_id, call_callback(first_sid, "ringing", 1)
            )
            # The other one read the call without a SID, and waits for this one's row lock.
            second = Racer(apply_other)
            second.wait_until_blocked()
        second.join()

        with session_scope() as session:
            call = session.get(Call, call_id)
            assert call is not None
            assert call.twilio_sid == first_sid, "the ringing call at Twilio is no longer ours"
            assert call.status == "ringing" and call.answered_at is None


def sent_sms(account_id: str) -> tuple[str, str]:
    """An SMS Twilio has accepted: (id, SID)."""
    with session_scope() as session:
        account = session.get(Account, account_id)
        assert account is not None
        sms_id = sms_service.accept(session, account, "Ada", factories.phone_number(), "Hi").id
    with session_scope() as session:
        plan = sms_service.take(session, sms_id, None)
        assert plan is not None
    sid = "SM" + sms_id.replace("-", "")
    with session_scope() as session:
        sms_service.record_sent(session, plan, sid, 1)
    return sms_id, sid


class TestSmsCallbacksAtOnce:
    @pytest.mark.parametrize("held", ["delivered", "sent"])
    def test_delivered_and_sent_leave_the_sms_delivered(self, held: str) -> None:
        account_id, _ = factories.account(credits=10)
        sms_id, sid = sent_sms(account_id)
        other = "sent" if held == "delivered" else "delivered"

        def apply(status: str, session: Session) -> SmsMessage:
            params = {"MessageSid": sid, "MessageStatus": status}
            return sms_service.apply_status_callback(session, sms_id, params)

        with session_scope() as first:
            apply(held, first)
            second = Racer(lambda session: apply(other, session))
            second.wait_until_blocked()
        second.join()

        with session_scope() as session:
            sms = session.get(SmsMessage, sms_id)
            assert sms is not None and sms.status == "delivered"

    def test_callbacks_naming_two_sids_for_an_sms_without_one_keep_the_first(self) -> None:
        account_id, _ = factories.account(credits=10)
        with session_scope() as session:
            account = session.get(Account, account_id)
            assert account is not None
            sms_id = sms_service.accept(session, account, "Ada", factories.phone_number(), "Hi").id
        with session_scope() as session:
            assert sms_service.take(session, sms_id, None) is not None  # no SID stored yet
        first_sid, other_sid = "SM" + "1" * 32, "SM" + "2" * 32

        def apply(sid: str, status: str, session: Session) -> SmsMessage:
            params = {"MessageSid": sid, "MessageStatus": status}
            return sms_service.apply_status_callback(session, sms_id, params)

        with session_scope() as first:
            apply(first_sid, "sent", first)
            second = Racer(lambda session: apply(other_sid, "delivered", session))
            second.wait_until_blocked()
        second.join()

        with session_scope() as session:
            sms = session.get(SmsMessage, sms_id)
            assert sms is not None
            assert sms.twilio_sid == first_sid
            assert sms.status == "sent"

    def test_a_callback_naming_another_messages_sid_changes_neither(self) -> None:
        account_id, _ = factories.account(credits=10)
        held_id, sid = sent_sms(account_id)
        with session_scope() as session:
            account = session.get(Account, account_id)
            assert account is not None
            sms_id = sms_service.accept(session, account, "Ada", factories.phone_number(), "Hi").id
        with session_scope() as session:
            params = {"MessageSid": sid, "MessageStatus": "delivered"}
            sms_service.apply_status_callback(session, sms_id, params)
        with session_scope() as session:
            held, sms = session.get(SmsMessage, held_id), session.get(SmsMessage, sms_id)
            assert held is not None and sms is not None
            assert (held.twilio_sid, sms.twilio_sid, sms.status) == (sid, None, "queued")
