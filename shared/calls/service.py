"""The call's life: accepted, claimed by one worker, handed to Twilio, moved by callbacks."""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.batches import stops as batch_stops
from shared.billing import disputes, ledger, prices
from shared.caller_ids import service as caller_ids
from shared.calling_hours import rules as calling_rules
from shared.calling_hours import service as calling_hours
from shared.calls import jobs, lifecycle, repository
from shared.calls import status as st
from shared.campaigns import repository as campaigns_repository
from shared.campaigns import service as campaigns_service
from shared.config import get_settings
from shared.dnc import service as dnc
from shared.models import Account, Batch, Call, CallEvent, Campaign, utcnow
from shared.telephony import client as twilio
from shared.telephony import twiml
from shared.telephony.numbers import to_e164
from shared.webhooks import per_call

log = logging.getLogger(__name__)


class CallNotFound(LookupError):
    pass


class Unspeakable(ValueError):
    """The campaign's script, with this callee's name, is more than Twilio would speak."""


@dataclass(frozen=True)
class DialPlan:
    """What a worker needs to hand a claimed call to Twilio."""

    call_id: str
    attempt: str
    to: str
    from_: str
    time_limit_seconds: int
    batch_id: str | None = None


def voice_url(call_id: str) -> str:
    return f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/api/twilio/voice/{call_id}"


def opt_out_url(call_id: str) -> str:
    """Where Twilio posts the key a callee pressed during the call's message."""
    return f"{get_settings().PUBLIC_BASE_URL.rstrip('/')}/api/twilio/opt-out/{call_id}"


def status_callback_url(call_id: str) -> str:
    # The call id rides along so a callback that beats the worker's write of the SID still
    # finds its call (and tells us the SID if the worker died before writing it).
    base = get_settings().PUBLIC_BASE_URL.rstrip("/")
    return f"{base}/api/twilio/call-status?callId={call_id}"


def accepted_terms(session: Session, campaign: Campaign) -> dict[str, Any]:
    """What a call keeps from its campaign when it is accepted: its caller ID, script, time
    limit and opt-out digit. Everything that acts on the call later (the TwiML, the
    reservation, Twilio's TimeLimit, the overdue sweep) reads these, so an edit of the campaign
    changes only the calls accepted after it. Raises CallerIdNotAllowed when the account may no
    longer call from the campaign's caller ID."""
    caller_ids.ensure_allowed(session, campaign.account_id, campaign.caller_id)
    return {
        "campaign_id": campaign.id,
        "from_number": campaign.caller_id,
        "script_id": campaigns_service.script_version(
            session, campaign.account_id, campaign.script
        ),
        "max_call_minutes": campaign.max_call_minutes,
        "opt_out_digit": campaign.opt_out_digit,
    }


def script_of(session: Session, call: Call) -> str:
    """What the callee hears: the script the call was accepted with, with its name."""
    text = campaigns_repository.script_text(session, call.script_id)
    return twiml.render_script(text, call.name)


def place_call(
    session: Session,
    account: Account,
    campaign: Campaign,
    name: str,
    phone_number: str,
    *,
    timezone: str | None = None,
    start_at: datetime | None = None,
    not_after: datetime | None = None,
    webhook: str | None = None,
) -> Call:
    """Accept one call and wake the dispatcher for it once the caller commits: it is claimed
    when a slot in the dial rate is near, as a batch's calls are, with the account's other
    single calls in the account's turn. Outside its hours, or before its startAt, it waits as
    scheduled. Raises dnc.OnTheList for a number the account may not call, and NeverPlaced for
    a call its rules would never let be placed. Its events go to `webhook` too (addresses.RefusedUrl
    when they may not)."""
    problem = twiml.spoken_problem(twiml.render_script(campaign.script, name))
    if problem is not None:
        raise Unspeakable(f"the script of campaign {campaign.name!r}, with this name, {problem}")
    to_number = to_e164(phone_number, get_settings().DEFAULT_REGION)
    dnc.ensure_not_listed(session, account.id, to_number)
    call = Call(
        account_id=account.id,
        to_number=to_number,
        name=name,
        timezone=timezone,
        start_at=start_at,
        not_after=not_after,
        webhook=None if webhook is None else per_call.bind(session, account.id, webhook),
        **accepted_terms(session, campaign),
    )
    found = calling_hours.verdict(
        call, campaign.calling_hours, campaign.default_timezone, calling_hours.now()
    )
    for column, value in calling_hours.on_acceptance(found).items():
        setattr(call, column, value)
    lifecycle.accept(session, call)
    jobs.dispatch(session)
    return call


