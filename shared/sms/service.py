"""SMS: accepted, sent once through Twilio, moved on by Twilio's status callbacks."""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.billing import disputes, ledger, prices
from shared.caller_ids import service as caller_ids
from shared.config import get_settings
from shared.dnc import service as dnc
from shared.models import Account, SmsMessage, new_id, utcnow
from shared.optouts import service as optouts
from shared.sms import jobs, lifecycle, repository
from shared.sms import status as st
from shared.telephony import client as twilio
from shared.telephony.numbers import to_e164

log = logging.getLogger(__name__)


class SmsNotFound(LookupError):
    pass


@dataclass(frozen=True)
class SendPlan:
    sms_id: str
    attempt: str
    to: str
    from_: str
    body: str


def status_callback_url(sms_id: str) -> str:
    base = get_settings().PUBLIC_BASE_URL.rstrip("/")
    return f"{base}/api/twilio/sms-status?smsId={sms_id}"


def accept(
    session: Session,
    account: Account,
    name: str,
    phone_number: str,
    body: str,
    from_number: str | None = None,
) -> SmsMessage:
    """Raises InvalidNumber, dnc.OnTheList (the number), InvalidCallerId or CallerIdNotAllowed
    (the sender), and InsufficientCredits."""
    settings = get_settings()
    cost = prices.sms_cost(body)
    to_number = to_e164(phone_number, settings.DEFAULT_REGION)
    dnc.ensure_not_listed(session, account.id, to_number)
    sms = SmsMessage(
        id=new_id(),
        account_id=account.id,
        to_number=to_number,
        from_number=caller_ids.choose(session, account.id, from_number),
        name=name,
        body=body,
        segments=prices.sms_segments(body),
        credits_charged=cost,
    )
    # Paid when accepted: raises InsufficientCredits (and the caller rolls back) when short.
    ledger.apply(
        session,
        ledger.Change(
            account.id, -cost, "sms_charge", "sms", sms.id, reference=f"sms:{sms.id}:charge"
        ),
        must_cover=True,
    )
    lifecycle.accept(session, sms)
    # Owed from now on: the dispatcher claims it within its rate, and this wakes it at once
    # rather than at its next tick.
    jobs.dispatch(session)
    return sms


def get_for_account(session: Session, account_id: str, ref: str) -> SmsMessage:
    sms = repository.get_for_account(session, account_id, ref)
    if sms is None:
        raise SmsNotFound(ref)
    return sms


def take(session: Session, sms_id: str, claimed: str | None) -> SendPlan | None:
    """The worker's hold on a claimed message (`claimed`: the claim's attempt), under an attempt
    of its own, so a send task delivered twice sends once. A message sent without a claim (a
    retry, a reconciled message queued again) is claimed here first. None when there is nothing
    to send.

    To, From and the body come from the message's row as the claim is taken, never from the
    task's message: the broker and Flower can be read and written by others.
    """
    if claimed is None:
        claimed = str(uuid.uuid4())
        if not repository.claim(session, [sms_id], claimed):
            return None
    attempt = str(uuid.uuid4())
    taken = repository.take(session, sms_id, claimed, attempt)
    if taken is None:
        return None
    # A message loses its body only once Twilio has it or it ended (shared.retention).
    assert taken.body is not None
    plan = SendPlan(sms_id, attempt, taken.to_number, taken.from_number, taken.body)
    refused = caller_ids.refusal(session, taken.account_id, taken.from_number)
    if refused is not None:  # its sender was taken from the account since it was accepted
        fail(session, plan, refused.code, str(refused))
        return None
    if _suppressed(session, taken.account_id, plan):
        # Listed since it was accepted: it takes no slot in the rate another message could use.
        return None
    return plan


def fence(session: Session, plan: SendPlan) -> bool:
    """The last look at the claim, immediately before its create request: whether it may be
    sent. Reconcile may hand a claim to another worker DIAL_AMBIGUOUS_SECONDS after it was
    taken, so, as a call's, it is sent only while still this attempt's and young enough
    (`dial_fence_seconds`) for the request to be over before then (see `calls.service.fence`).
    Nor once its account was blocked, or its sender taken from the account, while the claim was
    out: a message whose sender was taken fails here. Nor to a number put on a do-not-contact
    list since it was accepted: it ends `suppressed`, unsent and refunded (as a call's fence
    looks, see `calls.service.fence`)."""
    taken_after = utcnow() - timedelta(seconds=get_settings().dial_fence_seconds)
    account_id = repository.fence(
        session, plan.sms_id, plan.attempt, taken_after, plan.to, plan.from_
    )
    if account_id is None:
        return False
    refused = caller_ids.refusal(session, account_id, plan.from_)
    if refused is not None:
        fail(session, plan, refused.code, str(refused))
        return False
    return not _suppressed(session, account_id, plan)