def get_for_account(session: Session, account_id: str, ref: str) -> Call:
    call = repository.get_for_account(session, account_id, ref)
    if call is None:
        raise CallNotFound(ref)
    return call


# --- the worker's steps: claim, hand over, record ------------------------------------------


def claim(session: Session, account_id: str, call_ids: Sequence[str]) -> list[DialPlan]:
    """Claim some of an account's queued calls for dialing, each with a line and its longest
    length in credits, in one transaction that locks the account's row once.

    The dispatcher claims an account's share of a window this way, in the order given; a call
    sent again on its own (a retry, a reconciled call) is claimed alone. Calls beyond the
    account's (or their campaign's) free lines stay queued for a later window. When the balance
    cannot cover a call, every queued call of its campaign waits as insufficient-credits until
    credits arrive, rather than being claimed only to wait. A disputed account's calls are not
    claimed.
    """
    account = _locked_account(session, account_id)
    if account.disputed:
        # Blocked by a dispute: its calls stay queued, and go on once the block is lifted.
        return []
    lines = line_limit(account) - repository.count_live(session, account_id=account_id)
    campaign_lines: dict[str, int] = {}
    balance = account.credits
    reservations: dict[str, int] = {}
    chosen: list[repository.Claimable] = []
    short: set[str] = set()
    now = calling_hours.now()
    held: list[tuple[str, calling_rules.Verdict]] = []
    claimable = repository.claimable(session, call_ids)
    # Counted under the account's lock: two claims at once cannot both take a number's last
    # call of the day.
    attempts = repository.attempts_to(
        session, account_id, sorted({call.to_number for call in claimable}), now - calling_rules.DAY
    )
    for call in claimable:
        if lines <= 0:
            break
        # Queued while its hours were open, and closed since (a backlog, a wait for credits), or
        # its number called as often as its caps allow: it waits rather than ringing.
        tried = attempts.setdefault(call.to_number, [])
        found = calling_hours.verdict(call, call.calling_hours, call.default_timezone, now, tried)
        if found.kind != calling_rules.NOW:
            held.append((call.id, found))
            continue
        if call.campaign_lines is not None and call.campaign_id not in campaign_lines:
            live = repository.count_live(
                session, account_id=account_id, campaign_id=call.campaign_id
            )
            campaign_lines[call.campaign_id] = call.campaign_lines - live
        if campaign_lines.get(call.campaign_id, 1) <= 0:
            continue
        credits = prices.call_reservation(call.max_call_minutes)
        if credits > balance:
            short.add(call.campaign_id)
            continue
        balance -= credits
        lines -= 1
        if call.campaign_id in campaign_lines:
            campaign_lines[call.campaign_id] -= 1
        reservations[call.id] = credits
        chosen.append(call)
        tried.append((call.campaign_id, now))
    attempt = str(uuid.uuid4())
    claimed = repository.claim(session, reservations, attempt) if reservations else set()
    ledger.apply_together(
        session,
        account_id,
        [
            ledger.Change(
                account_id,
                -reservations[call_id],
                "call_reservation",
                "call",
                call_id,
                reference=f"call:{call_id}:reserve:{attempt}",
            )
            for call_id in reservations
            if call_id in claimed
        ],
    )
    if short:
        repository.park_for_credits(session, account_id, sorted(short))
    for call_id, found in held:
        hold(session, call_id, found, st.QUEUED)
    return [_plan(call, attempt) for call in chosen if call.id in claimed]


def hold(session: Session, call_id: str, found: calling_rules.Verdict, current: str) -> bool:
    """A call its rules do not allow now, found in `current`: it waits for the moment they do
    (scheduled), or ends expired, never placed; its event says why, by which rule."""
    values = {"hold_reason": found.reason, "hold_rule": found.rule}
    if found.kind == calling_rules.EXPIRED:
        moved = lifecycle.move(
            session,
            call_id,
            st.EXPIRED,
            Call.status == current,
            ended_at=utcnow(),
            credits_charged=0,
            not_before=None,
            **values,
        )
    else:
        moved = lifecycle.move(
            session,
            call_id,
            st.SCHEDULED,
            Call.status == current,
            not_before=found.at,
            handed_at=None,
            **values,
        )
    return moved is not None


# Scheduled calls looked at again per tick: the rest come the next tick, a second later.
DUE_AT_ONCE = 2000


def open_hours(session: Session) -> int:
    """The dispatcher's look at calls waiting on the clock: each call not placed by its
    notAfter expires, and each scheduled call whose moment came is queued, or waits again
    for a later one when its rules say so (a moment computed under other hours, a campaign
    whose hours changed). Returns how many calls moved."""
    now = calling_hours.now()
    moved = 0
    for call_id, current in repository.past_not_after(session, now, DUE_AT_ONCE):
        expired = calling_rules.Verdict(
            calling_rules.EXPIRED, now, "not placed by its notAfter", "notAfter"
        )
        moved += hold(session, call_id, expired, current)
    queued: list[str] = []
    for call in repository.due_scheduled(session, now, DUE_AT_ONCE):
        found = calling_hours.verdict(call, call.calling_hours, call.default_timezone, now)
        if found.kind == calling_rules.NOW:
            queued.append(call.id)
        else:
            moved += hold(session, call.id, found, st.SCHEDULED)
    if queued:
        moved += repository.queue_scheduled(session, queued)
    return moved


def _locked_account(session: Session, account_id: str) -> Account:
    """The account's row, fresh and locked until commit: its claims and settlements take
    turns, each seeing the balance and the calls the one before left. FOR NO KEY UPDATE, which
    lets through the key-share locks that foreign-key checks take: every event a change of the
    account's calls appends names the account, and a cancel appending one must not wait for a
    claim that waits for the cancel's calls; and every status callback holds one on its call's
    account until it commits, some 80 a second at 20 calls a second, so FOR UPDATE waited
    behind them past its lock timeout and the account lost its turn in the tick."""
    return session.execute(
        select(Account)
        .where(Account.id == account_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one()


def _plan(call: repository.Claimable, attempt: str) -> DialPlan:
    return DialPlan(
        call_id=call.id,
        attempt=attempt,
        to=call.to_number,
        from_=call.from_number,
        time_limit_seconds=call.max_call_minutes * 60,
        batch_id=call.batch_id,
    )


def take(session: Session, call_id: str, claimed: str | None) -> DialPlan | None:
    """The worker's hold on a claimed call (`claimed`: the claim's attempt), under an attempt of
    its own, so a dial task delivered twice dials once. A call sent without a claim (a retry, a
    reconciled call) is claimed here first. None when there is nothing to dial.

    Where to dial and for how long come from the call's row as the claim is taken, never from
    the task's message: the broker and Flower can be read and written by others, and a message
    naming a live claim with another number must not ring that number on our account.
    """
    if claimed is None:
        call = repository.get(session, call_id)
        if call is None:
            return None
        plans = claim(session, call.account_id, [call_id])
        if not plans:
            # No line or no credit for it now: the dispatcher hands it out when there is.
            repository.owe(session, call_id)
            return None
        claimed = plans[0].attempt
    else:
        call = repository.get(session, call_id)
        if call is not None and repository.batch_stopped(session, call.batch_id):
            # Paused or canceled since the claim. The database says so even when the stop flag
            # in Redis was lost (a Redis restart) or is not set yet: the claim goes back to the
            # queue, or is canceled. Before the take, so the batch's row is locked before the
            # call's, as a cancel locks them.
            release(session, _held(call, claimed))
            return None
    attempt = str(uuid.uuid4())
    taken = repository.take(session, call_id, claimed, attempt)
    if taken is None:
        return None
    plan = DialPlan(
        call_id=call_id,
        attempt=attempt,
        to=taken.to_number,
        from_=taken.from_number,
        time_limit_seconds=taken.max_call_minutes * 60,
        batch_id=taken.batch_id,
    )
    if taken.hangup_requested:
        # Hung up before it was dialed: it never rings.
        _end_unplaced(session, plan, st.CANCELED)
        return None
    refused = caller_ids.refusal(session, taken.account_id, plan.from_)
    if refused is not None:
        # The number was taken from the account after the call was accepted: it never rings
        # from a number that is no longer the account's.
        fail(session, plan, refused.code, str(refused))
        return None
    if _suppressed(session, taken.account_id, plan):
        # Listed since it was accepted: it takes no slot in the dial rate another call could
        # use. The fence looks again, for an add that commits while the worker waits.
        return None
    return plan


def _held(call: Call, attempt: str) -> DialPlan:
    """The plan of a call held under `attempt`, to hand it back or settle it (not to dial)."""
    return DialPlan(call.id, attempt, call.to_number, call.from_number, 0, call.batch_id)


def untake(session: Session, plan: DialPlan) -> bool:
    """The worker lets go of a claim it took and will not dial yet (its slot in the dial rate
    is too far off): the call keeps its claim, its line and its reservation, for the worker's
    task to take again; a lost task is sent again as any untaken claim's is
    (`resend_untaken`). False when the claim is no longer this attempt's."""
    return repository.untake(session, plan.call_id, plan.attempt)


def fence(session: Session, plan: DialPlan) -> datetime | None:
    """The last look at the claim, immediately before its create request: when that request
    must have ended by, or None when it must not be sent.

    Reconcile may ask Twilio about the call DIAL_AMBIGUOUS_SECONDS after the claim was taken,
    find nothing, and hand the claim to another worker. A worker stalled past that (a busy
    host, a hung connection) and dialing then would place a second call, of which no SID is
    kept: untracked, unbilled and impossible to hang up. So the request is sent only while the
    claim is still this attempt's and young enough (`dial_fence_seconds`) for the request,
    ended within TWILIO_TIMEOUT_SECONDS, to be over on our side before reconcile may look (see
    `reconcile` for Twilio's side). Nor is it sent once a hang-up was asked for, or the batch
    was paused or canceled: the worker last looked at the stop flag before its wait for a slot,
    and a hang-up asked for before a SID is known waits for the SID (`sid_arrives`). Nor once
    the account was blocked by a dispute, or its caller ID was taken from the account: either
    may commit while the claim is out, after the claim and the take looked. A call whose caller
    ID was taken fails here.

    Nor to a number put on a do-not-contact list since the call was accepted: the call ends
    `suppressed`, unplaced and uncharged. One look in the list's index, after the claim's
    UPDATE: an add committed by then is seen (each statement reads what has committed when it
    starts), one still uncommitted is not, and binds the calls after it.
    """
    settings = get_settings()
    now = utcnow()
    taken_after = now - timedelta(seconds=settings.dial_fence_seconds)
    account_id = repository.fence(
        session, plan.call_id, plan.attempt, taken_after, plan.to, plan.from_
    )
    if account_id is None:
        return None
    refused = caller_ids.refusal(session, account_id, plan.from_)
    if refused is not None:
        fail(session, plan, refused.code, str(refused))
        return None
    if _suppressed(session, account_id, plan):
        return None
    if not _within_hours(session, plan):
        return None
    return now + timedelta(seconds=settings.TWILIO_TIMEOUT_SECONDS)


def _suppressed(session: Session, account_id: str, plan: DialPlan) -> bool:
    """End the held call `suppressed` if its number is on a do-not-contact list now."""
    listed = dnc.listed(session, account_id, plan.to)
    if listed is None:
        return False
    _end_unplaced(
        session,
        plan,
        st.SUPPRESSED,
        error_code=dnc.LISTED_CODE,
        error_message=dnc.suppression_text(plan.to, listed),
    )
    return True


def _within_hours(session: Session, plan: DialPlan) -> bool:
    """The last look at the call's hours, immediately before its create request: a worker that
    waited for its slot past the closing of the hours (or past notAfter) never rings. The call
    gives its claim and reservation back and waits for its hours again, or expires."""
    timed = repository.timed(session, plan.call_id)
    if timed is None:
        return False
    now = calling_hours.now()
    found = calling_hours.verdict(timed, timed.calling_hours, timed.default_timezone, now)
    if found.kind == calling_rules.NOW:
        # The request may reach Twilio as late as its deadline, and ring then: a call whose
        # hours close before it waits for them to open again rather than ring after the close.
        # (A notAfter passing meanwhile is the customer's, not the law's: the call still goes.)
        by = now + timedelta(seconds=get_settings().TWILIO_TIMEOUT_SECONDS)
        found = calling_hours.verdict(timed, timed.calling_hours, timed.default_timezone, by)
        if found.kind != calling_rules.WAIT:
            return True
    if found.kind == calling_rules.EXPIRED:
        _end_unplaced(
            session,
            plan,
            st.EXPIRED,
            hold_reason=found.reason,
            hold_rule=found.rule,
            not_before=None,
        )
    elif release(session, plan):
        hold(session, plan.call_id, found, st.QUEUED)
    return False


class Again(Enum):
    """What a worker whose create request the fence refused does next."""

    NO = "no"  # the claim is settled: nothing more to do
    NOW = "now"  # the call went back to the queue: claim it anew and dial
    LATER = "later"  # the claim is kept: take it again once the other request is resolved


def fenced_off(session: Session, plan: DialPlan) -> Again:
    """The fence refused the create request: settle the claim as the reason says. A hang-up was
    asked for: the call ends unplaced, and never rings. Its batch was paused or canceled: it
    stands down. Its account was blocked: it goes back to the dispatcher, which claims it once
    the block is lifted. Another call of ours to the same number from the same caller ID has
    its create request out with no SID back (`repository.request_out_to`): the call keeps its
    claim and this worker takes it again later, once that request's SID is known or reconcile
    has settled it. Its claim is still this attempt's but too old: it goes back to the queue,
    and this worker dials it again. Reconciled or ended meanwhile (its caller ID taken, the
    fence failed it; its number listed, the fence suppressed it): left alone."""
    call = session.get(Call, plan.call_id, populate_existing=True)
    if call is None or call.attempt != plan.attempt or call.status != st.DIALING:
        return Again.NO
    if call.hangup_requested:
        _end_unplaced(session, plan, st.CANCELED)
        return Again.NO
    if repository.batch_stopped(session, plan.batch_id):
        stand_down(session, plan)
        return Again.NO
    if disputes.is_blocked(session, call.account_id):
        release(session, plan)
        repository.owe(session, plan.call_id)
        return Again.NO
    if repository.request_out_to(session, plan.call_id, plan.to, plan.from_):
        return Again.LATER if untake(session, plan) else Again.NO
    return Again.NOW if release(session, plan) else Again.NO


def resend_untaken(session: Session, handed_before: datetime) -> int:
    """Claims whose dial task was lost (a killed worker, a broker restart): the task is sent
    again. The first to take the claim dials; any other finds it taken."""
    untaken = repository.untaken(session, handed_before)
    repository.mark_handed(session, [call.id for _, call in untaken])
    for attempt, call in untaken:
        jobs.dial(session, call.id, asdict(_plan(call, attempt)))
    return len(untaken)


def line_limit(account: Account) -> int:
    return account.max_concurrent_calls or get_settings().MAX_CONCURRENT_CALLS


def record_sid(
    session: Session, plan: DialPlan, sid: str, dialed_at: datetime | None
) -> str | None:
    """Store the SID the moment Twilio returns it, and when the request went out (see
    `sid_arrives`)."""
    return sid_arrives(session, plan.call_id, sid, dialed_at=dialed_at, claimed=plan.attempt)


def sid_arrives(
    session: Session,
    call_id: str,
    sid: str,
    *,
    dialed_at: datetime | None = None,
    claimed: str | None = None,
) -> str | None:
    """A SID for the call arrived: from the worker's create request, from reconcile, or from a
    status callback (the worker died, or its answer was lost). The call keeps the first SID it
    got; a hang-up asked for before any SID was known is sent now, whichever way the SID came,
    since nobody could send it before. Returns the SID the call holds, or None when another of
    our calls holds this one (which is then not this call's)."""
    try:
        with session.begin_nested():
            stored = repository.store_sid(
                session, call_id, sid, dialed_at=dialed_at, claimed=claimed
            )
    except IntegrityError:
        log.error("call %s: SID %s arrived for it and is another call's", call_id, sid)
        return None
    if stored is None:
        return None
    if stored.sid == sid and stored.hangup_requested and not stored.hangup_carried_out:
        repository.mark_hang_up_handed(session, call_id)
        jobs.hang_up(session, call_id)
    return stored.sid


def _release_reservation(session: Session, plan: DialPlan) -> None:
    # As the row is now, not as the session first loaded it: a call claimed in this same
    # transaction (`take` claiming a call sent on its own) was loaded before its reservation.
    call = session.get(Call, plan.call_id, populate_existing=True)
    if call is None or call.credits_reserved == 0:
        return
    ledger.apply(
        session,
        ledger.Change(
            call.account_id, call.credits_reserved, "call_release", "call", call.id,
            reference=f"call:{call.id}:release:{plan.attempt}",
        ),
    )  # fmt: skip
    call.credits_reserved = 0
    resume_waiting(session, call.account_id)
    session.flush()


def release(session: Session, plan: DialPlan) -> bool:
    """Give the call back to the queue, and its credits back: Twilio did not place it. The
    worker retries it on its own (the dispatcher leaves a call just handed back alone). A call
    whose batch was canceled meanwhile is canceled with it; one whose batch is paused waits for
    the resume.

    The batch's row is read locked, before the call is touched: a worker may hand a call back
    (its slot refused, Twilio unreachable) while a cancel is written but not yet committed. It
    then waits here and sees `canceled`, or the cancel waits for it and finds the call back in
    the queue; read unlocked, the call would stay queued in a canceled batch. A share lock
    (FOR SHARE) is enough for that, and lets through the key-share locks that foreign-key checks
    take: a claim that holds the account's row and updates a call of this batch must not wait
    for it, since it waits for the account's row next.
    """
    batch = (
        session.get(Batch, plan.batch_id, with_for_update={"read": True}, populate_existing=True)
        if plan.batch_id is not None
        else None
    )
    released = repository.move_attempt(
        session,
        plan.call_id,
        plan.attempt,
        st.QUEUED,
        attempt=None,
        handed_at=utcnow(),
        dialed_at=None,
    )
    if released:
        _release_reservation(session, plan)
        if batch is not None and batch.status == "canceled":
            repository.cancel_if_queued(session, plan.call_id)
    return released


def stand_down(session: Session, plan: DialPlan) -> None:
    """The worker found its batch's stop flag set: the call goes back (see `release`). A flag
    the batch's row does not bear out (a resume committed and clearing the flag failed) is
    cleared, so a running batch does not stand down for the flag's lifetime. The row is locked
    by then: a pause committing after this sets the flag again once it has committed."""
    release(session, plan)
    batch = session.get(Batch, plan.batch_id) if plan.batch_id is not None else None
    if batch is not None and batch.status not in repository.STOPPED_BATCHES:
        batch_stops.clear(batch.id)


def fail(session: Session, plan: DialPlan, code: str, message: str) -> None:
    _end_unplaced(session, plan, st.FAILED, error_code=code, error_message=message)


def _end_unplaced(session: Session, plan: DialPlan, status: str, **values: object) -> None:
    """End a claimed call Twilio never placed: nothing charged, its reservation given back."""
    ended = repository.move_attempt(
        session,
        plan.call_id,
        plan.attempt,
        status,
        ended_at=utcnow(),
        credits_charged=0,
        dialed_at=None,
        **values,
    )
    if ended:
        _release_reservation(session, plan)


def _final_values(status: str, occurred_at: datetime, params: dict[str, str]) -> dict[str, Any]:
    """What a final status brings along: when the call ended, how long it talked, and what it
    costs (its started minutes, at most what it holds).

    The reservation stays held until `settle_ended` gives the rest back, a second's ended calls
    of an account in one balance update: at 20 calls a second, a row lock per final callback
    queued the callbacks and the dispatcher's claims behind one account's balance.
    """
    duration = int(params["CallDuration"]) if params.get("CallDuration") else None
    cost = prices.call_cost(status, duration)
    return {
        "ended_at": occurred_at,
        "duration_seconds": duration,
        "credits_charged": func.least(Call.credits_reserved, cost),
    }


SETTLE_AT_ONCE = 1000


def accounts_to_settle(session: Session) -> list[str]:
    return repository.accounts_with_unsettled(session)


def settle_ended(session: Session, account_id: str) -> int:
    """Give back what the account's ended calls held beyond their cost, once per call: one
    balance update and one ledger row per call. Returns how many calls were settled.

    The calls are locked first (two settlers never settle the same call), the account's row
    only by the balance update at the end: the dispatcher's claim for the account, which locks
    that row, waits at most for the update and the commit. Locked from the start, the row was
    held through the whole settlement, which on a busy worker outlasted the claim's lock timeout
    and cost the account its turn in the tick, a second of dialing at a time."""
    ended = repository.take_unsettled(session, account_id, SETTLE_AT_ONCE)
    if not ended:
        return 0
    repository.mark_settled(session, [call.id for call in ended])
    ledger.apply_together(
        session,
        account_id,
        [
            ledger.Change(
                account_id, call.credits_reserved - call.credits_charged, "call_settlement",
                "call", call.id, reference=f"call:{call.id}:settle",
                note=f"charged {call.credits_charged}",
            )
            for call in ended
        ],
    )  # fmt: skip
    if any(call.credits_reserved > call.credits_charged for call in ended):
        resume_waiting(session, account_id)
    return len(ended)


def resume_waiting(session: Session, account_id: str) -> int:
    """Credits arrived (bought, granted, or given back by a settled call): as many waiting
    calls as the balance can now reserve for go back to the queue, oldest first (the rest
    would only be claimed to wait again)."""
    balance = ledger.balance_of(session, account_id)
    chosen: list[str] = []
    for call_id, minutes in repository.waiting_for_credits(session, account_id, limit=500):
        balance -= prices.call_reservation(minutes)
        if balance < 0:
            break
        chosen.append(call_id)
    count = repository.requeue_waiting_for_credits(session, chosen) if chosen else 0
    if count:
        jobs.dispatch(session)
    return count


def reconcile(session: Session, call_id: str) -> str:
    """Settle a call whose hand-over to Twilio may or may not have happened.

    Twilio is asked for every call from its caller ID to its number created since the claim, in
    whatever state: one Twilio still holds queued over the account's calls per second, not yet
    dialed, counts as much as one ringing (see `twilio.find_calls`). One we do not know yet is
    this call, and its SID is adopted, when this call's create request went out and it is the
    one call of ours to that number from that caller ID whose request went out with no SID
    back. Twilio's Call resource gives back neither the URL nor the callback a call was created
    with, only To and From, so two such requests at once would leave no way to tell whose call
    is whose; the fence lets only one out at a time for a pair of numbers (see
    `repository.fence`). Two found anyway (requests sent before that rule) wait for a later
    look, and the found call's own status callbacks, which name their call, tell whose it is.

    None found means Twilio never placed it, and the call goes back to the queue, once a look
    finds nothing DIAL_AMBIGUOUS_SECONDS after the first may: the worker's create request was
    over on our side by the first (see `fence`), but one cut at its deadline may have reached
    Twilio, which can still carry it out a moment later. Never re-dialled blindly: when the
    number has more calls than the lookup reads, the call waits for a later look.
    """
    call = repository.get(session, call_id)
    if call is None or call.status != st.DIALING or call.twilio_sid is not None:
        return "nothing to do"
    if call.dial_started_at is None:
        return "nothing to do"  # a claim no worker holds: no create request was sent for it
    assert call.attempt is not None
    grace = timedelta(seconds=get_settings().DIAL_AMBIGUOUS_SECONDS)
    age = utcnow() - call.dial_started_at
    if age < grace:
        return "too early"
    lookup = twilio.find_calls(
        to=call.to_number,
        from_=call.from_number,
        created_since=call.dial_started_at - timedelta(seconds=5),
    )
    # Counted after the lookup, and before the SIDs we know are read: a call found is one whose
    # claim was taken before the lookup, so it is counted here, or its SID is known below.
    awaiting = repository.count_awaiting_sid(session, call.to_number, call.from_number)
    known = repository.known_sids(session, [c.sid for c in lookup.found])
    # A claim whose request never went out (its worker stopped before the fence) has no call at
    # Twilio: a call Twilio has that we do not know is another's, whose request did.
    sent = call.dialed_at is not None
    unknown = [c for c in lookup.found if c.sid not in known] if sent else []
    plan = _held(call, call.attempt)
    if unknown and awaiting > 1:
        log.warning(
            "call %s: %d calls of ours to %s wait for a SID; looking again",
            call.id, awaiting, call.to_number,
        )  # fmt: skip
        return "cannot tell yet"
    if unknown:
        remote = min(unknown, key=lambda c: c.date_created or call.dial_started_at)
        if record_sid(session, plan, remote.sid, remote.date_created) != remote.sid:
            return "cannot tell yet"  # another of ours has it, or this call got its own
        return f"adopted {remote.sid}"
    if not lookup.complete:
        log.warning("call %s: too many calls to %s to tell; looking again", call.id, call.to_number)
        return "cannot tell yet"
    if age < 2 * grace:
        return "not found yet"  # the sweeper looks again
    release(session, plan)
    jobs.dial(session, call.id)
    return "requeued"


# --- status callbacks ----------------------------------------------------------------------


def _timestamp(params: dict[str, str]) -> datetime:
    raw = params.get("Timestamp")
    if raw:
        try:
            return parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            pass
    return utcnow()


def apply_status_callback(
    session: Session, call_id: str, params: dict[str, str], source: str = "twilio"
) -> Call:
    """Apply one Twilio status callback, once, in SequenceNumber order.

    The event is stored once per (call, SequenceNumber); the call's status is the furthest any
    event has reached, so a repeat changes nothing and a late "ringing" never overwrites
    "completed", whatever order the callbacks arrive or commit in. What a final status brings
    (its end, duration and cost) moves with it, once.
    """
    call = repository.get(session, call_id)
    if call is None:
        raise CallNotFound(call_id)
    sid = params.get("CallSid", "")
    known = call.twilio_sid
    if known is None and sid:
        known = sid_arrives(session, call.id, sid)
        session.refresh(call)
    if sid and known != sid:
        log.error("callback for %s names SID %s, the call has %s", call.id, sid, known)
        return call
    sequence = int(params.get("SequenceNumber", "0") or 0)
    new_status = st.from_twilio(params.get("CallStatus", ""))
    if new_status is None or repository.has_event(session, call.id, source, sequence):
        return call
    occurred_at = _timestamp(params)
    try:
        with session.begin_nested():
            session.add(
                CallEvent(
                    call_id=call.id,
                    source=source,
                    sequence_number=sequence,
                    status=new_status,
                    occurred_at=occurred_at,
                    params=dict(params),
                )
            )
    except IntegrityError:
        return call  # the same callback, delivered twice at once
    answered_at = occurred_at if new_status == st.IN_PROGRESS else None
    repository.note_event(session, call.id, sequence, answered_at)
    values = _final_values(new_status, occurred_at, params) if new_status in st.FINAL else {}
    advance(session, call, new_status, **values)
    return call


def advance(session: Session, call: Call, new_status: str, **values: Any) -> bool:
    """The step that moves a call's status on: forward only, and a final status absorbs
    everything after it, even against another writer at the same moment (the guard is in the
    UPDATE itself). Whether it moved; `call` shows the row as it is now either way."""
    moved = lifecycle.move(session, call.id, new_status, **values)
    if moved is None:
        session.refresh(call)
    return moved is not None


# --- hang-up -------------------------------------------------------------------------------


def request_hang_up(session: Session, account_id: str, ref: str) -> Call:
    """Stop a call: at once if Twilio never had it, otherwise through a worker. The hang-up is
    recorded on the call, so one whose message is lost is carried out all the same
    (`resend_hang_ups`)."""
    call = get_for_account(session, account_id, ref)
    if call.status in st.FINAL:
        return call
    if repository.cancel_if_queued(session, call.id):
        session.refresh(call)
        return call
    if repository.ask_hang_up(session, call.id):
        jobs.hang_up(session, call.id)
    # Without a SID: a worker yet to take the claim, or yet to send its create request (the
    # fence), cancels the call unplaced; once the request is out, the SID's arrival, however it
    # comes, sends the hang-up (`sid_arrives`).
    session.refresh(call)
    return call


def hang_up_at_carrier(session: Session, call_id: str) -> str:
    """Ask Twilio to end the call: canceled while it rings, completed once answered.

    Recorded once Twilio says the call is over, so the sweeper sends it no more. This task and
    the sweeper's may run at once: hanging up twice is harmless, and both requests are counted.
    """
    call = repository.get(session, call_id)
    if call is None or call.twilio_sid is None or call.status in st.FINAL:
        return "nothing to do"
    if call.hangup_sent_at is not None:
        return "nothing to do"
    sid = call.twilio_sid
    remote = twilio.fetch_call(sid)
    sent = 0
    try:
        if remote.status in ("queued", "initiated", "ringing"):
            sent += 1
            remote = twilio.update_call_status(sid, "canceled")
        if remote.status == "in-progress":
            sent += 1
            remote = twilio.update_call_status(sid, "completed")
    except twilio.TwilioRejected:
        # Twilio refuses to change a call that has ended: another hang-up, the callee or its
        # time limit ended it meanwhile. What Twilio says now decides.
        remote = twilio.fetch_call(sid)
    repository.record_hang_up(session, call.id, sent, over=remote.status in st.FINAL)
    return remote.status


def resend_hang_ups(session: Session, handed_before: datetime) -> int:
    """Live calls whose hang-up was asked for and not carried out, last handed to a worker
    before `handed_before`: the message was lost (a broker restart), or its task gave up
    retrying. The hang-up is sent again, until Twilio says the call is over."""
    owed = repository.hand_out_owed_hang_ups(session, handed_before)
    for call_id in owed:
        jobs.hang_up(session, call_id)
    return len(owed)


def reconcile_live(session: Session, call_id: str) -> str:
    """A call live past its time limit: its final callback was lost. Ask Twilio how it ended,
    and apply that as the callback would have (freeing its line and settling its credits)."""
    call = repository.get(session, call_id)
    if call is None or call.status not in st.LIVE or call.twilio_sid is None:
        return "nothing to do"
    remote = twilio.fetch_call(call.twilio_sid)
    if remote.status not in st.FINAL:
        return f"still {remote.status} at Twilio"
    params = {"CallSid": remote.sid, "CallStatus": remote.status, "SequenceNumber": "0"}
    if remote.duration is not None:
        params["CallDuration"] = str(remote.duration)
    apply_status_callback(session, call.id, params, source="reconcile")
    return f"ended {remote.status}"