def _suppressed(session: Session, account_id: str, plan: SendPlan) -> bool:
    """End the held message `suppressed`, refunded, if its number is on a do-not-contact list
    now."""
    listed = dnc.listed(session, account_id, plan.to)
    if listed is None:
        return False
    _end_unsent(
        session, plan, st.SUPPRESSED, dnc.LISTED_CODE, dnc.suppression_text(plan.to, listed)
    )
    return True


class Again(Enum):
    """What a worker whose create request the fence refused does next."""

    NO = "no"  # the claim is settled: nothing more to do
    NOW = "now"  # the message went back to the queue: claim it anew and send
    LATER = "later"  # back to the queue, to claim again once the other request is resolved


def fenced_off(session: Session, plan: SendPlan) -> Again:
    """The fence refused the create request: settle the claim as the reason says. Its account
    was blocked: back to the dispatcher, which claims it once the block is lifted. Another
    message of ours to the same number from the same sender has its create request out with no
    SID back (`repository.request_out_to`): back to the queue, and this worker sends it again
    later, once that request's SID is known or reconcile has settled it. Its claim is still
    this attempt's but too old: back to the queue, and this worker sends it again. Reconciled
    or ended meanwhile (its sender taken, the fence failed it): left alone."""
    sms = session.get(SmsMessage, plan.sms_id, populate_existing=True)
    if sms is None or sms.attempt != plan.attempt or sms.status != st.SENDING:
        return Again.NO
    if disputes.is_blocked(session, sms.account_id):
        _requeue(session, plan, handed_at=None)
        return Again.NO
    if repository.request_out_to(session, plan.sms_id, plan.to, plan.from_):
        return Again.LATER if release(session, plan) else Again.NO
    return Again.NOW if release(session, plan) else Again.NO


def resend_untaken(session: Session, handed_before: datetime) -> int:
    """Claims whose send task was lost (a killed worker, a broker restart): the task is sent
    again. The first to take the claim sends; any other finds it taken."""
    untaken = repository.hand_out_untaken(session, handed_before)
    for sms_id, attempt in untaken:
        jobs.send(session, sms_id, attempt)
    return len(untaken)


def record_sent(session: Session, plan: SendPlan, sid: str, segments: int) -> None:
    repository.update_attempt(session, plan.sms_id, plan.attempt, twilio_sid=sid, segments=segments)


def release(session: Session, plan: SendPlan) -> bool:
    """Give the message back to the queue: Twilio did not take it. The worker retries it on its
    own (the dispatcher leaves a message just handed back alone)."""
    return _requeue(session, plan, handed_at=utcnow())


def _requeue(session: Session, plan: SendPlan, handed_at: datetime | None) -> bool:
    """Queued again, if the claim is still this attempt's; the dispatcher hands it out once
    `handed_at` is stale (at once when None)."""
    return repository.move_attempt(
        session,
        plan.sms_id,
        plan.attempt,
        st.QUEUED,
        attempt=None,
        handed_at=handed_at,
        send_started_at=None,
        requested_at=None,
    )


def fail(session: Session, plan: SendPlan, code: str, message: str) -> None:
    """Twilio refused the message, and bills nothing for it: neither do we."""
    _end_unsent(session, plan, st.FAILED, code, message)


def _end_unsent(session: Session, plan: SendPlan, status: str, code: str, message: str) -> None:
    """End a claimed message Twilio does not have: its charge refunded."""
    ended = repository.move_attempt(
        session, plan.sms_id, plan.attempt, status, error_code=code, error_message=message
    )
    sms = repository.get(session, plan.sms_id)
    if ended and sms is not None and sms.credits_charged:
        note = (
            "its number is on a do-not-contact list"
            if status == st.SUPPRESSED
            else f"Twilio refused it: {code}"
        )
        ledger.apply(
            session,
            ledger.Change(
                sms.account_id, sms.credits_charged, "sms_refund", "sms", sms.id,
                reference=f"sms:{sms.id}:refund", note=note,
            ),
        )  # fmt: skip
        sms.credits_charged = 0
        session.flush()


def refused(session: Session, plan: SendPlan, code: str, message: str) -> None:
    """Twilio refused to send the message: it fails, unpaid. A refusal because the recipient
    texted STOP to its sender (21610) also puts the number on the account's do-not-contact
    list, so nothing more is sent to it."""
    fail(session, plan, code, message)
    if code == optouts.UNSUBSCRIBED_RECIPIENT:
        sms = repository.get(session, plan.sms_id)
        if sms is not None:
            optouts.carrier_refused(session, sms.account_id, plan.to, plan.from_)


def reconcile(session: Session, sms_id: str) -> str:
    """An SMS whose hand-over may have happened: adopt Twilio's copy, sent or still queued (see
    `twilio.find_messages`), or queue it again. Never re-sent blindly: when the number has more
    messages than the lookup reads, the SMS waits for a later look; and, as a call's (see
    `calls.reconcile`), it goes back to the queue only once a look finds nothing
    DIAL_AMBIGUOUS_SECONDS after the first may, since a create request cut at its deadline may
    still be carried out by Twilio a moment later."""
    sms = repository.get(session, sms_id)
    if sms is None or sms.status != st.SENDING or sms.twilio_sid is not None:
        return "nothing to do"
    if sms.send_started_at is None:
        return "not taken yet"  # a claim whose task is on its way, or lost (`resend_untaken`)
    assert sms.attempt is not None and sms.body is not None
    grace = timedelta(seconds=get_settings().DIAL_AMBIGUOUS_SECONDS)
    age = utcnow() - sms.send_started_at
    if age < grace:
        return "too early"
    lookup = twilio.find_messages(
        to=sms.to_number,
        from_=sms.from_number,
        created_since=sms.send_started_at - timedelta(seconds=5),
    )
    # Counted after the lookup, and before the SIDs we know are read (see `calls.reconcile`):
    # of two messages of ours with one text to one number waiting for a SID, either may be the
    # one found, and its status callbacks, which name their message, tell whose it is.
    awaiting = repository.count_awaiting_sid(session, sms.to_number, sms.from_number, sms.body)
    known = repository.known_sids(session, [m.sid for m in lookup.found])
    plan = SendPlan(sms.id, sms.attempt, sms.to_number, sms.from_number, sms.body)
    # A claim whose request never went out (its worker stopped before the fence) has no message
    # at Twilio: one Twilio has that we do not know is another's, whose request did.
    sent = sms.requested_at is not None
    unknown = [m for m in lookup.found if m.sid not in known and m.body == sms.body] if sent else []
    if unknown and awaiting > 1:
        return "cannot tell yet"
    if unknown:
        record_sent(session, plan, unknown[0].sid, unknown[0].segments)
        return f"adopted {unknown[0].sid}"
    if not lookup.complete:
        return "cannot tell yet"
    if age < 2 * grace:
        return "not found yet"  # the sweeper looks again
    release(session, plan)
    jobs.send(session, sms.id)
    return "requeued"


def apply_status_callback(session: Session, sms_id: str, params: dict[str, str]) -> SmsMessage:
    """Apply one Twilio message status callback: the status only moves forward, whatever order
    the callbacks arrive or commit in."""
    sms = repository.get(session, sms_id)
    if sms is None:
        raise SmsNotFound(sms_id)
    sid = params.get("MessageSid", "")
    known = sms.twilio_sid
    if known is None and sid:
        try:
            with session.begin_nested():
                known = repository.sid_for_callback(session, sms.id, sid)
        except IntegrityError:
            log.error("sms %s: a callback names SID %s, another message's", sms.id, sid)
            return sms
        session.refresh(sms)
    if sid and known != sid:
        return sms
    new_status = st.from_twilio(params.get("MessageStatus", ""))
    if new_status is None:
        return sms
    error = {"error_code": params["ErrorCode"]} if params.get("ErrorCode") else {}
    advance(session, sms, new_status, **error)
    return sms


def advance(session: Session, sms: SmsMessage, new_status: str, **values: object) -> bool:
    """The step that moves an SMS's status on: forward only, and a final status absorbs
    everything after it, even against another callback at the same moment (the guard is in the
    UPDATE itself). Whether it moved; `sms` shows the row as it is now either way."""
    moved = lifecycle.move(session, sms.id, new_status, **values)
    if moved is None:
        session.refresh(sms)
    return moved is not None
